package daemonset

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

// counts summarises nodes for status, with the native DaemonSet's
// meanings; surging is the number of nodes running two pods, removing the
// number of nodes whose pods are to go (misscheduled and not kept, or the
// node left) and inFlight the number of pods in the middle of an in-place
// update.
func counts(nodes []*nodeView) (s appsv1alpha1.DaemonSetStatus, surging, removing, inFlight int32) {
	for _, n := range nodes {
		if !n.exists {
			removing += btoi32(len(n.active) > 0)
			continue
		}
		if !n.eligible {
			if len(n.active) > 0 {
				s.NumberMisscheduled++
				removing += btoi32(!n.keep)
			}
			continue
		}
		s.DesiredNumberScheduled++
		if len(n.active) == 0 {
			continue
		}
		s.CurrentNumberScheduled++
		if len(n.active) > 1 {
			surging++
		}
		var ready, available, updated, updatedAvailable bool
		for _, v := range n.active {
			ready = ready || v.ready
			available = available || v.available
			updated = updated || v.updated
			updatedAvailable = updatedAvailable || (v.updated && v.available)
			if v.inFlight {
				inFlight++
			}
		}
		s.NumberReady += btoi32(ready)
		s.NumberAvailable += btoi32(available)
		s.UpdatedNumberScheduled += btoi32(updated)
		s.UpdatedNumberAvailable += btoi32(updatedAvailable)
	}
	s.NumberUnavailable = s.DesiredNumberScheduled - s.NumberAvailable
	return s, surging, removing, inFlight
}

// strays counts the eligible nodes in rollingUpdate.selector that run,
// or are moving to or from, a revision other than the update revision and
// the rollout's stable one: under a rollout they still have to move.
func strays(nodes []*nodeView, stable string) int32 {
	var n int32
	for _, nv := range nodes {
		if !nv.exists || !nv.eligible || !nv.inScope {
			continue
		}
		for _, v := range nv.active {
			if v.returning || (!v.updated && v.revision != stable) {
				n++
				break
			}
		}
	}
	return n
}

func btoi32(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// updateStatus writes the DaemonSet's status and conditions, and returns
// when the progress deadline would pass.
func (r *Reconciler) updateStatus(ctx context.Context, ds *appsv1alpha1.DaemonSet, res syncResult) (time.Duration, error) {
	if res.update == nil {
		return 0, nil // revisions could not be synced; nothing to report on
	}
	now := r.Clock.Now()
	st, surging, removing, inFlight := counts(res.nodes)
	st.ExpectedUpdatedNumber = res.expectedUpdated
	st.ObservedGeneration = ds.Generation
	st.UpdateRevision = res.update.Name
	st.CurrentRevision = res.current.Name
	// A pod kept on a node that no longer accepts new ones (NotReady,
	// NoSchedule taint) is misscheduled but does not hold Ready back.
	placed := st.CurrentNumberScheduled == st.DesiredNumberScheduled && removing == 0 && surging == 0
	allUpdated := st.UpdatedNumberScheduled == st.DesiredNumberScheduled && inFlight == 0
	if placed && allUpdated {
		st.CurrentRevision = res.update.Name
	}
	st.CollisionCount = ptr.To(res.collisionCount)
	st.Conditions = append([]metav1.Condition(nil), ds.Status.Conditions...)

	paused := !onDelete(ds) && paused(res.control, ds)
	updated := onDelete(ds) || (st.UpdatedNumberScheduled >= st.ExpectedUpdatedNumber &&
		st.UpdatedNumberAvailable >= st.ExpectedUpdatedNumber && inFlight == 0)
	if stable := res.control.Stable; stable != "" && !onDelete(ds) {
		// Under a rollout the canary count is exact, and every other node
		// runs the stable revision.
		updated = updated && st.UpdatedNumberScheduled == st.ExpectedUpdatedNumber && strays(res.nodes, stable) == 0
	}
	done := placed && st.NumberAvailable == st.DesiredNumberScheduled && updated
	// Updating while nodes move to the update revision; Placing while pods
	// are created on or removed from nodes, or are becoming available.
	activity := appsv1alpha1.ReasonPlacing
	if placed && (st.UpdatedNumberScheduled < st.ExpectedUpdatedNumber || inFlight > 0 || (res.control.Stable != "" && !updated)) {
		activity = appsv1alpha1.ReasonUpdating
	}
	failureReason, failureMessage := res.failureReason, res.failureMessage
	if err := res.control.Err; err != nil {
		failureReason, failureMessage = appsv1alpha1.ReasonInvalidRolloutControl, err.Error()
	}
	old := ds.Status
	wait := workloadstatus.SetConditions(&st.Conditions, workloadstatus.Progress{
		Generation: ds.Generation,
		Done:       done && res.control.Err == nil,
		Paused:     paused && !updated,
		Progressed: old.ObservedGeneration != ds.Generation || old.DesiredNumberScheduled != st.DesiredNumberScheduled ||
			old.CurrentNumberScheduled != st.CurrentNumberScheduled || old.NumberMisscheduled != st.NumberMisscheduled ||
			old.NumberReady != st.NumberReady || old.NumberAvailable != st.NumberAvailable ||
			old.UpdatedNumberScheduled != st.UpdatedNumberScheduled || old.UpdatedNumberAvailable != st.UpdatedNumberAvailable,
		Activity: activity,
		Summary: fmt.Sprintf("%d/%d nodes updated, %d/%d available, %d misscheduled", st.UpdatedNumberScheduled, st.ExpectedUpdatedNumber,
			st.NumberAvailable, st.DesiredNumberScheduled, st.NumberMisscheduled),
		Deadline:       time.Duration(ptr.Deref(ds.Spec.ProgressDeadlineSeconds, 600)) * time.Second,
		FailureReason:  failureReason,
		FailureMessage: failureMessage,
		Now:            now,
	})

	if apiequality.Semantic.DeepEqual(ds.Status, st) {
		return wait, nil
	}
	patched := ds.DeepCopy()
	patched.Status = st
	retry, err := r.StatusWrites.Write(ctx, r.Client, ownerKey(ds), now, ds, patched, significant(&ds.Status, &st))
	if retry > 0 || err != nil {
		return podcontrol.MinPositive(wait, retry), err
	}
	return wait, nil
}

// significant reports whether a status change must be written at once:
// anything but the node counters.
func significant(old, cur *appsv1alpha1.DaemonSetStatus) bool {
	return old.ObservedGeneration != cur.ObservedGeneration || old.CurrentRevision != cur.CurrentRevision ||
		old.UpdateRevision != cur.UpdateRevision || old.ExpectedUpdatedNumber != cur.ExpectedUpdatedNumber ||
		old.DesiredNumberScheduled != cur.DesiredNumberScheduled ||
		!apiequality.Semantic.DeepEqual(old.CollisionCount, cur.CollisionCount) ||
		workloadstatus.ConditionsChanged(old.Conditions, cur.Conditions)
}
