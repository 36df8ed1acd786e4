// Package cloneset implements the CloneSet controller: a Deployment
// replacement with in-place updates, partitions, surge, calculated
// scale-down order, PVC templates and lifecycle hooks.
//
// Each reconcile reads the CloneSet, its pods, claims and revisions from
// the cache; waits until the cache shows its own earlier writes
// (expectations); computes a plan with pure functions (plan.go); applies it
// (sync.go, pods.go) through the shared pod writer (internal/podcontrol);
// and writes status (status.go, internal/workloadstatus).
package cloneset

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
func SetupWithManager(mgr manager.Manager, opts Options) error {
	clk := clock.RealClock{}
	r := &Reconciler{
		Client:   mgr.GetClient(),
		Clock:    clk,
		Recorder: mgr.GetEventRecorder("cloneset-controller"),
		Pods:     podcontrol.New(mgr.GetClient(), clk, opts.WriteConcurrency),
	}
	return r.setup(mgr, opts.MaxConcurrentReconciles)
}

// setup registers the controller. The controller-UID indexes it lists by
// are registered once for all controllers (ownership.RegisterIndexes).
func (r *Reconciler) setup(mgr manager.Manager, concurrency int) error {
	if r.StatusInterval <= 0 {
		r.StatusInterval = time.Second
	}
	r.statusWrites = workloadstatus.NewWriteLimiter(r.StatusInterval)
	r.states = podcontrol.NewStateCache()
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
			r.Pods.Expectations.DeleteOwner(req.String())
			r.statusWrites.Forget(req.String())
			r.states.Forget(req.String())
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
	if ok, pending := r.Pods.Expectations.Satisfied(req.String(), s.lookup); !ok {
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
	return reconcile.Result{RequeueAfter: podcontrol.MinPositive(res.requeueAfter, statusRequeue)}, nil
}

// ownerKey is the expectations key of a CloneSet.
func ownerKey(cs *appsv1alpha1.CloneSet) string {
	return cs.Namespace + "/" + cs.Name
}

// workloadLabels are the labels Drover adds to every object it creates.
func workloadLabels() map[string]string {
	return map[string]string{appsv1alpha1.LabelWorkload: Kind}
}
