// Package workloadstatus writes workload status the same way for every
// kind: kstatus conditions (Ready, Reconciling, Stalled) with Progressing
// and its deadline, a limit on writes that only move pod counters, and an
// optimistic-lock status patch.
package workloadstatus

import (
	"context"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

// ConflictRetry is how soon a reconcile whose status write conflicted
// should run again.
const ConflictRetry = 250 * time.Millisecond

// Patch writes updated's status over old's with an optimistic lock: a merge
// patch computed from a stale copy would leave fields that did not change
// from that copy at their newer values, mixing two reconciles' counts. A
// conflict is not an error: the cache lags the last status write and the
// caller should come back after the returned delay (status events usually
// do not requeue a workload).
func Patch(ctx context.Context, c client.Client, old, updated client.Object) (retryAfter time.Duration, err error) {
	if err := c.Status().Patch(ctx, updated, client.MergeFromWithOptions(old, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsConflict(err) {
			return ConflictRetry, nil
		}
		return 0, fmt.Errorf("writing status: %w", err)
	}
	return 0, nil
}

// ConditionsChanged reports whether a condition appeared, went, or changed
// status, reason or observedGeneration (messages and times do not count):
// such a change is written at once, unlike counter moves.
func ConditionsChanged(old, cur []metav1.Condition) bool {
	if len(old) != len(cur) {
		return true
	}
	for _, c := range cur {
		o := meta.FindStatusCondition(old, c.Type)
		if o == nil || o.Status != c.Status || o.Reason != c.Reason || o.ObservedGeneration != c.ObservedGeneration {
			return true
		}
	}
	return false
}

// WriteLimiter remembers when each workload's status was last written, so
// that writes that only move counters (which move on nearly every pod
// event during a large update) happen at most once per interval.
type WriteLimiter struct {
	interval time.Duration
	mu       sync.Mutex
	last     map[string]time.Time
}

// NewWriteLimiter returns a limiter allowing one write per interval and key.
func NewWriteLimiter(interval time.Duration) *WriteLimiter {
	return &WriteLimiter{interval: interval, last: map[string]time.Time{}}
}

// Wait returns how long until key may be written again (0: now).
func (l *WriteLimiter) Wait(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[key]; ok {
		if left := t.Add(l.interval).Sub(now); left > 0 {
			return left
		}
	}
	return 0
}

// Wrote records a write of key at now.
func (l *WriteLimiter) Wrote(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last[key] = now
}

// Forget drops key (the workload was deleted).
func (l *WriteLimiter) Forget(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.last, key)
}

// Progress is what a workload controller knows about its rollout, for the
// conditions.
type Progress struct {
	// Generation is the workload's metadata.generation.
	Generation int64
	// Done: every pod the spec asks for exists, runs the revision it should
	// and is available.
	Done bool
	// Paused: the update is paused (spec), so not Done is expected.
	Paused bool
	// Progressed: the counters moved since the last status (or the spec
	// changed); it restarts the progress deadline.
	Progressed bool
	// Activity is the Reconciling/Progressing reason while not Done
	// (e.g. ReasonScaling, ReasonUpdating).
	Activity string
	// Summary is a one-line human summary ("3/5 updated, 4/5 available").
	Summary string
	// Deadline is progressDeadlineSeconds; 0 disables the deadline.
	Deadline time.Duration
	// InPlaceOnlyField names the spec field set to InPlaceOnly (e.g.
	// "updateStrategy.type"), "" when recreation is allowed. Blocker then
	// names the field that keeps the update from going in place ("" when
	// nothing blocks), and the InPlaceUpdateBlocked condition is kept.
	InPlaceOnlyField string
	Blocker          string
	// Failure is a reason and message that stall the workload (e.g. pod
	// creation refused by a quota); empty when none.
	FailureReason, FailureMessage string
	Now                           time.Time
}

// SetConditions updates conds (the status being built, starting from the
// previous conditions) from p and returns when the progress deadline would
// pass (0: no deadline pending). Progressing's lastTransitionTime is the
// last time the workload made progress, as Deployment's lastUpdateTime is;
// the deadline is counted from it.
func SetConditions(conds *[]metav1.Condition, p Progress) time.Duration {
	set := func(t string, s metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(conds, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: p.Generation})
	}

	var wait time.Duration
	stalledReason, stalledMsg := "", ""
	progressing := meta.FindStatusCondition(*conds, appsv1alpha1.ConditionProgressing)
	switch {
	case p.Done:
		set(appsv1alpha1.ConditionProgressing, metav1.ConditionTrue, appsv1alpha1.ReasonComplete, p.Summary)
	case p.Paused:
		set(appsv1alpha1.ConditionProgressing, metav1.ConditionUnknown, appsv1alpha1.ReasonPaused, "the update is paused: "+p.Summary)
	case p.Progressed || progressing == nil || progressing.Status == metav1.ConditionUnknown:
		// Removed first so that lastTransitionTime restarts the deadline.
		meta.RemoveStatusCondition(conds, appsv1alpha1.ConditionProgressing)
		set(appsv1alpha1.ConditionProgressing, metav1.ConditionTrue, p.Activity, p.Summary)
		wait = p.Deadline
	default:
		if progressing.Status == metav1.ConditionTrue && p.Deadline > 0 {
			if left := progressing.LastTransitionTime.Add(p.Deadline).Sub(p.Now); left > 0 {
				wait = left
			} else {
				set(appsv1alpha1.ConditionProgressing, metav1.ConditionFalse, appsv1alpha1.ReasonProgressDeadlineExceeded,
					fmt.Sprintf("no progress for %s: %s", p.Deadline, p.Summary))
			}
		}
		if c := meta.FindStatusCondition(*conds, appsv1alpha1.ConditionProgressing); c.Status == metav1.ConditionFalse {
			stalledReason, stalledMsg = c.Reason, c.Message
		}
	}

	if p.InPlaceOnlyField != "" {
		if p.Blocker != "" {
			msg := fmt.Sprintf("%s is InPlaceOnly but %s changed, which cannot be updated in place; no pod was touched", p.InPlaceOnlyField, p.Blocker)
			set(appsv1alpha1.ConditionInPlaceUpdateBlocked, metav1.ConditionTrue, appsv1alpha1.ReasonNotInPlaceUpdatable, msg)
			stalledReason, stalledMsg = appsv1alpha1.ReasonNotInPlaceUpdatable, msg
		} else {
			set(appsv1alpha1.ConditionInPlaceUpdateBlocked, metav1.ConditionFalse, appsv1alpha1.ReasonInPlaceUpdatable, "")
		}
	} else {
		meta.RemoveStatusCondition(conds, appsv1alpha1.ConditionInPlaceUpdateBlocked)
	}
	if p.FailureReason != "" && stalledReason == "" {
		stalledReason, stalledMsg = p.FailureReason, p.FailureMessage
	}

	if stalledReason != "" {
		set(appsv1alpha1.ConditionStalled, metav1.ConditionTrue, stalledReason, stalledMsg)
	} else {
		set(appsv1alpha1.ConditionStalled, metav1.ConditionFalse, appsv1alpha1.ReasonAvailable, "")
	}
	switch {
	case p.Done:
		set(appsv1alpha1.ConditionReconciling, metav1.ConditionFalse, appsv1alpha1.ReasonComplete, "")
		set(appsv1alpha1.ConditionReady, metav1.ConditionTrue, appsv1alpha1.ReasonAvailable, p.Summary)
	case stalledReason != "":
		set(appsv1alpha1.ConditionReconciling, metav1.ConditionFalse, stalledReason, "")
		set(appsv1alpha1.ConditionReady, metav1.ConditionFalse, stalledReason, stalledMsg)
	case p.Paused:
		set(appsv1alpha1.ConditionReconciling, metav1.ConditionFalse, appsv1alpha1.ReasonPaused, "")
		set(appsv1alpha1.ConditionReady, metav1.ConditionFalse, appsv1alpha1.ReasonPaused, "the update is paused: "+p.Summary)
	default:
		set(appsv1alpha1.ConditionReconciling, metav1.ConditionTrue, p.Activity, p.Summary)
		set(appsv1alpha1.ConditionReady, metav1.ConditionFalse, p.Activity, p.Summary)
	}
	return wait
}
