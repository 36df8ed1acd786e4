package statefulset

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

// tally is what the status counts, and whether the set is done.
type tally struct {
	status appsv1alpha1.StatefulSetStatus
	// scaled: every ordinal of the set has an available pod and no other
	// pod is left.
	scaled bool
	// updated: every pod at a position >= partition is updated and
	// available, under a rollout every pod below it runs the stable
	// revision, and no in-place update is in flight (always with
	// OnDelete).
	updated  bool
	inFlight int32
}

// count summarises the set's pods.
func count(res syncResult, onDelete bool) tally {
	var t tally
	var c workloadstatus.Counts
	at := make(map[int32]*podView, len(res.views))
	for _, v := range res.views {
		if !c.Add(v.pod, v.available, v.updated, v.inFlight) {
			continue
		}
		at[v.ordinal] = v
		if v.revision == res.current.Name {
			t.status.CurrentReplicas++
		}
	}
	t.status.Replicas, t.status.ReadyReplicas, t.status.AvailableReplicas = c.Replicas, c.Ready, c.Available
	t.status.UpdatedReplicas, t.status.UpdatedReadyReplicas, t.status.UpdatedAvailableReplicas = c.Updated, c.UpdatedReady, c.UpdatedAvailable
	t.inFlight = c.InFlight
	t.scaled = len(res.views) == len(res.ordinals)
	t.updated = t.inFlight == 0
	for i, o := range res.ordinals {
		v := at[o]
		if v == nil || !v.available {
			t.scaled = false
			continue
		}
		if int32(i) >= res.partition && !v.updated && !onDelete {
			t.updated = false
		}
		if int32(i) < res.partition && res.shape.stable != "" && v.revision != res.shape.stable && !onDelete {
			t.updated = false
		}
	}
	t.updated = t.updated || onDelete
	return t
}

// updateStatus writes the set's status and conditions, and returns when
// the progress deadline would pass.
func (r *Reconciler) updateStatus(ctx context.Context, set *appsv1alpha1.StatefulSet, o *observed, res syncResult) (time.Duration, error) {
	if res.update == nil {
		return 0, nil // revisions could not be synced; nothing to report on
	}
	now := r.Clock.Now()
	replicas := res.shape.replicas
	s := resolve(set, replicas)
	t := count(res, s.onDelete)
	st := t.status
	st.ObservedGeneration = set.Generation
	st.ExpectedUpdatedReplicas = replicas - res.partition
	st.UpdateRevision = res.update.Name
	st.CurrentRevision = res.current.Name
	if st.UpdatedReplicas == st.Replicas && st.Replicas == replicas && t.inFlight == 0 {
		st.CurrentRevision = res.update.Name
		st.CurrentReplicas = st.UpdatedReplicas
	}
	st.CollisionCount = ptr.To(res.collisionCount)
	st.LabelSelector = o.selector.String()
	st.Conditions = append([]metav1.Condition(nil), set.Status.Conditions...)

	old := set.Status
	summary := fmt.Sprintf("%d/%d updated, %d/%d available", st.UpdatedReplicas, st.ExpectedUpdatedReplicas, st.AvailableReplicas, replicas)
	if res.waitingFor != "" && !(t.scaled && t.updated) {
		summary += "; waiting for " + res.waitingFor
	}
	p := workloadstatus.Progress{
		Generation: set.Generation,
		Done:       t.scaled && t.updated && res.failure == nil && res.shape.controlErr == nil,
		Paused:     res.shape.paused,
		Progressed: old.ObservedGeneration != set.Generation || old.Replicas != st.Replicas ||
			old.ReadyReplicas != st.ReadyReplicas || old.AvailableReplicas != st.AvailableReplicas ||
			old.UpdatedReplicas != st.UpdatedReplicas || old.UpdatedAvailableReplicas != st.UpdatedAvailableReplicas,
		Activity: appsv1alpha1.ReasonScaling,
		Summary:  summary,
		Deadline: time.Duration(ptr.Deref(set.Spec.ProgressDeadlineSeconds, 600)) * time.Second,
		Blocker:  res.blocker,
		Now:      now,
	}
	if t.scaled {
		p.Activity = appsv1alpha1.ReasonUpdating
	}
	if s.policy == appsv1alpha1.InPlaceOnlyStatefulSetPodUpdatePolicy {
		p.InPlaceOnlyField = "updateStrategy.rollingUpdate.podUpdatePolicy"
	}
	if res.failure != nil {
		p.FailureReason, p.FailureMessage = res.failureReason, res.failure.Error()
	}
	if err := res.shape.controlErr; err != nil {
		p.FailureReason, p.FailureMessage = appsv1alpha1.ReasonInvalidRolloutControl, err.Error()
	}
	wait := workloadstatus.SetConditions(&st.Conditions, p)

	if apiequality.Semantic.DeepEqual(old, st) {
		return wait, nil
	}
	patched := set.DeepCopy()
	patched.Status = st
	retry, err := r.StatusWrites.Write(ctx, r.Client, ownerKey(set), now, set, patched, significant(&old, &st))
	if retry > 0 || err != nil {
		return podcontrol.MinPositive(wait, retry), err
	}
	return wait, nil
}

// significant reports whether a status change must be written at once:
// anything but the pod counters (and condition messages and times).
func significant(old, cur *appsv1alpha1.StatefulSetStatus) bool {
	return old.ObservedGeneration != cur.ObservedGeneration ||
		old.CurrentRevision != cur.CurrentRevision ||
		old.UpdateRevision != cur.UpdateRevision ||
		old.LabelSelector != cur.LabelSelector ||
		old.ExpectedUpdatedReplicas != cur.ExpectedUpdatedReplicas ||
		!apiequality.Semantic.DeepEqual(old.CollisionCount, cur.CollisionCount) ||
		workloadstatus.ConditionsChanged(old.Conditions, cur.Conditions)
}
