package daemonset_test

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/nodeplacement"
	"github.com/drover-dev/drover/internal/revision"
)

// setControl writes the rollout control annotation by hand, as a Rollout
// would.
func setControl(t *testing.T, ds *appsv1alpha1.DaemonSet, ctl appsv1alpha1.RolloutControl, also func(*appsv1alpha1.DaemonSet)) {
	t.Helper()
	modify(t, ds, func(d *appsv1alpha1.DaemonSet) {
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations[appsv1alpha1.AnnotationRolloutControl] = ctl.String()
		if also != nil {
			also(d)
		}
	})
}

// nodeRevisions counts the live pods by "revision/image", marking pods that
// are not the ones first seen on their node.
func nodeRevisions(t *testing.T, ds *appsv1alpha1.DaemonSet, uids map[string]types.UID) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, p := range livePods(t, ds) {
		k := p.Labels[revision.LabelRevisionHash] + "/" + p.Spec.Containers[0].Image
		if uids[nodeplacement.NodeOf(&p)] != p.UID {
			k += "(recreated)"
		}
		out[k]++
	}
	return out
}

func TestRolloutControlMovesNodesInPlaceBothWays(t *testing.T) {
	f := newFixture(t)
	nodes := []string{f.node("a", nil), f.node("b", nil), f.node("c", nil)}
	ds := f.daemonSet("canary")
	ds.Spec.UpdateStrategy.RollingUpdate = &appsv1alpha1.RollingUpdateDaemonSet{Type: appsv1alpha1.InPlaceIfPossibleRollingUpdateType}
	f.create(ds)
	waitPodNodes(t, ds, nodes...)
	stable := waitReady(t, ds).Status.CurrentRevision
	uids := map[string]types.UID{}
	for node, p := range podByNode(t, ds) {
		uids[node] = p.UID
	}

	// The new image arrives with a control that has not released it: no
	// pod moves.
	setControl(t, ds, appsv1alpha1.RolloutControl{Rollout: "by-hand", StableRevision: stable}, func(d *appsv1alpha1.DaemonSet) {
		d.Spec.Template.Spec.Containers[0].Image = "agent:2"
	})
	var update string
	eventually(t, "new update revision held back", func() (bool, string) {
		cur := get(t, ds)
		update = cur.Status.UpdateRevision
		return cur.Status.ObservedGeneration == cur.Generation && update != stable && cur.Status.CurrentRevision == stable &&
			cur.Status.ExpectedUpdatedNumber == 0, fmt.Sprintf("%+v", cur.Status)
	})
	time.Sleep(300 * time.Millisecond)
	if got := nodeRevisions(t, ds, uids); fmt.Sprint(got) != fmt.Sprint(map[string]int{stable + "/agent:1": 3}) {
		t.Fatalf("an unreleased revision moved pods: %v", got)
	}

	// A canary of 2 nodes: two pods move in place.
	setControl(t, ds, appsv1alpha1.RolloutControl{Rollout: "by-hand", StableRevision: stable, CanaryRevision: update, CanaryReplicas: 2}, nil)
	want := map[string]int{stable + "/agent:1": 1, update + "/agent:2": 2}
	eventually(t, "2 canary nodes updated in place", func() (bool, string) {
		kubeletRun(t, ds)
		got := nodeRevisions(t, ds, uids)
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprint(got)
	})
	cur := waitReady(t, ds)
	if st := cur.Status; st.UpdatedNumberScheduled != 2 || st.ExpectedUpdatedNumber != 2 || st.CurrentRevision != stable || st.UpdateRevision != update {
		t.Fatalf("canary status %+v", st)
	}

	// Canary 0: both go back in place.
	setControl(t, ds, appsv1alpha1.RolloutControl{Rollout: "by-hand", StableRevision: stable, CanaryRevision: update}, nil)
	want = map[string]int{stable + "/agent:1": 3}
	eventually(t, "canary nodes back in place", func() (bool, string) {
		kubeletRun(t, ds)
		got := nodeRevisions(t, ds, uids)
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprint(got)
	})
	cur = waitReady(t, ds)
	if st := cur.Status; st.UpdatedNumberScheduled != 0 || st.ExpectedUpdatedNumber != 0 || st.CurrentRevision != stable {
		t.Fatalf("aborted status %+v", st)
	}

	// A control naming a revision the DaemonSet does not have stalls it.
	setControl(t, ds, appsv1alpha1.RolloutControl{Rollout: "by-hand", StableRevision: "nope"}, nil)
	eventually(t, "InvalidRolloutControl", func() (bool, string) {
		c := meta.FindStatusCondition(get(t, ds).Status.Conditions, appsv1alpha1.ConditionStalled)
		return c != nil && c.Reason == appsv1alpha1.ReasonInvalidRolloutControl, fmt.Sprintf("%+v", c)
	})
	if got := nodeRevisions(t, ds, uids); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("an invalid control moved pods: %v", got)
	}
}
