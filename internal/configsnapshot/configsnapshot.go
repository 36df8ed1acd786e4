// Package configsnapshot finds the ConfigMaps and Secrets a pod template
// references, renames those references to immutable snapshots, names the
// snapshots by their content and builds them, and decides which snapshots
// are no longer used. A Rollout with spec.trackConfigs uses it: a changed
// config becomes a new snapshot name, the workload's revision is computed
// from the template with references renamed (RolloutControl.Configs), and
// so a config change is released like a template change.
//
// Everything here is pure: no API calls.
package configsnapshot

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

// Kinds of referenced configs.
const (
	KindConfigMap = appsv1alpha1.ConfigKindConfigMap
	KindSecret    = appsv1alpha1.ConfigKindSecret
)

// Ref is a ConfigMap or Secret a template references.
type Ref struct {
	// Kind is KindConfigMap or KindSecret.
	Kind string
	Name string
	// Optional: every reference to it is marked optional, so pods start
	// without it.
	Optional bool
}

// Key is the ref's key in RolloutControl.Configs.
func (r Ref) Key() string { return appsv1alpha1.ConfigKey(r.Kind, r.Name) }

// References returns every ConfigMap and Secret t references, sorted by
// kind and name, each once: configMap and secret volumes, the sources of
// projected volumes, and, in containers and init containers, env
// valueFrom configMapKeyRef / secretKeyRef and envFrom. Image pull secrets,
// service account tokens and the secrets of storage drivers (CSI, iSCSI...)
// are not pod content and are left out.
func References(t *corev1.PodTemplateSpec) []Ref {
	if t == nil {
		return nil
	}
	// byKey holds whether every reference seen so far is optional.
	byKey := map[Ref]bool{}
	add := func(kind, name string, optional *bool) {
		if name == "" {
			return
		}
		k := Ref{Kind: kind, Name: name}
		opt, seen := byKey[k]
		byKey[k] = ptr.Deref(optional, false) && (!seen || opt)
	}
	visit(&t.Spec, func(kind string, name *string, optional *bool) { add(kind, *name, optional) })
	out := make([]Ref, 0, len(byKey))
	for k, opt := range byKey {
		k.Optional = opt
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b Ref) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name)) })
	return out
}

// visit calls fn for every config reference of spec, with a pointer to the
// name (so Rewrite can rename it) and the reference's optional flag.
func visit(spec *corev1.PodSpec, fn func(kind string, name *string, optional *bool)) {
	for i := range spec.Volumes {
		v := &spec.Volumes[i].VolumeSource
		if v.ConfigMap != nil {
			fn(KindConfigMap, &v.ConfigMap.Name, v.ConfigMap.Optional)
		}
		if v.Secret != nil {
			fn(KindSecret, &v.Secret.SecretName, v.Secret.Optional)
		}
		if v.Projected != nil {
			for j := range v.Projected.Sources {
				s := &v.Projected.Sources[j]
				if s.ConfigMap != nil {
					fn(KindConfigMap, &s.ConfigMap.Name, s.ConfigMap.Optional)
				}
				if s.Secret != nil {
					fn(KindSecret, &s.Secret.Name, s.Secret.Optional)
				}
			}
		}
	}
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			c := &cs[i]
			for j := range c.Env {
				vf := c.Env[j].ValueFrom
				if vf == nil {
					continue
				}
				if vf.ConfigMapKeyRef != nil {
					fn(KindConfigMap, &vf.ConfigMapKeyRef.Name, vf.ConfigMapKeyRef.Optional)
				}
				if vf.SecretKeyRef != nil {
					fn(KindSecret, &vf.SecretKeyRef.Name, vf.SecretKeyRef.Optional)
				}
			}
			for j := range c.EnvFrom {
				ef := &c.EnvFrom[j]
				if ef.ConfigMapRef != nil {
					fn(KindConfigMap, &ef.ConfigMapRef.Name, ef.ConfigMapRef.Optional)
				}
				if ef.SecretRef != nil {
					fn(KindSecret, &ef.SecretRef.Name, ef.SecretRef.Optional)
				}
			}
		}
	}
}

// Rewrite returns t with every reference that configs names (keys
// appsv1alpha1.ConfigKey) renamed to its snapshot: a deep copy when there
// is anything to rename, t itself when configs is empty. References
// configs does not name are left alone.
func Rewrite(t *corev1.PodTemplateSpec, configs map[string]string) *corev1.PodTemplateSpec {
	if len(configs) == 0 || t == nil {
		return t
	}
	out := t.DeepCopy()
	visit(&out.Spec, func(kind string, name *string, _ *bool) {
		if snap, ok := configs[appsv1alpha1.ConfigKey(kind, *name)]; ok {
			*name = snap
		}
	})
	return out
}

// hashLen is the length of the content hash in a snapshot's name.
const hashLen = 10

// SnapshotName is the name of the snapshot of config name with content
// (ConfigMapContent, SecretContent) that Rollout rollout makes:
// <name>-<10 hex digits of a SHA-256 of the Rollout's name and the content>.
// The same content gives the same name, so an existing snapshot is reused
// and a config set back to earlier content maps to the earlier snapshot
// (its revision, its pods). The Rollout's name keeps two Rollouts that
// track the same config from sharing (and pruning) each other's snapshots.
// name is shortened, when needed, to keep the result a valid object name
// (a DNS subdomain of at most 253 characters).
func SnapshotName(name, rollout string, content map[string][]byte) string {
	h := sha256.New()
	writeField(h, []byte(rollout))
	keys := make([]string, 0, len(content))
	for k := range content {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		writeField(h, []byte(k))
		writeField(h, content[k])
	}
	sum := hex.EncodeToString(h.Sum(nil))[:hashLen]
	return trimName(name, validation.DNS1123SubdomainMaxLength-hashLen-1) + "-" + sum
}

// writeField writes b length-prefixed, so that no two contents share an
// encoding.
func writeField(h interface{ Write([]byte) (int, error) }, b []byte) {
	var n [binary.MaxVarintLen64]byte
	_, _ = h.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
	_, _ = h.Write(b)
}

// trimName shortens a DNS subdomain to at most n characters, ending with
// an alphanumeric character (a label may not end with '-' or '.').
func trimName(name string, n int) string {
	if len(name) <= n {
		return name
	}
	return strings.TrimRight(name[:n], "-.")
}

// ConfigMapContent is what a ConfigMap's snapshot copies and its name
// hashes: data and binaryData.
func ConfigMapContent(cm *corev1.ConfigMap) map[string][]byte {
	out := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		out["data/"+k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		out["binaryData/"+k] = v
	}
	return out
}

// SecretContent is what a Secret's snapshot copies and its name hashes:
// data and type (the API server has already folded stringData into data).
func SecretContent(s *corev1.Secret) map[string][]byte {
	out := make(map[string][]byte, len(s.Data)+1)
	for k, v := range s.Data {
		out["data/"+k] = v
	}
	out["type"] = []byte(s.Type)
	return out
}

// snapshotMeta is the metadata of the snapshot of config name: labels
// LabelSnapshotOf and LabelRollout, the annotation LabelSnapshotOf with
// the whole name, and an owner reference to the Rollout (not a controller
// reference), so deleting the Rollout garbage-collects its snapshots.
func snapshotMeta(name, snapshot string, rollout *rolloutsv1alpha1.Rollout) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:      snapshot,
		Namespace: rollout.Namespace,
		Labels: map[string]string{
			rolloutsv1alpha1.LabelSnapshotOf: LabelValue(name),
			rolloutsv1alpha1.LabelRollout:    LabelValue(rollout.Name),
		},
		Annotations: map[string]string{rolloutsv1alpha1.LabelSnapshotOf: name},
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion: rolloutsv1alpha1.GroupVersion.String(),
			Kind:       "Rollout",
			Name:       rollout.Name,
			UID:        rollout.UID,
		}},
	}
}

// ConfigMapSnapshot builds (without creating) the snapshot of cm that
// rollout makes: named SnapshotName, a copy of data and binaryData,
// immutable, labelled and owned by the Rollout.
func ConfigMapSnapshot(cm *corev1.ConfigMap, rollout *rolloutsv1alpha1.Rollout) *corev1.ConfigMap {
	name := SnapshotName(cm.Name, rollout.Name, ConfigMapContent(cm))
	out := &corev1.ConfigMap{
		ObjectMeta: snapshotMeta(cm.Name, name, rollout),
		Immutable:  ptr.To(true),
	}
	if cm.Data != nil {
		out.Data = make(map[string]string, len(cm.Data))
		for k, v := range cm.Data {
			out.Data[k] = v
		}
	}
	if cm.BinaryData != nil {
		out.BinaryData = make(map[string][]byte, len(cm.BinaryData))
		for k, v := range cm.BinaryData {
			out.BinaryData[k] = slices.Clone(v)
		}
	}
	return out
}

// SecretSnapshot builds (without creating) the snapshot of s that rollout
// makes: named SnapshotName, a copy of data and type, immutable, labelled
// and owned by the Rollout.
func SecretSnapshot(s *corev1.Secret, rollout *rolloutsv1alpha1.Rollout) *corev1.Secret {
	name := SnapshotName(s.Name, rollout.Name, SecretContent(s))
	out := &corev1.Secret{
		ObjectMeta: snapshotMeta(s.Name, name, rollout),
		Immutable:  ptr.To(true),
		Type:       s.Type,
	}
	if s.Data != nil {
		out.Data = make(map[string][]byte, len(s.Data))
		for k, v := range s.Data {
			out.Data[k] = slices.Clone(v)
		}
	}
	return out
}

// IsSnapshot reports whether o is a snapshot a Rollout made (it carries
// LabelSnapshotOf).
func IsSnapshot(o metav1.Object) bool {
	_, ok := o.GetLabels()[rolloutsv1alpha1.LabelSnapshotOf]
	return ok
}

// OwnedBy reports whether o has an owner reference to rollout.
func OwnedBy(o metav1.Object, rollout *rolloutsv1alpha1.Rollout) bool {
	for _, ref := range o.GetOwnerReferences() {
		if ref.UID == rollout.UID && ref.Kind == "Rollout" {
			return true
		}
	}
	return false
}

// LabelValue is s when it is a valid label value, else s shortened and
// suffixed with a hash of it (a name may be longer than the 63 characters
// of a label value).
func LabelValue(s string) string {
	if len(validation.IsValidLabelValue(s)) == 0 {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return trimName(s, validation.LabelValueMaxLength-hashLen-1) + "-" + hex.EncodeToString(sum[:])[:hashLen]
}

// Unused returns the snapshots (Ref by kind and name) that no template
// and no configs map references: the snapshots a Rollout may delete.
// templates are the pod templates of the workload's revisions (its
// history is pruned by revisionHistoryLimit, and a revision a pod runs is
// never pruned, so a snapshot no revision references runs in no pod) and
// its current template; configs are the RolloutControl.Configs in use and
// about to be written (their revisions may not exist yet).
func Unused(snapshots []Ref, templates []*corev1.PodTemplateSpec, configs ...map[string]string) []Ref {
	used := map[string]bool{}
	for _, t := range templates {
		for _, r := range References(t) {
			used[r.Key()] = true
		}
	}
	for _, c := range configs {
		for key, snap := range c {
			if kind, _, ok := appsv1alpha1.ParseConfigKey(key); ok {
				used[appsv1alpha1.ConfigKey(kind, snap)] = true
			}
		}
	}
	var out []Ref
	for _, s := range snapshots {
		if !used[s.Key()] {
			out = append(out, s)
		}
	}
	return out
}
