package inplace_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/revision"
	"github.com/drover-dev/drover/internal/testenv"
)

var k8s client.Client

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, func(c client.Client) { k8s = c }))
}

func template(image, cpu string) *corev1.PodTemplateSpec {
	return &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "app", Image: image, Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}},
			{Name: "side", Image: "side:1"},
		}},
	}
}

// runningPod creates a pod from tpl and gives it a running status as a
// kubelet would (envtest has none).
func runningPod(t *testing.T, name string, tpl *corev1.PodTemplateSpec) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{revision.LabelRevisionHash: "web-old"}}, Spec: tpl.Spec}
	inplace.InjectReadinessGate(&pod.Spec)
	if err := k8s.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodRunning
	for _, c := range pod.Spec.Containers {
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: "id-" + c.Image, Ready: true,
			// A kubelet that supports resize reports resources; the API
			// server refuses a resize otherwise.
			Resources: c.Resources.DeepCopy(),
			State:     corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
		})
	}
	pod.Status.Conditions = []corev1.PodCondition{{Type: inplace.GateType, Status: corev1.ConditionTrue}}
	if err := k8s.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

func get(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	out := &corev1.Pod{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(pod), out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestImageUpdateDrivesGate(t *testing.T) {
	ctx := context.Background()
	clk := clocktesting.NewFakePassiveClock(time.Now())
	engine := &inplace.Engine{Client: k8s, Clock: clk}
	from, to := template("app:1", "100m"), template("app:2", "100m")
	to.Labels["tier"] = "gold"
	pod := runningPod(t, "image-update", from)

	req := inplace.Request{Pod: pod, Revision: "web-new", Change: inplace.Diff(from, to), GracePeriod: 10 * time.Second}
	res, err := engine.Update(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	pod = get(t, pod)
	if res.Done || res.RequeueAfter != 10*time.Second {
		t.Fatalf("want a 10s grace wait, got %+v", res)
	}
	if inplace.GateStatus(pod) != corev1.ConditionFalse {
		t.Fatalf("gate must be False before the restart, got %q", inplace.GateStatus(pod))
	}
	if s, ok := inplace.StateOf(pod); !ok || s.Phase != inplace.PhaseDraining {
		t.Fatalf("state must record draining (pods/status carries the annotation), got %+v %v", s, ok)
	}
	if pod.Spec.Containers[0].Image != "app:1" {
		t.Fatal("containers must not change during the grace period")
	}

	clk.SetTime(clk.Now().Add(11 * time.Second))
	req.Pod = pod
	if res, err = engine.Update(ctx, req); err != nil || res.Done {
		t.Fatalf("spec step: %+v %v", res, err)
	}
	pod = get(t, pod)
	if pod.Spec.Containers[0].Image != "app:2" || pod.Spec.Containers[1].Image != "side:1" {
		t.Fatalf("only the changed image moves: %+v", pod.Spec.Containers)
	}
	if pod.Labels[revision.LabelRevisionHash] != "web-new" || pod.Labels["tier"] != "gold" {
		t.Fatalf("labels not updated: %v", pod.Labels)
	}

	// Not restarted yet: nothing happens.
	req.Pod = pod
	if res, err = engine.Update(ctx, req); err != nil || res.Done || res.ResourceVersion != "" {
		t.Fatalf("must wait for the restart without writing: %+v %v", res, err)
	}
	// The kubelet restarts the container.
	pod.Status.ContainerStatuses[0].Image = "app:2"
	pod.Status.ContainerStatuses[0].ImageID = "id-app:2"
	pod.Status.ContainerStatuses[0].RestartCount = 1
	if err := k8s.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	req.Pod = get(t, pod)
	if res, err = engine.Update(ctx, req); err != nil || !res.Done {
		t.Fatalf("must finish once restarted: %+v %v", res, err)
	}
	pod = get(t, pod)
	if inplace.GateStatus(pod) != corev1.ConditionTrue {
		t.Fatal("gate must be True after the update")
	}
	if s, _ := inplace.StateOf(pod); s.Phase != inplace.PhaseDone || inplace.InFlight(pod) {
		t.Fatalf("state must be done: %+v", s)
	}
}

func TestMetadataOnlyIsOneWrite(t *testing.T) {
	ctx := context.Background()
	engine := &inplace.Engine{Client: k8s, Clock: clocktesting.NewFakePassiveClock(time.Now())}
	from, to := template("app:1", "100m"), template("app:1", "100m")
	from.Annotations = map[string]string{"old": "x"}
	to.Annotations = map[string]string{"new": "y"}
	pod := runningPod(t, "metadata-only", from)
	pod.Annotations = map[string]string{"old": "x"}
	rv := pod.ResourceVersion
	res, err := engine.Update(ctx, inplace.Request{Pod: pod, Revision: "web-new", Change: inplace.Diff(from, to)})
	if err != nil || !res.Done {
		t.Fatalf("metadata change finishes at once: %+v %v", res, err)
	}
	got := get(t, pod)
	if got.Annotations["new"] != "y" || got.Annotations["old"] != "" || inplace.GateStatus(got) != corev1.ConditionTrue {
		t.Fatalf("annotations not moved or gate touched: %v %q", got.Annotations, inplace.GateStatus(got))
	}
	if got.ResourceVersion == rv {
		t.Fatal("expected a write")
	}
}

func TestResizeUsesSubresource(t *testing.T) {
	ctx := context.Background()
	engine := &inplace.Engine{Client: k8s, Clock: clocktesting.NewFakePassiveClock(time.Now())}
	from, to := template("app:1", "100m"), template("app:1", "200m")
	pod := runningPod(t, "resize", from)
	res, err := engine.Update(ctx, inplace.Request{Pod: pod, Revision: "web-new", Change: inplace.Diff(from, to)})
	if err != nil || !res.Done {
		t.Fatalf("resize: %+v %v", res, err)
	}
	got := get(t, pod)
	if q := got.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; q.String() != "200m" {
		t.Fatalf("cpu not resized: %s", q.String())
	}
	if got.Labels[revision.LabelRevisionHash] != "web-new" {
		t.Fatal("revision label not moved")
	}
}

// A sidecar upgrade records its own state, leaves the workload's revision
// label and state alone, and does not reopen a gate the workload's update
// still holds.
func TestSidecarTrackKeepsToItself(t *testing.T) {
	ctx := context.Background()
	clk := clocktesting.NewFakePassiveClock(time.Now())
	engine := &inplace.Engine{Client: k8s, Clock: clk}
	tpl := template("app:1", "100m")
	pod := runningPod(t, "sidecar-track", tpl)

	// The workload starts an update of app (gate closed, draining).
	wl := inplace.Request{Pod: pod, Revision: "web-new", Change: inplace.Diff(tpl, template("app:2", "100m")), GracePeriod: time.Hour}
	if _, err := engine.Update(ctx, wl); err != nil {
		t.Fatal(err)
	}
	pod = get(t, pod)

	// A SidecarSet upgrades side.
	sc := inplace.Request{Pod: pod, Revision: "mesh/abc", Track: inplace.SidecarTrack,
		Change: inplace.Change{Images: map[string]string{"side": "side:2"}, Annotations: map[string]string{"rec": "1"}}}
	if _, err := engine.Update(ctx, sc); err != nil {
		t.Fatal(err)
	}
	pod = get(t, pod)
	if pod.Spec.Containers[1].Image != "side:2" || pod.Annotations["rec"] != "1" {
		t.Fatalf("sidecar not written at once (the gate is already closed): %+v", pod.Spec.Containers)
	}
	if pod.Labels[revision.LabelRevisionHash] != "web-old" {
		t.Fatalf("the sidecar track must not move the revision label: %v", pod.Labels)
	}
	if s, ok := inplace.StateOf(pod); !ok || s.Revision != "web-new" || s.Phase != inplace.PhaseDraining {
		t.Fatalf("workload state overwritten: %+v", s)
	}
	if s, ok := inplace.StateOn(pod, inplace.SidecarTrack); !ok || s.Phase != inplace.PhaseUpdating || s.Revision != "mesh/abc" {
		t.Fatalf("sidecar state: %+v %v", s, ok)
	}
	// side restarts; the sidecar upgrade is done, but the workload's update
	// still holds the gate.
	pod.Status.ContainerStatuses[1].Image, pod.Status.ContainerStatuses[1].ImageID = "side:2", "id-side:2"
	pod.Status.ContainerStatuses[1].RestartCount = 1
	if err := k8s.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	sc.Pod = get(t, pod)
	if res, err := engine.Update(ctx, sc); err != nil || !res.Done {
		t.Fatalf("sidecar upgrade must finish: %+v %v", res, err)
	}
	pod = get(t, pod)
	if inplace.GateStatus(pod) != corev1.ConditionFalse {
		t.Fatal("the workload's update still drains: the gate must stay False")
	}
	if inplace.InFlightOn(pod, inplace.SidecarTrack) || !inplace.InFlight(pod) {
		t.Fatal("tracks: sidecar done, workload in flight")
	}
}

// NoDrain updates (a HotUpgrade slot) write the spec at once and never
// touch the gate.
func TestNoDrainLeavesGateOpen(t *testing.T) {
	ctx := context.Background()
	engine := &inplace.Engine{Client: k8s, Clock: clocktesting.NewFakePassiveClock(time.Now())}
	tpl := template("app:1", "100m")
	pod := runningPod(t, "no-drain", tpl)
	req := inplace.Request{Pod: pod, Revision: "mesh/def", Track: inplace.SidecarTrack, NoDrain: true, GracePeriod: time.Hour,
		Change: inplace.Change{Images: map[string]string{"side": "side:2"}}}
	res, err := engine.Update(ctx, req)
	if err != nil || res.Done || res.RequeueAfter != 0 {
		t.Fatalf("first step: %+v %v", res, err)
	}
	pod = get(t, pod)
	if pod.Spec.Containers[1].Image != "side:2" || inplace.GateStatus(pod) != corev1.ConditionTrue {
		t.Fatalf("image %s, gate %s", pod.Spec.Containers[1].Image, inplace.GateStatus(pod))
	}
	pod.Status.ContainerStatuses[1].Image, pod.Status.ContainerStatuses[1].ImageID = "side:2", "id-side:2"
	if err := k8s.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	req.Pod = get(t, pod)
	if res, err = engine.Update(ctx, req); err != nil || !res.Done {
		t.Fatalf("done step: %+v %v", res, err)
	}
	pod = get(t, pod)
	if s, _ := inplace.StateOn(pod, inplace.SidecarTrack); s.Phase != inplace.PhaseDone || !s.NoGate || inplace.GateStatus(pod) != corev1.ConditionTrue {
		t.Fatalf("state %+v gate %s", s, inplace.GateStatus(pod))
	}
}

// TestUpdateToTheImageAlreadyRunning: a pod sent back and forth before the
// kubelet acted (its spec went to app:1 while app:2 still runs) is updated
// to app:2 again: no restart will come, and none is waited for.
func TestUpdateToTheImageAlreadyRunning(t *testing.T) {
	ctx := context.Background()
	clk := clocktesting.NewFakePassiveClock(time.Now())
	engine := &inplace.Engine{Client: k8s, Clock: clk}
	from, to := template("app:1", "100m"), template("app:2", "100m")
	pod := runningPod(t, "already-running", from)
	pod.Status.ContainerStatuses[0].Image, pod.Status.ContainerStatuses[0].ImageID = "app:2", "id-app:2"
	if err := k8s.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	req := inplace.Request{Pod: get(t, pod), Revision: "web-new", Change: inplace.Diff(from, to)}
	for i := 0; i < 4; i++ {
		res, err := engine.Update(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if res.Done {
			pod = get(t, pod)
			if pod.Spec.Containers[0].Image != "app:2" || inplace.GateStatus(pod) != corev1.ConditionTrue {
				t.Fatalf("done but spec %s gate %s", pod.Spec.Containers[0].Image, inplace.GateStatus(pod))
			}
			return
		}
		req.Pod = get(t, pod)
	}
	t.Fatal("the update waits for a restart that will not come")
}

// setReady reports the pod's Ready condition as a kubelet does.
func setReady(t *testing.T, pod *corev1.Pod, s corev1.ConditionStatus) *corev1.Pod {
	t.Helper()
	pod = get(t, pod)
	found := false
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodReady {
			pod.Status.Conditions[i].Status, found = s, true
		}
	}
	if !found {
		pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: s})
	}
	if err := k8s.Status().Update(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	return get(t, pod)
}

// TestContainersChangeOnceTheKubeletReportsNotReady: a drained pod keeps its
// containers until the kubelet has reported it not Ready (so that it no
// longer receives traffic), and changes them anyway after ReadyAckTimeout.
func TestContainersChangeOnceTheKubeletReportsNotReady(t *testing.T) {
	ctx := context.Background()
	from, to := template("app:1", "100m"), template("app:2", "100m")
	for _, kubeletAnswers := range []bool{true, false} {
		clk := clocktesting.NewFakePassiveClock(time.Now())
		engine := &inplace.Engine{Client: k8s, Clock: clk}
		pod := setReady(t, runningPod(t, fmt.Sprintf("ready-ack-%t", kubeletAnswers), from), corev1.ConditionTrue)
		req := inplace.Request{Pod: pod, Revision: "web-new", Change: inplace.Diff(from, to)}
		res, err := engine.Update(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if res.Done || res.RequeueAfter != inplace.ReadyAckTimeout {
			t.Fatalf("want a wait of ReadyAckTimeout for the kubelet, got %+v", res)
		}
		pod = get(t, pod)
		if inplace.GateStatus(pod) != corev1.ConditionFalse || pod.Spec.Containers[0].Image != "app:1" {
			t.Fatalf("gate %s, image %s: want the gate closed and the containers untouched",
				inplace.GateStatus(pod), pod.Spec.Containers[0].Image)
		}
		// Still reported Ready a moment later: still waiting, no write.
		clk.SetTime(clk.Now().Add(time.Second))
		req.Pod = pod
		// (The state records its start to the second.)
		if res, err = engine.Update(ctx, req); err != nil || res.ResourceVersion != "" ||
			res.RequeueAfter <= inplace.ReadyAckTimeout-2*time.Second || res.RequeueAfter > inplace.ReadyAckTimeout-time.Second {
			t.Fatalf("want to keep waiting without writing: %+v %v", res, err)
		}
		if kubeletAnswers {
			req.Pod = setReady(t, pod, corev1.ConditionFalse)
		} else {
			clk.SetTime(clk.Now().Add(inplace.ReadyAckTimeout))
		}
		if res, err = engine.Update(ctx, req); err != nil || res.ResourceVersion == "" {
			t.Fatalf("kubelet answered %t: want the spec written: %+v %v", kubeletAnswers, res, err)
		}
		if got := get(t, pod).Spec.Containers[0].Image; got != "app:2" {
			t.Fatalf("kubelet answered %t: image %s, want app:2", kubeletAnswers, got)
		}
	}
}
