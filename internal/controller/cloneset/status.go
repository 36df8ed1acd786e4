package cloneset

import (
	"context"
	"fmt"
	"sync"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/podstate"
)

// conflictRetry is how soon a reconcile whose status write conflicted runs again.
const conflictRetry = 250 * time.Millisecond

// counts summarises pods for status.
func counts(views []*podView) (s appsv1alpha1.CloneSetStatus, inFlight int32) {
	for _, v := range views {
		if !podstate.IsActive(v.pod) {
			continue
		}
		s.Replicas++
		ready := podstate.IsReady(v.pod)
		if ready {
			s.ReadyReplicas++
		}
		if v.available {
			s.AvailableReplicas++
		}
		if v.updated {
			s.UpdatedReplicas++
			if ready {
				s.UpdatedReadyReplicas++
			}
			if v.available {
				s.UpdatedAvailableReplicas++
			}
		}
		if v.inFlight {
			inFlight++
		}
	}
	return s, inFlight
}

// updateStatus writes the CloneSet's status and conditions, and returns
// when the progress deadline would pass.
func (r *Reconciler) updateStatus(ctx context.Context, cs *appsv1alpha1.CloneSet, o *observed, res syncResult) (time.Duration, error) {
	if res.update == nil {
		return 0, nil // revisions could not be synced; nothing to report on
	}
	now := r.Clock.Now()
	replicas := ptr.Deref(cs.Spec.Replicas, 1)
	st, inFlight := counts(res.views)
	partition := min(scaled(cs.Spec.UpdateStrategy.Partition, replicas, true, 0), replicas)
	st.ExpectedUpdatedReplicas = replicas - partition
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
	key := ownerKey(cs)
	if !significant(&cs.Status, &st) {
		// Only counters moved: during a large update they move on nearly
		// every pod event, so they are written at most once per interval.
		if left := r.statusWrites.wait(key, now); left > 0 {
			return minPositive(wait, left), nil
		}
	}
	patched := cs.DeepCopy()
	patched.Status = st
	// Optimistic locking: a merge patch computed from a stale copy would
	// leave fields that did not change from that copy at their newer
	// values, mixing two reconciles' counts.
	if err := r.Client.Status().Patch(ctx, patched, client.MergeFromWithOptions(cs, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsConflict(err) {
			// The cache lags our last status write; status events do not
			// requeue (generation predicate), so come back shortly.
			return conflictRetry, nil
		}
		return 0, fmt.Errorf("writing status: %w", err)
	}
	r.statusWrites.wrote(key, now)
	return wait, nil
}

// significant reports whether a status change must be written at once:
// anything but the pod counters (and the Progressing condition's time).
func significant(old, cur *appsv1alpha1.CloneSetStatus) bool {
	if old.ObservedGeneration != cur.ObservedGeneration || old.CurrentRevision != cur.CurrentRevision ||
		old.UpdateRevision != cur.UpdateRevision || old.LabelSelector != cur.LabelSelector ||
		old.ExpectedUpdatedReplicas != cur.ExpectedUpdatedReplicas ||
		!apiequality.Semantic.DeepEqual(old.CollisionCount, cur.CollisionCount) ||
		len(old.Conditions) != len(cur.Conditions) {
		return true
	}
	for _, c := range cur.Conditions {
		o := meta.FindStatusCondition(old.Conditions, c.Type)
		if o == nil || o.Status != c.Status || o.Reason != c.Reason || o.ObservedGeneration != c.ObservedGeneration {
			return true
		}
	}
	return false
}

// writeLimiter remembers when each CloneSet's status was last written.
type writeLimiter struct {
	interval time.Duration
	mu       sync.Mutex
	last     map[string]time.Time
}

func newWriteLimiter(interval time.Duration) *writeLimiter {
	return &writeLimiter{interval: interval, last: map[string]time.Time{}}
}

// wait returns how long until key may be written again (0: now).
func (l *writeLimiter) wait(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[key]; ok {
		if left := t.Add(l.interval).Sub(now); left > 0 {
			return left
		}
	}
	return 0
}

func (l *writeLimiter) wrote(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last[key] = now
}

func (l *writeLimiter) forget(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.last, key)
}

// setConditions computes the kstatus conditions (Ready, Reconciling,
// Stalled), Progressing and InPlaceUpdateBlocked. Progressing's
// lastTransitionTime is the last time the CloneSet made progress, as
// Deployment's lastUpdateTime is; the deadline is counted from it.
func setConditions(cs *appsv1alpha1.CloneSet, st *appsv1alpha1.CloneSetStatus, inFlight int32, res syncResult, now time.Time) time.Duration {
	replicas := ptr.Deref(cs.Spec.Replicas, 1)
	us := cs.Spec.UpdateStrategy
	onDelete := us.Type == appsv1alpha1.OnDeleteCloneSetUpdateStrategyType
	scaled := st.Replicas == replicas && st.AvailableReplicas == replicas
	// A partition keeps at most that many pods on old revisions; a set
	// created after the partition was set may have more updated pods.
	updated := onDelete || (st.UpdatedReplicas >= st.ExpectedUpdatedReplicas && st.UpdatedAvailableReplicas >= st.ExpectedUpdatedReplicas && inFlight == 0)
	done := scaled && updated
	gen := cs.Generation

	set := func(t string, s metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen})
	}
	progressed := cs.Status.ObservedGeneration != cs.Generation ||
		cs.Status.Replicas != st.Replicas || cs.Status.ReadyReplicas != st.ReadyReplicas ||
		cs.Status.AvailableReplicas != st.AvailableReplicas || cs.Status.UpdatedReplicas != st.UpdatedReplicas ||
		cs.Status.UpdatedAvailableReplicas != st.UpdatedAvailableReplicas
	// Updating while pods move to the update revision, Scaling while pods
	// are created, deleted or becoming available.
	activity := appsv1alpha1.ReasonScaling
	if st.Replicas == replicas && !updated {
		activity = appsv1alpha1.ReasonUpdating
	}
	summary := fmt.Sprintf("%d/%d updated, %d/%d available", st.UpdatedReplicas, st.ExpectedUpdatedReplicas, st.AvailableReplicas, replicas)

	// Progressing.
	var wait time.Duration
	deadline := time.Duration(ptr.Deref(cs.Spec.ProgressDeadlineSeconds, 600)) * time.Second
	stalledReason, stalledMsg := "", ""
	switch {
	case done:
		set(appsv1alpha1.ConditionProgressing, metav1.ConditionTrue, appsv1alpha1.ReasonComplete, summary)
	case us.Paused:
		set(appsv1alpha1.ConditionProgressing, metav1.ConditionUnknown, appsv1alpha1.ReasonPaused, "the update is paused: "+summary)
	case progressed || meta.FindStatusCondition(st.Conditions, appsv1alpha1.ConditionProgressing) == nil ||
		meta.IsStatusConditionPresentAndEqual(st.Conditions, appsv1alpha1.ConditionProgressing, metav1.ConditionUnknown):
		meta.RemoveStatusCondition(&st.Conditions, appsv1alpha1.ConditionProgressing)
		set(appsv1alpha1.ConditionProgressing, metav1.ConditionTrue, activity, summary)
		wait = deadline
	default:
		c := meta.FindStatusCondition(st.Conditions, appsv1alpha1.ConditionProgressing)
		if c.Status == metav1.ConditionTrue {
			if left := c.LastTransitionTime.Add(deadline).Sub(now); left > 0 {
				wait = left
			} else {
				set(appsv1alpha1.ConditionProgressing, metav1.ConditionFalse, appsv1alpha1.ReasonProgressDeadlineExceeded,
					fmt.Sprintf("no progress for %s: %s", deadline, summary))
			}
		}
		if c := meta.FindStatusCondition(st.Conditions, appsv1alpha1.ConditionProgressing); c.Status == metav1.ConditionFalse {
			stalledReason, stalledMsg = c.Reason, c.Message
		}
	}

	// InPlaceUpdateBlocked.
	if us.Type == appsv1alpha1.InPlaceOnlyCloneSetUpdateStrategyType {
		if res.blocker != "" {
			msg := fmt.Sprintf("updateStrategy.type is InPlaceOnly but %s changed, which cannot be updated in place; no pod was touched", res.blocker)
			set(appsv1alpha1.ConditionInPlaceUpdateBlocked, metav1.ConditionTrue, appsv1alpha1.ReasonNotInPlaceUpdatable, msg)
			stalledReason, stalledMsg = appsv1alpha1.ReasonNotInPlaceUpdatable, msg
		} else {
			set(appsv1alpha1.ConditionInPlaceUpdateBlocked, metav1.ConditionFalse, appsv1alpha1.ReasonInPlaceUpdatable, "")
		}
	} else {
		meta.RemoveStatusCondition(&st.Conditions, appsv1alpha1.ConditionInPlaceUpdateBlocked)
	}
	if res.createErr != nil && stalledReason == "" {
		stalledReason, stalledMsg = appsv1alpha1.ReasonCreateFailed, res.createErr.Error()
	}

	// Stalled, Reconciling, Ready.
	switch {
	case stalledReason != "":
		set(appsv1alpha1.ConditionStalled, metav1.ConditionTrue, stalledReason, stalledMsg)
	default:
		set(appsv1alpha1.ConditionStalled, metav1.ConditionFalse, appsv1alpha1.ReasonAvailable, "")
	}
	switch {
	case done:
		set(appsv1alpha1.ConditionReconciling, metav1.ConditionFalse, appsv1alpha1.ReasonComplete, "")
		set(appsv1alpha1.ConditionReady, metav1.ConditionTrue, appsv1alpha1.ReasonAvailable, summary)
	case stalledReason != "":
		set(appsv1alpha1.ConditionReconciling, metav1.ConditionFalse, stalledReason, "")
		set(appsv1alpha1.ConditionReady, metav1.ConditionFalse, stalledReason, stalledMsg)
	case us.Paused:
		set(appsv1alpha1.ConditionReconciling, metav1.ConditionFalse, appsv1alpha1.ReasonPaused, "")
		set(appsv1alpha1.ConditionReady, metav1.ConditionFalse, appsv1alpha1.ReasonPaused, "the update is paused: "+summary)
	default:
		set(appsv1alpha1.ConditionReconciling, metav1.ConditionTrue, activity, summary)
		set(appsv1alpha1.ConditionReady, metav1.ConditionFalse, activity, summary)
	}
	return wait
}
