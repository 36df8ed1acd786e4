// Package cloneset implements the CloneSet controller: a Deployment
// replacement with in-place updates, partitions, surge, calculated
// scale-down order, PVC templates and lifecycle hooks.
//
// Each reconcile reads the CloneSet, its pods, claims and revisions from
// the cache; waits until the cache shows its own earlier writes
// (expectations); computes a plan with pure functions (plan.go); applies it
// (apply.go); and writes status (status.go).
package cloneset

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
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
	"github.com/drover-dev/drover/internal/expectations"
	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/ownership"
)

// +kubebuilder:rbac:groups=apps.drover.dev,resources=clonesets,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=apps.drover.dev,resources=clonesets/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=apps.drover.dev,resources=clonesets/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=pods/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=pods/resize,verbs=update;patch
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;watch;create;delete;patch
// +kubebuilder:rbac:groups=apps,resources=controllerrevisions,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Kind is the CloneSet kind, and the value of LabelWorkload on its objects.
const Kind = "CloneSet"

func gvk() schema.GroupVersionKind { return appsv1alpha1.GroupVersion.WithKind(Kind) }

// Reconciler reconciles CloneSets.
type Reconciler struct {
	Client       client.Client
	Clock        clock.PassiveClock
	Recorder     events.EventRecorder
	Expectations *expectations.Store
	InPlace      *inplace.Engine
	// WriteConcurrency bounds the parallel pod writes of one reconcile.
	WriteConcurrency int
	// StatusInterval is the shortest time between two status writes that
	// only move pod counters (conditions and revisions are written at once).
	StatusInterval time.Duration

	statusWrites *writeLimiter
	states       *stateCache
}

// Options configure SetupWithManager.
type Options struct {
	MaxConcurrentReconciles int
	WriteConcurrency        int
}

// SetupWithManager builds a Reconciler from the manager and registers it.
func SetupWithManager(mgr manager.Manager, opts Options) error {
	clk := clock.RealClock{}
	r := &Reconciler{
		Client:           mgr.GetClient(),
		Clock:            clk,
		Recorder:         mgr.GetEventRecorder("cloneset-controller"),
		Expectations:     expectations.New(clk, expectations.DefaultTimeout),
		InPlace:          &inplace.Engine{Client: mgr.GetClient(), Clock: clk},
		WriteConcurrency: opts.WriteConcurrency,
	}
	return r.setup(mgr, opts.MaxConcurrentReconciles)
}

func (r *Reconciler) setup(mgr manager.Manager, concurrency int) error {
	if r.WriteConcurrency <= 0 {
		r.WriteConcurrency = 64
	}
	if r.StatusInterval <= 0 {
		r.StatusInterval = time.Second
	}
	r.statusWrites = newWriteLimiter(r.StatusInterval)
	r.states = newStateCache()
	idx := mgr.GetFieldIndexer()
	ctx := context.Background()
	if err := idx.IndexField(ctx, &corev1.Pod{}, ownership.IndexController, ownership.ControllerUID); err != nil {
		return fmt.Errorf("indexing pods by controller: %w", err)
	}
	if err := idx.IndexField(ctx, &corev1.PersistentVolumeClaim{}, ownership.IndexController, ownership.ControllerUID); err != nil {
		return fmt.Errorf("indexing claims by controller: %w", err)
	}
	if err := idx.IndexField(ctx, &appsv1.ControllerRevision{}, ownership.IndexController, ownership.ControllerUID); err != nil {
		return fmt.Errorf("indexing revisions by controller: %w", err)
	}
	return builder.ControllerManagedBy(mgr).
		For(&appsv1alpha1.CloneSet{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&corev1.Pod{}, handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &appsv1alpha1.CloneSet{}, handler.OnlyControllerOwner())).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, concurrency)}).
		Named("cloneset").
		Complete(r)
}

// Reconcile moves one CloneSet toward its spec.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	cs := &appsv1alpha1.CloneSet{}
	if err := r.Client.Get(ctx, req.NamespacedName, cs); err != nil {
		if apierrors.IsNotFound(err) {
			r.Expectations.DeleteOwner(req.String())
			r.statusWrites.forget(req.String())
			r.states.forget(req.String())
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("reading CloneSet: %w", err)
	}
	if cs.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}

	s, err := r.observe(ctx, cs)
	if err != nil {
		return reconcile.Result{}, err
	}
	if ok, pending := r.Expectations.Satisfied(req.String(), s.lookup); !ok {
		// The cache has not caught up with our writes: planning now could
		// create or delete twice. Pod events requeue us; the timer is a
		// safety net.
		ctrl.LoggerFrom(ctx).V(1).Info("waiting for the cache", "pending", len(pending))
		return reconcile.Result{RequeueAfter: 5 * time.Second}, nil
	}

	res, applyErr := r.sync(ctx, cs, s)
	statusRequeue, statusErr := r.updateStatus(ctx, cs, s, res)
	if applyErr != nil {
		return reconcile.Result{}, applyErr
	}
	if statusErr != nil {
		return reconcile.Result{}, statusErr
	}
	return reconcile.Result{RequeueAfter: minPositive(res.requeueAfter, statusRequeue)}, nil
}

func minPositive(a, b time.Duration) time.Duration {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	default:
		return min(a, b)
	}
}

// ownerKey is the expectations key of a CloneSet.
func ownerKey(cs *appsv1alpha1.CloneSet) string {
	return cs.Namespace + "/" + cs.Name
}

// workloadLabels are the labels Drover adds to every object it creates.
func workloadLabels() map[string]string {
	return map[string]string{appsv1alpha1.LabelWorkload: Kind}
}
