// Package daemonset implements the Advanced DaemonSet controller: exactly
// one pod on every eligible node, with rolling updates that respect
// maxUnavailable and maxSurge per node, in-place updates, partitions,
// node-selected updates, pause and a preDelete hook.
//
// Each reconcile reads the DaemonSet, its pods, its revisions and the nodes
// from the cache; waits until the cache shows its own earlier writes
// (expectations); computes a plan with pure functions (plan.go); applies it
// through internal/podcontrol (sync.go); and writes status (status.go).
// Which nodes run a pod is decided by internal/nodeplacement, with the
// native DaemonSet's semantics.
package daemonset

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/podcontrol"
	"github.com/drover-dev/drover/internal/workloadstatus"
)

// +kubebuilder:rbac:groups=apps.drover.dev,resources=daemonsets,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=apps.drover.dev,resources=daemonsets/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=apps.drover.dev,resources=daemonsets/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=pods/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=pods/resize,verbs=update;patch
// +kubebuilder:rbac:groups=apps,resources=controllerrevisions,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Kind is the DaemonSet kind, and the value of LabelWorkload on its objects.
const Kind = "DaemonSet"

func gvk() schema.GroupVersionKind { return appsv1alpha1.GroupVersion.WithKind(Kind) }

// Reconciler reconciles DaemonSets.
type Reconciler struct {
	Client   client.Client
	Clock    clock.PassiveClock
	Recorder events.EventRecorder
	// Pods writes pods (create, delete, in place) with expectations.
	Pods *podcontrol.Control
	// StatusInterval is the shortest time between two status writes that
	// only move pod counters (conditions and revisions are written at once).
	StatusInterval time.Duration

	statusWrites *workloadstatus.WriteLimiter
	states       *podcontrol.StateCache
	backoff      *failureBackoff
}

// Options configure SetupWithManager.
type Options struct {
	MaxConcurrentReconciles int
	WriteConcurrency        int
}

// SetupWithManager builds a Reconciler from the manager and registers it.
// The controller-UID indexes it lists by are registered once for all
// controllers (ownership.RegisterIndexes).
func SetupWithManager(mgr manager.Manager, opts Options) error {
	clk := clock.RealClock{}
	r := &Reconciler{
		Client:   mgr.GetClient(),
		Clock:    clk,
		Recorder: mgr.GetEventRecorder("daemonset-controller"),
		Pods:     podcontrol.New(mgr.GetClient(), clk, opts.WriteConcurrency),
	}
	return r.setup(mgr, opts.MaxConcurrentReconciles)
}

func (r *Reconciler) setup(mgr manager.Manager, concurrency int) error {
	if r.StatusInterval <= 0 {
		r.StatusInterval = time.Second
	}
	r.statusWrites = workloadstatus.NewWriteLimiter(r.StatusInterval)
	r.states = podcontrol.NewStateCache()
	r.backoff = newFailureBackoff()
	return builder.ControllerManagedBy(mgr).
		For(&appsv1alpha1.DaemonSet{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&corev1.Pod{}, handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &appsv1alpha1.DaemonSet{}, handler.OnlyControllerOwner())).
		Watches(&corev1.Node{}, r.nodeHandler()).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, concurrency)}).
		Named("daemonset").
		Complete(r)
}

// Reconcile moves one DaemonSet toward its spec.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	ds := &appsv1alpha1.DaemonSet{}
	if err := r.Client.Get(ctx, req.NamespacedName, ds); err != nil {
		if apierrors.IsNotFound(err) {
			r.Pods.Expectations.DeleteOwner(req.String())
			r.statusWrites.Forget(req.String())
			r.states.Forget(req.String())
			r.backoff.forget(req.String())
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("reading DaemonSet: %w", err)
	}
	if ds.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}

	o, err := r.observe(ctx, ds)
	if err != nil {
		return reconcile.Result{}, err
	}
	if ok, pending := r.Pods.Expectations.Satisfied(req.String(), o.lookup); !ok {
		// The cache has not caught up with our writes: planning now could
		// create a second pod for a node. Pod events requeue us; the timer
		// is a safety net.
		ctrl.LoggerFrom(ctx).V(1).Info("waiting for the cache", "pending", len(pending))
		return reconcile.Result{RequeueAfter: 5 * time.Second}, nil
	}

	res, applyErr := r.sync(ctx, ds, o)
	statusRequeue, statusErr := r.updateStatus(ctx, ds, res)
	if applyErr != nil {
		return reconcile.Result{}, applyErr
	}
	if statusErr != nil {
		return reconcile.Result{}, statusErr
	}
	return reconcile.Result{RequeueAfter: podcontrol.MinPositive(res.requeueAfter, statusRequeue)}, nil
}

// ownerKey is the expectations key of a DaemonSet.
func ownerKey(ds *appsv1alpha1.DaemonSet) string {
	return ds.Namespace + "/" + ds.Name
}

// workloadLabels are the labels Drover adds to every object it creates.
func workloadLabels() map[string]string {
	return map[string]string{appsv1alpha1.LabelWorkload: Kind}
}

// nodeHandler maps node events to the DaemonSets they concern: a node that
// joins, to the DaemonSets that fit it; a node whose labels, taints or
// schedulability change, to those whose fit changed; a node that leaves,
// to every DaemonSet (its pods are garbage now, and no pod event may say
// so).
func (r *Reconciler) nodeHandler() handler.EventHandler {
	enqueue := func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], want func(*appsv1alpha1.DaemonSet) bool) {
		var list appsv1alpha1.DaemonSetList
		if err := r.Client.List(ctx, &list); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "listing DaemonSets for a node event")
			return
		}
		for i := range list.Items {
			if want(&list.Items[i]) {
				q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: list.Items[i].Namespace, Name: list.Items[i].Name}})
			}
		}
	}
	fits := func(n *corev1.Node, ds *appsv1alpha1.DaemonSet) bool {
		ok, _ := placement(n, &ds.Spec.Template.Spec)
		return ok
	}
	keeps := func(n *corev1.Node, ds *appsv1alpha1.DaemonSet) bool {
		_, ok := placement(n, &ds.Spec.Template.Spec)
		return ok
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			n, ok := e.Object.(*corev1.Node)
			if !ok {
				return
			}
			enqueue(ctx, q, func(ds *appsv1alpha1.DaemonSet) bool { return fits(n, ds) })
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			oldN, ok1 := e.ObjectOld.(*corev1.Node)
			newN, ok2 := e.ObjectNew.(*corev1.Node)
			if !ok1 || !ok2 || !placementChanged(oldN, newN) {
				return
			}
			enqueue(ctx, q, func(ds *appsv1alpha1.DaemonSet) bool {
				// A label change may also move the node in or out of
				// rollingUpdate.selector.
				return fits(oldN, ds) != fits(newN, ds) || keeps(oldN, ds) != keeps(newN, ds) ||
					(ds.Spec.UpdateStrategy.RollingUpdate != nil && ds.Spec.UpdateStrategy.RollingUpdate.Selector != nil &&
						!apiequality.Semantic.DeepEqual(oldN.Labels, newN.Labels))
			})
		},
		DeleteFunc: func(ctx context.Context, _ event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, q, func(*appsv1alpha1.DaemonSet) bool { return true })
		},
	}
}

// placementChanged reports whether a node update can change which daemon
// pods it should run: labels, taints, schedulability or deletion.
func placementChanged(a, b *corev1.Node) bool {
	return !apiequality.Semantic.DeepEqual(a.Labels, b.Labels) ||
		!apiequality.Semantic.DeepEqual(a.Spec.Taints, b.Spec.Taints) ||
		a.Spec.Unschedulable != b.Spec.Unschedulable ||
		(a.DeletionTimestamp == nil) != (b.DeletionTimestamp == nil)
}
