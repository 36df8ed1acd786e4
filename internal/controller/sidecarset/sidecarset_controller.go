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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
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
	"github.com/drover-dev/drover/internal/workloadstatus"
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

// Reconciler reconciles SidecarSets.
type Reconciler struct {
	// Client writes, and reads SidecarSets and namespaces (manager cache).
	Client client.Client
	// Pods reads injected pods (NewPodCache).
	Pods     client.Reader
	Clock    clock.PassiveClock
	Recorder events.EventRecorder
	Control  *podcontrol.Control
	// StatusInterval is the shortest time between two status writes that
	// only move pod counters.
	StatusInterval time.Duration

	statusWrites *workloadstatus.WriteLimiter
}

// Options configure SetupWithManager.
type Options struct {
	// Pods is the injected-pod cache (NewPodCache), already added to the manager.
	Pods                    cache.Cache
	MaxConcurrentReconciles int
	WriteConcurrency        int
}

// SetupWithManager builds a Reconciler from the manager and registers it.
func SetupWithManager(mgr manager.Manager, opts Options) error {
	clk := clock.RealClock{}
	r := &Reconciler{
		Client:   mgr.GetClient(),
		Pods:     opts.Pods,
		Clock:    clk,
		Recorder: mgr.GetEventRecorder("sidecarset-controller"),
		Control:  podcontrol.New(mgr.GetClient(), clk, opts.WriteConcurrency),
	}
	return r.setup(mgr, opts.Pods, opts.MaxConcurrentReconciles)
}

func (r *Reconciler) setup(mgr manager.Manager, pods cache.Cache, concurrency int) error {
	if r.StatusInterval <= 0 {
		r.StatusInterval = time.Second
	}
	r.statusWrites = workloadstatus.NewWriteLimiter(r.StatusInterval)
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
		WatchesRawSource(source.Kind(pods, &corev1.Pod{}, toSets)).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, concurrency)}).
		Named("sidecarset").
		Complete(r)
}

// Reconcile moves the sidecars of one SidecarSet's pods toward its spec.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	ss := &appsv1alpha1.SidecarSet{}
	key := req.Name
	if err := r.Client.Get(ctx, req.NamespacedName, ss); err != nil {
		if apierrors.IsNotFound(err) {
			r.Control.Expectations.DeleteOwner(key)
			r.statusWrites.Forget(key)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("reading SidecarSet: %w", err)
	}
	if ss.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}
	o, err := r.observe(ctx, ss)
	if err != nil {
		return reconcile.Result{}, err
	}
	if ok, pending := r.Control.Expectations.Satisfied(key, o.lookup); !ok {
		ctrl.LoggerFrom(ctx).V(1).Info("waiting for the cache", "pending", len(pending))
		return reconcile.Result{RequeueAfter: 5 * time.Second}, nil
	}
	res, syncErr := r.sync(ctx, ss, o)
	statusWait, statusErr := r.updateStatus(ctx, ss, o)
	if syncErr != nil {
		return reconcile.Result{}, syncErr
	}
	if statusErr != nil {
		return reconcile.Result{}, statusErr
	}
	return reconcile.Result{RequeueAfter: podcontrol.MinPositive(res, statusWait)}, nil
}

// otherUpdateInFlight reports whether an in-place update other than this
// SidecarSet's is under way on pod.
func otherUpdateInFlight(pod *corev1.Pod, ss string) bool {
	if inplace.InFlightOn(pod, inplace.WorkloadTrack) {
		return true
	}
	s, ok := inplace.StateOn(pod, inplace.SidecarTrack)
	return ok && s.Phase != inplace.PhaseDone && ownerOfRevision(s.Revision) != ss
}
