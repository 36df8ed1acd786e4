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
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/workload"
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
	workload.Base
}

// Options configure SetupWithManager.
type Options = workload.Options

// SetupWithManager builds a Reconciler from the manager and registers it.
// The controller-UID indexes it lists by are registered by the manager
// (ownership.RegisterIndexes).
func SetupWithManager(mgr manager.Manager, opts Options) error {
	r := &Reconciler{Base: workload.FromManager(mgr, Kind, opts.WriteConcurrency)}
	return workload.ForPodOwner(mgr, &appsv1alpha1.StatefulSet{}, opts.MaxConcurrentReconciles).
		Named("statefulset").
		Complete(r)
}

// Reconcile moves one StatefulSet toward its spec. A set being deleted is
// left alone: the garbage collector removes the pods, and the claims when
// whenDeleted is Delete.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	return workload.Reconcile(ctx, &r.Base, req, req.String(), &appsv1alpha1.StatefulSet{}, r.observe, r.apply)
}

// apply syncs the set's pods and claims and writes its status.
func (r *Reconciler) apply(ctx context.Context, set *appsv1alpha1.StatefulSet, o *observed) (time.Duration, error) {
	res, syncErr := r.sync(ctx, set, o)
	statusWait, statusErr := r.updateStatus(ctx, set, o, res)
	return workload.Then(res.requeueAfter, syncErr, statusWait, statusErr)
}

// ownerKey is the expectations key of a set (the reconcile request's string).
func ownerKey(set *appsv1alpha1.StatefulSet) string {
	return set.Namespace + "/" + set.Name
}
