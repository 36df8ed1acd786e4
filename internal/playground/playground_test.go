package playground_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testenv"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/cli"
	"github.com/drover-dev/drover/internal/manager"
	"github.com/drover-dev/drover/internal/playground"
	"github.com/drover-dev/drover/internal/revision"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func binDir(t *testing.T) string {
	t.Helper()
	root, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin")
	// kwokctl for the cluster, traefik for the canary demo.
	for _, name := range []string{"kwokctl", "traefik"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			// CI builds the tools first: a missing binary there is a
			// failure, not a reason to skip.
			if os.Getenv("CI") != "" {
				t.Fatalf("%s missing: run `make tools`", filepath.Join(bin, name))
			}
			t.Skipf("%s missing: run `make tools`", filepath.Join(bin, name))
		}
	}
	return bin
}

type podView struct {
	name, ip, node, rev string
	restarts            int32
	ready               bool
}

func pods(ctx context.Context, c client.Client) ([]podView, error) {
	var list corev1.PodList
	if err := c.List(ctx, &list, client.InNamespace(playground.DemoNamespace), client.MatchingLabels{"app": playground.DemoName}); err != nil {
		return nil, err
	}
	var out []podView
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		v := podView{name: p.Name, ip: p.Status.PodIP, node: p.Spec.NodeName, rev: p.Labels[revision.LabelRevisionHash]}
		for _, s := range p.Status.ContainerStatuses {
			v.restarts += s.RestartCount
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				v.ready = c.Status == corev1.ConditionTrue
			}
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// TestPlayground runs the playground as `drover playground` does, updates
// the demo CloneSet in place with the CLI's `set image`, releases v2 of the
// canary demo through its Rollout with traffic through the gateway, then
// stops it and checks that nothing (neither the cluster nor Traefik) is
// left behind.
func TestPlayground(t *testing.T) {
	bin := binDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var out syncBuffer
	readyCh := make(chan playground.Env, 1)
	done := make(chan error, 1)
	started := time.Now()
	go func() {
		done <- playground.Run(ctx, playground.Options{
			BinDir: bin, WorkDir: t.TempDir(), Out: &out, NoBuild: true, CLI: "bin/drover",
			Ready: func(e playground.Env) { readyCh <- e },
		})
	}()
	finished := false
	stop := func() error {
		cancel()
		if finished {
			return nil
		}
		select {
		case err := <-done:
			finished = true
			return err
		case <-time.After(3 * time.Minute):
			return errors.New("Run did not return within 3 minutes of cancellation")
		}
	}
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()

	var env playground.Env
	select {
	case env = <-readyCh:
	case err := <-done:
		finished = true
		t.Fatalf("Run returned before it was ready: %v\n%s", err, out.String())
	case <-time.After(5 * time.Minute):
		t.Fatalf("playground not ready within 5 minutes:\n%s", out.String())
	}
	t.Logf("ready after %s", time.Since(started).Round(100*time.Millisecond))

	guide := out.String()
	for _, want := range []string{
		"export KUBECONFIG=" + env.Kubeconfig,
		"kubectl get cloneset",
		"bin/drover get cloneset web-frontend -w",
		"bin/drover set image cloneset/web-frontend nginx=nginx:1.26",
		"updated 3/3 (partition 2 keeps 2 on the old revision)",
	} {
		if !strings.Contains(guide, want) {
			t.Errorf("guide lacks %q:\n%s", want, guide)
		}
	}
	if pids := pgrep(t, env.ClusterName); len(pids) == 0 {
		t.Fatalf("no process of cluster %s is running while the playground is up", env.ClusterName)
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	scheme, err := manager.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}

	cs := &appsv1alpha1.CloneSet{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: playground.DemoNamespace, Name: playground.DemoName}, cs); err != nil {
		t.Fatal(err)
	}
	if cs.Status.ReadyReplicas != 5 || !meta.IsStatusConditionTrue(cs.Status.Conditions, appsv1alpha1.ConditionReady) {
		t.Fatalf("CloneSet not ready: %+v", cs.Status)
	}
	before, err := pods(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 5 {
		t.Fatalf("want 5 pods, got %+v", before)
	}
	for _, p := range before {
		if !p.ready || p.restarts != 0 || p.ip == "" || p.rev != cs.Status.UpdateRevision {
			t.Fatalf("unexpected pod before the update: %+v (update revision %s)", p, cs.Status.UpdateRevision)
		}
	}
	oldRev := cs.Status.UpdateRevision

	// The CLI, as a user would run it (as the kubectl plugin).
	var cliOut, cliErr bytes.Buffer
	code := cli.Main(ctx, []string{"kubectl-drover", "--kubeconfig", env.Kubeconfig, "-n", "default",
		"set", "image", "cloneset/web-frontend", "nginx=nginx:1.26"}, cli.Streams{In: strings.NewReader(""), Out: &cliOut, ErrOut: &cliErr})
	if code != 0 {
		t.Fatalf("set image exited %d: %s%s", code, cliOut.String(), cliErr.String())
	}
	if !strings.Contains(cliOut.String(), "nginx: nginx:1.25 -> nginx:1.26") {
		t.Errorf("set image output: %s", cliOut.String())
	}
	code = cli.Main(ctx, []string{"kubectl-drover", "--kubeconfig", env.Kubeconfig, "set", "image", "cloneset/web-frontend", "x=nginx:1.26"},
		cli.Streams{In: strings.NewReader(""), Out: &cliOut, ErrOut: &cliErr})
	if code == 0 || !strings.Contains(cliErr.String(), `container "x" not found in cloneset/web-frontend; containers: nginx`) {
		t.Errorf("unknown container: exit %d, %s", code, cliErr.String())
	}

	updateStart := time.Now()
	var last string
	deadline := time.Now().Add(4 * time.Minute)
	for {
		if err := c.Get(ctx, client.ObjectKeyFromObject(cs), cs); err != nil {
			t.Fatal(err)
		}
		now, err := pods(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		last = fmt.Sprintf("status %+v\npods %+v", cs.Status, now)
		newRev := cs.Status.UpdateRevision
		var onNew, onOld int
		for _, p := range now {
			switch {
			case p.rev == newRev && newRev != oldRev && p.restarts == 1 && p.ready:
				onNew++
			case p.rev == oldRev && p.restarts == 0 && p.ready:
				onOld++
			}
		}
		if onNew == 3 && onOld == 2 && len(now) == 5 && cs.Status.UpdatedReplicas == 3 &&
			meta.IsStatusConditionTrue(cs.Status.Conditions, appsv1alpha1.ConditionReady) {
			for i := range now {
				if now[i].name != before[i].name || now[i].ip != before[i].ip || now[i].node != before[i].node {
					t.Errorf("pod changed identity: %+v -> %+v", before[i], now[i])
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("in-place update did not complete:\n%s", last)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("in-place update of 3 pods took %s", time.Since(updateStart).Round(100*time.Millisecond))

	// The CLI's view of the result.
	snap, err := cli.Collect(ctx, c, playground.DemoNamespace, playground.DemoName, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var view bytes.Buffer
	if err := cli.Render(&view, snap); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(view.String(), "updated 3/3 (partition 2 keeps 2 on the old revision)") {
		t.Errorf("get cloneset view:\n%s", view.String())
	}
	t.Logf("drover get cloneset web-frontend:\n%s", view.String())

	// The guide's canary story, with real traffic through Traefik.
	canaryRelease(ctx, t, c, env, guide)

	// The guide's SidecarSet story: the playground's manager serves the
	// injection webhook, so a recreated pod gets the example's sidecar.
	sidecarInjected(ctx, t, c, env.ManagerLog)

	// The analysis demo's two releases, played live once the playground
	// was ready (they ran while the stories above did).
	analysisStories(t, &out, env)

	stopStart := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	t.Logf("stopped in %s", time.Since(stopStart).Round(100*time.Millisecond))
	if pids := pgrep(t, env.ClusterName); len(pids) > 0 {
		t.Errorf("processes of cluster %s left: %v", env.ClusterName, pids)
	}
	// Traefik's command line names its work dir, under env.Dir.
	if pids := pgrep(t, env.Dir); len(pids) > 0 {
		t.Errorf("processes of playground %s (Traefik?) left: %v", env.Dir, pids)
	}
	for _, want := range []string{"Traefik stopped", "Prometheus stopped", "demo app server stopped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := os.Stat(env.Dir); !os.IsNotExist(err) {
		t.Errorf("playground directory %s not removed: %v", env.Dir, err)
	}
	if !strings.Contains(out.String(), "nothing left running") {
		t.Errorf("output:\n%s", out.String())
	}
}

func sidecarInjected(ctx context.Context, t *testing.T, c client.Client, managerLog string) {
	t.Helper()
	raw, err := testenv.Example("sidecarset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ss := &appsv1alpha1.SidecarSet{}
	if err := yaml.UnmarshalStrict(raw, ss); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, ss); err != nil {
		t.Fatalf("apply examples/sidecarset.yaml: %v", err)
	}
	// The guide's next step: the demo pods get the volume the example's
	// sidecar mounts; the recreated pods come back with the sidecar.
	cs := &appsv1alpha1.CloneSet{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: playground.DemoNamespace, Name: playground.DemoName}, cs); err != nil {
		t.Fatal(err)
	}
	patch := client.RawPatch(types.JSONPatchType, []byte(playground.AddLogVolumePatch))
	deadline := time.Now().Add(3 * time.Minute)
	patched := false
	for {
		// The injection entry for the SidecarSet is written
		// asynchronously: patch once its entry exists.
		var cfg admissionregistrationv1.MutatingWebhookConfiguration
		if !patched && c.Get(ctx, client.ObjectKey{Name: "drover-sidecar-injector"}, &cfg) == nil && len(cfg.Webhooks) == 1 {
			if err := c.Patch(ctx, cs, patch); err != nil {
				t.Fatal(err)
			}
			patched = true
		}
		var list corev1.PodList
		if err := c.List(ctx, &list, client.InNamespace(playground.DemoNamespace), client.MatchingLabels{"app": playground.DemoName}); err != nil {
			t.Fatal(err)
		}
		for _, p := range list.Items {
			for _, ctr := range p.Spec.Containers {
				if ctr.Name == "fluent-bit" && ctr.Image == "fluent/fluent-bit:3.0" {
					t.Logf("pod %s was recreated with the fluent-bit sidecar", p.Name)
					return
				}
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(managerLog)
			t.Fatalf("no pod of %s got the SidecarSet's fluent-bit container (patched %v); manager log:\n%s", playground.DemoName, patched, log)
		}
		time.Sleep(time.Second)
	}
}

// pgrep returns the pids whose command line mentions s.
func pgrep(t *testing.T, s string) []string {
	t.Helper()
	b, err := exec.Command("pgrep", "-f", s).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return nil // no match
	}
	if err != nil {
		t.Fatalf("pgrep: %v", err)
	}
	return strings.Fields(string(b))
}

// TestPlaygroundProcessCleanup runs the real `drover playground` binary
// twice: once stopped with SIGINT after its output pipe was closed (it
// must neither die of SIGPIPE nor leave anything behind), once killed with
// SIGKILL (its reaper must remove the cluster and stop Traefik). The
// SIGINT run's binary directory lacks traefik: the playground then runs
// without its canary demo and says so.
func TestPlaygroundProcessCleanup(t *testing.T) {
	bin := binDir(t)
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain to build cmd/drover")
	}
	drover := filepath.Join(t.TempDir(), "drover")
	if out, err := exec.Command(goTool, "build", "-o", drover, "github.com/drover-dev/drover/cmd/drover").CombinedOutput(); err != nil {
		t.Fatalf("building drover: %v\n%s", err, out)
	}

	// The control plane without traefik.
	noTraefik := t.TempDir()
	for _, name := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kwok", "kwokctl"} {
		if err := os.Symlink(filepath.Join(bin, name), filepath.Join(noTraefik, name)); err != nil {
			t.Fatal(err)
		}
	}

	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			work := t.TempDir()
			binDir := bin
			if sig == syscall.SIGINT {
				binDir = noTraefik
			}
			cmd := exec.Command(drover, "playground", "--bin-dir", binDir, "--work-dir", work, "--no-build", "--nodes", "2")
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr syncBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			var seen strings.Builder
			go func() {
				buf := make([]byte, 4096)
				for !strings.Contains(seen.String(), "Press Ctrl-C") {
					n, err := stdout.Read(buf)
					seen.Write(buf[:n])
					if err != nil {
						break
					}
				}
				// Close our end: later writes of the playground hit a broken pipe.
				stdout.Close()
				exited <- nil
			}()
			select {
			case <-exited:
			case <-time.After(4 * time.Minute):
				_ = cmd.Process.Kill()
				t.Fatalf("playground not ready:\n%s\n%s", seen.String(), stderr.String())
			}
			if !strings.Contains(seen.String(), "Press Ctrl-C") {
				_ = cmd.Wait()
				t.Fatalf("playground exited before it was ready:\n%s\n%s", seen.String(), stderr.String())
			}
			name := ""
			for _, f := range strings.Fields(seen.String()) {
				if strings.HasPrefix(f, "drover-playground-") && !strings.Contains(f, "/") {
					name = strings.TrimSuffix(f, ",")
					break
				}
			}
			if name == "" || len(pgrep(t, name)) == 0 {
				t.Fatalf("cluster %q not found running:\n%s", name, seen.String())
			}
			// Traefik's command line names its access log, under work.
			traefikRunning := len(pgrep(t, work+"/.*/traefik-access.log")) > 0
			if sig == syscall.SIGINT {
				for _, want := range []string{
					"skipped, the rest of the playground works: traefik missing in " + noTraefik,
					"The canary demo (examples/rollout.yaml behind Traefik) is off",
				} {
					if !strings.Contains(seen.String(), want) {
						t.Errorf("output lacks %q:\n%s", want, seen.String())
					}
				}
				if traefikRunning {
					t.Errorf("Traefik runs without bin/traefik?")
				}
			} else if !traefikRunning || !strings.Contains(seen.String(), "Canary release with real traffic") {
				t.Fatalf("canary demo not running (Traefik running: %v):\n%s", traefikRunning, seen.String())
			}

			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			werr := cmd.Wait()
			if sig == syscall.SIGINT && werr != nil {
				t.Errorf("after SIGINT: %v\n%s", werr, stderr.String())
			}
			deadline := time.Now().Add(time.Minute)
			for {
				// The cluster's processes, and Traefik (its command line
				// names its work dir, under work).
				pids := append(pgrep(t, name), pgrep(t, work)...)
				entries, _ := os.ReadDir(work)
				if len(pids) == 0 && len(entries) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after %s: processes %v and files %v left", sig, pids, entries)
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}

// analysisStories waits for the end of the analysis demo's live output and
// checks what it said: the healthy demo:v2 promoted with every analysis
// measurement successful, the 20%-errors demo:v3 aborted on a failed
// measurement near 0.8, and traffic all back on demo:v2.
func analysisStories(t *testing.T, out *syncBuffer, env playground.Env) {
	t.Helper()
	if env.PrometheusURL == "" {
		t.Fatalf("the analysis demo is off:\n%s", out.String())
	}
	deadline := time.Now().Add(5 * time.Minute)
	for !strings.Contains(out.String(), playground.AnalysisDoneLine) {
		if strings.Contains(out.String(), "[analysis demo] stopped") || time.Now().After(deadline) {
			t.Fatalf("the analysis demo did not finish:\n%s", out.String())
		}
		time.Sleep(time.Second)
	}
	all := out.String()
	live := all[strings.Index(all, "[analysis demo] (1)"):]
	t.Logf("analysis demo:\n%s", live)
	healthy, bad, ok := strings.Cut(live, "[analysis demo] (2)")
	if !ok {
		t.Fatalf("no second story:\n%s", live)
	}
	for _, want := range []string{
		"demo:v2 of cloneset/shop", "step 2/4", "app-success-rate 1.000 (Successful)", "gateway-success-rate 1.000 (Successful)",
		playground.AnalysisPromotedLine, "of 100 requests, 100 answered by v2",
	} {
		if !strings.Contains(healthy, want) {
			t.Errorf("story (1) lacks %q", want)
		}
	}
	for _, bad := range []string{"(Failed)", "Degraded"} {
		if strings.Contains(healthy, bad) {
			t.Errorf("story (1) says %q", bad)
		}
	}
	for _, want := range []string{
		"demo:v3 with ERROR_RATE=0.2 of cloneset/shop", "(Failed)", playground.AnalysisAbortedLine,
		"traffic back on demo:v2: of 100 requests, 100 answered by v2",
	} {
		if !strings.Contains(bad, want) {
			t.Errorf("story (2) lacks %q", want)
		}
	}
	if !regexp.MustCompile(`success-rate 0\.[78][0-9]{2} \(Failed\)`).MatchString(bad) {
		t.Errorf("story (2) shows no failed success rate near 0.8")
	}
}
