package sidecarset

import (
	"context"
	"fmt"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/podcontrol"
	"github.com/drover-dev/drover/internal/workloadstatus"
)

// counts summarises the matched pods.
func counts(o *observed) (st appsv1alpha1.SidecarSetStatus, inFlight int) {
	eligible := 0
	for _, v := range o.views {
		st.MatchedPods++
		if v.ready {
			st.ReadyPods++
		}
		if v.updated {
			st.UpdatedPods++
			if v.ready {
				st.UpdatedReadyPods++
			}
		}
		if v.inFlight {
			inFlight++
		}
		if v.updated || (v.upgradable && v.inScope) {
			eligible++
		}
	}
	st.ExpectedUpdatedPods = int32(min(eligible, len(o.views)-o.partition))
	return st, inFlight
}

// updateStatus writes status and the kstatus conditions.
func (r *Reconciler) updateStatus(ctx context.Context, ss *appsv1alpha1.SidecarSet, o *observed) (time.Duration, error) {
	now := r.Clock.Now()
	st, inFlight := counts(o)
	us := ss.Spec.UpdateStrategy
	notUpdate := us.Type == appsv1alpha1.NotUpdateSidecarSetStrategyType
	if notUpdate {
		st.ExpectedUpdatedPods = st.UpdatedPods
	}
	st.ObservedGeneration = ss.Generation
	st.LatestRevision = o.rev.Hash
	st.Conditions = append([]metav1.Condition(nil), ss.Status.Conditions...)
	done := inFlight == 0 && st.UpdatedPods >= st.ExpectedUpdatedPods
	summary := fmt.Sprintf("%d/%d updated, %d/%d ready", st.UpdatedPods, st.ExpectedUpdatedPods, st.ReadyPods, st.MatchedPods)
	old := ss.Status
	wait := workloadstatus.SetConditions(&st.Conditions, workloadstatus.Progress{
		Generation: ss.Generation,
		Done:       done,
		Paused:     us.Paused,
		Progressed: old.ObservedGeneration != ss.Generation || old.UpdatedPods != st.UpdatedPods ||
			old.UpdatedReadyPods != st.UpdatedReadyPods || old.MatchedPods != st.MatchedPods,
		Activity: appsv1alpha1.ReasonUpdating,
		Summary:  summary,
		Now:      now,
	})
	if o.blocked > 0 {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: appsv1alpha1.ConditionInPlaceUpdateBlocked, Status: metav1.ConditionTrue, ObservedGeneration: ss.Generation,
			Reason: appsv1alpha1.ReasonNotInPlaceUpdatable,
			Message: fmt.Sprintf("%d matched pods were injected with sidecars that differ from revision %s in more than images; "+
				"they get the new sidecars when they are recreated", o.blocked, o.rev.Hash),
		})
	} else {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: appsv1alpha1.ConditionInPlaceUpdateBlocked, Status: metav1.ConditionFalse, ObservedGeneration: ss.Generation,
			Reason: appsv1alpha1.ReasonInPlaceUpdatable,
		})
	}
	if apiequality.Semantic.DeepEqual(old, st) {
		return wait, nil
	}
	key := ss.Name
	significant := old.ObservedGeneration != st.ObservedGeneration || old.LatestRevision != st.LatestRevision ||
		old.ExpectedUpdatedPods != st.ExpectedUpdatedPods || workloadstatus.ConditionsChanged(old.Conditions, st.Conditions)
	if !significant {
		if left := r.StatusWrites.Wait(key, now); left > 0 {
			return podcontrol.MinPositive(wait, left), nil
		}
	}
	patched := ss.DeepCopy()
	patched.Status = st
	retry, err := workloadstatus.Patch(ctx, r.Client, ss, patched)
	if err != nil {
		return 0, err
	}
	if retry == 0 {
		r.StatusWrites.Wrote(key, now)
	}
	return podcontrol.MinPositive(wait, retry), nil
}
