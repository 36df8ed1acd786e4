package manager

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/podorder"
	"github.com/drover-dev/drover/internal/podstate"
)

func fullPod() *corev1.Pod {
	now := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"a": "b"},
			Annotations: map[string]string{"x": "y", "sidecar.istio.io/status": "{...}", corev1.LastAppliedConfigAnnotation: "{...}",
				"apps.drover.dev/inplace-update-state": "{}", "lifecycle.apps.drover.dev/x": "1", "controller.kubernetes.io/pod-deletion-cost": "5"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}},
		Spec: corev1.PodSpec{
			NodeName:       "n1",
			ReadinessGates: []corev1.PodReadinessGate{{ConditionType: inplace.GateType}},
			Containers: []corev1.Container{{Name: "app", Image: "app:1", Env: []corev1.EnvVar{{Name: "A", Value: "b"}},
				Command: []string{"run"}}},
			Volumes: []corev1.Volume{{Name: "v"}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning,
			PodIP: "10.0.0.1",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now, Message: "long"},
				{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}, {Type: corev1.ContainersReady, Status: corev1.ConditionTrue},
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
				{Type: inplace.GateType, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Image: "app:1", ImageID: "id", Ready: true, RestartCount: 2,
				State:                corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "x"}}}},
		},
	}
}

func TestTrimPodKeepsWhatControllersRead(t *testing.T) {
	full := fullPod()
	out, err := newPodTrimmer(newInterner(16))(fullPod())
	if err != nil {
		t.Fatal(err)
	}
	p := out.(*corev1.Pod)
	if p.ManagedFields != nil || p.Annotations[corev1.LastAppliedConfigAnnotation] != "" || p.Spec.Volumes != nil ||
		p.Spec.Containers[0].Env != nil || p.Status.PodIP != "" || p.Status.ContainerStatuses[0].LastTerminationState.Terminated != nil {
		t.Fatalf("unneeded fields kept: %+v", p)
	}
	if len(p.Annotations) != 3 || p.Annotations["apps.drover.dev/inplace-update-state"] != "{}" ||
		p.Annotations["lifecycle.apps.drover.dev/x"] != "1" || p.Annotations["controller.kubernetes.io/pod-deletion-cost"] != "5" {
		t.Fatalf("annotations %v: want exactly Drover's and Kubernetes controllers' ones", p.Annotations)
	}
	if n := len(p.Status.Conditions); n != 3 || p.Status.Conditions[0].Message != "" {
		t.Fatalf("conditions %+v: want Ready, ContainersReady and the gate, without messages", p.Status.Conditions)
	}
	if p.Labels["a"] != "b" || p.Spec.NodeName != "n1" || p.Spec.Containers[0].Image != "app:1" {
		t.Fatalf("identity, metadata or images lost: %+v", p)
	}
	if podstate.IsReady(p) != podstate.IsReady(full) || podstate.Restarts(p) != podstate.Restarts(full) ||
		!podstate.ContainersReady(p) || inplace.GateStatus(p) != corev1.ConditionTrue || !inplace.HasGate(p) {
		t.Fatal("readiness, restarts or gate answers changed by trimming")
	}
	if !podstate.ReadySince(p).Equal(podstate.ReadySince(full)) {
		t.Fatal("ready time changed by trimming")
	}
	ranked := podorder.RankForScaleDown([]*corev1.Pod{p}, podorder.ScaleDownOptions{})
	if len(ranked) != 1 {
		t.Fatal("ranking a trimmed pod failed")
	}
}

func TestTrimPodPassesTombstonesThrough(t *testing.T) {
	if out, err := newPodTrimmer(newInterner(16))("tombstone"); err != nil || out != "tombstone" {
		t.Fatalf("got %v, %v", out, err)
	}
}

func TestTrimPodConditionsExactSize(t *testing.T) {
	p := fullPod()
	trimPod(p, func(s string) string { return s })
	if c := p.Status.Conditions; len(c) != 3 || cap(c) != 3 {
		t.Fatalf("conditions len %d cap %d, want 3 and 3", len(c), cap(c))
	}
	p = fullPod()
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}
	trimPod(p, func(s string) string { return s })
	if p.Status.Conditions != nil {
		t.Fatalf("conditions %+v, want none", p.Status.Conditions)
	}
}

// Two pods decoded apart share every string the trimmer interns, map keys
// included, and keep their own values where they differ.
func TestTrimPodInternsSharedStrings(t *testing.T) {
	trim := newPodTrimmer(newInterner(1024))
	decoded := func(name string) *corev1.Pod {
		p := fullPod()
		// Fresh copies, as a decoder makes them.
		p.Name = strings.Clone(name)
		p.Namespace = strings.Clone("ns")
		p.Labels = map[string]string{strings.Clone("apps.drover.dev/workload"): strings.Clone("CloneSet"), strings.Clone("instance"): name}
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: strings.Clone("apps.drover.dev/v1alpha1"), Kind: strings.Clone("CloneSet"),
			Name: strings.Clone("web"), UID: types.UID(strings.Clone("uid-1"))}}
		p.Spec.NodeName = strings.Clone("n1")
		p.Spec.Containers[0].Image = strings.Clone("app:1")
		p.Status.ContainerStatuses[0].ImageID = strings.Clone("id")
		p.Status.Conditions[0].Type = corev1.PodConditionType(strings.Clone(string(corev1.PodReady)))
		return p
	}
	a0, _ := trim(decoded("a"))
	b0, _ := trim(decoded("b"))
	a, b := a0.(*corev1.Pod), b0.(*corev1.Pod)
	same := func(what, x, y string) {
		t.Helper()
		if x != y || unsafe.StringData(x) != unsafe.StringData(y) {
			t.Errorf("%s: %q and %q are not one string", what, x, y)
		}
	}
	same("namespace", a.Namespace, b.Namespace)
	same("owner name", a.OwnerReferences[0].Name, b.OwnerReferences[0].Name)
	same("owner UID", string(a.OwnerReferences[0].UID), string(b.OwnerReferences[0].UID))
	same("owner kind", a.OwnerReferences[0].Kind, b.OwnerReferences[0].Kind)
	same("node", a.Spec.NodeName, b.Spec.NodeName)
	same("image", a.Spec.Containers[0].Image, b.Spec.Containers[0].Image)
	same("image ID", a.Status.ContainerStatuses[0].ImageID, b.Status.ContainerStatuses[0].ImageID)
	same("label value", a.Labels["apps.drover.dev/workload"], b.Labels["apps.drover.dev/workload"])
	same("condition type", string(a.Status.Conditions[0].Type), string(b.Status.Conditions[0].Type))
	key := func(m map[string]string, k string) string {
		for mk := range m {
			if mk == k {
				return mk
			}
		}
		t.Fatalf("no key %q in %v", k, m)
		return ""
	}
	same("label key", key(a.Labels, "apps.drover.dev/workload"), key(b.Labels, "apps.drover.dev/workload"))
	same("annotation key", key(a.Annotations, "apps.drover.dev/inplace-update-state"), key(b.Annotations, "apps.drover.dev/inplace-update-state"))
	if a.Name != "a" || b.Name != "b" || a.Labels["instance"] != "a" || b.Labels["instance"] != "b" {
		t.Fatalf("per-pod values mixed up: %v %v, %v %v", a.Name, b.Name, a.Labels, b.Labels)
	}
}

func TestInternerIsBounded(t *testing.T) {
	in := newInterner(4)
	shared := in.intern(strings.Clone("shared"))
	for i := range 100 {
		in.intern(fmt.Sprintf("unique-%d", i))
		if got := in.intern(strings.Clone("shared")); unsafe.StringData(got) != unsafe.StringData(shared) {
			t.Fatalf("after %d unique strings, a string used all along was copied anew", i)
		}
	}
	if n := len(in.cur) + len(in.old); n > 8 {
		t.Fatalf("interner holds %d strings, want at most 2 × 4", n)
	}
	if in.intern("") != "" {
		t.Fatal("empty string")
	}
}
