// Package rollout implements the Rollout controller: progressive delivery
// of a workload (spec.targetRef) whose template stays the single source of
// truth.
//
// Each reconcile reads the Rollout and its workload, asks the traffic
// router what it carries, runs the release state machine (plan.go, pure),
// then applies the decision in an order that never leaves traffic without
// pods: the workload's rollout control annotation (how many pods of each
// revision it runs), the stable and canary Services (services.go), the
// router's weight; and records status and events (status.go). The
// webhooks the decision asks for are called in between, and the release
// decided again with their answers (webhooks.go).
package rollout

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/configsnapshot"
	"github.com/drover-dev/drover/internal/gate"
	"github.com/drover-dev/drover/internal/notify"
	"github.com/drover-dev/drover/internal/podcontrol"
	"github.com/drover-dev/drover/internal/target"
	"github.com/drover-dev/drover/internal/traffic"
)

// +kubebuilder:rbac:groups=rollouts.drover.dev,resources=rollouts,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=rollouts.drover.dev,resources=rollouts/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=rollouts.drover.dev,resources=rollouts/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=apps.drover.dev,resources=clonesets,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=apps.drover.dev,resources=statefulsets,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=apps.drover.dev,resources=daemonsets,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;patch;update
// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=get;list;watch;create;patch;update;delete
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes;grpcroutes,verbs=get;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// finalizer lets a deleted Rollout hand its workload back (control
// annotation removed, traffic and users' Services back to stable).
const finalizer = "rollouts.drover.dev/cleanup"

// indexTarget indexes Rollouts by "<apiVersion>/<kind>/<name>" of their
// target, so a workload's change finds its Rollout.
const indexTarget = "rollouts.drover.dev/target"

// pollUnverified is how soon a reconcile comes back while the router has
// not confirmed a weight (routers are read, not watched).
const pollUnverified = time.Second

// RouterFactory builds the routers of a Rollout (nil when it has no
// trafficRouting).
type RouterFactory func(ro *rolloutsv1alpha1.Rollout, svcs traffic.Services) ([]traffic.Router, error)

// Reconciler reconciles Rollouts.
type Reconciler struct {
	Client client.Client
	// APIReader reads Rollouts (fresh, see Reconcile) and Services (not
	// cached by the manager).
	APIReader client.Reader
	Clock     clock.PassiveClock
	Recorder  events.EventRecorder
	Routers   RouterFactory
	// Webhooks calls the Rollouts' webhooks (nil: a default caller).
	Webhooks *gate.Caller
	// Notifier delivers the Rollouts' notifications (nil: none are sent).
	Notifier *notify.Sender
	metrics  *metrics
}

// Options configure SetupWithManager.
type Options struct {
	MaxConcurrentReconciles int
	Routers                 RouterFactory
	// NotificationBackoff is the pause between two attempts of a
	// notification (0: notify.DefaultBackoff).
	NotificationBackoff time.Duration
}

// SetupWithManager registers the controller: Rollouts are reconciled on
// spec and annotation changes (actions), and when their workload changes.
func SetupWithManager(ctx context.Context, mgr manager.Manager, opts Options) error {
	m, err := newMetrics(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	r := &Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Clock: clock.RealClock{},
		Recorder: mgr.GetEventRecorder("rollout-controller"), Routers: opts.Routers, Webhooks: gate.New(),
		Notifier: notify.NewSender(opts.NotificationBackoff), metrics: m}
	// The notifier delivers what is queued before the manager stops.
	if err := mgr.Add(r.Notifier); err != nil {
		return fmt.Errorf("adding the notifier: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &rolloutsv1alpha1.Rollout{}, indexTarget, func(o client.Object) []string {
		ref := o.(*rolloutsv1alpha1.Rollout).Spec.TargetRef
		return []string{targetKey(ref.APIVersion, ref.Kind, ref.Name)}
	}); err != nil {
		return fmt.Errorf("indexing rollouts by target: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &rolloutsv1alpha1.Rollout{}, indexTrackConfigs, func(o client.Object) []string {
		if o.(*rolloutsv1alpha1.Rollout).Spec.TrackConfigs {
			return []string{"true"}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing rollouts by trackConfigs: %w", err)
	}
	// ConfigMaps and Secrets are watched by their metadata only (a change
	// of content changes the resourceVersion): the manager never caches
	// their content. Snapshots change nothing a Rollout reads.
	notSnapshot := builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool { return !configsnapshot.IsSnapshot(o) }))
	return builder.ControllerManagedBy(mgr).
		For(&rolloutsv1alpha1.Rollout{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&rolloutsv1alpha1.AnalysisRun{}).
		Watches(&appsv1alpha1.CloneSet{}, handler.EnqueueRequestsFromMapFunc(r.forWorkload(appsv1alpha1.GroupVersion.String(), "CloneSet"))).
		Watches(&appsv1alpha1.StatefulSet{}, handler.EnqueueRequestsFromMapFunc(r.forWorkload(appsv1alpha1.GroupVersion.String(), "StatefulSet"))).
		Watches(&appsv1alpha1.DaemonSet{}, handler.EnqueueRequestsFromMapFunc(r.forWorkload(appsv1alpha1.GroupVersion.String(), "DaemonSet"))).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(r.forWorkload(appsv1.SchemeGroupVersion.String(), target.KindDeployment))).
		Watches(&appsv1.ReplicaSet{}, handler.EnqueueRequestsFromMapFunc(r.forReplicaSet)).
		WatchesMetadata(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.forConfig(configsnapshot.KindConfigMap)), notSnapshot).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.forConfig(configsnapshot.KindSecret)), notSnapshot).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, opts.MaxConcurrentReconciles)}).
		Named("rollout").
		Complete(r)
}

func targetKey(apiVersion, kind, name string) string { return apiVersion + "/" + kind + "/" + name }

// forWorkload maps a workload event to the Rollouts that target it.
func (r *Reconciler) forWorkload(apiVersion, kind string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list rolloutsv1alpha1.RolloutList
		if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()),
			client.MatchingFields{indexTarget: targetKey(apiVersion, kind, o.GetName())}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "listing the rollouts of a workload", "workload", o.GetName())
			return nil
		}
		out := make([]reconcile.Request, len(list.Items))
		for i := range list.Items {
			out[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}
		}
		return out
	}
}

// Reconcile moves one Rollout's release a step further.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	// The Rollout is read from the API, not the cache: a reconcile acts on
	// the router and the workload before it records status, and a cache
	// still showing the previous status (or a handled action) would make
	// it repeat a step.
	var ro rolloutsv1alpha1.Rollout
	if err := r.APIReader.Get(ctx, req.NamespacedName, &ro); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if ro.DeletionTimestamp != nil {
		return reconcile.Result{}, r.finalize(ctx, &ro)
	}
	if !controllerutil.ContainsFinalizer(&ro, finalizer) {
		patched := ro.DeepCopy()
		controllerutil.AddFinalizer(patched, finalizer)
		if err := r.Client.Patch(ctx, patched, client.MergeFromWithOptions(&ro, client.MergeFromWithOptimisticLock{})); err != nil {
			return reconcile.Result{}, fmt.Errorf("adding finalizer: %w", err)
		}
		ro = *patched
	}

	w, err := target.Get(ctx, r.Client, ro.Namespace, ro.Spec.TargetRef)
	switch {
	case apierrors.IsNotFound(err):
		// A workload created again under the same name has a history of
		// its own: what this one knew of revisions is dropped.
		return r.stall(ctx, &ro, rolloutsv1alpha1.ReasonTargetNotFound,
			fmt.Sprintf("%s %s not found: the rollout starts when it exists", ro.Spec.TargetRef.Kind, ro.Spec.TargetRef.Name),
			func(st *rolloutsv1alpha1.RolloutStatus) {
				*st = rolloutsv1alpha1.RolloutStatus{Conditions: st.Conditions}
			})
	case errors.Is(err, target.ErrUnsupported):
		return r.stall(ctx, &ro, rolloutsv1alpha1.ReasonInvalidSpec, "targetRef: "+err.Error())
	case err != nil:
		return reconcile.Result{}, err
	}
	if ro.Spec.TrackConfigs && w.Kind == target.KindDeployment {
		return r.stall(ctx, &ro, rolloutsv1alpha1.ReasonInvalidSpec,
			"spec.trackConfigs needs a CloneSet, StatefulSet or DaemonSet target")
	}
	if !w.CaughtUp {
		return reconcile.Result{}, nil // the workload's status event brings us back
	}
	if other := w.Control; other != nil && other.Rollout != "" && other.Rollout != ro.Name {
		return r.stall(ctx, &ro, rolloutsv1alpha1.ReasonInvalidSpec,
			fmt.Sprintf("%s %s is already driven by rollout %s", ro.Spec.TargetRef.Kind, w.Object.GetName(), other.Rollout))
	}

	svcs := serviceNames(&ro)
	routers, err := r.routers(&ro, svcs)
	if err != nil {
		return r.stall(ctx, &ro, rolloutsv1alpha1.ReasonInvalidSpec, err.Error())
	}
	runs, err := r.listRuns(ctx, &ro)
	if err != nil {
		return reconcile.Result{}, err
	}
	in := planInput{
		spec: &ro.Spec, status: &ro.Status, workload: w, now: r.Clock.Now(),
		name: ro.Name, runs: observedRuns(runs), gates: map[gateKey]gateResult{},
		action:           rolloutsv1alpha1.Action(ro.Annotations[rolloutsv1alpha1.AnnotationAction]),
		routed:           len(routers) > 0,
		deadlineExceeded: deadlineExceeded(&ro.Status),
	}
	var routerErr error
	if in.routed {
		in.observedWeight, in.weightVerified, in.observedRoutes, routerErr = observe(ctx, routers)
	}
	// The webhooks the decision wants are called and the release decided
	// again with their answers (a gate that opens lets it go on in this
	// reconcile).
	call := func(d *decision, want []wantGate) map[gateKey]gateResult { return r.callGates(ctx, &ro, d, want) }
	d := decideCalling(in, call)
	failed, runErr := r.syncRuns(ctx, &ro, d.wantRuns, runs, &d.status)
	if len(failed) > 0 {
		// An analysis that cannot even start is an error: decide again
		// knowing it (the release aborts rather than go on unjudged).
		maps.Copy(in.runs, failed)
		d = decideCalling(in, call)
		_, err := r.syncRuns(ctx, &ro, d.wantRuns, runs, &d.status)
		runErr = errors.Join(runErr, err)
	}
	d.status.StableService, d.status.CanaryService = svcs.Stable, svcs.Canary
	// The configs' mapping goes with the control whatever the release
	// decided: a changed config is the workload's next update revision.
	cfg := r.trackConfigs(ctx, &ro, w)
	d.control.Configs = cfg.configs
	setConfigsCondition(&ro, &d.status, cfg)
	for _, c := range cfg.created {
		d.note(false, "SnapshotCreated", "%s", c)
	}

	applyErr := errors.Join(routerErr, runErr, cfg.err, r.apply(ctx, &ro, w, svcs, routers, &d))
	for _, e := range d.events {
		kind := corev1.EventTypeNormal
		if e.warning {
			kind = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(&ro, nil, kind, e.reason, "Release", "%s", e.message)
	}
	wait, err := r.writeStatus(ctx, &ro, &d, applyErr)
	if err != nil {
		return reconcile.Result{}, errors.Join(applyErr, err)
	}
	r.sendEvents(ctx, &ro, &d)
	r.notify(ctx, &ro, &d, in.routed)
	if ro.Spec.ProgressDeadlineAbort && !in.deadlineExceeded && !d.aborted && deadlineExceeded(&d.status) {
		// The deadline passed in this reconcile: the next one aborts,
		// and no event would bring it (its own status write does not).
		wait = podcontrol.MinPositive(wait, time.Millisecond)
	}
	r.metrics.record(&ro, &d, func() float64 { return float64(r.Clock.Now().Unix()) })
	if d.actionDone {
		if err := r.clearAction(ctx, &ro); err != nil {
			return reconcile.Result{}, err
		}
	}
	if applyErr != nil {
		return reconcile.Result{}, applyErr
	}
	if err := r.pruneSnapshots(ctx, &ro, w, cfg.configs); err != nil {
		return reconcile.Result{}, err
	}
	if in.routed && !(d.status.VerifiedWeight != nil && *d.status.VerifiedWeight == d.weight && d.routesSettled(in)) {
		wait = podcontrol.MinPositive(wait, pollUnverified)
	}
	if len(d.uncalled(in)) > 0 {
		wait = podcontrol.MinPositive(wait, gateRetry)
	}
	return reconcile.Result{RequeueAfter: podcontrol.MinPositive(wait, d.requeueAfter)}, nil
}

// apply makes the decision true: the workload's control first (pods), then
// the Services, then the router. decide already ordered weights and pod
// counts so that each write is safe on its own.
func (r *Reconciler) apply(ctx context.Context, ro *rolloutsv1alpha1.Rollout, w *target.Workload, svcs traffic.Services, routers []traffic.Router, d *decision) error {
	ctl := d.control
	ctl.Rollout = ro.Name
	if err := target.SetControl(ctx, r.Client, w, &ctl); err != nil {
		return err
	}
	if err := r.syncService(ctx, ro, w, svcs.Stable, d.stableSelects); err != nil {
		return err
	}
	if err := r.syncService(ctx, ro, w, svcs.Canary, d.canarySelects); err != nil {
		return err
	}
	state := traffic.State{Weight: d.weight, HeaderRoutes: d.headers, MirrorRoutes: d.mirrors}
	for _, rt := range routers {
		if err := rt.Apply(ctx, state); err != nil {
			return fmt.Errorf("router %s: weight %d: %w", rt.Name(), d.weight, err)
		}
	}
	return nil
}

// observe asks every router what it carries: the first router's weight
// and routes, verified only when all agree and all verified.
func observe(ctx context.Context, routers []traffic.Router) (int32, bool, []string, error) {
	var first traffic.Observed
	verified := true
	for i, rt := range routers {
		o, err := rt.Observe(ctx)
		if err != nil {
			return 0, false, nil, fmt.Errorf("router %s: %w", rt.Name(), err)
		}
		if i == 0 {
			first = o
		}
		verified = verified && o.Verified && o.Weight == first.Weight && slices.Equal(o.Routes, first.Routes)
	}
	return first.Weight, verified, first.Routes, nil
}

func (r *Reconciler) routers(ro *rolloutsv1alpha1.Rollout, svcs traffic.Services) ([]traffic.Router, error) {
	if ro.Spec.Strategy.Canary == nil || ro.Spec.Strategy.Canary.TrafficRouting == nil {
		return nil, nil
	}
	if r.Routers == nil {
		return nil, errors.New("trafficRouting: no router is available in this manager")
	}
	return r.Routers(ro, svcs)
}

// clearAction removes the handled action, unless a user set another one
// meanwhile (optimistic lock: the next reconcile handles that one).
func (r *Reconciler) clearAction(ctx context.Context, ro *rolloutsv1alpha1.Rollout) error {
	var cur rolloutsv1alpha1.Rollout
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(ro), &cur); err != nil {
		return client.IgnoreNotFound(err)
	}
	if cur.Annotations[rolloutsv1alpha1.AnnotationAction] != ro.Annotations[rolloutsv1alpha1.AnnotationAction] {
		return nil
	}
	patched := cur.DeepCopy()
	delete(patched.Annotations, rolloutsv1alpha1.AnnotationAction)
	if err := r.Client.Patch(ctx, patched, client.MergeFromWithOptions(&cur, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("removing the handled action: %w", err)
	}
	return nil
}

// finalize hands the workload back: routes to stable, users' Services
// without the revision label, the control annotation removed (the
// workload's own update strategy takes over); a Deployment is unpaused if
// the Rollout paused it, and gets its canary ReplicaSet if it is complete
// (else the ReplicaSet is deleted).
func (r *Reconciler) finalize(ctx context.Context, ro *rolloutsv1alpha1.Rollout) error {
	if !controllerutil.ContainsFinalizer(ro, finalizer) {
		return nil
	}
	svcs := serviceNames(ro)
	if routers, err := r.routers(ro, svcs); err == nil {
		for _, rt := range routers {
			// A route deleted first (a namespace going away) needs nothing.
			if err := rt.Apply(ctx, traffic.State{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("router %s: sending traffic back to stable: %w", rt.Name(), err)
			}
		}
	}
	w, err := target.Get(ctx, r.Client, ro.Namespace, ro.Spec.TargetRef)
	switch {
	case err == nil:
		if err := target.Release(ctx, r.Client, w, ro.Name); err != nil {
			return err
		}
		for _, name := range []string{svcs.Stable, svcs.Canary} {
			if err := r.releaseService(ctx, ro, name, w.RevisionLabel); err != nil {
				return err
			}
		}
	case !apierrors.IsNotFound(err) && !errors.Is(err, target.ErrUnsupported):
		return err
	}
	r.metrics.forget(ro)
	patched := ro.DeepCopy()
	controllerutil.RemoveFinalizer(patched, finalizer)
	if err := r.Client.Patch(ctx, patched, client.MergeFrom(ro)); err != nil {
		return client.IgnoreNotFound(err)
	}
	return nil
}

// stall records a problem that only a change of the spec or of the
// cluster can fix.
func (r *Reconciler) stall(ctx context.Context, ro *rolloutsv1alpha1.Rollout, reason, msg string, mutate ...func(*rolloutsv1alpha1.RolloutStatus)) (reconcile.Result, error) {
	patched := ro.DeepCopy()
	st := &patched.Status
	for _, m := range mutate {
		m(st)
	}
	st.ObservedGeneration = ro.Generation
	st.Message = msg
	set := func(t string, s metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: ro.Generation})
	}
	set(rolloutsv1alpha1.ConditionStalled, metav1.ConditionTrue, reason, msg)
	set(rolloutsv1alpha1.ConditionReconciling, metav1.ConditionFalse, reason, "")
	set(rolloutsv1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
	if err := r.Client.Status().Patch(ctx, patched, client.MergeFrom(ro)); err != nil {
		return reconcile.Result{}, fmt.Errorf("writing status: %w", err)
	}
	return reconcile.Result{}, nil
}

// deadlineExceeded reports whether a status says the progress deadline
// passed.
func deadlineExceeded(st *rolloutsv1alpha1.RolloutStatus) bool {
	c := meta.FindStatusCondition(st.Conditions, rolloutsv1alpha1.ConditionProgressing)
	return c != nil && c.Status == metav1.ConditionFalse && c.Reason == rolloutsv1alpha1.ReasonProgressDeadlineExceeded
}
