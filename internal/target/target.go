// Package target reads and steers the workload a Rollout releases (its
// spec.targetRef): the workload's revisions and pod counts, the labels its
// pods carry, and the rollout control annotation
// (appsv1alpha1.RolloutControl) through which the Rollout says how many
// pods of each revision the workload runs. The workload's own controller
// does the pod work; the Rollout never touches pods.
//
// An apps/v1 Deployment has no such annotation-aware controller: the
// Rollout keeps it paused and runs the canary in a ReplicaSet of its own,
// which it hands to the Deployment at promotion (deployment.go).
package target

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/revision"
)

// Counts are a workload's pods as its status reports them (a Deployment's:
// effective counts, see fromDeployment).
type Counts struct {
	// Replicas are the pods that exist, Ready those ready.
	Replicas, Ready int32
	// Updated are the pods of the update revision, UpdatedReady those ready.
	Updated, UpdatedReady int32
}

// Kinds of targets.
const (
	KindCloneSet    = "CloneSet"
	KindStatefulSet = "StatefulSet"
	KindDaemonSet   = "DaemonSet"
	KindDeployment  = "Deployment"
)

// Workload is a snapshot of a Rollout's target.
type Workload struct {
	// Kind is the target's kind (KindCloneSet...).
	Kind string
	// Object is the cache's object: read it, do not modify it.
	Object client.Object
	// Replicas is the number of pods the workload's spec asks for (a
	// DaemonSet: the number of nodes that should run its pod).
	Replicas int32
	// Caught up: the workload's status describes its current spec.
	CaughtUp bool
	// CurrentRevision is the revision its pods ran before the update
	// began and UpdateRevision the revision of its template.
	CurrentRevision, UpdateRevision string
	Counts                          Counts
	// PodLabels are labels every pod of the workload carries (its
	// selector's matchLabels); a Service selects the workload's pods of
	// one revision with PodLabels plus RevisionLabel.
	PodLabels map[string]string
	// RevisionLabel is the pod label that carries the revision.
	RevisionLabel string
	// Template is the workload's pod template (the cache's: read only).
	Template *corev1.PodTemplateSpec
	// Control is the workload's rollout control annotation, when set.
	Control    *appsv1alpha1.RolloutControl
	ControlErr error

	// replicaSets are a Deployment's ReplicaSets (nil for other kinds).
	replicaSets *replicaSets
}

// Get reads the target of a Rollout. A missing workload is returned as the
// API's NotFound error.
func Get(ctx context.Context, c client.Reader, namespace string, ref rolloutsv1alpha1.TargetRef) (*Workload, error) {
	key := types.NamespacedName{Namespace: namespace, Name: ref.Name}
	if ref.APIVersion == appsv1.SchemeGroupVersion.String() && ref.Kind == KindDeployment {
		return getDeployment(ctx, c, key)
	}
	if ref.APIVersion != appsv1alpha1.GroupVersion.String() {
		return nil, fmt.Errorf("targetRef %s %s: %w", ref.APIVersion, ref.Kind, ErrUnsupported)
	}
	switch ref.Kind {
	case KindCloneSet:
		var cs appsv1alpha1.CloneSet
		if err := c.Get(ctx, key, &cs); err != nil {
			return nil, fmt.Errorf("reading CloneSet %s: %w", key, err)
		}
		return fromCloneSet(&cs), nil
	case KindStatefulSet:
		var set appsv1alpha1.StatefulSet
		if err := c.Get(ctx, key, &set); err != nil {
			return nil, fmt.Errorf("reading StatefulSet %s: %w", key, err)
		}
		return fromStatefulSet(&set), nil
	case KindDaemonSet:
		var ds appsv1alpha1.DaemonSet
		if err := c.Get(ctx, key, &ds); err != nil {
			return nil, fmt.Errorf("reading DaemonSet %s: %w", key, err)
		}
		return fromDaemonSet(&ds), nil
	default:
		return nil, fmt.Errorf("targetRef %s %s: %w", ref.APIVersion, ref.Kind, ErrUnsupported)
	}
}

// ErrUnsupported is returned for a target kind this version cannot drive.
var ErrUnsupported = errors.New("kind not supported yet")

func fromCloneSet(cs *appsv1alpha1.CloneSet) *Workload {
	w := &Workload{
		Kind:            KindCloneSet,
		Object:          cs,
		CaughtUp:        cs.Status.ObservedGeneration == cs.Generation && cs.Status.UpdateRevision != "",
		CurrentRevision: cs.Status.CurrentRevision,
		UpdateRevision:  cs.Status.UpdateRevision,
		Counts: Counts{
			Replicas: cs.Status.Replicas, Ready: cs.Status.ReadyReplicas,
			Updated: cs.Status.UpdatedReplicas, UpdatedReady: cs.Status.UpdatedReadyReplicas,
		},
		RevisionLabel: revision.LabelRevisionHash,
		Template:      &cs.Spec.Template,
	}
	w.Replicas = 1
	if cs.Spec.Replicas != nil {
		w.Replicas = *cs.Spec.Replicas
	}
	if cs.Spec.Selector != nil {
		w.PodLabels = cs.Spec.Selector.MatchLabels
	}
	w.readControl()
	return w
}

// fromStatefulSet reads an Advanced StatefulSet. A set without a selector
// labels its pods apps.drover.dev/statefulset=<name>.
func fromStatefulSet(set *appsv1alpha1.StatefulSet) *Workload {
	w := &Workload{
		Kind:            KindStatefulSet,
		Object:          set,
		CaughtUp:        set.Status.ObservedGeneration == set.Generation && set.Status.UpdateRevision != "",
		CurrentRevision: set.Status.CurrentRevision,
		UpdateRevision:  set.Status.UpdateRevision,
		Counts: Counts{
			Replicas: set.Status.Replicas, Ready: set.Status.ReadyReplicas,
			Updated: set.Status.UpdatedReplicas, UpdatedReady: set.Status.UpdatedReadyReplicas,
		},
		RevisionLabel: revision.LabelRevisionHash,
		Template:      &set.Spec.Template,
	}
	w.Replicas = 1
	if set.Spec.Replicas != nil {
		w.Replicas = *set.Spec.Replicas
	}
	if set.Spec.Selector != nil {
		w.PodLabels = set.Spec.Selector.MatchLabels
	} else {
		w.PodLabels = map[string]string{appsv1alpha1.LabelStatefulSet: set.Name}
	}
	w.readControl()
	return w
}

// fromDaemonSet reads an Advanced DaemonSet: its replicas are the nodes
// that should run its pod, its counts are nodes. Its status has no count
// of updated ready nodes: updated available ones stand in (a ready pod
// becomes available after minReadySeconds).
func fromDaemonSet(ds *appsv1alpha1.DaemonSet) *Workload {
	w := &Workload{
		Kind:            KindDaemonSet,
		Object:          ds,
		Replicas:        ds.Status.DesiredNumberScheduled,
		CaughtUp:        ds.Status.ObservedGeneration == ds.Generation && ds.Status.UpdateRevision != "",
		CurrentRevision: ds.Status.CurrentRevision,
		UpdateRevision:  ds.Status.UpdateRevision,
		Counts: Counts{
			Replicas: ds.Status.CurrentNumberScheduled, Ready: ds.Status.NumberReady,
			Updated: ds.Status.UpdatedNumberScheduled, UpdatedReady: ds.Status.UpdatedNumberAvailable,
		},
		RevisionLabel: revision.LabelRevisionHash,
		Template:      &ds.Spec.Template,
	}
	if ds.Spec.Selector != nil {
		w.PodLabels = ds.Spec.Selector.MatchLabels
	}
	w.readControl()
	return w
}

func (w *Workload) readControl() {
	ctl, ok, err := appsv1alpha1.ParseRolloutControl(w.Object.GetAnnotations())
	if ok && err == nil {
		w.Control = &ctl
	}
	w.ControlErr = err
}

// SetControl writes the rollout control annotation on the workload (nil
// removes it), unless it already says the same. On a Deployment it also
// keeps the Deployment paused and runs the canary ReplicaSet the control
// asks for (setDeploymentControl).
func SetControl(ctx context.Context, c client.Client, w *Workload, ctl *appsv1alpha1.RolloutControl) error {
	if w.Kind == KindDeployment {
		return setDeploymentControl(ctx, c, w, ctl)
	}
	return setControlAnnotation(ctx, c, w, ctl)
}

// Release hands the workload back when Rollout rollout is deleted: its
// control annotation is removed; a Deployment also gets its canary
// ReplicaSet handed over or deleted and is unpaused if the Rollout paused
// it (releaseDeployment).
func Release(ctx context.Context, c client.Client, w *Workload, rollout string) error {
	if w.Kind == KindDeployment {
		return releaseDeployment(ctx, c, w, rollout)
	}
	if w.Control == nil || w.Control.Rollout != rollout {
		return nil
	}
	return setControlAnnotation(ctx, c, w, nil)
}

func setControlAnnotation(ctx context.Context, c client.Client, w *Workload, ctl *appsv1alpha1.RolloutControl) error {
	cur, has := w.Object.GetAnnotations()[appsv1alpha1.AnnotationRolloutControl]
	var value any // JSON null removes the annotation in a merge patch
	if ctl != nil {
		s := ctl.String()
		if has && cur == s {
			return nil
		}
		value = s
	} else if !has {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{appsv1alpha1.AnnotationRolloutControl: value}}})
	if err != nil {
		return fmt.Errorf("encoding the rollout control patch: %w", err)
	}
	obj := w.Object.DeepCopyObject().(client.Object)
	if err := c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("writing the rollout control of %s: %w", w.Object.GetName(), err)
	}
	return nil
}
