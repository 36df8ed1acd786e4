// Package injection computes what a SidecarSet adds to a pod when the pod
// is created, and the record of it that the pod keeps (annotation
// apps.drover.dev/sidecarset-hash): which SidecarSets injected it, at which
// revision. It is pure: the admission webhook (internal/webhook) calls it
// on pod creation and the SidecarSet controller reads its records to
// decide which pods to upgrade.
package injection

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

// Record is what a pod remembers of one SidecarSet's injection.
type Record struct {
	// Hash is the SidecarSet revision the pod's sidecars run (see Revision).
	Hash string `json:"hash"`
	// HashWithoutImage is the same revision with every image left out: a
	// pod whose HashWithoutImage is the SidecarSet's can be upgraded in
	// place (only images changed).
	HashWithoutImage string `json:"hashWithoutImage"`
	// HotUpgrade maps each HotUpgrade sidecar to its working slot
	// (<name>-1 or <name>-2); the other slot runs the empty image.
	HotUpgrade map[string]string `json:"hotUpgrade,omitempty"`
}

// Records is the annotation's value: records keyed by SidecarSet name.
type Records map[string]Record

// RecordsOf parses a pod's records (empty when it has none or the
// annotation does not parse).
func RecordsOf(pod *corev1.Pod) Records {
	raw, ok := pod.Annotations[appsv1alpha1.AnnotationSidecarSetHash]
	if !ok {
		return Records{}
	}
	return ParseRecords(raw)
}

// ParseRecords decodes the annotation's value.
func ParseRecords(raw string) Records {
	r := Records{}
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return Records{}
	}
	return r
}

// Encode returns the annotation's value.
func (r Records) Encode() string {
	b, _ := json.Marshal(r) // maps of strings always encode
	return string(b)
}

// Names returns the SidecarSet names recorded, sorted.
func (r Records) Names() []string {
	out := make([]string, 0, len(r))
	for k := range r {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Revisions of a SidecarSet spec.
type Revisions struct {
	// Hash covers everything injection puts into a pod.
	Hash string
	// WithoutImage is Hash with the images (and HotUpgrade empty images)
	// left out.
	WithoutImage string
}

// Revision hashes what a SidecarSet injects: containers, init containers,
// volumes and image pull secrets, with the per-container inject, share,
// env and upgrade types. Rollout tuning (updateStrategy, a container's
// upgradeStrategy.upgrade) and selectors are left out, so changing them
// makes no pod out of date.
func Revision(spec *appsv1alpha1.SidecarSetSpec) Revisions {
	type hashed struct {
		Containers       []appsv1alpha1.SidecarContainer `json:"containers,omitempty"`
		InitContainers   []appsv1alpha1.SidecarContainer `json:"initContainers,omitempty"`
		Volumes          []corev1.Volume                 `json:"volumes,omitempty"`
		ImagePullSecrets []corev1.LocalObjectReference   `json:"imagePullSecrets,omitempty"`
	}
	strip := func(in []appsv1alpha1.SidecarContainer, images bool) []appsv1alpha1.SidecarContainer {
		out := make([]appsv1alpha1.SidecarContainer, len(in))
		for i := range in {
			c := *in[i].DeepCopy()
			// Defaults and their absence hash alike.
			if c.PodInjectPolicy == "" {
				c.PodInjectPolicy = appsv1alpha1.BeforeAppContainer
			}
			if c.ShareVolumePolicy != nil && c.ShareVolumePolicy.Type != appsv1alpha1.ShareVolumePolicyEnabled {
				c.ShareVolumePolicy = nil
			}
			if c.UpgradeStrategy != nil {
				c.UpgradeStrategy.Upgrade = nil
				if images {
					c.UpgradeStrategy.HotUpgradeEmptyImage = ""
				}
				if !IsHot(&c) && c.UpgradeStrategy.HotUpgradeEmptyImage == "" {
					c.UpgradeStrategy = nil
				}
			}
			if images {
				c.Image = ""
			}
			out[i] = c
		}
		return out
	}
	sum := func(images bool) string {
		h := hashed{
			Containers: strip(spec.Containers, images), InitContainers: strip(spec.InitContainers, images),
			Volumes: spec.Volumes, ImagePullSecrets: spec.ImagePullSecrets,
		}
		b, _ := json.Marshal(h) // API types always encode
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:])[:10]
	}
	return Revisions{Hash: sum(false), WithoutImage: sum(true)}
}

// IsHot reports whether a sidecar container upgrades with HotUpgrade.
func IsHot(c *appsv1alpha1.SidecarContainer) bool {
	return c.UpgradeStrategy != nil && c.UpgradeStrategy.Type == appsv1alpha1.HotUpgrade
}

// HotSlots returns the two container names of a HotUpgrade sidecar.
func HotSlots(name string) (string, string) { return name + "-1", name + "-2" }

// OtherSlot returns the HotUpgrade slot that is not slot.
func OtherSlot(name, slot string) string {
	a, b := HotSlots(name)
	if slot == a {
		return b
	}
	return a
}

// Matches reports whether a SidecarSet selects a pod with these labels in
// a namespace with these labels. nsLabels nil skips the namespace check
// (the caller has already done it).
func Matches(ss *appsv1alpha1.SidecarSet, podLabels, nsLabels map[string]string) (bool, error) {
	sel, err := metav1.LabelSelectorAsSelector(ss.Spec.Selector)
	if err != nil {
		return false, fmt.Errorf("parsing spec.selector of SidecarSet %s: %w", ss.Name, err)
	}
	if !sel.Matches(labels.Set(podLabels)) {
		return false, nil
	}
	if nsLabels == nil || ss.Spec.NamespaceSelector == nil {
		return true, nil
	}
	nsSel, err := metav1.LabelSelectorAsSelector(ss.Spec.NamespaceSelector)
	if err != nil {
		return false, fmt.Errorf("parsing spec.namespaceSelector of SidecarSet %s: %w", ss.Name, err)
	}
	return nsSel.Matches(labels.Set(nsLabels)), nil
}

// Inject adds ss's sidecars, volumes and pull secrets to pod (in place),
// labels the pod and records the injection. It returns false when the pod
// already carries ss's record (injection is idempotent). Containers whose
// name the pod already uses are left out: the pod's own container wins.
func Inject(pod *corev1.Pod, ss *appsv1alpha1.SidecarSet) bool {
	records := RecordsOf(pod)
	if _, done := records[ss.Name]; done {
		return false
	}
	rev := Revision(&ss.Spec)
	rec := Record{Hash: rev.Hash, HashWithoutImage: rev.WithoutImage}
	spec := &pod.Spec
	app := spec.Containers // the application containers, before injection

	taken := map[string]bool{}
	for _, c := range spec.Containers {
		taken[c.Name] = true
	}
	for _, c := range spec.InitContainers {
		taken[c.Name] = true
	}

	spec.Containers = place(ss.Spec.Containers, spec.Containers, app, false, taken)
	spec.InitContainers = place(ss.Spec.InitContainers, spec.InitContainers, app, true, taken)
	for i := range ss.Spec.Containers {
		if sc := &ss.Spec.Containers[i]; IsHot(sc) {
			if rec.HotUpgrade == nil {
				rec.HotUpgrade = map[string]string{}
			}
			first, _ := HotSlots(sc.Name)
			rec.HotUpgrade[sc.Name] = first
		}
	}

	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
	}
	for _, v := range ss.Spec.Volumes {
		if !volumes[v.Name] {
			volumes[v.Name] = true
			spec.Volumes = append(spec.Volumes, *v.DeepCopy())
		}
	}
	secrets := map[string]bool{}
	for _, s := range spec.ImagePullSecrets {
		secrets[s.Name] = true
	}
	for _, s := range ss.Spec.ImagePullSecrets {
		if !secrets[s.Name] {
			secrets[s.Name] = true
			spec.ImagePullSecrets = append(spec.ImagePullSecrets, s)
		}
	}

	records[ss.Name] = rec
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[appsv1alpha1.LabelSidecarSetInjected] = "true"
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[appsv1alpha1.AnnotationSidecarSetHash] = records.Encode()
	return true
}

// place returns the pod's containers (own) with the sidecars before or
// after them, skipping names already taken (and taking the new ones).
func place(sidecars []appsv1alpha1.SidecarContainer, own, app []corev1.Container, init bool, taken map[string]bool) []corev1.Container {
	var before, after []corev1.Container
	for i := range sidecars {
		sc := &sidecars[i]
		for _, c := range build(sc, app, init) {
			if taken[c.Name] {
				continue
			}
			taken[c.Name] = true
			if sc.PodInjectPolicy == appsv1alpha1.AfterAppContainer {
				after = append(after, c)
			} else {
				before = append(before, c)
			}
		}
	}
	return concat(before, own, after)
}

// build renders the pod containers of one sidecar: one, or the two slots
// of a HotUpgrade sidecar (the second runs the empty image).
func build(sc *appsv1alpha1.SidecarContainer, app []corev1.Container, init bool) []corev1.Container {
	c := *sc.Container.DeepCopy()
	c.Env = append(transferEnv(sc.TransferEnv, app), c.Env...)
	if sc.ShareVolumePolicy != nil && sc.ShareVolumePolicy.Type == appsv1alpha1.ShareVolumePolicyEnabled {
		c.VolumeMounts = shareVolumes(c.VolumeMounts, app)
	}
	if init || !IsHot(sc) {
		return []corev1.Container{c}
	}
	first, second := HotSlots(sc.Name)
	idle := *c.DeepCopy()
	c.Name, idle.Name = first, second
	idle.Image = sc.UpgradeStrategy.HotUpgradeEmptyImage
	return []corev1.Container{c, idle}
}

// transferEnv copies the named variables of the named application
// containers; variables or containers that do not exist are skipped.
func transferEnv(specs []appsv1alpha1.TransferEnvVar, app []corev1.Container) []corev1.EnvVar {
	var out []corev1.EnvVar
	for _, t := range specs {
		names := t.EnvNames
		if t.EnvName != "" {
			names = []string{t.EnvName}
		}
		for _, c := range app {
			if c.Name != t.SourceContainerName {
				continue
			}
			for _, n := range names {
				for _, e := range c.Env {
					if e.Name == n {
						out = append(out, *e.DeepCopy())
					}
				}
			}
		}
	}
	return out
}

// shareVolumes adds the application containers' mounts to own, skipping
// paths own already mounts (the first application container to mount a
// path wins).
func shareVolumes(own []corev1.VolumeMount, app []corev1.Container) []corev1.VolumeMount {
	paths := map[string]bool{}
	for _, m := range own {
		paths[m.MountPath] = true
	}
	for _, c := range app {
		for _, m := range c.VolumeMounts {
			if !paths[m.MountPath] {
				paths[m.MountPath] = true
				own = append(own, m)
			}
		}
	}
	return own
}

func concat(parts ...[]corev1.Container) []corev1.Container {
	var out []corev1.Container
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
