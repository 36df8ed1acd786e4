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
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/workload"
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
	workload.Base

	backoff *failureBackoff
}

// Options configure SetupWithManager.
type Options = workload.Options

// SetupWithManager builds a Reconciler from the manager and registers it.
// The controller-UID indexes it lists by are registered once for all
// controllers (ownership.RegisterIndexes).
func SetupWithManager(mgr manager.Manager, opts Options) error {
	r := &Reconciler{Base: workload.FromManager(mgr, Kind, opts.WriteConcurrency), backoff: newFailureBackoff()}
	r.ForgetAlso = r.backoff.forget
	return workload.ForPodOwner(mgr, &appsv1alpha1.DaemonSet{}, opts.MaxConcurrentReconciles).
		Watches(&corev1.Node{}, r.nodeHandler()).
		Named("daemonset").
		Complete(r)
}

// Reconcile moves one DaemonSet toward its spec.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	return workload.Reconcile(ctx, &r.Base, req, req.String(), &appsv1alpha1.DaemonSet{}, r.observe, r.apply)
}

// apply syncs the DaemonSet's pods and writes its status.
func (r *Reconciler) apply(ctx context.Context, ds *appsv1alpha1.DaemonSet, o *observed) (time.Duration, error) {
	res, syncErr := r.sync(ctx, ds, o)
	statusWait, statusErr := r.updateStatus(ctx, ds, res)
	return workload.Then(res.requeueAfter, syncErr, statusWait, statusErr)
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
