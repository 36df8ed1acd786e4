package rollout_test

import (
	"fmt"
	"slices"
	"testing"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

// The canary on the other workload kinds a Rollout drives, with real
// traffic through Traefik: an Advanced StatefulSet (the canary at the
// highest ordinals) and an Advanced DaemonSet (the canary on that many
// nodes), both updated in place.

// TestWorkloadStatefulSetCanaryWithRealTraffic releases v2 of a 4-pod
// Advanced StatefulSet through 50%: the canary runs at the two highest
// ordinals, Traefik sends half of 1,000 requests to it, no request fails,
// and the promotion updates every pod in place.
func TestWorkloadStatefulSetCanaryWithRealTraffic(t *testing.T) {
	t.Parallel()
	s := newStory(t, "db", kindStatefulSet, 4, []rolloutsv1alpha1.CanaryStep{setWeight(50), pauseUntilPromoted()})
	canaryHalf(s, func(canary []string) error {
		if want := []string{"db-2", "db-3"}; !slices.Equal(canary, want) {
			return fmt.Errorf("the canary runs on pods %v, want the highest ordinals %v", canary, want)
		}
		return nil
	})
}

// TestWorkloadDaemonSetCanaryWithRealTraffic releases v2 of an Advanced
// DaemonSet on the suite's 4 nodes through 50%: the canary runs on two of
// them, Traefik sends half of 1,000 requests to it, no request fails, and
// the promotion updates every pod in place.
func TestWorkloadDaemonSetCanaryWithRealTraffic(t *testing.T) {
	t.Parallel()
	s := newStory(t, "agent", kindDaemonSet, 4, []rolloutsv1alpha1.CanaryStep{setWeight(50), pauseUntilPromoted()})
	nodes := map[string]bool{}
	pods, err := s.pods()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		nodes[p.Spec.NodeName] = true
	}
	if len(nodes) != 4 {
		t.Fatalf("the DaemonSet's 4 pods run on %d nodes, want one on each of 4: %s", len(nodes), describePods(pods))
	}
	canaryHalf(s, nil)
}

// canaryHalf releases v2 through setWeight 50 and a pause: at the pause
// half the pods run v2 in place (checkCanary, if set, checks which) and
// half the traffic reaches them; promoted, everything runs and answers v2,
// on the same pods. A client sends requests throughout both moves and
// none may fail.
func canaryHalf(s *story, checkCanary func(canaryPods []string) error) {
	t := s.t
	t.Helper()
	stableRev := s.rollout().Status.StableRevision
	uids := s.podUIDs()
	history := s.recordPods(stableRev)
	half := int32(s.n / 2)

	bg := s.startBackground()
	canaryRev := s.setImage(imageV2)
	s.pausedAt(1, 50, half, canaryRev, imageV2)
	s.assertNoErrors(bg, fmt.Sprintf("the %s's release of v2 to 50%%", s.kind))
	if n := history.takeMaxCanary(); n > int(half) {
		t.Errorf("up to %d pods ran off the stable revision before the pause, want at most %d", n, half)
	}
	if checkCanary != nil {
		if err := checkCanary(s.podsOfRevision(canaryRev)); err != nil {
			t.Error(err)
		}
	}
	s.assertSamePods(uids, "at the pause")
	s.serviceSelects(s.stableService(), stableRev)
	s.serviceSelects(s.canaryService(), canaryRev)
	s.waitSplit(50, "v1", "v2")
	s.measureSplit(50, splitTolerance, "v1", "v2")

	bg = s.startBackground()
	s.action(rolloutsv1alpha1.ActionPromote)
	s.healthyOn(canaryRev, imageV2)
	s.assertNoErrors(bg, fmt.Sprintf("the %s's promotion", s.kind))
	for _, p := range s.podsOfRevision(stableRev) {
		t.Errorf("pod %s is still on %s", p, stableRev)
	}
	s.serviceSelects(s.stableService(), canaryRev)
	s.waitSplit(100, "v1", "v2")
	s.measureSplit(100, 0, "v1", "v2")
	s.assertSamePods(uids, "after the promotion")
	history.AssertNoViolations(t)
}
