package podstate

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func readyPod(since time.Time) *corev1.Pod {
	return &corev1.Pod{Status: corev1.PodStatus{
		Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{{
			Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(since),
		}},
	}}
}

func TestAvailable(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	p := readyPod(now.Add(-4 * time.Second))
	if ok, _ := Available(p, 0, now); !ok {
		t.Fatal("ready pod without minReadySeconds is available")
	}
	ok, wait := Available(p, 5, now)
	if ok || wait != time.Second {
		t.Fatalf("want not available for 1s more, got %v %v", ok, wait)
	}
	if ok, _ := Available(p, 4, now); !ok {
		t.Fatal("ready exactly minReadySeconds is available")
	}
	p.Status.Phase = corev1.PodPending
	if ok, _ := Available(p, 0, now); ok {
		t.Fatal("pending pod is not available")
	}
}

func TestActive(t *testing.T) {
	p := readyPod(time.Now())
	if !IsActive(p) {
		t.Fatal("running pod is active")
	}
	p.Status.Phase = corev1.PodSucceeded
	if IsActive(p) {
		t.Fatal("finished pod is not active")
	}
	p.Status.Phase = corev1.PodRunning
	p.DeletionTimestamp = &metav1.Time{}
	if IsActive(p) {
		t.Fatal("terminating pod is not active")
	}
}
