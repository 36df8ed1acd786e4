package cloneset

import (
	"context"
	"fmt"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/podcontrol"
	"github.com/drover-dev/drover/internal/workloadstatus"
)

// counts summarises pods for status (workloadstatus.Counts).
func counts(views []*podView) (s appsv1alpha1.CloneSetStatus, inFlight int32) {
	var c workloadstatus.Counts
	for _, v := range views {
		c.Add(v.pod, v.available, v.updated, v.inFlight)
	}
	s.Replicas, s.ReadyReplicas, s.AvailableReplicas = c.Replicas, c.Ready, c.Available
	s.UpdatedReplicas, s.UpdatedReadyReplicas, s.UpdatedAvailableReplicas = c.Updated, c.UpdatedReady, c.UpdatedAvailable
	return s, c.InFlight
}

// updateStatus writes the CloneSet's status and conditions, and returns
// when the progress deadline would pass.
func (r *Reconciler) updateStatus(ctx context.Context, cs *appsv1alpha1.CloneSet, o *observed, res syncResult) (time.Duration, error) {
	if res.update == nil {
		return 0, nil // revisions could not be synced; nothing to report on
	}
	now := r.Clock.Now()
	replicas := res.shape.replicas
	st, inFlight := counts(res.views)
	st.ExpectedUpdatedReplicas = replicas - res.shape.partition
	st.ObservedGeneration = cs.Generation
	st.UpdateRevision = res.update.Name
	st.CurrentRevision = res.current.Name
	if st.UpdatedReplicas == st.Replicas && st.Replicas == replicas && inFlight == 0 {
		st.CurrentRevision = res.update.Name
	}
	st.CollisionCount = ptr.To(res.collisionCount)
	st.LabelSelector = o.selector.String()
	st.Conditions = append([]metav1.Condition(nil), cs.Status.Conditions...)

	wait := setConditions(cs, &st, inFlight, res, now)

	if apiequality.Semantic.DeepEqual(cs.Status, st) {
		return wait, nil
	}
	// Changes that only move counters (on nearly every pod event during a
	// large update) are written at most once per interval.
	patched := cs.DeepCopy()
	patched.Status = st
	retry, err := r.StatusWrites.Write(ctx, r.Client, ownerKey(cs), now, cs, patched, significant(&cs.Status, &st))
	if retry > 0 || err != nil {
		return podcontrol.MinPositive(wait, retry), err
	}
	return wait, nil
}

// significant reports whether a status change must be written at once:
// anything but the pod counters (and the Progressing condition's time).
func significant(old, cur *appsv1alpha1.CloneSetStatus) bool {
	if old.ObservedGeneration != cur.ObservedGeneration || old.CurrentRevision != cur.CurrentRevision ||
		old.UpdateRevision != cur.UpdateRevision || old.LabelSelector != cur.LabelSelector ||
		old.ExpectedUpdatedReplicas != cur.ExpectedUpdatedReplicas ||
		!apiequality.Semantic.DeepEqual(old.CollisionCount, cur.CollisionCount) {
		return true
	}
	return workloadstatus.ConditionsChanged(old.Conditions, cur.Conditions)
}

// setConditions computes the kstatus conditions (Ready, Reconciling,
// Stalled), Progressing and InPlaceUpdateBlocked (workloadstatus).
func setConditions(cs *appsv1alpha1.CloneSet, st *appsv1alpha1.CloneSetStatus, inFlight int32, res syncResult, now time.Time) time.Duration {
	replicas := res.shape.replicas
	us := cs.Spec.UpdateStrategy
	onDelete := us.Type == appsv1alpha1.OnDeleteCloneSetUpdateStrategyType
	scaled := st.Replicas == replicas && st.AvailableReplicas == replicas
	// A partition keeps at most that many pods on old revisions; a set
	// created after the partition was set may have more updated pods.
	updated := onDelete || (st.UpdatedReplicas >= st.ExpectedUpdatedReplicas && st.UpdatedAvailableReplicas >= st.ExpectedUpdatedReplicas && inFlight == 0)
	p := workloadstatus.Progress{
		Generation: cs.Generation,
		Done:       scaled && updated,
		Paused:     res.shape.paused,
		Progressed: cs.Status.ObservedGeneration != cs.Generation ||
			cs.Status.Replicas != st.Replicas || cs.Status.ReadyReplicas != st.ReadyReplicas ||
			cs.Status.AvailableReplicas != st.AvailableReplicas || cs.Status.UpdatedReplicas != st.UpdatedReplicas ||
			cs.Status.UpdatedAvailableReplicas != st.UpdatedAvailableReplicas,
		// Updating while pods move to the update revision, Scaling while
		// pods are created, deleted or becoming available.
		Activity: appsv1alpha1.ReasonScaling,
		Summary:  fmt.Sprintf("%d/%d updated, %d/%d available", st.UpdatedReplicas, st.ExpectedUpdatedReplicas, st.AvailableReplicas, replicas),
		Deadline: time.Duration(ptr.Deref(cs.Spec.ProgressDeadlineSeconds, 600)) * time.Second,
		Blocker:  res.blocker,
		Now:      now,
	}
	if st.Replicas == replicas && !updated {
		p.Activity = appsv1alpha1.ReasonUpdating
	}
	if us.Type == appsv1alpha1.InPlaceOnlyCloneSetUpdateStrategyType {
		p.InPlaceOnlyField = "updateStrategy.type"
	}
	if res.createErr != nil {
		p.FailureReason, p.FailureMessage = appsv1alpha1.ReasonCreateFailed, res.createErr.Error()
	}
	if err := res.shape.controlErr; err != nil {
		p.FailureReason, p.FailureMessage = appsv1alpha1.ReasonInvalidRolloutControl, err.Error()
	}
	return workloadstatus.SetConditions(&st.Conditions, p)
}
