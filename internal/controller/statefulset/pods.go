package statefulset

import (
	"context"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/podcontrol"
	"github.com/drover-dev/drover/internal/revision"
)

// identityLabels are the labels that make pod <set>-<ordinal> what it is,
// whatever its revision: Drover's workload and set labels and the native
// StatefulSet's pod-name and pod-index labels.
func identityLabels(set *appsv1alpha1.StatefulSet, ordinal int32) map[string]string {
	return map[string]string{
		appsv1alpha1.LabelWorkload:     Kind,
		appsv1alpha1.LabelStatefulSet:  set.Name,
		appsv1.StatefulSetPodNameLabel: podName(set.Name, ordinal),
		appsv1.PodIndexLabel:           strconv.FormatInt(int64(ordinal), 10),
	}
}

// buildPod renders pod <set>-<ordinal> from a revision's template: the
// template's metadata and spec, the identity labels, the revision label,
// hostname and subdomain, one volume per claim template, and the
// InPlaceUpdateReady readiness gate.
func buildPod(set *appsv1alpha1.StatefulSet, tpl *corev1.PodTemplateSpec, rev string, ordinal int32) *corev1.Pod {
	name := podName(set.Name, ordinal)
	labels := identityLabels(set, ordinal)
	labels[revision.LabelRevisionHash] = rev
	if set.Spec.Lifecycle != nil {
		labels[appsv1alpha1.LabelLifecycleState] = string(appsv1alpha1.LifecycleStateNormal)
	}
	pod := podcontrol.NewPod(set, gvk(), name, tpl, labels)
	pod.Spec.Hostname = name
	if set.Spec.ServiceName != "" {
		pod.Spec.Subdomain = set.Spec.ServiceName
	}
	inplace.InjectReadinessGate(&pod.Spec)
	// A claim template's volume replaces a template volume of the same name.
	vols := pod.Spec.Volumes[:0:0]
	mounted := map[string]bool{}
	for _, vct := range set.Spec.VolumeClaimTemplates {
		mounted[vct.Name] = true
	}
	for _, v := range pod.Spec.Volumes {
		if !mounted[v.Name] {
			vols = append(vols, v)
		}
	}
	for _, vct := range set.Spec.VolumeClaimTemplates {
		vols = append(vols, corev1.Volume{Name: vct.Name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claimName(vct.Name, set.Name, ordinal)},
		}})
	}
	pod.Spec.Volumes = vols
	return pod
}

// createPod creates the pod's missing claims, then the pod. It reports
// false, creating nothing, when a claim of the pod is still being deleted:
// the pod waits for it to be gone rather than mount a dying volume.
func (r *Reconciler) createPod(ctx context.Context, set *appsv1alpha1.StatefulSet, o *observed, t *podcontrol.Templates, rev string, ordinal int32) (bool, error) {
	ok, err := r.ensureClaims(ctx, set, o, ordinal)
	if err != nil || !ok {
		return false, err
	}
	tpl, err := t.Template(rev)
	if err != nil {
		return false, err
	}
	if err := r.Pods.Create(ctx, ownerKey(set), buildPod(set, tpl, rev, ordinal)); err != nil {
		return false, err
	}
	return true, nil
}
