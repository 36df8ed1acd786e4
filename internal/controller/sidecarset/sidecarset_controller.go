// Package sidecarset implements the SidecarSet controller. Injection
// happens in the admission webhook (internal/webhook) when a pod is
// created; this controller upgrades the sidecars of running pods in place
// through the in-place engine (internal/inplace, on its sidecar track),
// and reports status.
//
// The pods it reads come from their own cache, which holds only pods
// labelled apps.drover.dev/sidecarset-injected (the webhook sets it): pods
// no SidecarSet injected cost the manager nothing, whoever owns them.
package sidecarset

import (
	"context"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/podcontrol"
	"github.com/drover-dev/drover/internal/webhook/injection"
	"github.com/drover-dev/drover/internal/workload"
)

// +kubebuilder:rbac:groups=apps.drover.dev,resources=sidecarsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps.drover.dev,resources=sidecarsets/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=pods/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// indexSidecarSets indexes injected pods by the SidecarSets recorded on them.
const indexSidecarSets = "sidecarsets.apps.drover.dev"

// NewPodCache returns the cache of pods some SidecarSet injected (label
// apps.drover.dev/sidecarset-injected), indexed by SidecarSet; transform
// trims each pod (the manager's pod transform). Add it to the manager
// (mgr.Add) and pass it in Options.Pods.
func NewPodCache(cfg *rest.Config, scheme *runtime.Scheme, mapper meta.RESTMapper, httpClient *http.Client, transform toolscache.TransformFunc) (cache.Cache, error) {
	req, err := labels.NewRequirement(appsv1alpha1.LabelSidecarSetInjected, selection.Exists, nil)
	if err != nil {
		return nil, fmt.Errorf("building the injected-pod selector: %w", err)
	}
	opts := cache.Options{
		Scheme:           scheme,
		Mapper:           mapper,
		HTTPClient:       httpClient,
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}: {Label: labels.NewSelector().Add(*req), Transform: transform},
		},
		// Only pods are read from it.
		ReaderFailOnMissingInformer: true,
	}
	c, err := cache.New(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("creating the injected-pod cache: %w", err)
	}
	if _, err := c.GetInformer(context.Background(), &corev1.Pod{}); err != nil {
		return nil, fmt.Errorf("creating the injected-pod informer: %w", err)
	}
	if err := c.IndexField(context.Background(), &corev1.Pod{}, indexSidecarSets, func(o client.Object) []string {
		return injection.ParseRecords(o.GetAnnotations()[appsv1alpha1.AnnotationSidecarSetHash]).Names()
	}); err != nil {
		return nil, fmt.Errorf("indexing injected pods: %w", err)
	}
	return c, nil
}

// Reconciler reconciles SidecarSets. Its Base's Client writes, and reads
// SidecarSets and namespaces (manager cache); Base.States keeps the pods'
// sidecar-track states and workloadStates their workloads' (to see a
// workload update in flight), both parsed once per annotation value.
type Reconciler struct {
	workload.Base
	// Injected reads injected pods (NewPodCache).
	Injected       client.Reader
	workloadStates *podcontrol.StateCache
}

// Options configure SetupWithManager.
type Options struct {
	// Pods is the injected-pod cache (NewPodCache), already added to the manager.
	Pods                    cache.Cache
	MaxConcurrentReconciles int
	WriteConcurrency        int
}

// SetupWithManager builds a Reconciler from the manager and registers it.
// SidecarSets do not control their pods and are cluster-scoped, so the
// controller is not workload.ForPodOwner: it is enqueued by the SidecarSets
// recorded on an injected pod, and keyed by name.
func SetupWithManager(mgr manager.Manager, opts Options) error {
	r := &Reconciler{Base: workload.FromManager(mgr, "SidecarSet", opts.WriteConcurrency), Injected: opts.Pods,
		workloadStates: podcontrol.NewStateCache()}
	r.States = podcontrol.NewTrackStateCache(inplace.SidecarTrack)
	r.ForgetAlso = r.workloadStates.Forget
	toSets := handler.TypedEnqueueRequestsFromMapFunc(func(_ context.Context, pod *corev1.Pod) []reconcile.Request {
		names := injection.RecordsOf(pod).Names()
		out := make([]reconcile.Request, len(names))
		for i, n := range names {
			out[i] = reconcile.Request{NamespacedName: client.ObjectKey{Name: n}}
		}
		return out
	})
	return builder.ControllerManagedBy(mgr).
		For(&appsv1alpha1.SidecarSet{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Kind(opts.Pods, &corev1.Pod{}, toSets)).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, opts.MaxConcurrentReconciles)}).
		Named("sidecarset").
		Complete(r)
}

// Reconcile moves the sidecars of one SidecarSet's pods toward its spec.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	return workload.Reconcile(ctx, &r.Base, req, req.Name, &appsv1alpha1.SidecarSet{}, r.observe, r.apply)
}

// apply upgrades sidecars and writes the SidecarSet's status.
func (r *Reconciler) apply(ctx context.Context, ss *appsv1alpha1.SidecarSet, o *observed) (time.Duration, error) {
	syncWait, syncErr := r.sync(ctx, ss, o)
	statusWait, statusErr := r.updateStatus(ctx, ss, o)
	return workload.Then(syncWait, syncErr, statusWait, statusErr)
}

// otherUpdateInFlight reports whether an in-place update other than this
// SidecarSet's is under way on a pod, from its workload-track and
// sidecar-track states.
func otherUpdateInFlight(workloadState, sidecarState podcontrol.ParsedState, ss string) bool {
	if workloadState.OK && workloadState.State.Phase != inplace.PhaseDone {
		return true
	}
	s := sidecarState.State
	return sidecarState.OK && s.Phase != inplace.PhaseDone && ownerOfRevision(s.Revision) != ss
}
