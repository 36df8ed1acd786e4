package manager

import (
	"time"

	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	out, err := trimPod(fullPod())
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
