package sidecarset

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/podcontrol"
	"github.com/drover-dev/drover/internal/podorder"
)

// sync starts the planned upgrades and moves on those in flight; it
// returns when to come back (0: on the next pod event).
func (r *Reconciler) sync(ctx context.Context, ss *appsv1alpha1.SidecarSet, o *observed) (time.Duration, error) {
	if prev := ss.Status.LatestRevision; prev != "" && prev != o.rev.Hash {
		r.Recorder.Eventf(ss, nil, corev1.EventTypeNormal, "UpgradeStarted", "Upgrade", "sidecars changed: revision %s to %s", prev, o.rev.Hash)
	}
	starts := plan(r.planInput(ss, o))
	var work []*podView
	for _, v := range o.views {
		if v.inFlight && v.pod.DeletionTimestamp == nil {
			work = append(work, v)
		}
	}
	work = append(work, starts...)
	if len(work) == 0 {
		return 0, nil
	}
	key := ss.Name
	var wait podcontrol.MinWait
	var started atomic.Int32
	err := podcontrol.Parallel(ctx, r.Pods.WriteConcurrency, work, func(ctx context.Context, v *podView) error {
		req, ok := engineRequest(v, ss.Name)
		if !ok {
			return nil
		}
		if !v.inFlight {
			started.Add(1)
		}
		res, err := r.Pods.Engine.Update(ctx, req)
		if res.ResourceVersion != "" {
			r.Pods.Expectations.ExpectUpdate(key, podKey(v.pod), res.ResourceVersion)
		}
		wait.Observe(res.RequeueAfter)
		return err
	})
	if n := started.Load(); n > 0 {
		ctrl.LoggerFrom(ctx).Info("started sidecar upgrades", "count", n, "revision", o.rev.Hash)
	}
	return wait.Get(), err
}

// engineRequest is the engine call that moves v on: the run under way
// (the engine's state names it) unless it is for an older revision, else
// the pod's next step.
func engineRequest(v *podView, ss string) (inplace.Request, bool) {
	req := inplace.Request{Pod: v.pod, Track: inplace.SidecarTrack, GracePeriod: gracePeriod}
	state, ok := v.state.State, v.state.OK
	running := ok && state.Phase != inplace.PhaseDone && ownerOfRevision(state.Revision) == ss
	if running && (v.next.kind == stepNone || sameHash(state.Revision, v.next.revision)) {
		// Once the run's spec is written the pod's record has moved on, so
		// its change is needed only before that.
		req.Revision, req.State = state.Revision, &state
		if v.next.revision == state.Revision {
			req.Change, req.NoDrain = v.next.change, v.next.noDrain
		}
		return req, true
	}
	if v.next.kind == stepNone {
		return req, false
	}
	req.Revision, req.Change, req.NoDrain = v.next.revision, v.next.change, v.next.noDrain
	return req, true
}

// sameHash reports whether two engine revisions are runs of the same
// SidecarSet revision (its upgrade and retire runs).
func sameHash(a, b string) bool {
	return strings.TrimSuffix(a, "/retire") == strings.TrimSuffix(b, "/retire")
}

func (r *Reconciler) planInput(ss *appsv1alpha1.SidecarSet, o *observed) planInput {
	us := ss.Spec.UpdateStrategy
	total := len(o.views)
	caps := map[string]int{}
	for _, list := range [][]appsv1alpha1.SidecarContainer{ss.Spec.Containers, ss.Spec.InitContainers} {
		for i := range list {
			sc := &list[i]
			if sc.UpgradeStrategy != nil && sc.UpgradeStrategy.Upgrade != nil && sc.UpgradeStrategy.Upgrade.MaxUnavailable != nil {
				caps[sc.Name] = max(1, scaled(sc.UpgradeStrategy.Upgrade.MaxUnavailable, total, false, 1))
			}
		}
	}
	byPod := make(map[*corev1.Pod]*podView, len(o.views))
	for _, v := range o.views {
		byPod[v.pod] = v
	}
	return planInput{
		pods:           o.views,
		partition:      o.partition,
		maxUnavailable: o.maxUnavailable,
		caps:           caps,
		stopped:        us.Paused || us.Type == appsv1alpha1.NotUpdateSidecarSetStrategyType,
		sortForUpdate: func(views []*podView) []*podView {
			pods := make([]*corev1.Pod, len(views))
			for i, v := range views {
				pods[i] = v.pod
			}
			sorted := podorder.SortForUpdate(pods, podorder.UpdateOptions{Priority: us.PriorityStrategy, Scatter: us.ScatterStrategy})
			out := make([]*podView, len(sorted))
			for i, p := range sorted {
				out[i] = byPod[p]
			}
			return out
		},
	}
}
