package target

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/dump"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

// An apps/v1 Deployment target. The Deployment controller knows nothing of
// the rollout control annotation, so the Rollout steers the Deployment from
// outside, and the Deployment stays the single source of truth (its
// template, its replicas, its status):
//
//   - the Rollout keeps the Deployment paused (spec.paused), so that it never
//     starts a rolling update by itself. A paused Deployment still scales its
//     one active ReplicaSet to spec.replicas (an HPA keeps working) and still
//     adopts orphan ReplicaSets its selector matches;
//   - the canary runs in a ReplicaSet the Rollout controls (so the Deployment
//     does not adopt it), named and labelled like the one the Deployment
//     would create (<deployment>-<pod-template-hash>). The Deployment's own
//     ReplicaSet stays at full size beside it: a surge canary;
//   - promotion: once the control is steady on the canary's revision and the
//     canary ReplicaSet runs every replica, available, the Rollout removes
//     its owner reference. The paused Deployment adopts the orphan, finds it
//     is its new ReplicaSet (same template), saturated, and scales the old
//     ones to 0: no canary pod restarts.
//
// Revisions are pod-template-hash values. The Workload's counts are
// effective ones, in the terms of the other kinds (canary + stable =
// replicas): the surplus stable pods of a surge canary are not counted.

// AnnotationPausedByRollout is set on a Deployment the Rollout paused; its
// value is the Rollout's name. A Deployment paused without it was paused by
// its user, and deleting the Rollout leaves it paused.
const AnnotationPausedByRollout = "rollouts.drover.dev/paused-by-rollout"

// The Deployment controller's ReplicaSet annotations
// (k8s.io/kubernetes/pkg/controller/deployment/util).
const (
	annotationRevision        = "deployment.kubernetes.io/revision"
	annotationDesiredReplicas = "deployment.kubernetes.io/desired-replicas"
	annotationMaxReplicas     = "deployment.kubernetes.io/max-replicas"
)

// hashLabel is the pod label carrying a Deployment's revision.
const hashLabel = appsv1.DefaultDeploymentUniqueLabelKey

// replicaSets are a Deployment's ReplicaSets: owned are the ones the
// Deployment controls, canary the ones its Rollout controls, handed the
// orphans that run the Deployment's template (handed over by the Rollout,
// about to be adopted by the Deployment). They are the cache's objects:
// read only.
type replicaSets struct {
	owned, canary, handed []*appsv1.ReplicaSet
}

// getDeployment reads a Deployment and the ReplicaSets its selector
// matches.
func getDeployment(ctx context.Context, c client.Reader, key types.NamespacedName) (*Workload, error) {
	var d appsv1.Deployment
	if err := c.Get(ctx, key, &d); err != nil {
		return nil, fmt.Errorf("reading Deployment %s: %w", key, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("deployment %s: selector: %w", key, err)
	}
	var list appsv1.ReplicaSetList
	if err := c.List(ctx, &list, client.InNamespace(key.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, fmt.Errorf("listing the ReplicaSets of Deployment %s: %w", key, err)
	}
	return fromDeployment(&d, list.Items), nil
}

// fromDeployment reads a Deployment and its namespace's ReplicaSets (those
// of other owners are ignored).
func fromDeployment(d *appsv1.Deployment, all []appsv1.ReplicaSet) *Workload {
	w := &Workload{
		Kind:          KindDeployment,
		Object:        d,
		Replicas:      ptr.Deref(d.Spec.Replicas, 1),
		RevisionLabel: hashLabel,
		Template:      &d.Spec.Template,
	}
	if d.Spec.Selector != nil {
		w.PodLabels = d.Spec.Selector.MatchLabels
	}
	w.readControl()
	rollout := ""
	if w.Control != nil {
		rollout = w.Control.Rollout
	}
	rs := &replicaSets{}
	for i := range all {
		r := &all[i]
		switch ref := metav1.GetControllerOf(r); {
		case ref == nil:
			if r.DeletionTimestamp == nil && hashOf(r) != "" && equalIgnoreHash(&r.Spec.Template, &d.Spec.Template) {
				rs.handed = append(rs.handed, r)
			}
		case ref.UID == d.UID:
			rs.owned = append(rs.owned, r)
		case isRollout(ref) && (rollout == "" || ref.Name == rollout) && hashOf(r) != "":
			rs.canary = append(rs.canary, r)
		}
	}
	w.replicaSets = rs
	w.CurrentRevision = rs.current()
	w.UpdateRevision = rs.update(d)
	w.Counts = rs.counts(w)
	// Before its first ReplicaSet a Deployment has no current revision: the
	// Deployment controller is about to create it (the Rollout pauses the
	// Deployment only once it exists).
	w.CaughtUp = d.Status.ObservedGeneration == d.Generation && w.CurrentRevision != "" && rs.observed()
	return w
}

func isRollout(ref *metav1.OwnerReference) bool {
	return ref.Kind == "Rollout" && ref.APIVersion == rolloutsv1alpha1.GroupVersion.String()
}

// hashOf is a ReplicaSet's revision: the pod-template-hash of its pods.
func hashOf(r *appsv1.ReplicaSet) string {
	if h := r.Spec.Template.Labels[hashLabel]; h != "" {
		return h
	}
	return r.Labels[hashLabel]
}

func revisionOf(r *appsv1.ReplicaSet) int64 {
	n, _ := strconv.ParseInt(r.Annotations[annotationRevision], 10, 64)
	return n
}

// current is the revision of the Deployment's active ReplicaSet: the one
// with pods and the highest revision number (without any pods: the highest
// revision number).
func (s *replicaSets) current() string {
	var best *appsv1.ReplicaSet
	active := func(r *appsv1.ReplicaSet) bool { return ptr.Deref(r.Spec.Replicas, 0) > 0 }
	for _, r := range s.owned {
		switch {
		case best == nil:
		case active(r) != active(best):
			if !active(r) {
				continue
			}
		case revisionOf(r) != revisionOf(best):
			if revisionOf(r) < revisionOf(best) {
				continue
			}
		case !best.CreationTimestamp.Before(&r.CreationTimestamp):
			continue
		}
		best = r
	}
	if best == nil {
		return ""
	}
	return hashOf(best)
}

// update is the revision of the Deployment's template: the hash of a
// ReplicaSet running it (the Deployment's first, the oldest first, as the
// Deployment controller picks its new ReplicaSet), else a hash of the
// template computed as the Deployment controller does.
func (s *replicaSets) update(d *appsv1.Deployment) string {
	for _, group := range [][]*appsv1.ReplicaSet{s.owned, s.canary} {
		sorted := slices.Clone(group)
		slices.SortStableFunc(sorted, func(a, b *appsv1.ReplicaSet) int {
			return a.CreationTimestamp.Compare(b.CreationTimestamp.Time)
		})
		for _, r := range sorted {
			if h := hashOf(r); h != "" && equalIgnoreHash(&r.Spec.Template, &d.Spec.Template) {
				return h
			}
		}
	}
	return TemplateHash(&d.Spec.Template, d.Status.CollisionCount)
}

// counts are the Deployment's effective pods. Updated are the pods at the
// update revision (the canary ReplicaSet's, handed over or not, and the
// Deployment's own). The Deployment's other pods count up to the number
// the control gives the stable revision (none once the update revision is
// the stable one), since the Deployment keeps its stable ReplicaSet at
// full size beside a canary, and scales it to 0 only once it has adopted
// the canary: the plan then sees canary + stable = replicas as with the
// other kinds. Pods of the Rollout's ReplicaSets at other revisions (a
// replaced canary) count in full, until they are gone.
func (s *replicaSets) counts(w *Workload) Counts {
	update := w.UpdateRevision
	var c Counts
	var old, oldReady, stray, strayReady int32
	for _, r := range s.handed {
		if hashOf(r) == update {
			c.Updated += r.Status.Replicas
			c.UpdatedReady += r.Status.ReadyReplicas
		}
	}
	for _, r := range s.owned {
		if hashOf(r) == update {
			c.Updated += r.Status.Replicas
			c.UpdatedReady += r.Status.ReadyReplicas
		} else {
			old += r.Status.Replicas
			oldReady += r.Status.ReadyReplicas
		}
	}
	for _, r := range s.canary {
		if hashOf(r) == update {
			c.Updated += r.Status.Replicas
			c.UpdatedReady += r.Status.ReadyReplicas
		} else {
			stray += r.Status.Replicas
			strayReady += r.Status.ReadyReplicas
		}
	}
	var keep int32
	switch ctl := w.Control; {
	case ctl != nil && w.ControlErr == nil:
		_, keep = ctl.Targets(w.Replicas, update)
	case update != w.CurrentRevision:
		keep = max(0, w.Replicas-min(c.Updated, w.Replicas))
	}
	c.Replicas = c.Updated + min(old, keep) + stray
	c.Ready = c.UpdatedReady + min(oldReady, keep) + strayReady
	return c
}

// observed reports whether every ReplicaSet's status describes its spec.
func (s *replicaSets) observed() bool {
	for _, group := range [][]*appsv1.ReplicaSet{s.owned, s.canary, s.handed} {
		for _, r := range group {
			if r.Status.ObservedGeneration < r.Generation {
				return false
			}
		}
	}
	return true
}

// equalIgnoreHash compares pod templates without their pod-template-hash
// label, as the Deployment controller finds its new ReplicaSet.
func equalIgnoreHash(a, b *corev1.PodTemplateSpec) bool {
	a, b = a.DeepCopy(), b.DeepCopy()
	delete(a.Labels, hashLabel)
	delete(b.Labels, hashLabel)
	return equality.Semantic.DeepEqual(a, b)
}

// TemplateHash is the pod-template-hash of a Deployment's template, computed
// as the Deployment controller does (fnv32a of a deterministic dump, plus the
// collision count), so that the canary ReplicaSet bears the name the
// Deployment would give it.
func TemplateHash(t *corev1.PodTemplateSpec, collisionCount *int32) string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%v", dump.ForHash(*t))
	if collisionCount != nil {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint32(b, uint32(*collisionCount))
		_, _ = h.Write(b)
	}
	return rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// replicaSetName is the name the Deployment controller gives a ReplicaSet.
func replicaSetName(deployment, hash string) string {
	if n := validation.DNS1123SubdomainMaxLength - 1 - len(hash); len(deployment) > n && n > 0 {
		deployment = deployment[:n]
	}
	return deployment + "-" + hash
}

// maxSurge is the Deployment's resolved maxSurge (0 unless RollingUpdate).
func maxSurge(d *appsv1.Deployment) int32 {
	ru := d.Spec.Strategy.RollingUpdate
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil {
		return 0
	}
	surge, err := intstr.GetScaledValueFromIntOrPercent(intstr.ValueOrDefault(ru.MaxSurge, intstr.FromInt32(0)), int(ptr.Deref(d.Spec.Replicas, 1)), true)
	if err != nil {
		return 0
	}
	return int32(surge)
}

// saturated: the ReplicaSet runs every replica of the Deployment, available,
// and says so in the annotation the Deployment controller reads
// (deploymentutil.IsSaturated): a Deployment that adopts it scales its
// other ReplicaSets to 0.
func saturated(w *Workload, r *appsv1.ReplicaSet) bool {
	return ptr.Deref(r.Spec.Replicas, 0) == w.Replicas &&
		r.Annotations[annotationDesiredReplicas] == strconv.Itoa(int(w.Replicas)) &&
		r.Status.ObservedGeneration >= r.Generation && r.Status.AvailableReplicas == w.Replicas
}

// finishing: the control is steady on the update revision, and the
// Deployment's own ReplicaSet at that revision is not saturated while older
// ones still have pods (a rolling update of the Deployment interrupted by
// the pause, or an adoption the Deployment could not complete). The paused
// Deployment would stay so: it is unpaused until it has finished moving its
// pods to the stable revision.
func finishing(w *Workload, ctl *appsv1alpha1.RolloutControl) bool {
	update := w.UpdateRevision
	if update != ctl.StableRevision {
		return false
	}
	for _, r := range append(slices.Clone(w.replicaSets.canary), w.replicaSets.handed...) {
		if hashOf(r) == update && r.DeletionTimestamp == nil {
			return false // handing over under way
		}
	}
	var cur *appsv1.ReplicaSet
	oldActive := false
	for _, r := range w.replicaSets.owned {
		if hashOf(r) == update {
			cur = r
		} else if ptr.Deref(r.Spec.Replicas, 0) > 0 {
			oldActive = true
		}
	}
	return cur != nil && oldActive && !saturated(w, cur)
}

// setDeploymentControl writes the control on a Deployment and makes it
// true: the Deployment paused (and the control annotation), then the
// Rollout's ReplicaSet at the update revision running the canary's pods,
// handed to the Deployment once the revision is stable, and the Rollout's
// other ReplicaSets scaled to 0 and deleted.
func setDeploymentControl(ctx context.Context, c client.Client, w *Workload, ctl *appsv1alpha1.RolloutControl) error {
	if ctl == nil {
		return setControlAnnotation(ctx, c, w, nil)
	}
	if err := steerDeployment(ctx, c, w, ctl, !finishing(w, ctl)); err != nil {
		return err
	}
	update := w.UpdateRevision
	var errs []error
	var cur *appsv1.ReplicaSet // the Rollout's ReplicaSet at the update revision
	busy := false              // one at that revision is being deleted
	for _, r := range w.replicaSets.canary {
		if hashOf(r) == update {
			if r.DeletionTimestamp != nil {
				busy = true
				continue
			}
			if cur == nil {
				cur = r
				continue
			}
		}
		errs = append(errs, retire(ctx, c, r))
	}
	switch update {
	case ctl.StableRevision:
		if cur != nil {
			errs = append(errs, handOver(ctx, c, w, cur))
		}
	case ctl.CanaryRevision:
		want := ctl.CanaryReplicas
		switch {
		case want == 0 && cur != nil:
			errs = append(errs, retire(ctx, c, cur))
		case want == 0 || (busy && cur == nil):
			// Nothing to run, or wait until the old one is gone.
		case cur != nil:
			errs = append(errs, scale(ctx, c, w, cur, want))
		default:
			errs = append(errs, startCanary(ctx, c, w, ctl.Rollout, want))
		}
	default:
		// A revision the Rollout has not released yet gets no pods.
		if cur != nil {
			errs = append(errs, retire(ctx, c, cur))
		}
	}
	return errors.Join(errs...)
}

// steerDeployment writes the control annotation and keeps the Deployment
// paused (recording that the Rollout paused it), or unpauses a Deployment
// the Rollout paused while it finishes its own rollout.
func steerDeployment(ctx context.Context, c client.Client, w *Workload, ctl *appsv1alpha1.RolloutControl, pause bool) error {
	d := w.Object.(*appsv1.Deployment)
	annotations := map[string]any{}
	if s := ctl.String(); d.Annotations[appsv1alpha1.AnnotationRolloutControl] != s {
		annotations[appsv1alpha1.AnnotationRolloutControl] = s
	}
	pausedBy := d.Annotations[AnnotationPausedByRollout]
	spec := map[string]any{}
	switch {
	case pause && !d.Spec.Paused:
		spec["paused"] = true
		if pausedBy != ctl.Rollout {
			annotations[AnnotationPausedByRollout] = ctl.Rollout
		}
	case !pause && d.Spec.Paused && pausedBy == ctl.Rollout:
		spec["paused"] = false
	}
	return patchDeployment(ctx, c, d, annotations, spec)
}

func patchDeployment(ctx context.Context, c client.Client, d *appsv1.Deployment, annotations, spec map[string]any) error {
	if len(annotations) == 0 && len(spec) == 0 {
		return nil
	}
	p := map[string]any{}
	if len(annotations) > 0 {
		p["metadata"] = map[string]any{"annotations": annotations}
	}
	if len(spec) > 0 {
		p["spec"] = spec
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encoding the Deployment patch: %w", err)
	}
	if err := c.Patch(ctx, d.DeepCopy(), client.RawPatch(types.MergePatchType, raw)); err != nil {
		return fmt.Errorf("steering Deployment %s: %w", d.Name, err)
	}
	return nil
}

// replicaAnnotations are the annotations the Deployment controller keeps on
// its ReplicaSets' sizes (SetReplicasAnnotations).
func replicaAnnotations(w *Workload) map[string]string {
	d := w.Object.(*appsv1.Deployment)
	return map[string]string{
		annotationDesiredReplicas: strconv.Itoa(int(w.Replicas)),
		annotationMaxReplicas:     strconv.Itoa(int(w.Replicas + maxSurge(d))),
	}
}

// startCanary runs the canary's pods in a new ReplicaSet the Rollout
// controls, or in the Deployment's ReplicaSet of that revision (one kept
// in its history, a template set back to an earlier revision), taken over
// from the Deployment.
func startCanary(ctx context.Context, c client.Client, w *Workload, rollout string, want int32) error {
	d := w.Object.(*appsv1.Deployment)
	owner, err := rolloutOwner(ctx, c, d.Namespace, rollout)
	if err != nil {
		return err
	}
	update := w.UpdateRevision
	for _, r := range w.replicaSets.owned {
		i := slices.IndexFunc(r.OwnerReferences, func(ref metav1.OwnerReference) bool { return ref.UID == d.UID })
		if hashOf(r) != update || r.DeletionTimestamp != nil || i < 0 {
			continue
		}
		ref := fmt.Sprintf("/metadata/ownerReferences/%d", i)
		ops := []jsonOp{{"test", ref + "/uid", d.UID}, {"replace", ref, owner},
			{"add", "/spec/replicas", want}, {"add", "/spec/minReadySeconds", d.Spec.MinReadySeconds}}
		if r.Annotations == nil {
			ops = append(ops, jsonOp{"add", "/metadata/annotations", replicaAnnotations(w)})
		} else {
			for k, v := range replicaAnnotations(w) {
				ops = append(ops, jsonOp{"add", "/metadata/annotations/" + escapeJSONPointer(k), v})
			}
		}
		if err := jsonPatch(ctx, c, r, ops); err != nil {
			return fmt.Errorf("taking over ReplicaSet %s for the canary: %w", r.Name, err)
		}
		return nil
	}
	template := d.Spec.Template.DeepCopy()
	template.Labels = cloneWith(template.Labels, hashLabel, update)
	selector := d.Spec.Selector.DeepCopy()
	if selector == nil {
		selector = &metav1.LabelSelector{}
	}
	selector.MatchLabels = cloneWith(selector.MatchLabels, hashLabel, update)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:            replicaSetName(d.Name, update),
			Namespace:       d.Namespace,
			Labels:          maps.Clone(template.Labels),
			Annotations:     replicaAnnotations(w),
			OwnerReferences: []metav1.OwnerReference{owner},
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        ptr.To(want),
			MinReadySeconds: d.Spec.MinReadySeconds,
			Selector:        selector,
			Template:        *template,
		},
	}
	err = c.Create(ctx, rs)
	if apierrors.IsAlreadyExists(err) {
		// Created by an earlier reconcile the cache has not seen yet (its
		// event brings the Rollout back), or a ReplicaSet that is not the
		// canary's took the name.
		var other appsv1.ReplicaSet
		if getErr := c.Get(ctx, client.ObjectKeyFromObject(rs), &other); apierrors.IsNotFound(getErr) {
			return nil
		}
		return fmt.Errorf("creating the canary ReplicaSet %s: a ReplicaSet of that name exists with another template or owner: %w", rs.Name, err)
	}
	if err != nil {
		return fmt.Errorf("creating the canary ReplicaSet %s: %w", rs.Name, err)
	}
	return nil
}

// jsonOp is a JSON patch (RFC 6902) operation.
type jsonOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

func escapeJSONPointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// jsonPatch applies ops to a ReplicaSet. They start with a test of the
// owner reference they change: a failed test means the cache was behind
// (the change was made, or another owner took the ReplicaSet), and the
// ReplicaSet's next event decides again.
func jsonPatch(ctx context.Context, c client.Client, r *appsv1.ReplicaSet, ops []jsonOp) error {
	raw, err := json.Marshal(ops)
	if err != nil {
		return fmt.Errorf("encoding the patch: %w", err)
	}
	err = c.Patch(ctx, r.DeepCopy(), client.RawPatch(types.JSONPatchType, raw))
	if apierrors.IsInvalid(err) || apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func cloneWith(m map[string]string, k, v string) map[string]string {
	out := maps.Clone(m)
	if out == nil {
		out = map[string]string{}
	}
	out[k] = v
	return out
}

// rolloutOwner is the controller reference of the Rollout (read from c).
func rolloutOwner(ctx context.Context, c client.Reader, namespace, name string) (metav1.OwnerReference, error) {
	var ro rolloutsv1alpha1.Rollout
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &ro); err != nil {
		return metav1.OwnerReference{}, fmt.Errorf("reading rollout %s: %w", name, err)
	}
	return metav1.OwnerReference{APIVersion: rolloutsv1alpha1.GroupVersion.String(), Kind: "Rollout", Name: ro.Name, UID: ro.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}, nil
}

// scale sets the size of the Rollout's ReplicaSet, with the Deployment's
// minReadySeconds and the Deployment controller's size annotations.
func scale(ctx context.Context, c client.Client, w *Workload, r *appsv1.ReplicaSet, want int32) error {
	d := w.Object.(*appsv1.Deployment)
	ann := replicaAnnotations(w)
	upToDate := ptr.Deref(r.Spec.Replicas, 1) == want && r.Spec.MinReadySeconds == d.Spec.MinReadySeconds
	for k, v := range ann {
		upToDate = upToDate && r.Annotations[k] == v
	}
	if upToDate {
		return nil
	}
	patch := map[string]any{
		"metadata": map[string]any{"annotations": ann},
		"spec":     map[string]any{"replicas": want, "minReadySeconds": d.Spec.MinReadySeconds},
	}
	raw, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("encoding the ReplicaSet patch: %w", err)
	}
	if err := c.Patch(ctx, r.DeepCopy(), client.RawPatch(types.MergePatchType, raw)); err != nil {
		return fmt.Errorf("scaling the canary ReplicaSet %s to %d: %w", r.Name, want, err)
	}
	return nil
}

// retire scales a ReplicaSet of the Rollout to 0 and deletes it once its
// pods are gone.
func retire(ctx context.Context, c client.Client, r *appsv1.ReplicaSet) error {
	switch {
	case r.DeletionTimestamp != nil:
		return nil
	case ptr.Deref(r.Spec.Replicas, 1) != 0:
		raw := []byte(`{"spec":{"replicas":0}}`)
		if err := c.Patch(ctx, r.DeepCopy(), client.RawPatch(types.MergePatchType, raw)); err != nil {
			return fmt.Errorf("scaling ReplicaSet %s to 0: %w", r.Name, err)
		}
		return nil
	case r.Status.ObservedGeneration < r.Generation || r.Status.Replicas > 0:
		return nil // its status event comes back
	}
	return deleteReplicaSet(ctx, c, r)
}

func deleteReplicaSet(ctx context.Context, c client.Client, r *appsv1.ReplicaSet) error {
	if err := c.Delete(ctx, r.DeepCopy(), client.PropagationPolicy(metav1.DeletePropagationBackground),
		client.Preconditions{UID: &r.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting ReplicaSet %s: %w", r.Name, err)
	}
	return nil
}

// handOver gives the Rollout's ReplicaSet of the stable revision to the
// Deployment: grown to every replica, then, once they are all available,
// orphaned, for the Deployment to adopt it.
func handOver(ctx context.Context, c client.Client, w *Workload, r *appsv1.ReplicaSet) error {
	if err := scale(ctx, c, w, r, w.Replicas); err != nil {
		return err
	}
	if !saturated(w, r) {
		return nil // its status event comes back
	}
	return orphan(ctx, c, r)
}

// orphan removes the Rollout's controller reference from a ReplicaSet.
func orphan(ctx context.Context, c client.Client, r *appsv1.ReplicaSet) error {
	i := slices.IndexFunc(r.OwnerReferences, func(ref metav1.OwnerReference) bool { return isRollout(&ref) })
	if i < 0 {
		return nil
	}
	ref := fmt.Sprintf("/metadata/ownerReferences/%d", i)
	if err := jsonPatch(ctx, c, r, []jsonOp{{"test", ref + "/uid", r.OwnerReferences[i].UID}, {"remove", ref, nil}}); err != nil {
		return fmt.Errorf("handing ReplicaSet %s to the Deployment: %w", r.Name, err)
	}
	return nil
}

// releaseDeployment hands a Deployment back when Rollout rollout is
// deleted: its ReplicaSet of the update revision is handed to the
// Deployment if it runs every replica (as at the end of a release),
// deleted otherwise (the Deployment's own rolling update takes over); the
// control annotation is removed, and the Deployment unpaused if the Rollout
// paused it.
func releaseDeployment(ctx context.Context, c client.Client, w *Workload, rollout string) error {
	d := w.Object.(*appsv1.Deployment)
	var errs []error
	for _, r := range w.replicaSets.canary {
		if ref := metav1.GetControllerOf(r); ref.Name != rollout || r.DeletionTimestamp != nil {
			continue
		}
		if hashOf(r) == w.UpdateRevision && saturated(w, r) {
			errs = append(errs, orphan(ctx, c, r))
		} else {
			errs = append(errs, deleteReplicaSet(ctx, c, r))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err // the Deployment stays paused until its ReplicaSets are dealt with
	}
	annotations, spec := map[string]any{}, map[string]any{}
	if w.Control != nil && w.Control.Rollout == rollout {
		annotations[appsv1alpha1.AnnotationRolloutControl] = nil
	}
	if by, ok := d.Annotations[AnnotationPausedByRollout]; ok && by == rollout {
		annotations[AnnotationPausedByRollout] = nil
		if d.Spec.Paused {
			spec["paused"] = false
		}
	}
	return patchDeployment(ctx, c, d, annotations, spec)
}
