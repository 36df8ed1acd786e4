package podcontrol

import (
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/inplace"
)

func TestInPlaceWork(t *testing.T) {
	tp, old, upd := testTemplates(t)
	hook := &appsv1alpha1.LifecycleHook{LabelsHandler: map[string]string{"hold": "yes"}}
	pod := func(name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	// Left Updated (and held) by the hook after an earlier update, then
	// picked again by the plan for the next one: it must be taken once.
	heldUpdated := pod("held-updated", map[string]string{"hold": "yes", appsv1alpha1.LabelLifecycleState: string(appsv1alpha1.LifecycleStateUpdated)})
	picked := pod("picked", nil)
	inFlight := pod("in-flight", nil)
	idle := pod("idle", nil)

	w := NewInPlaceWork(tp, 3*time.Second, hook)
	w.Plan(heldUpdated, nil, old.Name)
	w.Plan(picked, nil, old.Name)
	state := &inplace.State{Revision: upd.Name, Phase: inplace.PhaseUpdating}
	for _, p := range []*corev1.Pod{heldUpdated, picked, inFlight, idle} {
		var st *inplace.State
		if p == inFlight {
			st = state
		}
		w.Continue(p, st, old.Name, p == inFlight)
	}

	var names []string
	for _, it := range w.Items() {
		names = append(names, it.Pod.Name)
		if it.Revision != upd.Name || !it.Change.InPlace || it.Change.Images["c"] != "a:2" || it.GracePeriod != 3*time.Second {
			t.Errorf("%s: item %+v: want the change to %s in place with a 3s grace period", it.Pod.Name, it, upd.Name)
		}
		if (it.Pod == inFlight) != (it.State == state) {
			t.Errorf("%s: state %v not carried", it.Pod.Name, it.State)
		}
	}
	if want := []string{"held-updated", "picked", "in-flight"}; !slices.Equal(names, want) {
		t.Fatalf("work %v, want %v", names, want)
	}
}
