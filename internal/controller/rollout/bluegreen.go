package rollout

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/podcontrol"
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
	// Webhooks: no preview pod before confirm-rollout passes.
	if out, ok := d.startGates(in, shape{stable: n}); !ok {
		return out
	}
	if in.spec.Paused {
		d.shapeTo(in, shape{canary: previewCount(bg, n, st.PromoteFull), stable: n})
		d.pause(in.now, rolloutsv1alpha1.PauseReasonUser, nil)
		d.keepRuns()
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
	// pre-rollout: once the preview is ready, before it is judged or gets
	// production traffic.
	if out, ok := d.preRollout(in, nil, sh, "preview"); !ok {
		return out
	}
	if pre := bg.PrePromotionAnalysis; pre != nil {
		// The preview is judged before anyone promotes it.
		v, run, _ := d.analysis(in, rolloutsv1alpha1.AnalysisKindPrePromotion, nil, st.CanaryRevision, pre)
		switch v {
		case verdictFailed:
			return d.failRelease(in, run)
		case verdictInconclusive:
			d.holdInconclusive(in, run)
			return *d
		case verdictRunning:
			d.waitAnalysis(run)
			return *d
		}
		d.unpause(rolloutsv1alpha1.PauseReasonInconclusiveAnalysis)
	}
	// The preview is the release's one step: the rollout webhooks judge
	// it before it can be promoted.
	if out, ok := d.stepCheck(in, nil); !ok {
		return out
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
	if c := d.gate(in, rolloutsv1alpha1.WebhookConfirmPromotion, nil, true); !c.open {
		// The preview stays, ready, until the webhooks confirm the switch.
		d.holdGate(in, c)
		return *d
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
		d.switchBack(in.now, "aborted by a user after the switch")
		return *d, true
	}
	// A post-promotion analysis judges the new revision under production
	// traffic; the old pods stay until it has passed, whatever the delay.
	judged, running := true, ""
	if bg := in.spec.Strategy.BlueGreen; bg != nil && bg.PostPromotionAnalysis != nil {
		v, run, promoted := d.analysis(in, rolloutsv1alpha1.AnalysisKindPostPromotion, nil, active, bg.PostPromotionAnalysis)
		switch v {
		case verdictFailed:
			st.AbortMessage = fmt.Sprintf("%s analysis %s %s: %s", run.Kind, run.Name, run.Phase, run.Message)
			d.note(true, rolloutsv1alpha1.ReasonAnalysisFailed, "release of %s aborted after the switch: %s; active service back to %s", active, st.AbortMessage, old).trigger = rolloutsv1alpha1.TriggerAborted
			d.switchBack(in.now, st.AbortMessage)
			return *d, true
		case verdictInconclusive:
			d.holdInconclusive(in, run)
			judged = false
		case verdictRunning:
			judged, running = false, run.Name
			d.waitAnalysis(run)
		}
		if promoted {
			d.unpause(rolloutsv1alpha1.PauseReasonInconclusiveAnalysis)
		}
	}
	if judged && !in.now.Before(st.ScaleDownAt.Time) {
		st.ScaleDownRevision, st.ScaleDownAt = "", nil
		return *d, true
	}
	n := w.Replicas
	d.control = appsv1alpha1.RolloutControl{StableRevision: old, CanaryRevision: active, CanaryReplicas: n, StableReplicas: ptr.To(n)}
	st.CanaryReplicas, st.StableReplicas = n, n
	st.CanaryReadyReplicas, st.StableReadyReplicas = w.Counts.UpdatedReady, max(0, w.Counts.Ready-w.Counts.UpdatedReady)
	st.DesiredWeight, st.VerifiedWeight = 100, ptr.To[int32](100)
	d.stableSelects, d.canarySelects = active, active
	if judged {
		d.requeueAfter = st.ScaleDownAt.Sub(in.now)
		d.activity = rolloutsv1alpha1.ReasonPromoting
		d.message = fmt.Sprintf("%s is active; the %d pods of %s stay until %s (abort switches back)", active, n, old, st.ScaleDownAt.UTC().Format(time.TimeOnly))
	} else if running != "" {
		d.message += fmt.Sprintf(": %s is active, the pods of %s stay until the analysis passes (abort switches back)", active, old)
	}
	return *d, false
}

// switchBack makes the old revision stable again after a blue-green
// switch and aborts the new one. status.switchedBackAt records when the
// active Service left the new revision: its pods stay a moment longer
// (holdSwitchedBack).
func (d *decision) switchBack(now time.Time, why string) {
	st := &d.status
	old, active := st.ScaleDownRevision, st.StableRevision
	st.StableRevision, st.CanaryRevision, st.AbortedRevision, st.AbortMessage = old, active, active, why
	st.ScaleDownRevision, st.ScaleDownAt = "", nil
	st.SwitchedBackAt = &metav1.Time{Time: now}
}

// holdSwitchedBack keeps the aborted revision's pods for trafficSettle
// after a switch back (abort, for blue-green). The active Service's
// selector goes back to the old revision in the reconcile that aborts,
// after the workload is written (apply), and whatever routes by the
// Service (endpoints, kube-proxy, a gateway) follows it asynchronously:
// pods removed at once would still get production requests for a moment
// (seen in test/e2e/rollout: 503s from a Service whose new pods were all
// terminating while its old selector was still in effect).
func (d *decision) holdSwitchedBack(in planInput) {
	st, c := &d.status, in.workload.Counts
	if in.spec.Strategy.BlueGreen == nil || st.SwitchedBackAt == nil || c.Updated <= d.control.CanaryReplicas ||
		st.CanaryRevision == "" || in.workload.UpdateRevision != st.CanaryRevision {
		return
	}
	left := st.SwitchedBackAt.Add(trafficSettle).Sub(in.now)
	if left <= 0 {
		return
	}
	d.control.CanaryReplicas = min(c.Updated, in.workload.Replicas)
	st.CanaryReplicas = d.control.CanaryReplicas
	d.requeueAfter = podcontrol.MinPositive(d.requeueAfter, left)
}
