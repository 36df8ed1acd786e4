// Package statefulset implements the Advanced StatefulSet controller: pods
// with stable names <name>-<ordinal>, network identities and per-pod
// claims, like the native StatefulSet, plus in-place updates, partitions,
// parallel updates within maxUnavailable, priority order, paused updates,
// reserved ordinals and lifecycle hooks.
//
// Each reconcile reads the set, its pods, claims and revisions from the
// cache; waits until the cache shows its own earlier writes (expectations);
// computes a plan with pure functions (plan.go); applies it (sync.go,
// pods.go, claims.go) through the shared pod writer (internal/podcontrol);
// and writes status (status.go).
package statefulset

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/podcontrol"
	"github.com/drover-dev/drover/internal/workloadstatus"
)

// +kubebuilder:rbac:groups=apps.drover.dev,resources=statefulsets,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=apps.drover.dev,resources=statefulsets/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=apps.drover.dev,resources=statefulsets/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=pods/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=pods/resize,verbs=update;patch
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;watch;create;delete;patch
// +kubebuilder:rbac:groups=apps,resources=controllerrevisions,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Kind is the StatefulSet kind, and the value of LabelWorkload on its objects.
const Kind = "StatefulSet"

func gvk() schema.GroupVersionKind { return appsv1alpha1.GroupVersion.WithKind(Kind) }

// Reconciler reconciles Advanced StatefulSets.
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
}

// Options configure SetupWithManager.
type Options struct {
	MaxConcurrentReconciles int
	WriteConcurrency        int
}

// SetupWithManager builds a Reconciler from the manager and registers it.
// The controller-UID indexes it lists by are registered by the manager
// (ownership.RegisterIndexes).
func SetupWithManager(mgr manager.Manager, opts Options) error {
	clk := clock.RealClock{}
	r := &Reconciler{
		Client:         mgr.GetClient(),
		Clock:          clk,
		Recorder:       mgr.GetEventRecorder("statefulset-controller"),
		Pods:           podcontrol.New(mgr.GetClient(), clk, opts.WriteConcurrency),
		StatusInterval: time.Second,
	}
	r.statusWrites = workloadstatus.NewWriteLimiter(r.StatusInterval)
	r.states = podcontrol.NewStateCache()
	return builder.ControllerManagedBy(mgr).
		For(&appsv1alpha1.StatefulSet{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&corev1.Pod{}, handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &appsv1alpha1.StatefulSet{}, handler.OnlyControllerOwner())).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, opts.MaxConcurrentReconciles)}).
		Named("statefulset").
		Complete(r)
}

// Reconcile moves one StatefulSet toward its spec.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	set := &appsv1alpha1.StatefulSet{}
	key := req.String()
	if err := r.Client.Get(ctx, req.NamespacedName, set); err != nil {
		if apierrors.IsNotFound(err) {
			r.Pods.Expectations.DeleteOwner(key)
			r.statusWrites.Forget(key)
			r.states.Forget(key)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("reading StatefulSet: %w", err)
	}
	if set.DeletionTimestamp != nil {
		// The garbage collector removes the pods, and the claims when
		// whenDeleted is Delete.
		return reconcile.Result{}, nil
	}

	o, err := r.observe(ctx, set)
	if err != nil {
		return reconcile.Result{}, err
	}
	if ok, pending := r.Pods.Expectations.Satisfied(key, o.lookup); !ok {
		// Planning on a cache that lags our writes could create or delete
		// twice; pod events requeue us, the timer is a safety net.
		ctrl.LoggerFrom(ctx).V(1).Info("waiting for the cache", "pending", len(pending))
		return reconcile.Result{RequeueAfter: 5 * time.Second}, nil
	}

	res, syncErr := r.sync(ctx, set, o)
	statusWait, statusErr := r.updateStatus(ctx, set, o, res)
	if syncErr != nil {
		return reconcile.Result{}, syncErr
	}
	if statusErr != nil {
		return reconcile.Result{}, statusErr
	}
	return reconcile.Result{RequeueAfter: podcontrol.MinPositive(res.requeueAfter, statusWait)}, nil
}

// ownerKey is the expectations key of a set (the reconcile request's string).
func ownerKey(set *appsv1alpha1.StatefulSet) string {
	return set.Namespace + "/" + set.Name
}
