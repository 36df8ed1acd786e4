package cloneset

import (
	"context"
	"errors"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/lifecycle"
	"github.com/drover-dev/drover/internal/podcontrol"
	"github.com/drover-dev/drover/internal/podorder"
	"github.com/drover-dev/drover/internal/podstate"
	"github.com/drover-dev/drover/internal/revision"
)

// syncResult is what sync learnt, for status.
type syncResult struct {
	update, current *appsv1.ControllerRevision
	collisionCount  int32
	// blocker names the field that keeps an InPlaceOnly update from
	// proceeding ("" when not blocked).
	blocker string
	// createErr is the last pod creation failure (quota, admission...).
	createErr    error
	requeueAfter time.Duration
	views        []*podView
	// shape is what the reconcile aimed at.
	shape shape
}

// shape is the pod counts a reconcile aims at: the spec's replicas and
// partition, or, when a Rollout drives the CloneSet, the counts of its
// control annotation (appsv1alpha1.RolloutControl).
type shape struct {
	// replicas is the number of pods wanted (without surge) and partition
	// how many of them stay off the update revision.
	replicas, partition int32
	paused              bool
	// stable is the rollout's stable revision when it differs from the
	// update revision: pods kept off the update revision run it.
	stable string
	// control is that Rollout's control (nil when none or unusable): the
	// planner takes its maxUnavailable and maxSurge where it sets them.
	control *appsv1alpha1.RolloutControl
	// controlErr is an unreadable control annotation; updates hold.
	controlErr error
}

// desiredShape resolves the spec (or the rollout control) against the
// update revision; t says which revisions exist.
func desiredShape(cs *appsv1alpha1.CloneSet, t *podcontrol.Templates) shape {
	replicas := ptr.Deref(cs.Spec.Replicas, 1)
	us := cs.Spec.UpdateStrategy
	sh := shape{replicas: replicas, partition: min(scaled(us.Partition, replicas, true, 0), replicas), paused: us.Paused}
	rc := podcontrol.ReadControl(cs, Kind, t)
	switch {
	case rc.Err != nil:
		sh.paused, sh.controlErr = true, rc.Err
		return sh
	case rc.Ctl == nil:
		return sh
	}
	updated, stable := rc.Ctl.Targets(replicas, t.Update().Name)
	return shape{replicas: updated + stable, partition: stable, control: rc.Ctl, stable: rc.Stable}
}

func (r *Reconciler) sync(ctx context.Context, cs *appsv1alpha1.CloneSet, o *observed) (syncResult, error) {
	log := ctrl.LoggerFrom(ctx)
	var res syncResult
	revs, err := podcontrol.SyncRevisions(ctx, r.Client, revision.Owner{Object: cs, GVK: gvk(), Labels: workloadLabels()},
		&cs.Spec.Template, o.history, cs.Status.CollisionCount, cs.Status.CurrentRevision)
	if err != nil {
		return res, err
	}
	t := revs.Templates
	res.update, res.current, res.collisionCount = revs.Update(), revs.Current, revs.CollisionCount
	res.shape = desiredShape(cs, t)
	if res.shape.stable != "" {
		// Pods created off the update revision get the rollout's stable one.
		res.current, _ = t.Revision(res.shape.stable)
	}
	if prev := cs.Status.UpdateRevision; prev != "" && prev != res.update.Name {
		// One event an update, however many waves it takes.
		r.Recorder.Eventf(cs, nil, corev1.EventTypeNormal, "UpdateStarted", "Update", "updating from revision %s to %s", prev, res.update.Name)
	}

	now := r.Clock.Now()
	replicas := res.shape.replicas
	views, wait := r.views(cs, o, res.update.Name, res.shape.stable, now)
	res.views, res.requeueAfter = views, wait
	var active []*podView
	var notReady int32
	for _, v := range views {
		if podstate.IsActive(v.pod) {
			active = append(active, v)
			if !podstate.IsReady(v.pod) {
				notReady++
			}
		}
	}
	in := r.planInput(cs, res.shape, active, notReady, t)
	p := computePlan(in)
	if p.blocked {
		res.blocker = blocker(active, t, res.shape.stable)
	}
	log.V(1).Info("plan", "replicas", replicas, "pods", len(active), "createUpdated", p.createUpdated,
		"createCurrent", p.createCurrent, "deletes", len(p.deletes), "inPlace", len(p.inPlace), "surge", p.surge, "blocked", p.blocked)

	var errs []error
	// Repairs go first: an in-place update planned below may take the
	// same pod's gate down again.
	if err := r.repairPods(ctx, cs, views); err != nil {
		errs = append(errs, err)
	}
	if err := r.deletePods(ctx, cs, p.deletes, o); err != nil {
		errs = append(errs, err)
	}
	if n := p.createUpdated + p.createCurrent; n > 0 {
		created, err := r.createPods(ctx, cs, o, t, res.update, res.current, p.createUpdated, p.createCurrent)
		if err != nil {
			res.createErr = err
			errs = append(errs, err)
		}
		if created > 0 {
			log.Info("created pods", "count", created)
			r.Recorder.Eventf(cs, nil, corev1.EventTypeNormal, "SuccessfulCreate", "Scale", "created pods")
		}
	}
	after, err := r.updateInPlace(ctx, cs, views, p, t, res.shape.stable)
	res.requeueAfter = podcontrol.MinPositive(res.requeueAfter, after)
	if err != nil {
		errs = append(errs, err)
	}
	inUse := make([]string, len(views), len(views)+1)
	for i, v := range views {
		inUse[i] = v.revision
	}
	if res.shape.stable != "" {
		inUse = append(inUse, res.shape.stable) // the rollout may still send pods back to it
	}
	if err := r.Pods.PruneHistory(ctx, revs.History, revs.Live(inUse...), int(ptr.Deref(cs.Spec.RevisionHistoryLimit, 10))); err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// views classifies the pods for the planner and returns the shortest wait
// until a ready pod becomes available.
// blocker names what keeps an InPlaceOnly CloneSet from moving a pod: the
// first pod whose move (to the update revision, or back to the stable
// one) cannot be made in place.
func blocker(active []*podView, t *podcontrol.Templates, stable string) string {
	for _, v := range active {
		if c := t.ChangeTo(v.revision); !v.updated && !c.InPlace {
			return c.Blocker
		}
		if stable == "" || v.revision == stable {
			continue
		}
		if c := t.Change(v.revision, stable); !c.InPlace {
			return c.Blocker
		}
	}
	return ""
}

func (r *Reconciler) views(cs *appsv1alpha1.CloneSet, o *observed, update, stable string, now time.Time) ([]*podView, time.Duration) {
	var wait time.Duration
	out := make([]*podView, 0, len(o.pods))
	states := r.States.States(ownerKey(cs), o.pods)
	for i, p := range o.pods {
		v := &podView{pod: p, revision: p.Labels[revision.LabelRevisionHash]}
		v.updated = v.revision == update
		v.state, v.hasState = states[i].State, states[i].OK
		v.inFlight = v.hasState && v.state.Phase != inplace.PhaseDone
		v.updating = v.inFlight && v.state.Revision == update
		v.returning = v.inFlight && stable != "" && v.state.Revision == stable
		avail, w := podstate.Available(p, cs.Spec.MinReadySeconds, now)
		if w > 0 && (wait == 0 || w < wait) {
			wait = w
		}
		v.available = avail && podstate.ContainersReady(p) && !v.inFlight && inplace.GateStatus(p) != corev1.ConditionFalse
		v.deleting = lifecycle.StateOf(p) == appsv1alpha1.LifecycleStatePreparingDelete
		out = append(out, v)
	}
	return out, wait
}

func (r *Reconciler) planInput(cs *appsv1alpha1.CloneSet, sh shape, active []*podView, notReady int32, t *podcontrol.Templates) planInput {
	us := cs.Spec.UpdateStrategy
	replicas := sh.replicas
	maxUnavailable := scaled(us.MaxUnavailable, replicas, false, 0)
	maxSurge := scaled(us.MaxSurge, replicas, true, 0)
	if maxUnavailable == 0 && maxSurge == 0 {
		maxUnavailable = 1
	}
	specified := sets.New(cs.Spec.ScaleStrategy.PodsToDelete...)
	for _, v := range active {
		if _, ok := v.pod.Annotations[appsv1alpha1.AnnotationSpecifiedDelete]; ok {
			specified.Insert(v.pod.Name)
		}
	}
	strategy := us.Type
	if strategy == "" {
		strategy = appsv1alpha1.ReCreateCloneSetUpdateStrategyType
	}
	byPod := make(map[*corev1.Pod]*podView, len(active))
	for _, v := range active {
		byPod[v.pod] = v
	}
	back := func(pods []*corev1.Pod) []*podView {
		out := make([]*podView, len(pods))
		for i, p := range pods {
			out[i] = byPod[p]
		}
		return out
	}
	return planInput{
		replicas:            replicas,
		partition:           sh.partition,
		maxUnavailable:      maxUnavailable,
		maxSurge:            maxSurge,
		control:             sh.control,
		scaleMaxUnavailable: scaled(cs.Spec.ScaleStrategy.MaxUnavailable, replicas, false, -1),
		strategy:            strategy,
		paused:              sh.paused,
		update:              t.Update().Name,
		stable:              sh.stable,
		inPlace:             func(from, to string) bool { return t.Change(from, to).InPlace },
		notReady:            notReady,
		pods:                active,
		specified:           specified,
		rank: func(views []*podView) []*podView {
			return back(podorder.RankForScaleDown(pods(views), podorder.ScaleDownOptions{UpdateRevision: t.Update().Name, Now: r.Clock.Now()}))
		},
		sortForUpdate: func(views []*podView) []*podView {
			return back(podorder.SortForUpdate(pods(views), podorder.UpdateOptions{Priority: us.PriorityStrategy, Scatter: us.ScatterStrategy}))
		},
	}
}

func pods(views []*podView) []*corev1.Pod {
	out := make([]*corev1.Pod, len(views))
	for i, v := range views {
		out[i] = v.pod
	}
	return out
}

// scaled resolves an int-or-percent against total; unset gives def.
func scaled(v *intstr.IntOrString, total int32, roundUp bool, def int32) int32 {
	if v == nil {
		return def
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(v, int(total), roundUp)
	if err != nil || n < 0 {
		return def
	}
	return int32(n)
}
