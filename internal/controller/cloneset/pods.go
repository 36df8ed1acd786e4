package cloneset

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/podcontrol"
	"github.com/drover-dev/drover/internal/revision"
)

// newPodSpec is one pod to create: its revision and instance id.
type newPodSpec struct {
	rev *appsv1.ControllerRevision
	id  string
}

// createPods creates pods in slow-start batches (1, 2, 4, ...), so a
// failing create (quota, admission) fails once rather than n times.
func (r *Reconciler) createPods(ctx context.Context, cs *appsv1alpha1.CloneSet, o *observed, t *podcontrol.Templates,
	update, current *appsv1.ControllerRevision, nUpdated, nCurrent int32) (int, error) {
	ids := r.instanceIDs(cs, o, int(nUpdated+nCurrent))
	specs := make([]newPodSpec, 0, len(ids))
	for i, id := range ids {
		rev := update
		if int32(i) >= nUpdated {
			rev = current
		}
		specs = append(specs, newPodSpec{rev: rev, id: id})
	}
	create := func(ctx context.Context, s newPodSpec) error { return r.createPod(ctx, cs, t, s) }
	created := 0
	// Slow start: batches of 1, 2, 4, ... so that a create that fails
	// (quota, admission) fails a few times, not n times. Once a batch as
	// large as the write concurrency has succeeded, the rest go through the
	// worker pool without waiting for each batch's slowest write.
	for batch := 1; len(specs) > 0; batch *= 2 {
		n := min(batch, len(specs))
		if batch > r.Pods.WriteConcurrency {
			n = len(specs)
		}
		if err := podcontrol.Parallel(ctx, r.Pods.WriteConcurrency, specs[:n], create); err != nil {
			return created, err
		}
		created += n
		specs = specs[n:]
	}
	return created, nil
}

// instanceIDs returns up to n instance ids: first those of claims left by
// recreated pods (so the new pod reuses its volumes), then fresh ones. Slots
// whose old pod still terminates are left for a later reconcile.
func (r *Reconciler) instanceIDs(cs *appsv1alpha1.CloneSet, o *observed, n int) []string {
	used := map[string]bool{}
	terminating := map[string]bool{}
	for _, p := range o.pods {
		id := p.Labels[appsv1alpha1.LabelInstanceID]
		used[id] = true
		if p.DeletionTimestamp != nil {
			terminating[id] = true
		}
	}
	var ids []string
	if !cs.Spec.ScaleStrategy.DisablePVCReuse {
		waiting := map[string]bool{}
		for _, c := range o.claims {
			id := c.Labels[appsv1alpha1.LabelInstanceID]
			switch {
			case id == "" || c.DeletionTimestamp != nil:
			case terminating[id]:
				// The claims' pod is still terminating: its replacement
				// waits for the name (and the volumes) to be free.
				waiting[id] = true
			case !used[id] && len(ids) < n:
				used[id] = true
				ids = append(ids, id)
			}
		}
		n -= len(waiting)
	}
	for len(ids) < n {
		id := rand.String(5)
		if !used[id] {
			used[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

func (r *Reconciler) createPod(ctx context.Context, cs *appsv1alpha1.CloneSet, t *podcontrol.Templates, s newPodSpec) error {
	tpl, err := t.Template(s.rev.Name)
	if err != nil {
		return err
	}
	if err := r.createClaims(ctx, cs, s.id); err != nil {
		return err
	}
	return r.Pods.Create(ctx, ownerKey(cs), buildPod(cs, tpl, s.rev.Name, s.id))
}

func podName(cs *appsv1alpha1.CloneSet, id string) string { return cs.Name + "-" + id }

func claimName(cs *appsv1alpha1.CloneSet, vct string, id string) string {
	return vct + "-" + podName(cs, id)
}

// buildPod renders a pod of cs from a revision's template.
func buildPod(cs *appsv1alpha1.CloneSet, tpl *corev1.PodTemplateSpec, rev, id string) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            podName(cs, id),
			Namespace:       cs.Namespace,
			Labels:          map[string]string{},
			Annotations:     map[string]string{},
			Finalizers:      tpl.Finalizers,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cs, gvk())},
		},
		Spec: *tpl.Spec.DeepCopy(),
	}
	for k, v := range tpl.Labels {
		pod.Labels[k] = v
	}
	for k, v := range tpl.Annotations {
		pod.Annotations[k] = v
	}
	for k, v := range workloadLabels() {
		pod.Labels[k] = v
	}
	pod.Labels[revision.LabelRevisionHash] = rev
	pod.Labels[appsv1alpha1.LabelInstanceID] = id
	if cs.Spec.Lifecycle != nil {
		pod.Labels[appsv1alpha1.LabelLifecycleState] = string(appsv1alpha1.LifecycleStateNormal)
	}
	inplace.InjectReadinessGate(&pod.Spec)
	for _, vct := range cs.Spec.VolumeClaimTemplates {
		vol := corev1.Volume{Name: vct.Name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claimName(cs, vct.Name, id)},
		}}
		replaced := false
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == vct.Name {
				pod.Spec.Volumes[i], replaced = vol, true
			}
		}
		if !replaced {
			pod.Spec.Volumes = append(pod.Spec.Volumes, vol)
		}
	}
	return pod
}

// createClaims creates the pod's claims from volumeClaimTemplates; claims
// that exist (a recreated pod's) are kept.
func (r *Reconciler) createClaims(ctx context.Context, cs *appsv1alpha1.CloneSet, id string) error {
	for _, vct := range cs.Spec.VolumeClaimTemplates {
		claim := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{
				Name:            claimName(cs, vct.Name, id),
				Namespace:       cs.Namespace,
				Labels:          map[string]string{},
				Annotations:     vct.Annotations,
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cs, gvk())},
			},
			Spec: *vct.Spec.DeepCopy(),
		}
		for k, v := range cs.Spec.Selector.MatchLabels {
			claim.Labels[k] = v
		}
		for k, v := range vct.Labels {
			claim.Labels[k] = v
		}
		for k, v := range workloadLabels() {
			claim.Labels[k] = v
		}
		claim.Labels[appsv1alpha1.LabelInstanceID] = id
		if err := r.Client.Create(ctx, claim); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating claim %s: %w", claim.Name, err)
		}
	}
	return nil
}

// deletePods deletes the planned pods, each after its preDelete hook is
// released. Claims go with the pod unless it is being recreated (and
// disablePVCReuse is off).
func (r *Reconciler) deletePods(ctx context.Context, cs *appsv1alpha1.CloneSet, deletes []podDelete, o *observed) error {
	var hook *appsv1alpha1.LifecycleHook
	if cs.Spec.Lifecycle != nil {
		hook = cs.Spec.Lifecycle.PreDelete
	}
	key := ownerKey(cs)
	var deleted atomic.Int32
	err := podcontrol.Parallel(ctx, r.Pods.WriteConcurrency, deletes, func(ctx context.Context, d podDelete) error {
		pod := d.view.pod // the cache's object: read only
		ok, err := r.Pods.Delete(ctx, key, pod, hook)
		if err != nil || !ok {
			return err
		}
		deleted.Add(1)
		if d.reason != deleteRecreate || cs.Spec.ScaleStrategy.DisablePVCReuse {
			return r.deleteClaims(ctx, o, pod.Labels[appsv1alpha1.LabelInstanceID])
		}
		return nil
	})
	if n := deleted.Load(); n > 0 {
		// Notes carry no counts, so the recorder folds repeats into one
		// event series instead of writing an event per reconcile; the
		// counts are in the log.
		ctrl.LoggerFrom(ctx).Info("deleted pods", "count", n)
		r.Recorder.Eventf(cs, nil, corev1.EventTypeNormal, "SuccessfulDelete", "Delete", "deleted pods")
	}
	return err
}

func (r *Reconciler) deleteClaims(ctx context.Context, o *observed, id string) error {
	if id == "" {
		return nil
	}
	for _, c := range o.claims {
		if c.Labels[appsv1alpha1.LabelInstanceID] != id || c.DeletionTimestamp != nil {
			continue
		}
		if err := r.Client.Delete(ctx, c.DeepCopy()); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting claim %s: %w", c.Name, err)
		}
	}
	return nil
}

// updateInPlace starts the planned in-place updates and moves on those in
// flight, honouring the inPlaceUpdate hook.
func (r *Reconciler) updateInPlace(ctx context.Context, cs *appsv1alpha1.CloneSet, views []*podView, planned []*podView, t *podcontrol.Templates) (time.Duration, error) {
	var hook *appsv1alpha1.LifecycleHook
	if cs.Spec.Lifecycle != nil {
		hook = cs.Spec.Lifecycle.InPlaceUpdate
	}
	grace := time.Duration(0)
	if ipu := cs.Spec.UpdateStrategy.InPlaceUpdate; ipu != nil {
		grace = time.Duration(ipu.GracePeriodSeconds) * time.Second
	}
	work := append([]*podView(nil), planned...)
	for _, v := range views {
		if podcontrol.NeedsInPlaceWork(v.pod, v.updating, hook) {
			work = append(work, v)
		}
	}
	key := ownerKey(cs)
	var wait podcontrol.MinWait
	var started atomic.Int32
	update := t.Update().Name
	err := podcontrol.Parallel(ctx, r.Pods.WriteConcurrency, work, func(ctx context.Context, v *podView) error {
		it := podcontrol.InPlaceItem{Pod: v.pod, Revision: update, Change: t.ChangeTo(v.revision), GracePeriod: grace}
		if v.hasState {
			it.State = &v.state
		}
		res, err := r.Pods.InPlace(ctx, key, it, hook)
		if res.Started {
			started.Add(1)
		}
		wait.Observe(res.RequeueAfter)
		return err
	})
	if n := started.Load(); n > 0 {
		// Waves are logged; the update's start is one event (sync.go).
		ctrl.LoggerFrom(ctx).Info("started in-place updates", "count", n, "revision", update)
	}
	return wait.Get(), err
}

// pruneHistory deletes revisions beyond revisionHistoryLimit that no pod
// uses.
func (r *Reconciler) pruneHistory(ctx context.Context, cs *appsv1alpha1.CloneSet, history []*appsv1.ControllerRevision, views []*podView, current *appsv1.ControllerRevision) error {
	live := map[string]bool{current.Name: true}
	for _, v := range views {
		live[v.revision] = true
	}
	if len(history) > 0 {
		live[history[len(history)-1].Name] = true // the update revision
	}
	return r.Pods.PruneHistory(ctx, history, live, int(ptr.Deref(cs.Spec.RevisionHistoryLimit, 10)))
}

// repairPods fixes pods left half-way by an interrupted reconcile or a
// changed spec (podcontrol.NeedsRepair).
func (r *Reconciler) repairPods(ctx context.Context, cs *appsv1alpha1.CloneSet, views []*podView) error {
	var repair []*corev1.Pod
	for _, v := range views {
		if !v.updating && podcontrol.NeedsRepair(v.pod, v.updated, v.inFlight) {
			repair = append(repair, v.pod)
		}
	}
	key := ownerKey(cs)
	return podcontrol.Parallel(ctx, r.Pods.WriteConcurrency, repair, func(ctx context.Context, pod *corev1.Pod) error {
		return r.Pods.Repair(ctx, key, pod)
	})
}
