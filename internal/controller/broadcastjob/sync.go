package broadcastjob

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/expectations"
	"github.com/drover-dev/drover/internal/nodeplacement"
	"github.com/drover-dev/drover/internal/ownership"
	"github.com/drover-dev/drover/internal/podcontrol"
	"github.com/drover-dev/drover/internal/podstate"
)

// jobExpectation is the expectations name under which a job's own last
// status write is recorded, so that no plan starts from an older copy of
// the job (it could, for instance, miss that the job has finished). Pod
// names never contain a "/", so they never clash with it.
const jobExpectation = "/job"

// observed is what the cache shows of a job's pods and of the nodes. The
// objects are the cache's own: copy one before writing it.
type observed struct {
	job    *appsv1alpha1.BroadcastJob
	pods   []*corev1.Pod
	byName map[string]*corev1.Pod
	nodes  []*corev1.Node
}

func (o *observed) lookup(name string) expectations.Observed {
	if name == jobExpectation {
		return expectations.Observed{Exists: true, UID: o.job.UID, ResourceVersion: o.job.ResourceVersion}
	}
	p, ok := o.byName[name]
	if !ok {
		return expectations.Observed{}
	}
	return expectations.Observed{Exists: true, UID: p.UID, ResourceVersion: p.ResourceVersion, Terminating: p.DeletionTimestamp != nil}
}

func (r *Reconciler) observe(ctx context.Context, job *appsv1alpha1.BroadcastJob) (*observed, error) {
	pods, err := ownership.Pods(ctx, r.Client, job.Namespace, string(job.UID))
	if err != nil {
		return nil, err
	}
	o := &observed{job: job, pods: pods, byName: make(map[string]*corev1.Pod, len(pods))}
	for _, p := range pods {
		o.byName[p.Name] = p
	}
	var nodes corev1.NodeList
	if err := r.Client.List(ctx, &nodes, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	for i := range nodes.Items {
		o.nodes = append(o.nodes, &nodes.Items[i])
	}
	return o, nil
}

// timing is what the clock says about a job.
type timing struct {
	now time.Time
	// start is the job's start time (status.startTime, or now when the
	// job starts in this reconcile); zero while it was created paused.
	start time.Time
	// wait is when the job must be looked at again: its deadline or TTL.
	wait time.Duration
}

// planInput turns the job, its pods and the nodes into the planner's input.
func (r *Reconciler) planInput(job *appsv1alpha1.BroadcastJob, o *observed, now time.Time) (planInput, timing) {
	spec := &job.Spec
	in := planInput{
		parallelism:  spec.Parallelism,
		completion:   spec.CompletionPolicy.Type,
		failure:      spec.FailurePolicy.Type,
		restartLimit: spec.FailurePolicy.RestartLimit,
		paused:       spec.Paused,
		acknowledged: job.Status.FailuresAcknowledged,
	}
	if in.completion == "" {
		in.completion = appsv1alpha1.AlwaysBroadcastJobCompletionPolicyType
	}
	if in.failure == "" {
		in.failure = appsv1alpha1.FailFastBroadcastJobFailurePolicyType
	}
	if finished(job) {
		in.finished = job.Status.Phase
	}
	// failurePolicy Pause holds the job at the generation it paused at;
	// any later spec change (toggling spec.paused, fixing the template)
	// resumes it and acknowledges the failures seen so far.
	if c := meta.FindStatusCondition(job.Status.Conditions, appsv1alpha1.BroadcastJobConditionPaused); c != nil &&
		c.Status == metav1.ConditionTrue && c.Reason == appsv1alpha1.BroadcastJobReasonNodeFailed {
		in.pauseHeld = c.ObservedGeneration >= job.Generation
		in.resumed = !in.pauseHeld
	}

	for _, n := range o.nodes {
		fits, _ := nodeplacement.Fits(n, &spec.Template.Spec)
		in.nodes = append(in.nodes, nodeInfo{name: n.Name, fits: fits})
	}
	for _, p := range o.pods {
		in.pods = append(in.pods, podInfo{
			name:        p.Name,
			node:        nodeplacement.NodeOf(p),
			bound:       p.Spec.NodeName != "",
			phase:       p.Status.Phase,
			terminating: p.DeletionTimestamp != nil,
			restarts:    podstate.Restarts(p),
		})
	}

	t := timing{now: now}
	if job.Status.StartTime != nil {
		t.start = job.Status.StartTime.Time
	} else if !spec.Paused {
		t.start = now
	}
	if d := spec.CompletionPolicy.ActiveDeadlineSeconds; d != nil && !t.start.IsZero() && in.finished == "" {
		left := t.start.Add(time.Duration(*d) * time.Second).Sub(now)
		in.deadlineExceeded = left <= 0
		if left > 0 {
			t.wait = left
		}
	}
	if left := ttlLeft(job, now); left > 0 {
		t.wait = left
	}
	in.young = in.finished == "" && now.Sub(job.CreationTimestamp.Time) < noNodeSettle
	return in, t
}

// ttlLeft returns how long until a finished job's TTL expires: 0 when it
// has, -1 when no TTL applies (not finished, or no TTL).
func ttlLeft(job *appsv1alpha1.BroadcastJob, now time.Time) time.Duration {
	ttl := job.Spec.CompletionPolicy.TTLSecondsAfterFinished
	if ttl == nil || !finished(job) || job.Status.CompletionTime == nil {
		return -1
	}
	return max(0, job.Status.CompletionTime.Add(time.Duration(*ttl)*time.Second).Sub(now))
}

// deleteExpired deletes a job whose TTL passed; its pods follow through
// the garbage collector.
func (r *Reconciler) deleteExpired(ctx context.Context, job *appsv1alpha1.BroadcastJob) error {
	ctrl.LoggerFrom(ctx).Info("deleting finished job: ttlSecondsAfterFinished passed", "completionTime", job.Status.CompletionTime)
	// The precondition makes sure the job deleted is the one whose TTL was
	// read, not a job recreated under the same name.
	err := r.Client.Delete(ctx, job, client.Preconditions{UID: &job.UID},
		client.PropagationPolicy(metav1.DeletePropagationBackground))
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting expired job: %w", err)
	}
	if err == nil {
		r.Recorder.Eventf(job, nil, corev1.EventTypeNormal, "Deleted", "Delete", "deleted: ttlSecondsAfterFinished passed")
	}
	return nil
}

// apply deletes and creates the planned pods. createErr is the pod
// creation failure (quota, admission...), for status; err joins every
// failure.
func (r *Reconciler) apply(ctx context.Context, job *appsv1alpha1.BroadcastJob, o *observed, p plan) (createErr, err error) {
	key := ownerKey(job)
	var errs []error
	var deleted atomic.Int32
	err = podcontrol.Parallel(ctx, r.Pods.WriteConcurrency, p.deletes, func(ctx context.Context, d podDelete) error {
		pod := o.byName[d.pod]
		if pod == nil {
			return nil
		}
		done, err := r.Pods.Delete(ctx, key, pod, nil)
		if done {
			deleted.Add(1)
		}
		return err
	})
	if err != nil {
		errs = append(errs, err)
	}
	if n := deleted.Load(); n > 0 {
		// Notes carry no counts so that repeats fold into one event series.
		ctrl.LoggerFrom(ctx).Info("deleted pods", "count", n, "reason", p.deletes[0].reason)
		r.Recorder.Eventf(job, nil, corev1.EventTypeNormal, "SuccessfulDelete", "Delete", "deleted pods: %s", p.deletes[0].reason)
	}

	// Slow start (1, 2, 4, ... pods): a create refused by a quota or an
	// admission policy fails once per reconcile, not once per node.
	var created atomic.Int32
	_, err = podcontrol.SlowStart(ctx, r.Pods.WriteConcurrency, p.create, func(ctx context.Context, node string) error {
		if err := r.Pods.Create(ctx, key, buildPod(job, node)); err != nil {
			return err
		}
		created.Add(1)
		return nil
	})
	if err != nil {
		createErr = err
		errs = append(errs, err)
	}
	if n := created.Load(); n > 0 {
		ctrl.LoggerFrom(ctx).Info("created pods", "count", n)
		r.Recorder.Eventf(job, nil, corev1.EventTypeNormal, "SuccessfulCreate", "Create", "created pods")
	}
	return createErr, errors.Join(errs...)
}

// podName is <job>-<5 random characters>.
func podName(job *appsv1alpha1.BroadcastJob) string { return job.Name + "-" + rand.String(5) }

// buildPod renders the job's pod for a node: the template, pinned to the
// node (required node affinity on its name, as native DaemonSet pods),
// labelled with the workload kind and the job's name, owned by the job.
func buildPod(job *appsv1alpha1.BroadcastJob, node string) *corev1.Pod {
	tpl := &job.Spec.Template
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            podName(job),
			Namespace:       job.Namespace,
			Labels:          map[string]string{},
			Annotations:     map[string]string{},
			Finalizers:      tpl.Finalizers,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, gvk())},
		},
		Spec: *tpl.Spec.DeepCopy(),
	}
	for k, v := range tpl.Labels {
		pod.Labels[k] = v
	}
	for k, v := range tpl.Annotations {
		pod.Annotations[k] = v
	}
	pod.Labels[appsv1alpha1.LabelWorkload] = Kind
	pod.Labels[appsv1alpha1.LabelBroadcastJob] = job.Name
	nodeplacement.PinToNode(pod, node)
	return pod
}
