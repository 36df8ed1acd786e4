// Package broadcastjob implements the BroadcastJob controller: a pod run to
// completion once on every node its template fits, with a parallelism
// limit, completion and failure policies, a deadline and a TTL.
//
// Each reconcile reads the job, its pods and the nodes from the cache;
// waits until the cache shows its own earlier writes (expectations, the
// job's last status included); computes a plan with a pure function
// (plan.go); applies it (sync.go); and writes status (status.go).
package broadcastjob

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
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

// +kubebuilder:rbac:groups=apps.drover.dev,resources=broadcastjobs,verbs=get;list;watch;update;patch;delete
// +kubebuilder:rbac:groups=apps.drover.dev,resources=broadcastjobs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=apps.drover.dev,resources=broadcastjobs/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Kind is the BroadcastJob kind, and the value of LabelWorkload on its pods.
const Kind = "BroadcastJob"

func gvk() schema.GroupVersionKind { return appsv1alpha1.GroupVersion.WithKind(Kind) }

// cacheWait is how soon a reconcile that waits for the cache runs again
// when no event comes first.
const cacheWait = 5 * time.Second

// Reconciler reconciles BroadcastJobs.
type Reconciler struct {
	Client   client.Client
	Clock    clock.PassiveClock
	Recorder events.EventRecorder
	// Pods creates and deletes pods with expectations.
	Pods *podcontrol.Control

	// statusWrites limits the status writes that only move counters
	// (phase and conditions are written at once).
	statusWrites *workloadstatus.WriteLimiter
}

// Options configure SetupWithManager.
type Options struct {
	MaxConcurrentReconciles int
	WriteConcurrency        int
}

// New returns a Reconciler reading and writing through c (a cached
// client whose cache indexes pods by controller: ownership.RegisterIndexes).
// statusInterval is the shortest time between two counter-only status
// writes (0: one second).
func New(c client.Client, clk clock.PassiveClock, recorder events.EventRecorder, writeConcurrency int, statusInterval time.Duration) *Reconciler {
	if statusInterval <= 0 {
		statusInterval = time.Second
	}
	return &Reconciler{
		Client:       c,
		Clock:        clk,
		Recorder:     recorder,
		Pods:         podcontrol.New(c, clk, writeConcurrency),
		statusWrites: workloadstatus.NewWriteLimiter(statusInterval),
	}
}

// SetupWithManager builds a Reconciler from the manager and registers it.
// The controller-UID pod index it lists by is registered once for all
// controllers (ownership.RegisterIndexes).
func SetupWithManager(mgr manager.Manager, opts Options) error {
	r := New(mgr.GetClient(), clock.RealClock{}, mgr.GetEventRecorder("broadcastjob-controller"), opts.WriteConcurrency, 0)
	return r.Setup(mgr, opts.MaxConcurrentReconciles)
}

// Setup registers r with the manager.
func (r *Reconciler) Setup(mgr manager.Manager, concurrency int) error {
	return builder.ControllerManagedBy(mgr).
		For(&appsv1alpha1.BroadcastJob{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&corev1.Pod{}).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.jobsForNode), builder.WithPredicates(nodePlacementChanged())).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, concurrency)}).
		Named("broadcastjob").
		Complete(r)
}

// jobsForNode enqueues every unfinished job when a node appears, goes or
// changes in a way that may change where jobs run.
func (r *Reconciler) jobsForNode(ctx context.Context, _ client.Object) []reconcile.Request {
	var jobs appsv1alpha1.BroadcastJobList
	if err := r.Client.List(ctx, &jobs); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing BroadcastJobs for a node event")
		return nil
	}
	var out []reconcile.Request
	for i := range jobs.Items {
		if !finished(&jobs.Items[i]) {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: jobs.Items[i].Namespace, Name: jobs.Items[i].Name}})
		}
	}
	return out
}

// nodePlacementChanged passes node events that can change which nodes a
// pod fits (nodeplacement.Fits): creation, deletion, labels, taints,
// unschedulable. Heartbeats are dropped.
func nodePlacementChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*corev1.Node)
			n, ok2 := e.ObjectNew.(*corev1.Node)
			if !ok1 || !ok2 {
				return true
			}
			return !equalStrings(o.Labels, n.Labels) || !equalTaints(o.Spec.Taints, n.Spec.Taints) ||
				o.Spec.Unschedulable != n.Spec.Unschedulable || (o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil)
		},
	}
}

func equalStrings(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func equalTaints(a, b []corev1.Taint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || a[i].Value != b[i].Value || a[i].Effect != b[i].Effect {
			return false
		}
	}
	return true
}

// Reconcile moves one BroadcastJob on.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	job := &appsv1alpha1.BroadcastJob{}
	if err := r.Client.Get(ctx, req.NamespacedName, job); err != nil {
		if apierrors.IsNotFound(err) {
			r.Pods.Expectations.DeleteOwner(req.String())
			r.statusWrites.Forget(req.String())
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("reading BroadcastJob: %w", err)
	}
	if job.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}
	now := r.Clock.Now()
	if ttlLeft(job, now) == 0 {
		return reconcile.Result{}, r.deleteExpired(ctx, job)
	}

	o, err := r.observe(ctx, job)
	if err != nil {
		return reconcile.Result{}, err
	}
	if ok, pending := r.Pods.Expectations.Satisfied(req.String(), o.lookup); !ok {
		// The cache has not caught up with our writes: planning now could
		// create a second pod for a node. Pod events requeue us; the timer
		// is a safety net.
		ctrl.LoggerFrom(ctx).V(1).Info("waiting for the cache", "pending", len(pending))
		return reconcile.Result{RequeueAfter: cacheWait}, nil
	}

	in, timing := r.planInput(job, o, now)
	p := computePlan(in)
	ctrl.LoggerFrom(ctx).V(1).Info("plan", "phase", p.phase, "desired", p.desired, "create", len(p.create),
		"deletes", len(p.deletes), "active", p.active, "succeeded", p.succeeded, "failed", p.failed)

	createErr, applyErr := r.apply(ctx, job, o, p)
	statusWait, statusErr := r.updateStatus(ctx, job, p, timing, createErr)
	if applyErr != nil {
		return reconcile.Result{}, applyErr
	}
	if statusErr != nil {
		return reconcile.Result{}, statusErr
	}
	return reconcile.Result{RequeueAfter: podcontrol.MinPositive(timing.wait, statusWait)}, nil
}

// ownerKey is the expectations key of a job.
func ownerKey(job *appsv1alpha1.BroadcastJob) string {
	return job.Namespace + "/" + job.Name
}

// finished reports whether the job reached a final phase.
func finished(job *appsv1alpha1.BroadcastJob) bool {
	return job.Status.Phase == appsv1alpha1.BroadcastJobCompleted || job.Status.Phase == appsv1alpha1.BroadcastJobFailed
}
