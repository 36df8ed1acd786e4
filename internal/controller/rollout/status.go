package rollout

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/workloadstatus"
)

// writeStatus sets the conditions and phase of the decision's status and
// writes it when it changed. It returns when the progress deadline would
// pass.
func (r *Reconciler) writeStatus(ctx context.Context, ro *rolloutsv1alpha1.Rollout, d *decision, applyErr error) (time.Duration, error) {
	st := &d.status
	st.ObservedGeneration = ro.Generation
	st.Message = d.message
	wait := setConditions(ro, d, applyErr, r.Clock.Now())
	st.Phase = phase(d)
	if equality.Semantic.DeepEqual(ro.Status, *st) {
		return wait, nil
	}
	patched := ro.DeepCopy()
	patched.Status = *st
	if err := r.Client.Status().Patch(ctx, patched, client.MergeFromWithOptions(ro, client.MergeFromWithOptimisticLock{})); err != nil {
		return 0, fmt.Errorf("writing status: %w", err)
	}
	return wait, nil
}

func phase(d *decision) rolloutsv1alpha1.RolloutPhase {
	switch {
	case d.aborted:
		return rolloutsv1alpha1.RolloutPhaseDegraded
	case d.paused:
		return rolloutsv1alpha1.RolloutPhasePaused
	case d.done:
		return rolloutsv1alpha1.RolloutPhaseHealthy
	}
	return rolloutsv1alpha1.RolloutPhaseProgressing
}

// setConditions: Ready, Reconciling, Stalled and Progressing (with the
// progress deadline) as every Drover workload has them
// (workloadstatus.SetConditions), plus Paused, Aborted and Completed.
func setConditions(ro *rolloutsv1alpha1.Rollout, d *decision, applyErr error, now time.Time) time.Duration {
	st, old := &d.status, &ro.Status
	p := workloadstatus.Progress{
		Generation: ro.Generation,
		Done:       d.done,
		Paused:     d.paused,
		Progressed: d.progressed || old.ObservedGeneration != ro.Generation ||
			old.CanaryReadyReplicas != st.CanaryReadyReplicas || old.StableReadyReplicas != st.StableReadyReplicas ||
			!equality.Semantic.DeepEqual(old.VerifiedWeight, st.VerifiedWeight) ||
			!equality.Semantic.DeepEqual(old.CurrentStepIndex, st.CurrentStepIndex),
		Activity: d.activity,
		Summary:  d.message,
		Deadline: time.Duration(ptr.Deref(ro.Spec.ProgressDeadlineSeconds, 600)) * time.Second,
		Now:      now,
	}
	switch {
	case applyErr != nil:
		p.FailureReason, p.FailureMessage = rolloutsv1alpha1.ReasonApplyFailed, applyErr.Error()
	case d.aborted:
		p.FailureReason, p.FailureMessage = rolloutsv1alpha1.ReasonAborted, d.message
	}
	wait := workloadstatus.SetConditions(&st.Conditions, p)

	set := func(t string, ok bool, reasonTrue, reasonFalse, msg string) {
		c := metav1.Condition{Type: t, Status: metav1.ConditionFalse, Reason: reasonFalse, ObservedGeneration: ro.Generation}
		if ok {
			c.Status, c.Reason, c.Message = metav1.ConditionTrue, reasonTrue, msg
		}
		meta.SetStatusCondition(&st.Conditions, c)
	}
	pausedReason := rolloutsv1alpha1.ReasonPausedStep
	switch {
	case ro.Spec.Paused:
		pausedReason = rolloutsv1alpha1.ReasonPausedUser
	case d.gateHeld:
		pausedReason = rolloutsv1alpha1.ReasonWaitingForGate
	}
	set(rolloutsv1alpha1.ConditionPaused, d.paused, pausedReason, rolloutsv1alpha1.ReasonStepRunning, d.message)
	set(rolloutsv1alpha1.ConditionAborted, d.aborted, rolloutsv1alpha1.ReasonAborted, rolloutsv1alpha1.ReasonStepRunning, d.message)
	set(rolloutsv1alpha1.ConditionCompleted, d.done, rolloutsv1alpha1.ReasonCompleted, rolloutsv1alpha1.ReasonStepRunning, d.message)
	return wait
}
