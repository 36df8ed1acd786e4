package playground

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// module is the Go module whose checkout holds hack/build-tools.sh.
const module = "github.com/drover-dev/drover"

// BinDirEnv names the environment variable that points at the binaries.
const BinDirEnv = "DROVER_BIN_DIR"

// Binaries are the executables the playground runs: the control plane and
// kwok, which it cannot do without, and Traefik, the Gateway API
// implementation of the canary demo (step 6), without which the playground
// runs all the same, minus the canary demo.
func Binaries() []string { return append(requiredBinaries(), canaryBinaries()...) }

func requiredBinaries() []string {
	return []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kwok", "kwokctl"}
}

func canaryBinaries() []string { return []string{"traefik"} }

// missing lists the binaries of names absent from dir.
func missing(dir string, names []string) []string {
	var out []string
	for _, b := range names {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() {
			out = append(out, b)
		}
	}
	return out
}

// findBinDir returns the first complete binary directory: Options.BinDir,
// else $DROVER_BIN_DIR, else bin/ of the checkout around the working
// directory, the executable's directory, bin/ of the checkout around the
// executable. When none is complete and a checkout is known, it runs the
// checkout's hack/build-tools.sh (unless NoBuild). A directory that lacks
// only Traefik is good enough when nothing can build it (NoBuild, an
// explicit directory, no checkout, a failed build): the playground then
// runs without its canary demo.
func findBinDir(ctx context.Context, o Options, p *printer) (string, error) {
	explicit, source := o.BinDir, "--bin-dir"
	if explicit == "" {
		explicit, source = os.Getenv(BinDirEnv), "$"+BinDirEnv
	}
	if explicit != "" {
		dir, err := filepath.Abs(explicit)
		if err != nil {
			return "", fmt.Errorf("playground: %s: %w", source, err)
		}
		if m := missing(dir, requiredBinaries()); len(m) > 0 {
			return "", fmt.Errorf("playground: %s missing in %s (from %s); run `make tools` in a Drover checkout and point %s at its bin/",
				strings.Join(m, ", "), dir, source, source)
		}
		return dir, nil
	}

	var candidates, roots []string
	if wd, err := os.Getwd(); err == nil {
		if root := repoRoot(wd); root != "" {
			roots = append(roots, root)
			candidates = append(candidates, filepath.Join(root, "bin"))
		}
	}
	if exe, err := os.Executable(); err == nil {
		if resolved, err := filepath.EvalSymlinks(exe); err == nil {
			exe = resolved
		}
		exeDir := filepath.Dir(exe)
		candidates = append(candidates, exeDir)
		if root := repoRoot(exeDir); root != "" {
			roots = append(roots, root)
			candidates = append(candidates, filepath.Join(root, "bin"))
		}
	}
	// withoutCanary is the first directory with everything but Traefik.
	withoutCanary := ""
	for _, c := range candidates {
		if len(missing(c, Binaries())) == 0 {
			return c, nil
		}
		if withoutCanary == "" && len(missing(c, requiredBinaries())) == 0 {
			withoutCanary = c
		}
	}

	for _, root := range roots {
		script := filepath.Join(root, "hack", "build-tools.sh")
		if _, err := os.Stat(script); err != nil {
			continue
		}
		bin := filepath.Join(root, "bin")
		if o.NoBuild {
			if withoutCanary != "" {
				return withoutCanary, nil
			}
			return "", fmt.Errorf("playground: %s missing in %s; run `make tools` (or drop --no-build)",
				strings.Join(missing(bin, requiredBinaries()), ", "), bin)
		}
		p.printf("building what is missing (%s) with %s; the first build takes several minutes ...\n",
			strings.Join(missing(bin, Binaries()), ", "), script)
		cmd := exec.CommandContext(ctx, script)
		cmd.Dir = root
		cmd.Stdout, cmd.Stderr = p.w, p.w
		if err := cmd.Run(); err != nil {
			if ctx.Err() == nil && len(missing(bin, requiredBinaries())) == 0 {
				// What failed is Traefik's build: the canary demo is off.
				p.printf("%s failed (%v); carrying on without %s\n", script, err, strings.Join(missing(bin, Binaries()), ", "))
				return bin, nil
			}
			return "", fmt.Errorf("playground: %s failed: %w", script, err)
		}
		if m := missing(bin, requiredBinaries()); len(m) > 0 {
			return "", fmt.Errorf("playground: %s still missing in %s after %s", strings.Join(m, ", "), bin, script)
		}
		return bin, nil
	}
	if withoutCanary != "" {
		return withoutCanary, nil
	}
	return "", fmt.Errorf("playground: the control plane binaries (%s) were not found (looked in %s); "+
		"run `make tools` in a Drover checkout and run the playground from there, or pass --bin-dir / set $%s",
		strings.Join(requiredBinaries(), ", "), strings.Join(candidates, ", "), BinDirEnv)
}

// repoRoot returns the directory at or above dir whose go.mod declares
// Drover's module, or "".
func repoRoot(dir string) string {
	for {
		if isDroverModule(filepath.Join(dir, "go.mod")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func isDroverModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == module
		}
	}
	return false
}
