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
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/workload"
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
	workload.Base
}

// Options configure SetupWithManager.
type Options = workload.Options

// SetupWithManager builds a Reconciler from the manager and registers it.
// The controller-UID indexes it lists by are registered once for all
// controllers (ownership.RegisterIndexes).
func SetupWithManager(mgr manager.Manager, opts Options) error {
	r := &Reconciler{Base: workload.FromManager(mgr, Kind, opts.WriteConcurrency)}
	return workload.ForPodOwner(mgr, &appsv1alpha1.CloneSet{}, opts.MaxConcurrentReconciles).
		Named("cloneset").
		Complete(r)
}

// Reconcile moves one CloneSet toward its spec.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	return workload.Reconcile(ctx, &r.Base, req, req.String(), &appsv1alpha1.CloneSet{}, r.observe, r.apply)
}

// apply syncs the CloneSet's objects and writes its status.
func (r *Reconciler) apply(ctx context.Context, cs *appsv1alpha1.CloneSet, o *observed) (time.Duration, error) {
	res, syncErr := r.sync(ctx, cs, o)
	statusWait, statusErr := r.updateStatus(ctx, cs, o, res)
	return workload.Then(res.requeueAfter, syncErr, statusWait, statusErr)
}

// ownerKey is the expectations key of a CloneSet.
func ownerKey(cs *appsv1alpha1.CloneSet) string {
	return cs.Namespace + "/" + cs.Name
}

// workloadLabels are the labels Drover adds to every object it creates.
func workloadLabels() map[string]string {
	return map[string]string{appsv1alpha1.LabelWorkload: Kind}
}
