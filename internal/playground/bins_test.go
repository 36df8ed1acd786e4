package playground

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeCheckout makes a Drover checkout in a temporary directory whose bin/
// holds the given (empty) binaries and whose hack/build-tools.sh runs
// script, and makes it the working directory.
func fakeCheckout(t *testing.T, script string, binaries ...string) string {
	t.Helper()
	root := t.TempDir()
	for path, content := range map[string]string{
		"go.mod":              "module " + module + "\n",
		"hack/build-tools.sh": "#!/bin/sh\nset -e\n" + script + "\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, path), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range binaries {
		if err := os.WriteFile(filepath.Join(root, "bin", b), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(root)
	t.Setenv(BinDirEnv, "")
	return root
}

// TestFindBinDirTraefik: Traefik is built with the rest when it is
// missing, and its absence alone never stops the playground (no build
// allowed, or a failed build): the canary demo is then off.
func TestFindBinDirTraefik(t *testing.T) {
	for _, tc := range []struct {
		name     string
		script   string
		noBuild  bool
		binaries []string
		// built: build-tools.sh ran; wantErr: findBinDir fails.
		built, wantErr bool
	}{
		{name: "complete", script: "exit 1", binaries: Binaries()},
		{name: "traefik built", script: "touch bin/traefik", binaries: requiredBinaries(), built: true},
		{name: "traefik build fails", script: "exit 1", binaries: requiredBinaries(), built: true},
		{name: "no build", script: "exit 1", noBuild: true, binaries: requiredBinaries()},
		{name: "no build, kwok missing", script: "exit 1", noBuild: true, binaries: []string{"kube-apiserver", "traefik"}, wantErr: true},
		{name: "control plane build fails", script: "exit 1", binaries: []string{"traefik"}, built: true, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeCheckout(t, "touch ran; "+tc.script, tc.binaries...)
			var out bytes.Buffer
			dir, err := findBinDir(context.Background(), Options{NoBuild: tc.noBuild}, &printer{w: &out})
			if (err != nil) != tc.wantErr {
				t.Fatalf("findBinDir: %q, %v; want error %v; output:\n%s", dir, err, tc.wantErr, out.String())
			}
			if _, serr := os.Stat(filepath.Join(root, "ran")); (serr == nil) != tc.built {
				t.Errorf("build-tools.sh ran: %v, want %v; output:\n%s", serr == nil, tc.built, out.String())
			}
			if err != nil {
				return
			}
			if want := filepath.Join(root, "bin"); dir != want {
				t.Errorf("findBinDir = %q, want %q", dir, want)
			}
			if tc.name == "traefik build fails" && !strings.Contains(out.String(), "carrying on without traefik") {
				t.Errorf("output:\n%s", out.String())
			}
		})
	}
}
