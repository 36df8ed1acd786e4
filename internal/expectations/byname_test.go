package expectations

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestByName(t *testing.T) {
	now := metav1.Now()
	pods := []*corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Name: "a", UID: "ua", ResourceVersion: "7"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "b", UID: "ub", ResourceVersion: "9", DeletionTimestamp: &now}},
	}
	lookup := ByName(pods)
	if got := lookup("a"); got != (Observed{Exists: true, UID: "ua", ResourceVersion: "7"}) {
		t.Errorf("a: %+v", got)
	}
	if got := lookup("b"); !got.Exists || !got.Terminating || got.UID != "ub" {
		t.Errorf("b: %+v", got)
	}
	if got := lookup("c"); got.Exists {
		t.Errorf("c: %+v", got)
	}
	// It satisfies a store's expectations as the cache moves on.
	s := New(clocktesting.NewFakePassiveClock(time.Now()), 0)
	s.ExpectUpdate("o", "a", "8")
	if ok, _ := s.Satisfied("o", lookup); ok {
		t.Fatal("version 7 must not satisfy an update at 8")
	}
	pods[0].ResourceVersion = "8"
	if ok, _ := s.Satisfied("o", ByName(pods)); !ok {
		t.Fatal("version 8 must satisfy an update at 8")
	}
}
