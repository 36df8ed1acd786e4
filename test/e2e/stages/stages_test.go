// Package stages tests, on a real kwok cluster, the kwok Stage definitions
// of config/kwok: simulated pods must behave like a kubelet wherever Drover
// depends on it.
package stages

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/drover-dev/drover/test/e2e/framework"
)

const (
	gate    = "InPlaceUpdateReady"
	timeout = 20 * time.Second
)

func TestMain(m *testing.M) {
	os.Exit(framework.Run(m, framework.Options{Nodes: 2, NoManager: true}))
}

func newPod(ns, name string, containers ...corev1.Container) *corev1.Pod {
	if len(containers) == 0 {
		containers = []corev1.Container{{Name: "app", Image: "example.com/app:v1"}}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.PodSpec{Containers: containers},
	}
}

func create(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	if err := framework.Client().Create(context.Background(), pod); err != nil {
		t.Fatalf("create pod %s: %v", pod.Name, err)
	}
}

func get(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	out := &corev1.Pod{}
	if err := framework.Client().Get(context.Background(), client.ObjectKeyFromObject(pod), out); err != nil {
		t.Fatalf("get pod %s: %v", pod.Name, err)
	}
	return out
}

// waitPod polls the pod until check passes and returns it.
func waitPod(t *testing.T, pod *corev1.Pod, what string, check func(*corev1.Pod) error) *corev1.Pod {
	t.Helper()
	var got *corev1.Pod
	err := framework.Poll(context.Background(), timeout, func() error {
		p := &corev1.Pod{}
		if err := framework.Client().Get(context.Background(), client.ObjectKeyFromObject(pod), p); err != nil {
			return err
		}
		got = p
		return check(p)
	})
	if err != nil {
		t.Fatalf("pod %s: waiting for %s: %v\nstatus: %s", pod.Name, what, err, describe(got))
	}
	return got
}

func describe(p *corev1.Pod) string {
	if p == nil {
		return "<none>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s ip=%s", p.Status.Phase, p.Status.PodIP)
	for _, c := range p.Status.Conditions {
		fmt.Fprintf(&b, " %s=%s", c.Type, c.Status)
	}
	for _, s := range p.Status.ContainerStatuses {
		fmt.Fprintf(&b, " [%s image=%s ready=%v restarts=%d]", s.Name, s.Image, s.Ready, s.RestartCount)
	}
	return b.String()
}

func condition(p *corev1.Pod, t corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

func containerStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == name {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

func runningReady(p *corev1.Pod) error {
	if p.Status.Phase != corev1.PodRunning {
		return fmt.Errorf("phase %q", p.Status.Phase)
	}
	if condition(p, corev1.PodReady) != corev1.ConditionTrue {
		return errors.New("not Ready")
	}
	return nil
}

func readyIs(want corev1.ConditionStatus) func(*corev1.Pod) error {
	return func(p *corev1.Pod) error {
		if got := condition(p, corev1.PodReady); got != want {
			return fmt.Errorf("Ready is %q, want %q", got, want)
		}
		return nil
	}
}

func setGate(t *testing.T, pod *corev1.Pod, status corev1.ConditionStatus) {
	t.Helper()
	patch := fmt.Sprintf(`{"status":{"conditions":[{"type":%q,"status":%q,"lastTransitionTime":%q}]}}`,
		gate, status, time.Now().UTC().Format(time.RFC3339))
	if err := framework.Client().Status().Patch(context.Background(), pod, client.RawPatch(types.StrategicMergePatchType, []byte(patch))); err != nil {
		t.Fatalf("set gate %s=%s: %v", gate, status, err)
	}
}

func TestPodBecomesRunningAndReady(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	pod := newPod(ns, "web")
	create(t, pod)
	p := waitPod(t, pod, "Running and Ready", runningReady)

	if prefix := strings.TrimSuffix(framework.Cluster().PodCIDRBase(), "0.0/24"); !strings.HasPrefix(p.Status.PodIP, prefix) {
		t.Errorf("pod IP %q is not in a node's loopback pod CIDR %sN.0/24", p.Status.PodIP, prefix)
	}
	if len(p.Status.PodIPs) != 1 || p.Status.PodIPs[0].IP != p.Status.PodIP {
		t.Errorf("podIPs %v do not match podIP %s", p.Status.PodIPs, p.Status.PodIP)
	}
	if !strings.HasPrefix(p.Status.HostIP, "127.") {
		t.Errorf("host IP %q is not loopback", p.Status.HostIP)
	}
	if p.Status.StartTime == nil {
		t.Error("no startTime")
	}
	s := containerStatus(p, "app")
	switch {
	case s == nil:
		t.Fatal("no container status")
	case s.Image != "example.com/app:v1" || s.ImageID == "" || s.ContainerID == "":
		t.Errorf("container status image=%q imageID=%q containerID=%q", s.Image, s.ImageID, s.ContainerID)
	case !s.Ready || s.Started == nil || !*s.Started || s.State.Running == nil || s.RestartCount != 0:
		t.Errorf("container not running and ready: %+v", s)
	}
	for _, c := range []corev1.PodConditionType{corev1.PodInitialized, corev1.ContainersReady, corev1.PodScheduled} {
		if condition(p, c) != corev1.ConditionTrue {
			t.Errorf("condition %s is %q", c, condition(p, c))
		}
	}
	if p.Status.ObservedGeneration != p.Generation {
		t.Errorf("observedGeneration %d, generation %d", p.Status.ObservedGeneration, p.Generation)
	}
}

func TestReadinessGate(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	pod := newPod(ns, "gated")
	pod.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: gate}}
	create(t, pod)

	p := waitPod(t, pod, "Running with ready containers", func(p *corev1.Pod) error {
		if p.Status.Phase != corev1.PodRunning || condition(p, corev1.ContainersReady) != corev1.ConditionTrue {
			return errors.New("not running with ready containers")
		}
		return nil
	})
	if got := condition(p, corev1.PodReady); got != corev1.ConditionFalse {
		t.Fatalf("Ready is %q before the gate is set, want False", got)
	}
	// kwok must not set the gate itself, nor turn Ready on without it.
	time.Sleep(1500 * time.Millisecond)
	p = get(t, pod)
	if got := condition(p, corev1.PodReady); got != corev1.ConditionFalse {
		t.Fatalf("Ready is %q while the gate is unset, want False", got)
	}
	if got := condition(p, gate); got != "" {
		t.Fatalf("gate condition was set to %q by someone else", got)
	}

	setGate(t, pod, corev1.ConditionTrue)
	waitPod(t, pod, "Ready after the gate is True", readyIs(corev1.ConditionTrue))
	setGate(t, pod, corev1.ConditionFalse)
	p = waitPod(t, pod, "not Ready after the gate is False", readyIs(corev1.ConditionFalse))
	if condition(p, corev1.ContainersReady) != corev1.ConditionTrue {
		t.Errorf("ContainersReady changed with the gate: %s", describe(p))
	}
	setGate(t, pod, corev1.ConditionTrue)
	waitPod(t, pod, "Ready again after the gate is True", readyIs(corev1.ConditionTrue))
}

func TestFailingReadinessProbe(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	pod := newPod(ns, "unready")
	pod.Annotations = map[string]string{"kwok.drover.dev/ready": "false"}
	create(t, pod)
	waitPod(t, pod, "Running", func(p *corev1.Pod) error {
		if p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("phase %q", p.Status.Phase)
		}
		return nil
	})
	time.Sleep(time.Second)
	p := get(t, pod)
	if condition(p, corev1.PodReady) != corev1.ConditionFalse || condition(p, corev1.ContainersReady) != corev1.ConditionFalse {
		t.Fatalf("pod with a failing readiness probe is ready: %s", describe(p))
	}

	annotate := func(value string) {
		t.Helper()
		patch := `{"metadata":{"annotations":{"kwok.drover.dev/ready":null}}}`
		if value != "" {
			patch = fmt.Sprintf(`{"metadata":{"annotations":{"kwok.drover.dev/ready":%q}}}`, value)
		}
		if err := framework.Client().Patch(context.Background(), pod, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
			t.Fatal(err)
		}
	}
	annotate("")
	waitPod(t, pod, "Ready once the probe passes", readyIs(corev1.ConditionTrue))
	annotate("false")
	p = waitPod(t, pod, "not Ready once the probe fails", readyIs(corev1.ConditionFalse))
	if s := containerStatus(p, "app"); s.Ready || s.RestartCount != 0 || s.State.Running == nil {
		t.Errorf("container after probe failure: %+v", s)
	}
}

func TestImageChangeRestartsOnlyThatContainer(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	pod := newPod(ns, "two",
		corev1.Container{Name: "app", Image: "example.com/app:v1"},
		corev1.Container{Name: "sidecar", Image: "example.com/sidecar:v1"})
	create(t, pod)
	before := waitPod(t, pod, "Running and Ready", runningReady)
	oldApp, oldSidecar := *containerStatus(before, "app"), *containerStatus(before, "sidecar")

	w, err := framework.Clientset().CoreV1().Pods(ns).Watch(context.Background(), metav1.ListOptions{
		FieldSelector: "metadata.name=" + pod.Name, ResourceVersion: before.ResourceVersion,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	patch := `{"spec":{"containers":[{"name":"app","image":"example.com/app:v2"}]}}`
	if err := framework.Client().Patch(context.Background(), before, client.RawPatch(types.StrategicMergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}

	// Follow the pod through the restart: the container must report the new
	// image while not ready, then become ready again.
	var sawUnready bool
	var after *corev1.Pod
	deadline := time.After(timeout)
loop:
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("watch closed")
			}
			if ev.Type != watch.Modified {
				continue
			}
			p := ev.Object.(*corev1.Pod)
			s := containerStatus(p, "app")
			if s == nil || s.Image != "example.com/app:v2" {
				continue
			}
			if !s.Ready {
				sawUnready = true
				if condition(p, corev1.PodReady) != corev1.ConditionFalse {
					t.Errorf("pod Ready while a container restarts: %s", describe(p))
				}
				continue
			}
			after = p
			break loop
		case <-deadline:
			t.Fatalf("container app did not restart with the new image: %s", describe(get(t, pod)))
		}
	}
	if !sawUnready {
		t.Error("restarted container was never reported not ready")
	}
	if err := runningReady(after); err != nil {
		t.Errorf("after restart: %v: %s", err, describe(after))
	}

	app, sidecar := containerStatus(after, "app"), containerStatus(after, "sidecar")
	if app.RestartCount != 1 {
		t.Errorf("app restartCount %d, want 1", app.RestartCount)
	}
	if app.ImageID == oldApp.ImageID || app.ImageID == "" {
		t.Errorf("app imageID %q did not change (was %q)", app.ImageID, oldApp.ImageID)
	}
	if app.ContainerID == oldApp.ContainerID {
		t.Errorf("app containerID %q did not change", app.ContainerID)
	}
	if app.State.Running == nil || !app.State.Running.StartedAt.After(oldApp.State.Running.StartedAt.Time) {
		t.Errorf("app startedAt %v is not after %v", app.State.Running, oldApp.State.Running.StartedAt)
	}
	if app.LastTerminationState.Terminated == nil {
		t.Error("app has no lastState.terminated")
	}
	if sidecar.RestartCount != 0 || sidecar.ContainerID != oldSidecar.ContainerID ||
		!sidecar.State.Running.StartedAt.Equal(&oldSidecar.State.Running.StartedAt) || sidecar.ImageID != oldSidecar.ImageID {
		t.Errorf("sidecar was touched: before %+v, after %+v", oldSidecar, *sidecar)
	}

	// imageID is derived from the image alone, so it is deterministic.
	if want := fmt.Sprintf("kwok://sha256:%x", sha256.Sum256([]byte("example.com/app:v2"))); app.ImageID != want {
		t.Errorf("app imageID %q, want %q", app.ImageID, want)
	}
}

func TestResizeInPlace(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	pod := newPod(ns, "resize", corev1.Container{
		Name: "app", Image: "example.com/app:v1",
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		},
	})
	create(t, pod)
	before := waitPod(t, pod, "Running and Ready", runningReady)
	old := *containerStatus(before, "app")
	if old.Resources == nil || !old.Resources.Requests.Cpu().Equal(resource.MustParse("100m")) {
		t.Fatalf("status resources before resize: %+v", old.Resources)
	}
	if !old.AllocatedResources.Cpu().Equal(resource.MustParse("100m")) {
		t.Fatalf("allocatedResources before resize: %v", old.AllocatedResources)
	}

	patch := `{"spec":{"containers":[{"name":"app","resources":{"requests":{"cpu":"150m"},"limits":{"cpu":"300m"}}}]}}`
	if err := framework.Client().SubResource("resize").Patch(context.Background(), before, client.RawPatch(types.StrategicMergePatchType, []byte(patch))); err != nil {
		t.Fatalf("resize: %v", err)
	}
	after := waitPod(t, pod, "resized status", func(p *corev1.Pod) error {
		s := containerStatus(p, "app")
		if s.Resources == nil || !s.Resources.Requests.Cpu().Equal(resource.MustParse("150m")) || !s.Resources.Limits.Cpu().Equal(resource.MustParse("300m")) {
			return fmt.Errorf("status resources %+v", s.Resources)
		}
		return nil
	})
	s := containerStatus(after, "app")
	if !s.AllocatedResources.Cpu().Equal(resource.MustParse("150m")) {
		t.Errorf("allocatedResources %v, want cpu 150m", s.AllocatedResources)
	}
	if !s.Resources.Requests.Memory().Equal(resource.MustParse("64Mi")) {
		t.Errorf("memory request changed: %v", s.Resources.Requests)
	}
	if s.RestartCount != 0 || s.ContainerID != old.ContainerID || !s.State.Running.StartedAt.Equal(&old.State.Running.StartedAt) {
		t.Errorf("resize restarted the container: before %+v, after %+v", old, *s)
	}
	if err := runningReady(after); err != nil {
		t.Errorf("after resize: %v", err)
	}
	if after.Status.ObservedGeneration != after.Generation {
		t.Errorf("observedGeneration %d, generation %d", after.Status.ObservedGeneration, after.Generation)
	}
}

func TestFinalizerHoldsDeletion(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	const finalizer = "e2e.drover.dev/hold"
	held := newPod(ns, "held")
	held.Finalizers = []string{finalizer}
	plain := newPod(ns, "plain")
	create(t, held)
	create(t, plain)
	removeFinalizer := func() error {
		return framework.Client().Patch(context.Background(), held,
			client.RawPatch(types.JSONPatchType, []byte(`[{"op":"remove","path":"/metadata/finalizers"}]`)))
	}
	t.Cleanup(func() { _ = removeFinalizer() })
	waitPod(t, held, "Running and Ready", runningReady)
	waitPod(t, plain, "Running and Ready", runningReady)

	for _, p := range []*corev1.Pod{held, plain} {
		if err := framework.Client().Delete(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	gone := func(p *corev1.Pod) error {
		return framework.Poll(context.Background(), timeout, func() error {
			err := framework.Client().Get(context.Background(), client.ObjectKeyFromObject(p), &corev1.Pod{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return err
			}
			return errors.New("still there")
		})
	}
	if err := gone(plain); err != nil {
		t.Fatalf("pod without finalizer not removed: %v", err)
	}
	// The plain pod is gone; the held one was deleted at the same time and
	// must still be there, terminating and no longer ready.
	p := waitPod(t, held, "not Ready while terminating", readyIs(corev1.ConditionFalse))
	if p.DeletionTimestamp == nil {
		t.Fatal("held pod has no deletionTimestamp")
	}
	time.Sleep(time.Second)
	get(t, held)

	if err := removeFinalizer(); err != nil {
		t.Fatal(err)
	}
	if err := gone(held); err != nil {
		t.Fatalf("pod not removed after its finalizer was: %v", err)
	}
}

func TestRunToCompletion(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	job := func(name, exitCode string, policy corev1.RestartPolicy) *corev1.Pod {
		p := newPod(ns, name)
		p.Spec.RestartPolicy = policy
		if exitCode != "" {
			p.Annotations = map[string]string{"kwok.drover.dev/exit-code": exitCode}
		}
		create(t, p)
		return p
	}
	ok := job("succeeds", "0", corev1.RestartPolicyNever)
	fails := job("fails", "1", corev1.RestartPolicyOnFailure)
	forever := job("runs", "", corev1.RestartPolicyNever)
	server := job("server", "0", corev1.RestartPolicyAlways)

	terminated := func(phase corev1.PodPhase, code int32) func(*corev1.Pod) error {
		return func(p *corev1.Pod) error {
			if p.Status.Phase != phase {
				return fmt.Errorf("phase %q", p.Status.Phase)
			}
			s := containerStatus(p, "app")
			if s.State.Terminated == nil || s.State.Terminated.ExitCode != code || s.Ready {
				return fmt.Errorf("container state %+v ready=%v", s.State, s.Ready)
			}
			if condition(p, corev1.PodReady) != corev1.ConditionFalse {
				return errors.New("still Ready")
			}
			return nil
		}
	}
	waitPod(t, ok, "Succeeded", terminated(corev1.PodSucceeded, 0))
	waitPod(t, fails, "Failed", terminated(corev1.PodFailed, 1))
	for _, p := range []*corev1.Pod{forever, server} {
		if err := runningReady(get(t, p)); err != nil {
			t.Errorf("pod %s: %v: %s", p.Name, err, describe(get(t, p)))
		}
	}
}
