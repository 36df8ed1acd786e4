// Package inplace is Drover's one in-place update engine. Every workload
// (CloneSet, StatefulSet, DaemonSet, SidecarSet) uses it to move a running
// pod to a new revision without recreating it when only container images,
// pod labels/annotations or container resources changed.
//
// An update runs in three steps, each one write:
//
//  1. the pod's InPlaceUpdateReady readiness gate is set False (through the
//     pods/status subresource, which also records the engine's state in the
//     AnnotationInPlaceUpdateState annotation), so Service endpoints drain;
//  2. after the grace period, the pod's images, labels (including the
//     revision label) and annotations are patched, and resources go through
//     the pods/resize subresource;
//  3. once every changed container runs its new image (new imageID or a
//     higher restart count), the gate is set True again.
//
// Changes to labels/annotations only, or resources only, restart nothing and
// skip steps 1 and 3; so do updates of pods without the gate and updates
// whose restarted containers do not serve (Request.NoDrain: a HotUpgrade
// sidecar's idle slot), which only record their state.
//
// A pod has two tracks (Track): its workload's updates and a SidecarSet's
// sidecar upgrades keep separate state annotations, and the gate closed by
// one is reopened only once neither needs it closed.
package inplace

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
)

// Change is what moving a pod from one template to another takes.
type Change struct {
	// InPlace is true when the change can be applied to a running pod.
	InPlace bool
	// Blocker names the first template field that prevents an in-place
	// update (for example "spec.containers[0].command"). Empty when InPlace.
	Blocker string

	// Images maps container name to its new image (containers and native
	// sidecar init containers).
	Images map[string]string
	// Resources maps container name to its new resources.
	Resources map[string]corev1.ResourceRequirements
	// Labels and Annotations to set on the pod.
	Labels, Annotations map[string]string
	// RemoveLabels and RemoveAnnotations are keys the old template had and
	// the new one lacks.
	RemoveLabels, RemoveAnnotations []string
}

// RestartsContainers reports whether applying the change restarts containers.
func (c Change) RestartsContainers() bool { return len(c.Images) > 0 }

// Diff computes the change from template from to template to.
func Diff(from, to *corev1.PodTemplateSpec) Change {
	c := Change{
		Images:    map[string]string{},
		Resources: map[string]corev1.ResourceRequirements{},
	}
	c.Labels, c.RemoveLabels = mapDiff(from.Labels, to.Labels)
	c.Annotations, c.RemoveAnnotations = mapDiff(from.Annotations, to.Annotations)

	// Neutralise what may change in place, then anything left differing
	// blocks an in-place update.
	f, t := from.Spec.DeepCopy(), to.Spec.DeepCopy()
	if len(f.Containers) == len(t.Containers) {
		for i := range t.Containers {
			if f.Containers[i].Name != t.Containers[i].Name {
				continue
			}
			neutralise(&c, &f.Containers[i], &t.Containers[i])
		}
	}
	if len(f.InitContainers) == len(t.InitContainers) {
		for i := range t.InitContainers {
			fi, ti := &f.InitContainers[i], &t.InitContainers[i]
			if fi.Name != ti.Name || !isSidecar(fi) || !isSidecar(ti) {
				continue
			}
			neutralise(&c, fi, ti)
		}
	}
	if apiequality.Semantic.DeepEqual(f, t) {
		c.InPlace = true
		return c
	}
	c.Blocker = "spec." + firstDifference(f, t)
	return c
}

func neutralise(c *Change, f, t *corev1.Container) {
	if f.Image != t.Image {
		c.Images[t.Name] = t.Image
		f.Image = t.Image
	}
	if !apiequality.Semantic.DeepEqual(f.Resources, t.Resources) {
		c.Resources[t.Name] = t.Resources
		f.Resources = t.Resources
	}
}

func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

func mapDiff(from, to map[string]string) (set map[string]string, remove []string) {
	set = map[string]string{}
	for k, v := range to {
		if old, ok := from[k]; !ok || old != v {
			set[k] = v
		}
	}
	for k := range from {
		if _, ok := to[k]; !ok {
			remove = append(remove, k)
		}
	}
	sort.Strings(remove)
	return set, remove
}

// firstDifference returns the JSON path of the first field that differs
// between a and b, walking their JSON forms in key order.
func firstDifference(a, b any) string {
	var ma, mb any
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	_ = json.Unmarshal(ja, &ma)
	_ = json.Unmarshal(jb, &mb)
	if p := walk(ma, mb, nil); p != nil {
		return strings.Join(p, "")[1:]
	}
	return "(unknown field)"
}

func walk(a, b any, path []string) []string {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			return path
		}
		keys := map[string]bool{}
		for k := range av {
			keys[k] = true
		}
		for k := range bv {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			if p := walk(av[k], bv[k], append(path, "."+k)); p != nil {
				return p
			}
		}
		return nil
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			return path
		}
		for i := range av {
			if p := walk(av[i], bv[i], append(path, fmt.Sprintf("[%d]", i))); p != nil {
				return p
			}
		}
		return nil
	default:
		if !reflect.DeepEqual(a, b) {
			return path
		}
		return nil
	}
}
