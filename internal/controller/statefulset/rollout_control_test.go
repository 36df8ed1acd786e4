package statefulset_test

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/revision"
)

// setControl writes the rollout control annotation by hand, as a Rollout
// would.
func setControl(t *testing.T, set *appsv1alpha1.StatefulSet, ctl appsv1alpha1.RolloutControl, also func(*appsv1alpha1.StatefulSet)) {
	t.Helper()
	modify(t, set, func(s *appsv1alpha1.StatefulSet) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[appsv1alpha1.AnnotationRolloutControl] = ctl.String()
		if also != nil {
			also(s)
		}
	})
}

// podRevisions renders the set's pods as "name=revision/image@uid-changed".
func podRevisions(t *testing.T, set *appsv1alpha1.StatefulSet, uids map[string]types.UID) (map[string]string, string) {
	t.Helper()
	out := map[string]string{}
	for _, p := range pods(t, set) {
		out[p.Name] = p.Labels[revision.LabelRevisionHash]
		if uids[p.Name] != p.UID {
			out[p.Name] += "(recreated)"
		}
		out[p.Name] += "/" + p.Spec.Containers[0].Image
	}
	return out, fmt.Sprint(out)
}

func TestRolloutControlMovesPodsInPlaceBothWays(t *testing.T) {
	ns := namespace(t)
	kubelet(t, ns)
	set := create(t, newSet(ns, "canary", 4, rolling(func(r *appsv1alpha1.RollingUpdateStatefulSetStrategy) {
		r.PodUpdatePolicy = appsv1alpha1.InPlaceIfPossibleStatefulSetPodUpdatePolicy
	})))
	stable := waitReady(t, set).Status.CurrentRevision
	uids := map[string]types.UID{}
	for _, p := range pods(t, set) {
		uids[p.Name] = p.UID
	}

	// The new image arrives with a control that has not released it: no
	// pod moves.
	setControl(t, set, appsv1alpha1.RolloutControl{Rollout: "by-hand", StableRevision: stable}, func(s *appsv1alpha1.StatefulSet) {
		s.Spec.Template.Spec.Containers[0].Image = "db:2"
	})
	var update string
	eventually(t, "new update revision held back", func() (bool, string) {
		cur := get(t, set)
		update = cur.Status.UpdateRevision
		return cur.Status.ObservedGeneration == cur.Generation && update != stable && cur.Status.CurrentRevision == stable &&
			cur.Status.ExpectedUpdatedReplicas == 0, fmt.Sprintf("%+v", cur.Status)
	})
	time.Sleep(300 * time.Millisecond)
	if got, s := podRevisions(t, set, uids); len(got) != 4 || got["canary-3"] != stable+"/db:1" {
		t.Fatalf("an unreleased revision moved pods: %s", s)
	}

	// A canary of 2: the two highest ordinals move in place.
	setControl(t, set, appsv1alpha1.RolloutControl{Rollout: "by-hand", StableRevision: stable, CanaryRevision: update, CanaryReplicas: 2}, nil)
	want := map[string]string{
		"canary-0": stable + "/db:1", "canary-1": stable + "/db:1",
		"canary-2": update + "/db:2", "canary-3": update + "/db:2",
	}
	eventually(t, "2 canary pods updated in place", func() (bool, string) {
		got, s := podRevisions(t, set, uids)
		return fmt.Sprint(got) == fmt.Sprint(want), s
	})
	cur := waitReady(t, set)
	if st := cur.Status; st.UpdatedReplicas != 2 || st.CurrentReplicas != 2 || st.ExpectedUpdatedReplicas != 2 ||
		st.CurrentRevision != stable || st.UpdateRevision != update {
		t.Fatalf("canary status %+v", st)
	}

	// Canary 0: the two go back in place.
	setControl(t, set, appsv1alpha1.RolloutControl{Rollout: "by-hand", StableRevision: stable, CanaryRevision: update}, nil)
	for name := range want {
		want[name] = stable + "/db:1"
	}
	eventually(t, "canary pods back in place", func() (bool, string) {
		got, s := podRevisions(t, set, uids)
		return fmt.Sprint(got) == fmt.Sprint(want), s
	})
	cur = waitReady(t, set)
	if st := cur.Status; st.UpdatedReplicas != 0 || st.CurrentReplicas != 4 || st.ExpectedUpdatedReplicas != 0 || st.CurrentRevision != stable {
		t.Fatalf("aborted status %+v", st)
	}

	// A control naming a revision the set does not have stalls it.
	setControl(t, set, appsv1alpha1.RolloutControl{Rollout: "by-hand", StableRevision: "nope"}, nil)
	eventually(t, "InvalidRolloutControl", func() (bool, string) {
		c := condition(get(t, set), appsv1alpha1.ConditionStalled)
		return c != nil && c.Reason == appsv1alpha1.ReasonInvalidRolloutControl, fmt.Sprintf("%+v", c)
	})
	if got, s := podRevisions(t, set, uids); got["canary-3"] != stable+"/db:1" {
		t.Fatalf("an invalid control moved pods: %s", s)
	}
}
