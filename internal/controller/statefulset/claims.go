package statefulset

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

// Claims are named <template>-<set>-<ordinal> and outlive their pods: a
// recreated pod mounts the same claims. They carry no controller reference
// (so the cache index does not find them; they are listed by the
// apps.drover.dev/statefulset label) and only the owner references the
// persistentVolumeClaimRetentionPolicy asks for, as the native controller
// does: the set's when whenDeleted is Delete, and the pod's when whenScaled
// is Delete and the pod is being scaled away. The garbage collector does
// the deleting.

// claimLabels are the labels of the set's claims: the selector's
// matchLabels (as the native controller puts them), the template's own,
// and the set and workload labels.
func claimLabels(set *appsv1alpha1.StatefulSet, vct *corev1.PersistentVolumeClaim) map[string]string {
	l := map[string]string{}
	if set.Spec.Selector != nil {
		for k, v := range set.Spec.Selector.MatchLabels {
			l[k] = v
		}
	}
	for k, v := range vct.Labels {
		l[k] = v
	}
	l[appsv1alpha1.LabelStatefulSet] = set.Name
	l[appsv1alpha1.LabelWorkload] = Kind
	return l
}

// ensureClaims creates the missing claims of pod ordinal; it reports false
// when one of them is still terminating.
func (r *Reconciler) ensureClaims(ctx context.Context, set *appsv1alpha1.StatefulSet, o *observed, ordinal int32) (bool, error) {
	for i := range set.Spec.VolumeClaimTemplates {
		vct := &set.Spec.VolumeClaimTemplates[i]
		name := claimName(vct.Name, set.Name, ordinal)
		if c, ok := o.claims[name]; ok {
			if c.DeletionTimestamp != nil {
				return false, nil
			}
			continue
		}
		claim := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Namespace:   set.Namespace,
				Labels:      claimLabels(set, vct),
				Annotations: vct.Annotations,
			},
			Spec: *vct.Spec.DeepCopy(),
		}
		if retention(set).WhenDeleted == appsv1alpha1.DeletePersistentVolumeClaimRetentionPolicyType {
			claim.OwnerReferences = []metav1.OwnerReference{setRef(set)}
		}
		if err := r.Client.Create(ctx, claim); err != nil && !apierrors.IsAlreadyExists(err) {
			return false, fmt.Errorf("creating claim %s: %w", name, err)
		}
	}
	return true, nil
}

func retention(set *appsv1alpha1.StatefulSet) appsv1alpha1.StatefulSetPersistentVolumeClaimRetentionPolicy {
	p := appsv1alpha1.StatefulSetPersistentVolumeClaimRetentionPolicy{
		WhenDeleted: appsv1alpha1.RetainPersistentVolumeClaimRetentionPolicyType,
		WhenScaled:  appsv1alpha1.RetainPersistentVolumeClaimRetentionPolicyType,
	}
	if rp := set.Spec.PersistentVolumeClaimRetentionPolicy; rp != nil {
		if rp.WhenDeleted != "" {
			p.WhenDeleted = rp.WhenDeleted
		}
		if rp.WhenScaled != "" {
			p.WhenScaled = rp.WhenScaled
		}
	}
	return p
}

// claimOwners says which owners the retention policy wants on the claims
// of a pod: the pod when it is condemned and whenScaled is Delete, the set
// otherwise when whenDeleted is Delete (the native controller's table).
func claimOwners(p appsv1alpha1.StatefulSetPersistentVolumeClaimRetentionPolicy, condemned bool) (bySet, byPod bool) {
	byPod = condemned && p.WhenScaled == appsv1alpha1.DeletePersistentVolumeClaimRetentionPolicyType
	bySet = !byPod && p.WhenDeleted == appsv1alpha1.DeletePersistentVolumeClaimRetentionPolicyType
	return bySet, byPod
}

func setRef(set *appsv1alpha1.StatefulSet) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: appsv1alpha1.GroupVersion.String(), Kind: Kind, Name: set.Name, UID: set.UID}
}

func podRef(pod *corev1.Pod) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}
}

// ownerRefsFor returns the claim's owner references with those of the set
// and of its pod (any UID: a set or pod recreated under the same name
// replaces a stale reference) set as wanted; other owners are kept.
func ownerRefsFor(refs []metav1.OwnerReference, set *appsv1alpha1.StatefulSet, pod *corev1.Pod, bySet, byPod bool) []metav1.OwnerReference {
	out := make([]metav1.OwnerReference, 0, len(refs)+1)
	for _, ref := range refs {
		isSet := ref.Kind == Kind && ref.APIVersion == appsv1alpha1.GroupVersion.String() && ref.Name == set.Name
		isPod := ref.Kind == "Pod" && ref.APIVersion == "v1" && ref.Name == pod.Name
		if !isSet && !isPod {
			out = append(out, ref)
		}
	}
	if bySet {
		out = append(out, setRef(set))
	}
	if byPod {
		out = append(out, podRef(pod))
	}
	return out
}

// syncClaimOwners gives the claims of the set's live pods the owner
// references the retention policy asks for. condemned tells which pods are
// being scaled away.
func (r *Reconciler) syncClaimOwners(ctx context.Context, set *appsv1alpha1.StatefulSet, o *observed, condemned func(int32) bool) error {
	policy := retention(set)
	for ordinal, pod := range o.members {
		if pod.DeletionTimestamp != nil {
			continue
		}
		bySet, byPod := claimOwners(policy, condemned(ordinal))
		for _, vct := range set.Spec.VolumeClaimTemplates {
			c, ok := o.claims[claimName(vct.Name, set.Name, ordinal)]
			if !ok || c.DeletionTimestamp != nil {
				continue
			}
			want := ownerRefsFor(c.OwnerReferences, set, pod, bySet, byPod)
			if slices.EqualFunc(want, c.OwnerReferences, func(a, b metav1.OwnerReference) bool { return a.UID == b.UID && a.Name == b.Name }) {
				continue
			}
			if err := patchOwners(ctx, r.Client, c, want); err != nil {
				return err
			}
		}
	}
	return nil
}

// patchOwners replaces a claim's owner references, guarded by its
// resourceVersion. c is the cache's object and is only read.
func patchOwners(ctx context.Context, c client.Client, claim *corev1.PersistentVolumeClaim, refs []metav1.OwnerReference) error {
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"ownerReferences": refs, "resourceVersion": claim.ResourceVersion,
	}})
	if err != nil {
		return fmt.Errorf("encoding owner references: %w", err)
	}
	target := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: claim.Name, Namespace: claim.Namespace}}
	if err := c.Patch(ctx, target, client.RawPatch(types.MergePatchType, body)); err != nil {
		return fmt.Errorf("setting owner references of claim %s: %w", claim.Name, err)
	}
	return nil
}
