// Package rollout_test proves, on a kwok cluster with the drover-manager
// binary, that a canary Rollout on a CloneSet moves real HTTP traffic
// through a real Gateway API implementation.
//
// Each story runs in its own namespace with its own Traefik (out of
// cluster, internal/traefik, watching only that namespace) serving a
// Gateway, and a demoapp server (internal/demoapp) standing in for the
// containers and for kube-proxy: every running pod answers on its loopback
// IP with its version (the tag of the image its container runs), and each
// Service's loopback ClusterIP forwards to the ready pods its selector
// matches. Requests go to Traefik's web entry point; Traefik splits them
// between the Rollout's stable and canary Services by the HTTPRoute's
// weights, which the Rollout sets. What a request's answer says is the
// version that served it.
//
// A failing story logs the Rollout, CloneSet, pods, Services, route and
// the Rollout's events, the manager's log lines about its namespace, and a
// timeline (wall-clock times) of every change the watches saw, with the
// background clients' failed requests: the order of a weight change, its
// verification and the pods' moves.
package rollout_test

import (
	"fmt"
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/test/e2e/framework"
)

func TestMain(m *testing.M) {
	os.Exit(framework.Run(m, framework.Options{
		Nodes: 4,
		AddToScheme: []func(*runtime.Scheme) error{
			appsv1alpha1.AddToScheme, rolloutsv1alpha1.AddToScheme, gatewayv1.Install,
		},
	}))
}

// steps is the release of both stories: 20% of the traffic (and, without
// setCanaryScale, of the pods) to the canary, wait for a user, 50%, wait
// for a user, then full promotion.
func steps() []rolloutsv1alpha1.CanaryStep {
	return []rolloutsv1alpha1.CanaryStep{setWeight(20), pauseUntilPromoted(), setWeight(50), pauseUntilPromoted()}
}

// TestCanaryByWeightWithRealTraffic releases v2 of a 10-pod CloneSet
// through 20% and 50% to 100%: at each pause Traefik sends exactly the
// step's share of 1,000 requests to v2, no request fails at any time, and
// every pod is updated in place.
func TestCanaryByWeightWithRealTraffic(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "web")
	e.createRelease(steps()...)
	stableRev := e.waitRollout("Healthy", func(ro *rolloutsv1alpha1.Rollout, _ *appsv1alpha1.CloneSet) error {
		return healthy(ro, ro.Status.StableRevision)
	}).Status.StableRevision
	uids := e.podUIDs()
	history := e.recordPods(stableRev)

	// Before the release: everything is v1.
	e.waitShare(0)
	if got := e.web.send(e.ctx, 200); got.errors != 0 || got.versions["v1"] != 200 {
		t.Fatalf("before the release, want 200 answers from v1: %s", got)
	} else {
		e.logf("before the release: %s", got)
	}

	// Step 0 (setWeight 20) to the pause of step 1: 2 pods in place on v2,
	// 20% of the traffic.
	bg := e.startBackground()
	canaryRev := e.setImage(imageV2)
	e.waitRollout("paused at step 1 with weight 20", func(ro *rolloutsv1alpha1.Rollout, _ *appsv1alpha1.CloneSet) error {
		if err := paused(ro, 1, 20, 2, canaryRev); err != nil {
			return err
		}
		return e.podsOn(canaryRev, imageV2, 2)
	})
	e.assertNoErrors(bg, "the release of v2 to 20%")
	if n := history.takeMaxCanary(); n > 2 {
		t.Errorf("up to %d pods ran off the stable revision before the first pause, want at most 2", n)
	}
	e.assertSamePods(uids, "at the first pause")
	e.serviceSelects(e.stableService(), stableRev)
	e.serviceSelects(e.canaryService(), canaryRev)
	e.waitShare(20)
	e.measure(20, splitTolerance)

	// promote: step 2 (setWeight 50) to the pause of step 3.
	bg = e.startBackground()
	e.action(rolloutsv1alpha1.ActionPromote)
	e.waitRollout("paused at step 3 with weight 50", func(ro *rolloutsv1alpha1.Rollout, _ *appsv1alpha1.CloneSet) error {
		if err := paused(ro, 3, 50, 5, canaryRev); err != nil {
			return err
		}
		return e.podsOn(canaryRev, imageV2, 5)
	})
	e.assertNoErrors(bg, "the promotion from 20% to 50%")
	if n := history.takeMaxCanary(); n > 5 {
		t.Errorf("up to %d pods ran off the stable revision before the second pause, want at most 5", n)
	}
	e.assertSamePods(uids, "at the second pause")
	e.waitShare(50)
	e.measure(50, splitTolerance)

	// promote: the steps are done; every pod moves to v2, which becomes
	// stable.
	bg = e.startBackground()
	e.action(rolloutsv1alpha1.ActionPromote)
	ro := e.waitRollout("Healthy on v2", func(ro *rolloutsv1alpha1.Rollout, _ *appsv1alpha1.CloneSet) error {
		if err := healthy(ro, canaryRev); err != nil {
			return err
		}
		return e.podsOn(canaryRev, imageV2, replicas)
	})
	e.assertNoErrors(bg, "the full promotion")
	e.logf("promoted: %s", summary(ro))
	e.serviceSelects(e.stableService(), canaryRev)
	e.serviceSelects(e.canaryService(), canaryRev)
	e.waitShare(100)
	// Every request to v2: no tolerance.
	e.measure(100, 0)
	e.assertSamePods(uids, "after the promotion")
	history.AssertNoViolations(t)
}

// TestAbortSendsEverythingBackToStable releases v2 to its first pause
// (20%), then aborts: the Rollout turns Degraded, every pod is back on v1
// in place, 1,000 requests all reach v1, and a client sending requests
// throughout the abort sees no failure.
func TestAbortSendsEverythingBackToStable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "shop")
	e.createRelease(steps()...)
	stableRev := e.waitRollout("Healthy", func(ro *rolloutsv1alpha1.Rollout, _ *appsv1alpha1.CloneSet) error {
		return healthy(ro, ro.Status.StableRevision)
	}).Status.StableRevision
	uids := e.podUIDs()
	history := e.recordPods(stableRev)
	e.waitShare(0)

	bg := e.startBackground()
	canaryRev := e.setImage(imageV2)
	e.waitRollout("paused at step 1 with weight 20", func(ro *rolloutsv1alpha1.Rollout, _ *appsv1alpha1.CloneSet) error {
		if err := paused(ro, 1, 20, 2, canaryRev); err != nil {
			return err
		}
		return e.podsOn(canaryRev, imageV2, 2)
	})
	e.assertNoErrors(bg, "the release of v2 to 20%")
	e.waitShare(20)
	e.measure(20, splitTolerance)

	// abort, with a client sending requests all along.
	bg = e.startBackground()
	e.action(rolloutsv1alpha1.ActionAbort)
	ro := e.waitRollout("Degraded with every pod back on the stable revision", func(ro *rolloutsv1alpha1.Rollout, _ *appsv1alpha1.CloneSet) error {
		st := ro.Status
		if st.Phase != rolloutsv1alpha1.RolloutPhaseDegraded || st.ObservedGeneration != ro.Generation ||
			st.AbortedRevision != canaryRev || st.StableRevision != stableRev ||
			st.DesiredWeight != 0 || ptr.Deref(st.VerifiedWeight, -1) != 0 ||
			st.StableReadyReplicas != replicas || st.CanaryReadyReplicas != 0 {
			return fmt.Errorf("want Degraded, %s aborted, weight 0 verified, %d stable pods ready; %s", canaryRev, replicas, summary(ro))
		}
		return e.podsOn(stableRev, imageV1, replicas)
	})
	during := e.assertNoErrors(bg, "the abort")
	e.logf("aborted: %s", summary(ro))
	e.logf("abort: the background client sent %d requests, %d failed", during.total, during.errors)
	if n := history.takeMaxCanary(); n > 2 {
		t.Errorf("up to %d pods ran off the stable revision, want at most 2 (the first step's canary)", n)
	}
	e.assertSamePods(uids, "after the abort")
	e.serviceSelects(e.stableService(), stableRev)

	// Everything back on v1: no tolerance.
	e.waitShare(0)
	e.measure(0, 0)
	history.AssertNoViolations(t)
}
