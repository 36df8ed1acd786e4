package daemonset

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/lifecycle"
	"github.com/drover-dev/drover/internal/nodeplacement"
	"github.com/drover-dev/drover/internal/podcontrol"
	"github.com/drover-dev/drover/internal/podorder"
	"github.com/drover-dev/drover/internal/podstate"
	"github.com/drover-dev/drover/internal/revision"
)

// syncResult is what sync learnt, for status.
type syncResult struct {
	update, current *appsv1.ControllerRevision
	collisionCount  int32
	nodes           []*nodeView
	// expectedUpdated is the number of eligible nodes that should run the
	// update revision once the update is done.
	expectedUpdated int32
	// failureReason/Message stall the DaemonSet (a create refused by a
	// quota or admission, an invalid selector).
	failureReason, failureMessage string
	requeueAfter                  time.Duration
	// control is the rollout control the reconcile honoured.
	control podcontrol.RolloutControl
}

// paused reports whether the DaemonSet's update holds: the spec says so
// (a rollout's control replaces it), or the control cannot be used. The
// control's canary count is a number of nodes: that many eligible nodes
// run the update revision (the partition is the rest).
func paused(rc podcontrol.RolloutControl, ds *appsv1alpha1.DaemonSet) bool {
	switch {
	case rc.Err != nil:
		return true
	case rc.Ctl != nil:
		return false
	}
	return rollingUpdate(ds).Paused
}

// rollingUpdate returns the rolling update settings with their defaults.
func rollingUpdate(ds *appsv1alpha1.DaemonSet) appsv1alpha1.RollingUpdateDaemonSet {
	ru := appsv1alpha1.RollingUpdateDaemonSet{}
	if ds.Spec.UpdateStrategy.RollingUpdate != nil {
		ru = *ds.Spec.UpdateStrategy.RollingUpdate
	}
	if ru.Type == "" {
		ru.Type = appsv1alpha1.StandardRollingUpdateType
	}
	if ru.MaxUnavailable == nil {
		ru.MaxUnavailable = ptr.To(intstr.FromInt32(1))
	}
	return ru
}

func onDelete(ds *appsv1alpha1.DaemonSet) bool {
	return ds.Spec.UpdateStrategy.Type == appsv1alpha1.OnDeleteDaemonSetStrategyType
}

func (r *Reconciler) sync(ctx context.Context, ds *appsv1alpha1.DaemonSet, o *observed) (syncResult, error) {
	log := ctrl.LoggerFrom(ctx)
	var res syncResult
	revs, err := podcontrol.SyncRevisions(ctx, r.Client, revision.Owner{Object: ds, GVK: gvk(), Labels: workloadLabels()},
		&ds.Spec.Template, o.history, ds.Status.CollisionCount, ds.Status.CurrentRevision)
	if err != nil {
		return res, err
	}
	t := revs.Templates
	res.update, res.current, res.collisionCount = revs.Update(), revs.Current, revs.CollisionCount
	res.control = podcontrol.ReadControl(ds, Kind, t)
	if res.control.Stable != "" {
		// Nodes kept off the update revision get the rollout's stable one.
		res.current, _ = t.Revision(res.control.Stable)
	}
	if prev := ds.Status.UpdateRevision; prev != "" && prev != res.update.Name {
		r.Recorder.Eventf(ds, nil, corev1.EventTypeNormal, "UpdateStarted", "Update", "updating from revision %s to %s", prev, res.update.Name)
	}

	scope, err := nodeSelector(ds)
	if err != nil {
		// Nothing can be decided about the update, but nodes still need
		// their pods: plan as if paused.
		res.failureReason, res.failureMessage = "InvalidSelector", err.Error()
		scope = labels.Nothing()
	}
	nodes, wait := r.views(ds, o, res.update.Name, res.control.Stable, scope)
	res.nodes, res.requeueAfter = nodes, wait
	in := r.planInput(ds, nodes, t, res.current, res.control)
	if res.failureReason != "" {
		in.updating = false
	}
	in.backoff, wait = r.failureBackoff(ds, nodes)
	res.requeueAfter = podcontrol.MinPositive(res.requeueAfter, wait)
	res.expectedUpdated = expectedUpdated(in)
	p := computePlan(in)
	log.V(1).Info("plan", "cachedNodes", len(o.nodes), "nodes", len(nodes), "creates", len(p.creates), "deletes", len(p.deletes),
		"inPlace", len(p.inPlace), "returns", len(p.returns))

	var errs []error
	// Repairs go first: an in-place update planned below may take the
	// same pod's gate down again.
	if err := r.repairPods(ctx, ds, nodes, p, res.control.Stable); err != nil {
		errs = append(errs, err)
	}
	if err := r.deletePods(ctx, ds, p.deletes); err != nil {
		errs = append(errs, err)
	}
	if err := r.createPods(ctx, ds, t, res.current, p.creates); err != nil {
		res.failureReason, res.failureMessage = appsv1alpha1.ReasonCreateFailed, err.Error()
		errs = append(errs, err)
	}
	after, err := r.updateInPlace(ctx, ds, nodes, p, t, res.control.Stable)
	res.requeueAfter = podcontrol.MinPositive(res.requeueAfter, after)
	if err != nil {
		errs = append(errs, err)
	}
	var used []string
	for _, n := range nodes {
		for _, v := range slices.Concat(n.active, n.finished) {
			used = append(used, v.revision)
		}
	}
	if res.control.Stable != "" {
		used = append(used, res.control.Stable) // the rollout may still send pods back to it
	}
	if err := r.Pods.PruneHistory(ctx, revs.History, revs.Live(used...), int(ptr.Deref(ds.Spec.RevisionHistoryLimit, 10))); err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// failureBackoff records the nodes' failed pods and returns the nodes that
// must wait before a new pod, and the shortest such wait.
func (r *Reconciler) failureBackoff(ds *appsv1alpha1.DaemonSet, nodes []*nodeView) (map[string]bool, time.Duration) {
	key, now := ownerKey(ds), r.Clock.Now()
	var hold map[string]bool
	var soonest time.Duration
	for _, n := range nodes {
		for _, v := range n.finished {
			if v.pod.Status.Phase == corev1.PodFailed {
				r.backoff.failed(key, n.name, v.pod.UID, now)
			}
		}
		if slices.ContainsFunc(n.active, func(v *podView) bool { return v.ready }) {
			r.backoff.ok(key, n.name)
			continue
		}
		if w := r.backoff.wait(key, n.name, now); w > 0 {
			if hold == nil {
				hold = map[string]bool{}
			}
			hold[n.name] = true
			soonest = podcontrol.MinPositive(soonest, w)
		}
	}
	return hold, soonest
}

// placement reports whether node should run a pod of spec (fits) and
// whether a pod already there may stay (keep), with the native
// DaemonSet's rule: a running pod stays unless the node's labels stop
// matching or a NoExecute taint it does not tolerate appears. keep is Fits
// with every NoSchedule taint tolerated.
func placement(node *corev1.Node, spec *corev1.PodSpec) (fits, keep bool) {
	if fits, _ = nodeplacement.Fits(node, spec); fits {
		return true, true
	}
	lenient := *spec
	lenient.Tolerations = append(slices.Clip(spec.Tolerations), corev1.Toleration{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
	keep, _ = nodeplacement.Fits(node, &lenient)
	return false, keep
}

// views groups the pods by node and classifies them for the planner; it
// returns the nodes sorted by name and the shortest wait until a ready pod
// becomes available. stable is a rollout's stable revision ("" when none).
func (r *Reconciler) views(ds *appsv1alpha1.DaemonSet, o *observed, update, stable string, scope labels.Selector) ([]*nodeView, time.Duration) {
	byName := make(map[string]*nodeView, len(o.nodes))
	for _, n := range o.nodes {
		fits, keep := placement(n, &ds.Spec.Template.Spec)
		byName[n.Name] = &nodeView{name: n.Name, exists: true, eligible: fits, keep: keep, inScope: scope.Matches(labels.Set(n.Labels))}
	}
	now := r.Clock.Now()
	var wait time.Duration
	states := r.States.States(ownerKey(ds), o.pods)
	for i, p := range o.pods {
		if p.DeletionTimestamp != nil {
			continue // on its way out: it holds no node
		}
		v := &podView{pod: p, node: nodeplacement.NodeOf(p), revision: p.Labels[revision.LabelRevisionHash]}
		if states[i].OK {
			v.state = &states[i].State
		}
		v.inFlight = v.state != nil && v.state.Phase != inplace.PhaseDone
		v.updating = v.inFlight && v.state.Revision == update
		v.returning = v.inFlight && stable != "" && v.state.Revision == stable
		v.updated = (v.revision == update && !v.returning) || v.updating
		v.ready = podstate.IsReady(p)
		avail, w := podstate.Available(p, ds.Spec.MinReadySeconds, now)
		if w > 0 && (wait == 0 || w < wait) {
			wait = w
		}
		ls := lifecycle.StateOf(p)
		v.deleting = ls == appsv1alpha1.LifecycleStatePreparingDelete
		v.available = avail && podstate.ContainersReady(p) && !v.inFlight && inplace.GateStatus(p) != corev1.ConditionFalse &&
			ls != appsv1alpha1.LifecycleStatePreparingDelete && ls != appsv1alpha1.LifecycleStatePreparingUpdate
		n := byName[v.node]
		if n == nil {
			n = &nodeView{name: v.node}
			byName[v.node] = n
		}
		if podstate.IsFinished(p) {
			n.finished = append(n.finished, v)
		} else {
			n.active = append(n.active, v)
		}
	}
	out := make([]*nodeView, 0, len(byName))
	for _, n := range byName {
		if n.eligible || len(n.active) > 0 || len(n.finished) > 0 {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b *nodeView) int { return strings.Compare(a.name, b.name) })
	return out, wait
}

func (r *Reconciler) planInput(ds *appsv1alpha1.DaemonSet, nodes []*nodeView, t *podcontrol.Templates, current *appsv1.ControllerRevision, rc podcontrol.RolloutControl) planInput {
	var desired int32
	for _, n := range nodes {
		if n.exists && n.eligible {
			desired++
		}
	}
	ru := rollingUpdate(ds)
	maxUnavailable := scaled(ru.MaxUnavailable, desired, 1)
	maxSurge := scaled(ru.MaxSurge, desired, 0)
	if maxUnavailable == 0 && maxSurge == 0 {
		maxUnavailable = 1 // a percentage of few nodes; the API refuses both 0
	}
	partition := min(scaled(ru.Partition, desired, 0), desired)
	if rc.Ctl != nil {
		canary, _ := rc.Ctl.Targets(desired, t.Update().Name)
		partition = desired - min(canary, desired)
	}
	byPod := map[*corev1.Pod]*podView{}
	return planInput{
		nodes:          nodes,
		updating:       !onDelete(ds) && !paused(rc, ds),
		onDelete:       onDelete(ds),
		inPlaceType:    ru.Type == appsv1alpha1.InPlaceIfPossibleRollingUpdateType,
		maxUnavailable: maxUnavailable,
		maxSurge:       maxSurge,
		control:        rc.Ctl,
		partition:      partition,
		inPlace:        func(rev string) bool { return t.ChangeTo(rev).InPlace },
		stable:         rc.Stable,
		inPlaceReturn:  func(rev string) bool { return t.Change(rev, rc.Stable).InPlace },
		haveCurrent:    current.Name != t.Update().Name,
		sortForUpdate: func(views []*podView) []*podView {
			pods := make([]*corev1.Pod, len(views))
			for i, v := range views {
				pods[i] = v.pod
				byPod[v.pod] = v
			}
			sorted := podorder.SortForUpdate(pods, podorder.UpdateOptions{})
			out := make([]*podView, len(sorted))
			for i, p := range sorted {
				out[i] = byPod[p]
			}
			return out
		},
	}
}

// expectedUpdated is how many eligible nodes run the update revision once
// the update is done: all but the partition, within rollingUpdate.selector
// (nodes outside it that already run the update revision count).
func expectedUpdated(in planInput) int32 {
	var desired, reachable int32
	for _, n := range in.nodes {
		if !n.exists || !n.eligible {
			continue
		}
		desired++
		if n.inScope || slices.ContainsFunc(n.active, func(v *podView) bool { return v.updated }) {
			reachable++
		}
	}
	if in.onDelete && in.stable == "" {
		return desired
	}
	return min(max(0, desired-in.partition), reachable)
}

// scaled resolves an int-or-percent of nodes, rounding up as the native
// DaemonSet does; unset gives def.
func scaled(v *intstr.IntOrString, total int32, def int32) int32 {
	if v == nil {
		return def
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(v, int(total), true)
	if err != nil || n < 0 {
		return def
	}
	return int32(n)
}

// createPods creates the planned pods, each pinned to its node.
func (r *Reconciler) createPods(ctx context.Context, ds *appsv1alpha1.DaemonSet, t *podcontrol.Templates, current *appsv1.ControllerRevision, creates []podCreate) error {
	if len(creates) == 0 {
		return nil
	}
	key := ownerKey(ds)
	var created atomic.Int32
	// Slow start: a create that keeps failing (quota, admission) fails a
	// few times, not once per node.
	_, err := podcontrol.SlowStart(ctx, r.Pods.WriteConcurrency, creates, func(ctx context.Context, c podCreate) error {
		rev := current
		if c.updated {
			rev = t.Update()
		}
		tpl, err := t.Template(rev.Name)
		if err != nil {
			return err
		}
		if err := r.Pods.Create(ctx, key, buildPod(ds, tpl, rev.Name, c.node)); err != nil {
			return err
		}
		created.Add(1)
		return nil
	})
	if n := created.Load(); n > 0 {
		ctrl.LoggerFrom(ctx).Info("created pods", "count", n)
		r.Recorder.Eventf(ds, nil, corev1.EventTypeNormal, "SuccessfulCreate", "Create", "created daemon pods")
	}
	return err
}

// buildPod renders the pod of ds for node from a revision's template,
// with the InPlaceUpdateReady readiness gate, pinned to node.
func buildPod(ds *appsv1alpha1.DaemonSet, tpl *corev1.PodTemplateSpec, rev, node string) *corev1.Pod {
	labels := workloadLabels()
	labels[revision.LabelRevisionHash] = rev
	if ds.Spec.Lifecycle != nil {
		labels[appsv1alpha1.LabelLifecycleState] = string(appsv1alpha1.LifecycleStateNormal)
	}
	pod := podcontrol.NewPod(ds, gvk(), ds.Name+"-"+rand.String(5), tpl, labels)
	inplace.InjectReadinessGate(&pod.Spec)
	nodeplacement.PinToNode(pod, node)
	return pod
}

// deletePods deletes the planned pods: through the preDelete hook, except
// the pods of nodes that left, which are deleted at once with no grace
// period (no kubelet is left to run their termination).
func (r *Reconciler) deletePods(ctx context.Context, ds *appsv1alpha1.DaemonSet, deletes []podDelete) error {
	var hook *appsv1alpha1.LifecycleHook
	if ds.Spec.Lifecycle != nil {
		hook = ds.Spec.Lifecycle.PreDelete
	}
	key := ownerKey(ds)
	var hooked, gone []*corev1.Pod
	for _, d := range deletes {
		ctrl.LoggerFrom(ctx).V(1).Info("deleting pod", "pod", d.view.pod.Name, "node", d.view.node, "reason", d.reason)
		if d.force {
			gone = append(gone, d.view.pod)
		} else {
			hooked = append(hooked, d.view.pod)
		}
	}
	n, err := r.Pods.DeleteAll(ctx, key, hooked, hook)
	var forced atomic.Int32
	forceErr := podcontrol.Parallel(ctx, r.Pods.WriteConcurrency, gone, func(ctx context.Context, pod *corev1.Pod) error {
		return r.forceDelete(ctx, key, pod, &forced)
	})
	if n += int(forced.Load()); n > 0 {
		ctrl.LoggerFrom(ctx).Info("deleted pods", "count", n)
		r.Recorder.Eventf(ds, nil, corev1.EventTypeNormal, "SuccessfulDelete", "Delete", "deleted daemon pods")
	}
	return errors.Join(err, forceErr)
}

// forceDelete deletes the pod of a node that left, with no grace period
// and past the preDelete hook, as the pod garbage collector would later.
func (r *Reconciler) forceDelete(ctx context.Context, key string, pod *corev1.Pod, deleted *atomic.Int32) error {
	r.Pods.Expectations.ExpectDelete(key, pod.Name, pod.UID)
	err := r.Client.Delete(ctx, pod.DeepCopy(), client.Preconditions{UID: &pod.UID}, client.GracePeriodSeconds(0))
	if err != nil {
		r.Pods.Expectations.Forget(key, pod.Name)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("deleting pod %s of a node that left: %w", pod.Name, err)
	}
	deleted.Add(1)
	return nil
}

// updateInPlace starts the planned in-place updates (toward the update
// revision, and back to the rollout's stable revision) and moves on those
// in flight, honouring the inPlaceUpdate hook.
func (r *Reconciler) updateInPlace(ctx context.Context, ds *appsv1alpha1.DaemonSet, nodes []*nodeView, p plan, t *podcontrol.Templates, stable string) (time.Duration, error) {
	var hook *appsv1alpha1.LifecycleHook
	if ds.Spec.Lifecycle != nil {
		hook = ds.Spec.Lifecycle.InPlaceUpdate
	}
	var grace time.Duration
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.InPlaceUpdate != nil {
		grace = time.Duration(ru.InPlaceUpdate.GracePeriodSeconds) * time.Second
	}
	w := podcontrol.NewInPlaceWork(t, grace, hook)
	for _, v := range p.inPlace {
		w.Plan(v.pod, v.state, v.revision)
	}
	for _, v := range p.returns {
		w.PlanTo(v.pod, v.state, v.revision, stable)
	}
	for _, n := range nodes {
		for _, v := range n.active {
			if v.returning {
				w.ContinueTo(v.pod, v.state, v.revision, stable)
			} else {
				w.Continue(v.pod, v.state, v.revision, v.updating)
			}
		}
	}
	return r.Pods.UpdateInPlace(ctx, ownerKey(ds), w)
}

// repairPods fixes pods left half-way by an interrupted reconcile or a
// changed spec (podcontrol.NeedsRepair). Under a rollout (stable set), a
// pod on the stable revision held in PreparingUpdate for a move the plan
// no longer wants is a stale hold too, and the pods the plan moves now
// are left to their move.
func (r *Reconciler) repairPods(ctx context.Context, ds *appsv1alpha1.DaemonSet, nodes []*nodeView, p plan, stable string) error {
	moving := map[*podView]bool{}
	if stable != "" {
		for _, v := range slices.Concat(p.inPlace, p.returns) {
			moving[v] = true
		}
	}
	var broken []*corev1.Pod
	for _, n := range nodes {
		for _, v := range n.active {
			settled := v.updated || (stable != "" && v.revision == stable)
			if !v.updating && !v.returning && !moving[v] && podcontrol.NeedsRepair(v.pod, settled, v.inFlight) {
				broken = append(broken, v.pod)
			}
		}
	}
	return r.Pods.RepairAll(ctx, ownerKey(ds), broken)
}
