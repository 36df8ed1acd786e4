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
	"time"

	corev1 "k8s.io/api/core/v1"
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
	"github.com/drover-dev/drover/internal/workload"
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

// Reconciler reconciles BroadcastJobs. Base.States is unused: job pods
// are not updated in place.
type Reconciler struct {
	workload.Base
}

// Options configure SetupWithManager.
type Options = workload.Options

// New returns a Reconciler reading and writing through c (a cached
// client whose cache indexes pods by controller: ownership.RegisterIndexes).
// statusInterval is the shortest time between two counter-only status
// writes (0: one second).
func New(c client.Client, clk clock.PassiveClock, recorder events.EventRecorder, writeConcurrency int, statusInterval time.Duration) *Reconciler {
	return &Reconciler{Base: workload.New(Kind, c, clk, recorder, writeConcurrency, statusInterval)}
}

// SetupWithManager builds a Reconciler from the manager and registers it.
// The controller-UID pod index it lists by is registered once for all
// controllers (ownership.RegisterIndexes).
func SetupWithManager(mgr manager.Manager, opts Options) error {
	r := &Reconciler{Base: workload.FromManager(mgr, Kind, opts.WriteConcurrency)}
	return r.Setup(mgr, opts.MaxConcurrentReconciles)
}

// Setup registers r with the manager. It is not workload.ForPodOwner: a
// job's labels and annotations change nothing it does, nodes enqueue
// jobs, and finished jobs are left alone.
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

// Reconcile moves one BroadcastJob on. It uses workload.Base's steps but
// not workload.Reconcile: an expired job is deleted before anything is
// observed, and the plan (with its timing) is computed here, between the
// cache check and the writes, because status reports the plan and the
// creates that failed.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	job := &appsv1alpha1.BroadcastJob{}
	if ok, err := r.Load(ctx, req, req.String(), job); !ok {
		return reconcile.Result{}, err
	}
	now := r.Clock.Now()
	if ttlLeft(job, now) == 0 {
		return reconcile.Result{}, r.deleteExpired(ctx, job)
	}

	o, err := r.observe(ctx, job)
	if err != nil {
		return reconcile.Result{}, err
	}
	if !r.CaughtUp(ctx, req.String(), o.lookup) {
		return reconcile.Result{RequeueAfter: workload.CacheWait}, nil
	}

	in, timing := r.planInput(job, o, now)
	p := computePlan(in)
	if in.young && p.desired == 0 && p.phase == appsv1alpha1.BroadcastJobRunning {
		// Fits no node yet: look again when it is no longer young.
		timing.wait = podcontrol.MinPositive(timing.wait, job.CreationTimestamp.Add(noNodeSettle).Sub(now))
	}
	ctrl.LoggerFrom(ctx).V(1).Info("plan", "phase", p.phase, "desired", p.desired, "create", len(p.create),
		"deletes", len(p.deletes), "active", p.active, "succeeded", p.succeeded, "failed", p.failed)

	createErr, applyErr := r.apply(ctx, job, o, p)
	statusWait, statusErr := r.updateStatus(ctx, job, p, timing, createErr)
	wait, err := workload.Then(timing.wait, applyErr, statusWait, statusErr)
	return reconcile.Result{RequeueAfter: wait}, err
}

// ownerKey is the expectations key of a job.
func ownerKey(job *appsv1alpha1.BroadcastJob) string {
	return job.Namespace + "/" + job.Name
}

// finished reports whether the job reached a final phase.
func finished(job *appsv1alpha1.BroadcastJob) bool {
	return job.Status.Phase == appsv1alpha1.BroadcastJobCompleted || job.Status.Phase == appsv1alpha1.BroadcastJobFailed
}
