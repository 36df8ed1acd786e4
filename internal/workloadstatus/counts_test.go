package workloadstatus

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover-dev/drover/internal/inplace"
)

func TestCounts(t *testing.T) {
	readyPod := func() *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
	}
	terminating := readyPod()
	terminating.DeletionTimestamp = &metav1.Time{}
	finished := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}
	pending := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending}}

	var c Counts
	c.Add(readyPod(), true, true, false)  // updated, ready, available
	c.Add(readyPod(), false, true, false) // updated, ready, not yet available
	c.Add(readyPod(), true, false, false) // old, ready, available
	c.Add(pending, false, false, true)    // old, in flight
	// Ready by its condition but leaving the endpoints: not counted ready.
	gateClosed := readyPod()
	gateClosed.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: inplace.GateType}}
	gateClosed.Status.Conditions = append(gateClosed.Status.Conditions, corev1.PodCondition{Type: inplace.GateType, Status: corev1.ConditionFalse})
	c.Add(gateClosed, false, true, false)
	c.Add(readyPod(), false, true, true) // updated, in flight, condition still True
	if c.Add(terminating, true, true, false) || c.Add(finished, false, true, false) {
		t.Fatal("terminating and finished pods are not active")
	}
	want := Counts{Replicas: 6, Ready: 3, Available: 2, Updated: 4, UpdatedReady: 2, UpdatedAvailable: 1, InFlight: 2}
	if c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
}
