package analysisrun

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

// Condition reasons of an AnalysisRun.
const (
	ReasonMeasuring = "Measuring"
)

// writeStatus writes st when it changed, with an optimistic lock: a
// reconcile that read a stale run must not overwrite measurements.
func (r *Reconciler) writeStatus(ctx context.Context, run *rolloutsv1alpha1.AnalysisRun, st *rolloutsv1alpha1.AnalysisRunStatus) error {
	if equality.Semantic.DeepEqual(run.Status, *st) {
		return nil
	}
	patched := run.DeepCopy()
	patched.Status = *st
	if err := r.Client.Status().Patch(ctx, patched, client.MergeFromWithOptions(run, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("writing status: %w", err)
	}
	return nil
}

// setConditions follows kstatus: Ready (True once Successful),
// Reconciling (True while measuring) and Stalled (True when the run
// Failed, is in Error or Inconclusive: a human or the Rollout must act).
func setConditions(st *rolloutsv1alpha1.AnalysisRunStatus, generation int64, now time.Time) {
	set := func(t string, ok bool, reason, msg string) {
		c := metav1.Condition{Type: t, Status: metav1.ConditionFalse, Reason: reason, Message: msg,
			ObservedGeneration: generation, LastTransitionTime: metav1.Time{Time: now}}
		if ok {
			c.Status = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, c)
	}
	phase := string(st.Phase)
	msg := st.Message
	switch st.Phase {
	case rolloutsv1alpha1.AnalysisPhaseSuccessful:
		set(rolloutsv1alpha1.ConditionReady, true, phase, msg)
		set(rolloutsv1alpha1.ConditionReconciling, false, phase, "")
		set(rolloutsv1alpha1.ConditionStalled, false, phase, "")
	case rolloutsv1alpha1.AnalysisPhaseFailed, rolloutsv1alpha1.AnalysisPhaseError, rolloutsv1alpha1.AnalysisPhaseInconclusive:
		set(rolloutsv1alpha1.ConditionReady, false, phase, msg)
		set(rolloutsv1alpha1.ConditionReconciling, false, phase, "")
		set(rolloutsv1alpha1.ConditionStalled, true, phase, msg)
	default:
		set(rolloutsv1alpha1.ConditionReady, false, ReasonMeasuring, msg)
		set(rolloutsv1alpha1.ConditionReconciling, true, ReasonMeasuring, msg)
		set(rolloutsv1alpha1.ConditionStalled, false, ReasonMeasuring, "")
	}
}

// recordEvents tells the phase changes of the run and of its metrics.
// Messages were redacted of secrets when the measurements were taken.
func (r *Reconciler) recordEvents(run *rolloutsv1alpha1.AnalysisRun, old, cur *rolloutsv1alpha1.AnalysisRunStatus) {
	if r.Recorder == nil {
		return
	}
	for _, m := range cur.MetricResults {
		was := rolloutsv1alpha1.AnalysisPhase("")
		for _, o := range old.MetricResults {
			if o.Name == m.Name {
				was = o.Phase
			}
		}
		if m.Phase == was || !m.Phase.Completed() {
			continue
		}
		r.Recorder.Eventf(run, nil, eventType(m.Phase, m.DryRun), "Metric"+string(m.Phase), "Measure",
			"metric %s %s: %s", m.Name, strings.ToLower(string(m.Phase)), m.Message)
	}
	if cur.Phase == old.Phase {
		return
	}
	r.Recorder.Eventf(run, nil, eventType(cur.Phase, false), "AnalysisRun"+string(cur.Phase), "Analyze", "%s", phaseNote(cur))
}

func phaseNote(st *rolloutsv1alpha1.AnalysisRunStatus) string {
	if st.Message == "" {
		return "analysis run " + strings.ToLower(string(st.Phase))
	}
	return st.Message
}

func eventType(p rolloutsv1alpha1.AnalysisPhase, dryRun bool) string {
	switch p {
	case rolloutsv1alpha1.AnalysisPhaseFailed, rolloutsv1alpha1.AnalysisPhaseError, rolloutsv1alpha1.AnalysisPhaseInconclusive:
		if !dryRun {
			return corev1.EventTypeWarning
		}
	}
	return corev1.EventTypeNormal
}
