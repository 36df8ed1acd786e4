package rollout

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

// Blue-green: the new revision runs beside a full stable side (the
// workload surges to twice its replicas), reachable through the preview
// Service; promotion switches the active Service to it at once, and the
// old pods stay for scaleDownDelaySeconds so that an abort can switch
// back without waiting for pods.

// blueGreen runs a blue-green release up to the switch.
func (d *decision) blueGreen(in planInput) decision {
	bg := in.spec.Strategy.BlueGreen
	st, w := &d.status, in.workload
	n := w.Replicas
	d.stableSelects, d.canarySelects = st.StableRevision, st.CanaryRevision

	if in.action == rolloutsv1alpha1.ActionPromote || in.action == rolloutsv1alpha1.ActionPromoteFull {
		if !st.PromoteFull {
			st.PromoteFull = true
			d.note(false, "PromotedFull", "promotion of %s requested by a user", st.CanaryRevision)
		}
	}
	if in.spec.Paused {
		d.shapeTo(in, shape{canary: previewCount(bg, n, st.PromoteFull), stable: n})
		d.pause(in.now, rolloutsv1alpha1.PauseReasonUser, nil)
		d.activity, d.message = rolloutsv1alpha1.ReasonPausedUser, "paused by spec.paused before the switch"
		return *d
	}
	d.unpause(rolloutsv1alpha1.PauseReasonUser)

	sh := shape{canary: previewCount(bg, n, st.PromoteFull), stable: n}
	d.shapeTo(in, sh)
	if !settled(in, sh) {
		d.activity = rolloutsv1alpha1.ReasonStepRunning
		d.message = fmt.Sprintf("preview: %d/%d pods of %s ready", st.CanaryReadyReplicas, sh.canary, st.CanaryRevision)
		return *d
	}
	if !st.PromoteFull {
		if !ptr.Deref(bg.AutoPromotionEnabled, true) {
			d.pause(in.now, rolloutsv1alpha1.PauseReasonBlueGreenPause, nil)
			d.activity, d.message = rolloutsv1alpha1.ReasonPausedStep, fmt.Sprintf("preview of %s ready: waiting for promotion (drover promote)", st.CanaryRevision)
			return *d
		}
		if secs := ptr.Deref(bg.AutoPromotionSeconds, 0); secs > 0 {
			start := in.now
			for _, pc := range st.PauseConditions {
				if pc.Reason == rolloutsv1alpha1.PauseReasonBlueGreenPause {
					start = pc.StartTime.Time
				}
			}
			until := start.Add(time.Duration(secs) * time.Second)
			if in.now.Before(until) {
				d.pause(start, rolloutsv1alpha1.PauseReasonBlueGreenPause, &until)
				d.activity, d.message = rolloutsv1alpha1.ReasonPausedStep, fmt.Sprintf("preview of %s ready: promoting automatically in %s", st.CanaryRevision, until.Sub(in.now).Round(time.Second))
				d.requeueAfter = until.Sub(in.now)
				return *d
			}
		}
		if sh.canary < n {
			// A smaller preview grows to full size before the switch.
			st.PromoteFull = true
			return d.blueGreen(in)
		}
	}
	// Switch: the active Service selects the new revision; the old pods
	// stay until scaleDownAt.
	st.PauseConditions = nil
	delay := time.Duration(ptr.Deref(bg.ScaleDownDelaySeconds, 30)) * time.Second
	d.note(false, "Promoted", "active service switched to %s (was %s); old pods kept for %s", st.CanaryRevision, st.StableRevision, delay)
	st.ScaleDownRevision, st.ScaleDownAt = st.StableRevision, &metav1.Time{Time: in.now.Add(delay)}
	st.StableRevision, st.CanaryRevision = st.CanaryRevision, ""
	st.CurrentStepIndex, st.StepStartedAt, st.PromoteFull = nil, nil, false
	d.progressed = true
	out, _ := d.scaleDown(in)
	return out
}

// previewCount is the number of new pods before (or during) promotion.
func previewCount(bg *rolloutsv1alpha1.BlueGreenStrategy, n int32, promoting bool) int32 {
	if promoting || bg.PreviewReplicaCount == nil {
		return n
	}
	return min(*bg.PreviewReplicaCount, n)
}

// scaleDown keeps the old revision's pods after a blue-green switch until
// scaleDownAt. ok is true when the delay is over (or dropped) and the
// state machine goes on; an abort within the delay switches back.
func (d *decision) scaleDown(in planInput) (decision, bool) {
	st, w := &d.status, in.workload
	old, active := st.ScaleDownRevision, st.StableRevision
	switch {
	case w.UpdateRevision != active:
		// Another revision arrived (or the template went back): the old
		// pods are no longer worth keeping.
		st.ScaleDownRevision, st.ScaleDownAt = "", nil
		return *d, true
	case in.action == rolloutsv1alpha1.ActionAbort:
		d.note(true, "Aborted", "release of %s aborted after the switch: active service back to %s", active, old)
		st.StableRevision, st.CanaryRevision, st.AbortedRevision = old, active, active
		st.ScaleDownRevision, st.ScaleDownAt = "", nil
		return *d, true
	case !in.now.Before(st.ScaleDownAt.Time):
		st.ScaleDownRevision, st.ScaleDownAt = "", nil
		return *d, true
	}
	n := w.Replicas
	d.control = appsv1alpha1.RolloutControl{StableRevision: old, CanaryRevision: active, CanaryReplicas: n, StableReplicas: ptr.To(n)}
	st.CanaryReplicas, st.StableReplicas = n, n
	st.CanaryReadyReplicas, st.StableReadyReplicas = w.Counts.UpdatedReady, max(0, w.Counts.Ready-w.Counts.UpdatedReady)
	st.DesiredWeight, st.VerifiedWeight = 100, ptr.To[int32](100)
	d.stableSelects, d.canarySelects = active, active
	d.requeueAfter = st.ScaleDownAt.Sub(in.now)
	d.activity = rolloutsv1alpha1.ReasonPromoting
	d.message = fmt.Sprintf("%s is active; the %d pods of %s stay until %s (abort switches back)", active, n, old, st.ScaleDownAt.UTC().Format(time.TimeOnly))
	return *d, false
}
