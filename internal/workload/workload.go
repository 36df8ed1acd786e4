// Package workload holds the skeleton the workload controllers
// (internal/controller/...) share: the Reconciler fields every kind needs
// (Base), their construction from the manager, and the reconcile prologue
// and epilogue (read the object, forget a deleted one, wait for the cache
// to show earlier writes, combine the waits and errors of sync and status).
// What a kind does with its object (observe, plan, sync, status) stays in
// its own package.
package workload

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/drover-dev/drover/internal/expectations"
	"github.com/drover-dev/drover/internal/podcontrol"
	"github.com/drover-dev/drover/internal/workloadstatus"
)

// CacheWait is how soon a reconcile that waits for the cache runs again
// when no event comes first.
const CacheWait = 5 * time.Second

// Options configure a workload controller's SetupWithManager.
type Options struct {
	MaxConcurrentReconciles int
	WriteConcurrency        int
}

// Base is what every workload Reconciler holds. Embed it.
type Base struct {
	// Kind names the workload kind in errors ("reading CloneSet: ...").
	Kind     string
	Client   client.Client
	Clock    clock.PassiveClock
	Recorder events.EventRecorder
	// Pods writes pods (create, delete, in place) with expectations.
	Pods *podcontrol.Control
	// StatusWrites limits the status writes that only move counters
	// (conditions, phases and revisions are written at once).
	StatusWrites *workloadstatus.WriteLimiter
	// States caches the parsed in-place states of pods, per owner.
	States *podcontrol.StateCache
	// ForgetAlso, if set, drops what the kind itself keeps per object
	// (Forget calls it).
	ForgetAlso func(key string)
}

// New returns a Base reading and writing through c. statusInterval is the
// shortest time between two counter-only status writes (0: one second).
func New(kind string, c client.Client, clk clock.PassiveClock, recorder events.EventRecorder, writeConcurrency int, statusInterval time.Duration) Base {
	if statusInterval <= 0 {
		statusInterval = time.Second
	}
	return Base{
		Kind:         kind,
		Client:       c,
		Clock:        clk,
		Recorder:     recorder,
		Pods:         podcontrol.New(c, clk, writeConcurrency),
		StatusWrites: workloadstatus.NewWriteLimiter(statusInterval),
		States:       podcontrol.NewStateCache(),
	}
}

// FromManager returns a Base on the manager's client, the real clock and
// an event recorder named "<kind>-controller" (lower case).
func FromManager(mgr manager.Manager, kind string, writeConcurrency int) Base {
	return New(kind, mgr.GetClient(), clock.RealClock{}, mgr.GetEventRecorder(strings.ToLower(kind)+"-controller"), writeConcurrency, 0)
}

// ForPodOwner starts the controller of a kind whose objects control pods:
// it reconciles an object when its spec, labels or annotations change, or
// one of its pods does. Add the kind's other watches and Complete it.
func ForPodOwner(mgr manager.Manager, obj client.Object, concurrency int) *builder.Builder {
	return builder.ControllerManagedBy(mgr).
		For(obj, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&corev1.Pod{}, podOwnerHandler(mgr, obj)).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, concurrency)})
}

// podOwnerHandler enqueues a pod's controller when it is of obj's kind:
// handler.EnqueueRequestForOwner(OnlyControllerOwner) without its REST
// mapping of the owner reference on every pod event (workloads are
// namespaced), which allocated more than the rest of the event handling
// during a large update.
func podOwnerHandler(mgr manager.Manager, obj client.Object) handler.EventHandler {
	gvk, err := apiutil.GVKForObject(obj, mgr.GetScheme())
	if err != nil {
		return handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), obj, handler.OnlyControllerOwner())
	}
	return handler.EnqueueRequestsFromMapFunc(func(_ context.Context, pod client.Object) []reconcile.Request {
		return controllerRequest(pod, gvk.GroupKind())
	})
}

// controllerRequest is the request of pod's controller when it is of kind
// gk, else nil.
func controllerRequest(pod client.Object, gk schema.GroupKind) []reconcile.Request {
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil || ref.Kind != gk.Kind {
		return nil
	}
	group := "" // the core group's apiVersion is "v1"
	if i := strings.IndexByte(ref.APIVersion, '/'); i >= 0 {
		group = ref.APIVersion[:i]
	}
	if group != gk.Group {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: pod.GetNamespace(), Name: ref.Name}}}
}

// Forget drops what b keeps about the object under key (it was deleted).
func (b *Base) Forget(key string) {
	b.Pods.Expectations.DeleteOwner(key)
	b.StatusWrites.Forget(key)
	b.States.Forget(key)
	if b.ForgetAlso != nil {
		b.ForgetAlso(key)
	}
}

// Load reads the object of req into obj. It reports false (and forgets
// key) when the object is gone, and false when it is being deleted: the
// garbage collector removes what it owns.
func (b *Base) Load(ctx context.Context, req reconcile.Request, key string, obj client.Object) (bool, error) {
	if err := b.Client.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			b.Forget(key)
			return false, nil
		}
		return false, fmt.Errorf("reading %s: %w", b.Kind, err)
	}
	return obj.GetDeletionTimestamp() == nil, nil
}

// CaughtUp reports whether the cache shows every write expected under key.
// When it does not, planning now could create or delete twice (a second
// pod for a name or a node); the caller returns RequeueAfter CacheWait.
// Pod events requeue it sooner; the timer is a safety net.
func (b *Base) CaughtUp(ctx context.Context, key string, lookup expectations.Lookup) bool {
	ok, pending := b.Pods.Expectations.Satisfied(key, lookup)
	if !ok {
		ctrl.LoggerFrom(ctx).V(1).Info("waiting for the cache", "pending", len(pending))
	}
	return ok
}

// Then combines a sync and the status write after it: the sync's error
// first, then the status error, else the sooner of the two waits.
func Then(syncWait time.Duration, syncErr error, statusWait time.Duration, statusErr error) (time.Duration, error) {
	if syncErr != nil {
		return 0, syncErr
	}
	if statusErr != nil {
		return 0, statusErr
	}
	return podcontrol.MinPositive(syncWait, statusWait), nil
}

// Observation is what a kind's observe step returns: it finds the objects
// the expectations name.
type Observation interface {
	Lookup(name string) expectations.Observed
}

// Reconcile runs one reconcile of obj (filled from req): Load, observe,
// CaughtUp, then apply (the kind's sync and status write, combined with
// Then). key is the expectations key of the object.
func Reconcile[T client.Object, O Observation](ctx context.Context, b *Base, req reconcile.Request, key string, obj T,
	observe func(context.Context, T) (O, error), apply func(context.Context, T, O) (time.Duration, error)) (reconcile.Result, error) {
	if ok, err := b.Load(ctx, req, key, obj); !ok {
		return reconcile.Result{}, err
	}
	o, err := observe(ctx, obj)
	if err != nil {
		return reconcile.Result{}, err
	}
	if !b.CaughtUp(ctx, key, o.Lookup) {
		return reconcile.Result{RequeueAfter: CacheWait}, nil
	}
	wait, err := apply(ctx, obj, o)
	if err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: wait}, nil
}
