package sidecarset

import (
	"strings"

	corev1 "k8s.io/api/core/v1"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/webhook/injection"
)

// step is the in-place update a pod needs next for one SidecarSet. A pod
// is upgraded in at most two engine runs:
//
//  1. "upgrade": ColdUpgrade sidecars get their new image (restart) and
//     HotUpgrade sidecars get it in their idle slot, which becomes the
//     working one; the pod's record moves to the latest revision;
//  2. "retire": once run 1 is done (the new slot runs and is ready), the
//     old working slot of each HotUpgrade sidecar goes back to the empty
//     image. A HotUpgrade sidecar therefore always has a running slot.
type step struct {
	kind     stepKind
	revision string // the engine's revision for this run
	change   inplace.Change
	// noDrain: only idle HotUpgrade slots restart; the pod stays ready.
	noDrain bool
	// containers are the sidecars (SidecarSet container names) whose image
	// the run changes, for their upgrade.maxUnavailable.
	containers []string
}

type stepKind int

const (
	stepNone stepKind = iota
	stepUpgrade
	stepRetire
)

// engineRevision names the engine run of a step; its prefix tells which
// SidecarSet a pod's sidecar state belongs to.
func engineRevision(ss, hash string, k stepKind) string {
	r := ss + "/" + hash
	if k == stepRetire {
		r += "/retire"
	}
	return r
}

// ownerOfRevision returns the SidecarSet name an engine revision belongs to.
func ownerOfRevision(rev string) string {
	name, _, _ := strings.Cut(rev, "/")
	return name
}

// nextStep computes the step pod needs to run the SidecarSet's latest
// revision. It returns stepNone when the pod is up to date, or when it
// cannot be upgraded in place (upgradable false: it was injected with a
// revision that differs in more than images).
func nextStep(pod *corev1.Pod, ss *appsv1alpha1.SidecarSet, rev injection.Revisions, records injection.Records) (s step, upgradable bool) {
	rec, ok := records[ss.Name]
	if !ok || rec.HashWithoutImage != rev.WithoutImage {
		return step{}, false
	}
	containers := map[string]*corev1.Container{}
	for i := range pod.Spec.Containers {
		containers[pod.Spec.Containers[i].Name] = &pod.Spec.Containers[i]
	}
	inits := map[string]*corev1.Container{}
	for i := range pod.Spec.InitContainers {
		inits[pod.Spec.InitContainers[i].Name] = &pod.Spec.InitContainers[i]
	}

	if rec.Hash != rev.Hash {
		s = step{kind: stepUpgrade, revision: engineRevision(ss.Name, rev.Hash, stepUpgrade), noDrain: true,
			change: inplace.Change{Images: map[string]string{}}}
		next := injection.Record{Hash: rev.Hash, HashWithoutImage: rev.WithoutImage}
		for i := range ss.Spec.Containers {
			sc := &ss.Spec.Containers[i]
			if !injection.IsHot(sc) {
				if c := containers[sc.Name]; c != nil && c.Image != sc.Image {
					s.change.Images[sc.Name] = sc.Image
					s.noDrain = false
					s.containers = append(s.containers, sc.Name)
				}
				continue
			}
			working := workingSlot(pod, sc, rec)
			idle := injection.OtherSlot(sc.Name, working)
			if next.HotUpgrade == nil {
				next.HotUpgrade = map[string]string{}
			}
			next.HotUpgrade[sc.Name] = working
			w, i := containers[working], containers[idle]
			if w == nil || i == nil {
				continue
			}
			switch {
			case w.Image == sc.Image:
				// Already runs it; the idle slot may need the new empty image.
				if i.Image != sc.UpgradeStrategy.HotUpgradeEmptyImage {
					s.change.Images[idle] = sc.UpgradeStrategy.HotUpgradeEmptyImage
				}
			default:
				s.change.Images[idle] = sc.Image
				next.HotUpgrade[sc.Name] = idle
				s.containers = append(s.containers, sc.Name)
			}
		}
		for i := range ss.Spec.InitContainers {
			sc := &ss.Spec.InitContainers[i]
			// Only native sidecars run on: a finished init container keeps
			// the image it ran.
			if c := inits[sc.Name]; c != nil && c.Image != sc.Image && isNativeSidecar(c) {
				s.change.Images[sc.Name] = sc.Image
				s.noDrain = false
				s.containers = append(s.containers, sc.Name)
			}
		}
		records = cloneRecords(records)
		records[ss.Name] = next
		s.change.Annotations = map[string]string{appsv1alpha1.AnnotationSidecarSetHash: records.Encode()}
		return s, true
	}

	// Up to date: HotUpgrade slots left running an old image are retired.
	s = step{kind: stepRetire, revision: engineRevision(ss.Name, rev.Hash, stepRetire), noDrain: true,
		change: inplace.Change{Images: map[string]string{}}}
	for i := range ss.Spec.Containers {
		sc := &ss.Spec.Containers[i]
		if !injection.IsHot(sc) {
			continue
		}
		idle := injection.OtherSlot(sc.Name, workingSlot(pod, sc, rec))
		if c := containers[idle]; c != nil && c.Image != sc.UpgradeStrategy.HotUpgradeEmptyImage {
			s.change.Images[idle] = sc.UpgradeStrategy.HotUpgradeEmptyImage
			s.containers = append(s.containers, sc.Name)
		}
	}
	if len(s.change.Images) == 0 {
		return step{}, true
	}
	return s, true
}

// workingSlot is the HotUpgrade slot that runs the sidecar: the record's,
// or else the slot that does not run the empty image.
func workingSlot(pod *corev1.Pod, sc *appsv1alpha1.SidecarContainer, rec injection.Record) string {
	if w, ok := rec.HotUpgrade[sc.Name]; ok {
		return w
	}
	first, second := injection.HotSlots(sc.Name)
	for _, c := range pod.Spec.Containers {
		if c.Name == first && c.Image == sc.UpgradeStrategy.HotUpgradeEmptyImage {
			return second
		}
	}
	return first
}

func isNativeSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

func cloneRecords(r injection.Records) injection.Records {
	out := make(injection.Records, len(r))
	for k, v := range r {
		out[k] = v
	}
	return out
}
