package statefulset

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
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

// claimRetry is how soon a pod waiting for one of its claims to finish
// terminating is tried again (claim events do not requeue the set).
const claimRetry = 2 * time.Second

// reasonInvalidSpec stalls a set whose spec the CRD should have refused.
const reasonInvalidSpec = "InvalidSpec"

// syncResult is what sync learnt, for status.
type syncResult struct {
	update, current *appsv1.ControllerRevision
	collisionCount  int32
	views           []*podView
	// ordinals are the set's ordinals (positions), partition resolved.
	ordinals  []int32
	partition int32
	// shape is what the reconcile aimed at (the spec, or a rollout's
	// control).
	shape shape
	// blocker names the field that keeps an InPlaceOnly update from
	// proceeding ("" when not blocked).
	blocker string
	// waitingFor: what an OrderedReady set waits for.
	waitingFor string
	// failure is a spec or pod-creation error that stalls the set.
	failureReason string
	failure       error
	requeueAfter  time.Duration
}

// resolved is the spec's strategy in the planner's numbers.
type resolved struct {
	ordered        bool
	onDelete       bool
	paused         bool
	policy         appsv1alpha1.StatefulSetPodUpdatePolicy
	partition      int32
	maxUnavailable int32
	minReady       int32
	grace          time.Duration
	priority       *appsv1alpha1.UpdatePriorityStrategy
}

func resolve(set *appsv1alpha1.StatefulSet, replicas int32) resolved {
	s := resolved{
		ordered:        set.Spec.PodManagementPolicy != appsv1alpha1.ParallelPodManagement,
		onDelete:       set.Spec.UpdateStrategy.Type == appsv1alpha1.OnDeleteStatefulSetStrategyType,
		policy:         appsv1alpha1.ReCreateStatefulSetPodUpdatePolicy,
		maxUnavailable: 1,
		minReady:       set.Spec.MinReadySeconds,
	}
	ru := set.Spec.UpdateStrategy.RollingUpdate
	if ru == nil || s.onDelete {
		return s
	}
	s.paused = ru.Paused
	if ru.PodUpdatePolicy != "" {
		s.policy = ru.PodUpdatePolicy
	}
	if ru.Partition != nil {
		if n, err := intstr.GetScaledValueFromIntOrPercent(ru.Partition, int(replicas), true); err == nil {
			s.partition = int32(min(max(n, 0), int(replicas)))
		}
	}
	if ru.MaxUnavailable != nil {
		s.maxUnavailable = scaledMaxUnavailable(ru.MaxUnavailable, replicas, s.maxUnavailable)
	}
	if ru.MinReadySeconds != nil {
		s.minReady = *ru.MinReadySeconds
	}
	if ipu := ru.InPlaceUpdateStrategy; ipu != nil {
		s.grace = time.Duration(ipu.GracePeriodSeconds) * time.Second
	}
	if uu := ru.UnorderedUpdate; uu != nil && !s.ordered {
		s.priority = uu.PriorityStrategy
	}
	return s
}

// shape is the pods a reconcile aims at: the spec's replicas, partition
// and pause, or, when a Rollout drives the set, the counts of its control
// annotation (appsv1alpha1.RolloutControl): replicas = canary + stable,
// the canary at the highest positions (partition = the stable count),
// never paused.
type shape struct {
	replicas, partition int32
	paused              bool
	// stable is the rollout's stable revision when it differs from the
	// update revision: pods below the partition run it.
	stable string
	// control is the rollout control (nil when none or unusable): the
	// planner takes its maxUnavailable when it sets one.
	control *appsv1alpha1.RolloutControl
	// controlErr is an unusable control annotation: the set holds its
	// update (paused) with the spec's shape until it is fixed.
	controlErr error
}

// desiredShape resolves the spec (s) or the rollout control against the
// update revision; t says which revisions exist.
func desiredShape(set *appsv1alpha1.StatefulSet, s resolved, t *podcontrol.Templates) shape {
	replicas := ptr.Deref(set.Spec.Replicas, 1)
	sh := shape{replicas: replicas, partition: s.partition, paused: s.paused}
	rc := podcontrol.ReadControl(set, Kind, t)
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

func (r *Reconciler) sync(ctx context.Context, set *appsv1alpha1.StatefulSet, o *observed) (syncResult, error) {
	log := ctrl.LoggerFrom(ctx)
	var res syncResult
	revs, err := podcontrol.SyncRevisions(ctx, r.Client, revision.Owner{Object: set, GVK: gvk(), Labels: map[string]string{appsv1alpha1.LabelWorkload: Kind}},
		&set.Spec.Template, o.history, set.Status.CollisionCount, set.Status.CurrentRevision)
	if err != nil {
		return res, err
	}
	t := revs.Templates
	res.update, res.current, res.collisionCount = revs.Update(), revs.Current, revs.CollisionCount
	if prev := set.Status.UpdateRevision; prev != "" && prev != res.update.Name {
		r.Recorder.Eventf(set, nil, corev1.EventTypeNormal, "UpdateStarted", "Update", "updating from revision %s to %s", prev, res.update.Name)
	}

	s := resolve(set, ptr.Deref(set.Spec.Replicas, 1))
	sh := desiredShape(set, s, t)
	res.shape = sh
	replicas := sh.replicas
	if replicas != ptr.Deref(set.Spec.Replicas, 1) {
		s = resolve(set, replicas) // maxUnavailable as a share of the pods wanted
	}
	if sh.stable != "" {
		// Pods created below the partition get the rollout's stable revision.
		res.current, _ = t.Revision(sh.stable)
	}
	reserved, err := parseReserved(set.Spec.ReserveOrdinals)
	if err != nil {
		// The CRD refuses such a spec; one that slipped in stalls the set.
		res.failureReason, res.failure = reasonInvalidSpec, err
		return res, nil
	}
	var start int32
	if set.Spec.Ordinals != nil {
		start = set.Spec.Ordinals.Start
	}
	res.ordinals, res.partition = reserved.ordinals(start, replicas), sh.partition
	res.views, res.requeueAfter = r.views(set, o, res.update.Name, sh.stable, s.minReady)

	in := planInput{
		ordered:        s.ordered,
		ordinals:       res.ordinals,
		partition:      sh.partition,
		maxUnavailable: s.maxUnavailable,
		control:        sh.control,
		onDelete:       s.onDelete,
		paused:         sh.paused,
		policy:         s.policy,
		inPlace:        func(rev string) bool { return t.ChangeTo(rev).InPlace },
		stable:         sh.stable,
		inPlaceReturn:  func(rev string) bool { return t.Change(rev, sh.stable).InPlace },
		pods:           res.views,
	}
	if s.priority != nil {
		in.sortForUpdate = func(views []*podView) []*podView { return sortByPriority(views, s.priority) }
	}
	p := computePlan(in)
	res.waitingFor = p.waitingFor
	switch {
	case p.blocked && sh.stable != "":
		c := t.ChangeTo(p.blockedBy.revision)
		if p.blockedBack {
			c = t.Change(p.blockedBy.revision, sh.stable)
		}
		res.blocker = c.Blocker
	case p.blocked:
		for _, v := range res.views {
			if c := t.ChangeTo(v.revision); !v.updated && !c.InPlace {
				res.blocker = c.Blocker
				break
			}
		}
	}
	log.V(1).Info("plan", "replicas", replicas, "pods", len(o.members), "creates", len(p.creates), "deletes", len(p.deletes),
		"inPlace", len(p.inPlace), "returns", len(p.returns), "blocked", p.blocked, "waitingFor", p.waitingFor)

	wanted := make(map[int32]bool, len(res.ordinals))
	for _, ord := range res.ordinals {
		wanted[ord] = true
	}
	var errs []error
	// Repairs go first: an in-place update planned below may take the same
	// pod's gate down again.
	if err := r.repair(ctx, set, res.views, in.settled()); err != nil {
		errs = append(errs, err)
	}
	// Claims get their owner references before any pod goes, so that the
	// garbage collector takes the claims of scaled-away pods with them.
	if err := r.syncClaimOwners(ctx, set, o, func(ord int32) bool { return !wanted[ord] }); err != nil {
		errs = append(errs, err)
	} else if err := r.deletePods(ctx, set, p.deletes); err != nil {
		errs = append(errs, err)
	}
	wait, err := r.createPods(ctx, set, o, t, res.current, p.creates)
	if err != nil {
		res.failureReason, res.failure = appsv1alpha1.ReasonCreateFailed, err
		errs = append(errs, err)
	}
	res.requeueAfter = podcontrol.MinPositive(res.requeueAfter, wait)
	wait, err = r.updateInPlace(ctx, set, res.views, p, t, sh.stable, s.grace)
	res.requeueAfter = podcontrol.MinPositive(res.requeueAfter, wait)
	if err != nil {
		errs = append(errs, err)
	}
	inUse := make([]string, len(res.views), len(res.views)+1)
	for i, v := range res.views {
		inUse[i] = v.revision
	}
	if sh.stable != "" {
		inUse = append(inUse, sh.stable) // the rollout may still send pods back to it
	}
	if err := r.Pods.PruneHistory(ctx, revs.History, revs.Live(inUse...), int(ptr.Deref(set.Spec.RevisionHistoryLimit, 10))); err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// views classifies the set's member pods for the planner and returns the
// shortest wait until a ready pod becomes available. stable is a rollout's
// stable revision ("" when none).
func (r *Reconciler) views(set *appsv1alpha1.StatefulSet, o *observed, update, stable string, minReady int32) ([]*podView, time.Duration) {
	now := r.Clock.Now()
	ordinals := make([]int32, 0, len(o.members))
	for ord := range o.members {
		ordinals = append(ordinals, ord)
	}
	slices.Sort(ordinals)
	pods := make([]*corev1.Pod, len(ordinals))
	for i, ord := range ordinals {
		pods[i] = o.members[ord]
	}
	states := r.States.States(ownerKey(set), pods)
	var wait time.Duration
	out := make([]*podView, len(pods))
	for i, pod := range pods {
		st := states[i]
		v := &podView{
			pod:         pod,
			ordinal:     ordinals[i],
			revision:    pod.Labels[revision.LabelRevisionHash],
			terminating: podstate.IsTerminating(pod),
			finished:    podstate.IsFinished(pod),
			state:       st.State,
			hasState:    st.OK,
		}
		v.updated = v.revision == update
		v.inFlight = st.OK && st.State.Phase != inplace.PhaseDone
		v.updating = v.inFlight && st.State.Revision == update
		v.returning = v.inFlight && stable != "" && st.State.Revision == stable
		ready, w := podstate.Available(pod, minReady, now)
		wait = podcontrol.MinPositive(wait, w)
		v.available = ready && !v.inFlight && podstate.ContainersReady(pod) && inplace.GateStatus(pod) != corev1.ConditionFalse
		switch lifecycle.StateOf(pod) {
		case appsv1alpha1.LifecycleStatePreparingDelete:
			v.deleting = true
		case appsv1alpha1.LifecycleStatePreparingUpdate:
			v.preparing = !v.updated && !v.updating
			if stable != "" {
				// Held for a move either way; the plan reads which from
				// the pod's position.
				v.preparing = !v.updating && !v.returning
			}
		}
		out[i] = v
	}
	return out, wait
}

// sortByPriority orders views (highest ordinal first) by priority; equal
// priorities keep that order.
func sortByPriority(views []*podView, priority *appsv1alpha1.UpdatePriorityStrategy) []*podView {
	byPod := make(map[*corev1.Pod]*podView, len(views))
	pods := make([]*corev1.Pod, len(views))
	for i, v := range views {
		byPod[v.pod], pods[i] = v, v.pod
	}
	sorted := podorder.SortForUpdate(pods, podorder.UpdateOptions{Priority: priority, KeepInputOrder: true})
	out := make([]*podView, len(sorted))
	for i, p := range sorted {
		out[i] = byPod[p]
	}
	return out
}

// createPods creates the planned pods, in slow-start batches (a Parallel
// set creates many at once). It returns when to come back for pods whose
// claims are still terminating.
func (r *Reconciler) createPods(ctx context.Context, set *appsv1alpha1.StatefulSet, o *observed, t *podcontrol.Templates,
	current *appsv1.ControllerRevision, creates []podCreate) (time.Duration, error) {
	var created, waiting atomic.Int32
	_, err := podcontrol.SlowStart(ctx, r.Pods.WriteConcurrency, creates, func(ctx context.Context, c podCreate) error {
		rev := t.Update().Name
		if c.current {
			rev = current.Name
		}
		ok, err := r.createPod(ctx, set, o, t, rev, c.ordinal)
		switch {
		case err != nil:
			return err
		case ok:
			created.Add(1)
		default:
			waiting.Add(1)
		}
		return nil
	})
	if n := created.Load(); n > 0 {
		ctrl.LoggerFrom(ctx).Info("created pods", "count", n)
		r.Recorder.Eventf(set, nil, corev1.EventTypeNormal, "SuccessfulCreate", "Scale", "created pods")
	}
	if waiting.Load() > 0 {
		return claimRetry, err
	}
	return 0, err
}

// deletePods deletes the planned pods, each once the preDelete hook
// releases it.
func (r *Reconciler) deletePods(ctx context.Context, set *appsv1alpha1.StatefulSet, deletes []podDelete) error {
	var hook *appsv1alpha1.LifecycleHook
	if set.Spec.Lifecycle != nil {
		hook = set.Spec.Lifecycle.PreDelete
	}
	victims := make([]*corev1.Pod, len(deletes))
	for i, d := range deletes {
		victims[i] = d.view.pod
		ctrl.LoggerFrom(ctx).V(1).Info("deleting pod", "pod", d.view.pod.Name, "reason", d.reason)
	}
	n, err := r.Pods.DeleteAll(ctx, ownerKey(set), victims, hook)
	if n > 0 {
		ctrl.LoggerFrom(ctx).Info("deleted pods", "count", n)
		r.Recorder.Eventf(set, nil, corev1.EventTypeNormal, "SuccessfulDelete", "Delete", "deleted pods")
	}
	return err
}

// updateInPlace starts the planned in-place updates (toward the update
// revision, and back to the rollout's stable revision) and moves on those
// in flight, behind the inPlaceUpdate hook.
func (r *Reconciler) updateInPlace(ctx context.Context, set *appsv1alpha1.StatefulSet, views []*podView, p plan,
	t *podcontrol.Templates, stable string, grace time.Duration) (time.Duration, error) {
	var hook *appsv1alpha1.LifecycleHook
	if set.Spec.Lifecycle != nil {
		hook = set.Spec.Lifecycle.InPlaceUpdate
	}
	w := podcontrol.NewInPlaceWork(t, grace, hook)
	for _, v := range p.inPlace {
		w.Plan(v.pod, v.inPlaceState(), v.revision)
	}
	for _, v := range p.returns {
		w.PlanTo(v.pod, v.inPlaceState(), v.revision, stable)
	}
	for _, v := range views {
		if v.returning {
			w.ContinueTo(v.pod, v.inPlaceState(), v.revision, stable)
		} else {
			w.Continue(v.pod, v.inPlaceState(), v.revision, v.updating)
		}
	}
	return r.Pods.UpdateInPlace(ctx, ownerKey(set), w)
}

func (v *podView) inPlaceState() *inplace.State {
	if !v.hasState {
		return nil
	}
	return &v.state
}

// repair fixes pods left half-way by an interrupted reconcile (podcontrol).
// settled says whether a pod runs the revision it should (planInput.settled).
func (r *Reconciler) repair(ctx context.Context, set *appsv1alpha1.StatefulSet, views []*podView, settled func(*podView) bool) error {
	var broken []*corev1.Pod
	for _, v := range views {
		if !v.updating && !v.returning && podcontrol.NeedsRepair(v.pod, settled(v), v.inFlight) {
			broken = append(broken, v.pod)
		}
	}
	return r.Pods.RepairAll(ctx, ownerKey(set), broken)
}
