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

// createPods creates pods in slow-start batches (podcontrol.SlowStart), so
// a failing create (quota, admission) fails a few times rather than n
// times, and returns how many were created.
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
	var created atomic.Int32
	_, err := podcontrol.SlowStart(ctx, r.Pods.WriteConcurrency, specs, func(ctx context.Context, s newPodSpec) error {
		if err := r.createPod(ctx, cs, t, s); err != nil {
			return err
		}
		created.Add(1)
		return nil
	})
	return int(created.Load()), err
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

// buildPod renders a pod of cs from a revision's template
// (podcontrol.NewPod), with its instance id, the InPlaceUpdateReady
// readiness gate and its claims mounted.
func buildPod(cs *appsv1alpha1.CloneSet, tpl *corev1.PodTemplateSpec, rev, id string) *corev1.Pod {
	labels := workloadLabels()
	labels[revision.LabelRevisionHash] = rev
	labels[appsv1alpha1.LabelInstanceID] = id
	if cs.Spec.Lifecycle != nil {
		labels[appsv1alpha1.LabelLifecycleState] = string(appsv1alpha1.LifecycleStateNormal)
	}
	pod := podcontrol.NewPod(cs, gvk(), podName(cs, id), tpl, labels)
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
	victims := make([]*corev1.Pod, len(deletes)) // the cache's objects: read only
	var keepClaims map[*corev1.Pod]bool
	for i, d := range deletes {
		victims[i] = d.view.pod
		if d.reason == deleteRecreate && !cs.Spec.ScaleStrategy.DisablePVCReuse {
			if keepClaims == nil {
				keepClaims = map[*corev1.Pod]bool{}
			}
			keepClaims[d.view.pod] = true
		}
	}
	n, err := r.Pods.DeleteAllThen(ctx, ownerKey(cs), victims, hook, func(ctx context.Context, pod *corev1.Pod) error {
		if keepClaims[pod] {
			return nil
		}
		return r.deleteClaims(ctx, o, pod.Labels[appsv1alpha1.LabelInstanceID])
	})
	if n > 0 {
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
// flight, honouring the inPlaceUpdate hook. The update's start is one
// event (sync.go); waves are logged.
func (r *Reconciler) updateInPlace(ctx context.Context, cs *appsv1alpha1.CloneSet, views []*podView, p plan, t *podcontrol.Templates, stable string) (time.Duration, error) {
	var hook *appsv1alpha1.LifecycleHook
	if cs.Spec.Lifecycle != nil {
		hook = cs.Spec.Lifecycle.InPlaceUpdate
	}
	grace := time.Duration(0)
	if ipu := cs.Spec.UpdateStrategy.InPlaceUpdate; ipu != nil {
		grace = time.Duration(ipu.GracePeriodSeconds) * time.Second
	}
	w := podcontrol.NewInPlaceWork(t, grace, hook)
	for _, v := range p.inPlace {
		w.Plan(v.pod, v.inPlaceState(), v.revision)
	}
	for _, v := range p.returns {
		w.PlanTo(v.pod, v.inPlaceState(), v.revision, stable)
	}
	for _, v := range views {
		if v.returning {
			w.ContinueTo(v.pod, v.inPlaceState(), v.revision, stable)
		} else {
			w.Continue(v.pod, v.inPlaceState(), v.revision, v.updating)
		}
	}
	return r.Pods.UpdateInPlace(ctx, ownerKey(cs), w)
}

// inPlaceState is the pod's parsed in-place state, nil when it has none.
func (v *podView) inPlaceState() *inplace.State {
	if !v.hasState {
		return nil
	}
	return &v.state
}

// repairPods fixes pods left half-way by an interrupted reconcile or a
// changed spec (podcontrol.NeedsRepair).
func (r *Reconciler) repairPods(ctx context.Context, cs *appsv1alpha1.CloneSet, views []*podView) error {
	var repair []*corev1.Pod
	for _, v := range views {
		if !v.updating && !v.returning && podcontrol.NeedsRepair(v.pod, v.updated, v.inFlight) {
			repair = append(repair, v.pod)
		}
	}
	return r.Pods.RepairAll(ctx, ownerKey(cs), repair)
}
