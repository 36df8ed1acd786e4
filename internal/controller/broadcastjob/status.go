package broadcastjob

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/workloadstatus"
)

// updateStatus writes the job's status from the plan and returns when the
// job must be looked at again for its status (a limited write, a conflict,
// the TTL of a job that just finished).
func (r *Reconciler) updateStatus(ctx context.Context, job *appsv1alpha1.BroadcastJob, p plan, t timing, createErr error) (time.Duration, error) {
	prev := &job.Status
	st := appsv1alpha1.BroadcastJobStatus{
		ObservedGeneration:   job.Generation,
		Desired:              p.desired,
		Active:               p.active,
		Succeeded:            p.succeeded,
		Failed:               p.failed,
		Phase:                p.phase,
		StartTime:            prev.StartTime,
		CompletionTime:       prev.CompletionTime,
		FailuresAcknowledged: p.acknowledged,
		Conditions:           append([]metav1.Condition(nil), prev.Conditions...),
	}
	var wait time.Duration
	switch {
	case finished(job):
		// A finished job's outcome is final: only its active pods (being
		// stopped) still move.
		st.Desired, st.Succeeded, st.Failed, st.FailuresAcknowledged = prev.Desired, prev.Succeeded, prev.Failed, prev.FailuresAcknowledged
	case p.phase == appsv1alpha1.BroadcastJobCompleted || p.phase == appsv1alpha1.BroadcastJobFailed:
		st.CompletionTime = &metav1.Time{Time: t.now}
		if ttl := job.Spec.CompletionPolicy.TTLSecondsAfterFinished; ttl != nil {
			wait = max(time.Duration(*ttl)*time.Second, time.Millisecond)
		}
	}
	if st.StartTime == nil && !t.start.IsZero() {
		st.StartTime = &metav1.Time{Time: t.start}
	}
	setConditions(job, &st, p, createErr)
	if !finished(job) {
		r.recordTransition(job, &st, p)
	}

	if apiequality.Semantic.DeepEqual(*prev, st) {
		return wait, nil
	}
	key := ownerKey(job)
	if !significant(prev, &st) {
		// Only counters moved: on a large job they move on nearly every
		// pod event, so they are written at most once per interval.
		if left := r.StatusWrites.Wait(key, t.now); left > 0 {
			return left, nil
		}
	}
	patched := job.DeepCopy()
	patched.Status = st
	retry, err := workloadstatus.Patch(ctx, r.Client, job, patched)
	if err != nil || retry > 0 {
		return retry, err
	}
	// The next plan waits until the cache shows this status.
	r.Pods.Expectations.ExpectUpdate(key, jobExpectation, patched.ResourceVersion)
	r.StatusWrites.Wrote(key, t.now)
	return wait, nil
}

// significant reports whether a status change must be written at once:
// anything but the counters.
func significant(old, cur *appsv1alpha1.BroadcastJobStatus) bool {
	return old.ObservedGeneration != cur.ObservedGeneration || old.Phase != cur.Phase ||
		!old.StartTime.Equal(cur.StartTime) || !old.CompletionTime.Equal(cur.CompletionTime) ||
		old.FailuresAcknowledged != cur.FailuresAcknowledged ||
		workloadstatus.ConditionsChanged(old.Conditions, cur.Conditions)
}

// summary is a one-line account of the job's nodes.
func summary(st *appsv1alpha1.BroadcastJobStatus) string {
	return fmt.Sprintf("%d/%d nodes done (%d succeeded, %d failed), %d active",
		st.Succeeded+st.Failed, st.Desired, st.Succeeded, st.Failed, st.Active)
}

// failureMessage explains a job's failure or failure pause.
func failureMessage(job *appsv1alpha1.BroadcastJob, p plan, st *appsv1alpha1.BroadcastJobStatus) string {
	switch {
	case p.failedReason == appsv1alpha1.BroadcastJobReasonDeadlineExceeded:
		return fmt.Sprintf("completionPolicy.activeDeadlineSeconds (%ds) passed: %s",
			*job.Spec.CompletionPolicy.ActiveDeadlineSeconds, summary(st))
	case p.firstFailedNode == "":
		return summary(st)
	}
	what := fmt.Sprintf("node %s failed", p.firstFailedNode)
	if p.firstFailedPod != "" {
		what = fmt.Sprintf("pod %s on node %s failed", p.firstFailedPod, p.firstFailedNode)
	}
	if n := job.Spec.FailurePolicy.RestartLimit; n > 0 {
		what += fmt.Sprintf(" after %d retries (failurePolicy.restartLimit)", n)
	}
	if p.pausedByFailure {
		return fmt.Sprintf("%s; failurePolicy.type is Pause: no new pod starts until the spec changes "+
			"(set spec.paused to true and back to false, or fix the template): %s", what, summary(st))
	}
	return fmt.Sprintf("%s; failurePolicy.type is FailFast: %s", what, summary(st))
}

// setConditions computes the domain conditions (Complete, Failed, Paused)
// and the kstatus ones (Ready, Reconciling, Stalled):
//
//	running      Reconciling=True                Ready=False
//	all done     (completionPolicy Never)        Ready=True  AllNodesDone
//	paused       Paused=True                     Ready=False Paused
//	paused by a failure (failurePolicy Pause)    Stalled=True NodeFailed
//	completed    Complete=True                   Ready=True  Complete
//	failed       Failed=True   Stalled=True      Ready=False
//
// so kstatus (Flux, kubectl wait --for=condition=Ready) reads a completed
// job as Current and a failed one as Failed.
func setConditions(job *appsv1alpha1.BroadcastJob, st *appsv1alpha1.BroadcastJobStatus, p plan, createErr error) {
	gen := job.Generation
	if finished(job) {
		// Final: the conditions stay as they were written, for the
		// current generation.
		for i := range st.Conditions {
			st.Conditions[i].ObservedGeneration = gen
		}
		return
	}
	set := func(typ string, s metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen})
	}
	sum := summary(st)
	ready := func(s metav1.ConditionStatus, reason, msg string) {
		set(appsv1alpha1.ConditionReady, s, reason, msg)
	}
	reconciling := func(s metav1.ConditionStatus, reason, msg string) {
		set(appsv1alpha1.ConditionReconciling, s, reason, msg)
	}
	stalled := func(s metav1.ConditionStatus, reason, msg string) {
		set(appsv1alpha1.ConditionStalled, s, reason, msg)
	}
	switch p.phase {
	case appsv1alpha1.BroadcastJobCompleted:
		msg := sum
		if st.Desired == 0 {
			msg = "no node fits the pod template (nodeSelector, affinity, tolerations)"
		}
		set(appsv1alpha1.BroadcastJobConditionComplete, metav1.ConditionTrue, appsv1alpha1.ReasonComplete, msg)
		meta.RemoveStatusCondition(&st.Conditions, appsv1alpha1.BroadcastJobConditionPaused)
		ready(metav1.ConditionTrue, appsv1alpha1.ReasonComplete, msg)
		reconciling(metav1.ConditionFalse, appsv1alpha1.ReasonComplete, "")
		stalled(metav1.ConditionFalse, appsv1alpha1.ReasonComplete, "")
		return
	case appsv1alpha1.BroadcastJobFailed:
		msg := failureMessage(job, p, st)
		set(appsv1alpha1.BroadcastJobConditionFailed, metav1.ConditionTrue, p.failedReason, msg)
		meta.RemoveStatusCondition(&st.Conditions, appsv1alpha1.BroadcastJobConditionPaused)
		ready(metav1.ConditionFalse, p.failedReason, msg)
		reconciling(metav1.ConditionFalse, p.failedReason, "")
		stalled(metav1.ConditionTrue, p.failedReason, msg)
		return
	}

	switch {
	case p.pausedByFailure:
		msg := failureMessage(job, p, st)
		set(appsv1alpha1.BroadcastJobConditionPaused, metav1.ConditionTrue, appsv1alpha1.BroadcastJobReasonNodeFailed, msg)
		ready(metav1.ConditionFalse, appsv1alpha1.BroadcastJobReasonNodeFailed, msg)
		reconciling(metav1.ConditionFalse, appsv1alpha1.BroadcastJobReasonNodeFailed, "")
		stalled(metav1.ConditionTrue, appsv1alpha1.BroadcastJobReasonNodeFailed, msg)
	case p.phase == appsv1alpha1.BroadcastJobPaused:
		msg := "spec.paused is true: no new pod starts; " + sum
		set(appsv1alpha1.BroadcastJobConditionPaused, metav1.ConditionTrue, appsv1alpha1.ReasonPaused, msg)
		ready(metav1.ConditionFalse, appsv1alpha1.ReasonPaused, msg)
		reconciling(metav1.ConditionFalse, appsv1alpha1.ReasonPaused, "")
		stalled(metav1.ConditionFalse, appsv1alpha1.ReasonPaused, "")
	case createErr != nil:
		meta.RemoveStatusCondition(&st.Conditions, appsv1alpha1.BroadcastJobConditionPaused)
		msg := "creating pods: " + createErr.Error()
		ready(metav1.ConditionFalse, appsv1alpha1.ReasonCreateFailed, msg)
		reconciling(metav1.ConditionFalse, appsv1alpha1.ReasonCreateFailed, "")
		stalled(metav1.ConditionTrue, appsv1alpha1.ReasonCreateFailed, msg)
	case p.allDone:
		// completionPolicy Never: done on every node it targets so far.
		meta.RemoveStatusCondition(&st.Conditions, appsv1alpha1.BroadcastJobConditionPaused)
		msg := "completionPolicy.type is Never: the job runs on nodes that join later; " + sum
		ready(metav1.ConditionTrue, appsv1alpha1.BroadcastJobReasonAllNodesDone, msg)
		reconciling(metav1.ConditionFalse, appsv1alpha1.BroadcastJobReasonAllNodesDone, "")
		stalled(metav1.ConditionFalse, appsv1alpha1.BroadcastJobReasonAllNodesDone, "")
	default:
		meta.RemoveStatusCondition(&st.Conditions, appsv1alpha1.BroadcastJobConditionPaused)
		ready(metav1.ConditionFalse, appsv1alpha1.BroadcastJobReasonRunning, sum)
		reconciling(metav1.ConditionTrue, appsv1alpha1.BroadcastJobReasonRunning, sum)
		stalled(metav1.ConditionFalse, appsv1alpha1.BroadcastJobReasonRunning, "")
	}
}

// recordTransition emits an event when the job finishes or a failure
// pauses it.
func (r *Reconciler) recordTransition(job *appsv1alpha1.BroadcastJob, st *appsv1alpha1.BroadcastJobStatus, p plan) {
	prevPausedByFailure := false
	if c := meta.FindStatusCondition(job.Status.Conditions, appsv1alpha1.BroadcastJobConditionPaused); c != nil {
		prevPausedByFailure = c.Status == metav1.ConditionTrue && c.Reason == appsv1alpha1.BroadcastJobReasonNodeFailed
	}
	switch {
	case p.phase == appsv1alpha1.BroadcastJobCompleted:
		if st.Desired == 0 {
			r.Recorder.Eventf(job, nil, corev1.EventTypeWarning, "NoMatchingNodes", "Complete", "completed without running: no node fits the pod template")
			return
		}
		r.Recorder.Eventf(job, nil, corev1.EventTypeNormal, "Completed", "Complete", "completed: %s", summary(st))
	case p.phase == appsv1alpha1.BroadcastJobFailed:
		r.Recorder.Eventf(job, nil, corev1.EventTypeWarning, p.failedReason, "Fail", "failed: %s", failureMessage(job, p, st))
	case p.pausedByFailure && !prevPausedByFailure:
		r.Recorder.Eventf(job, nil, corev1.EventTypeWarning, appsv1alpha1.BroadcastJobReasonNodeFailed, "Pause", "paused: %s", failureMessage(job, p, st))
	}
}
