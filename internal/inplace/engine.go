package inplace

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/podstate"
	"github.com/drover-dev/drover/internal/revision"
)

// Phase of an in-place update recorded on the pod.
type Phase string

const (
	// PhaseDraining: the readiness gate is False; containers are changed
	// once the kubelet has reported the pod not Ready (or ReadyAckTimeout
	// passed) and the grace period has passed.
	PhaseDraining Phase = "Draining"
	// PhaseUpdating: the new spec is written; waiting for the containers to
	// run it.
	PhaseUpdating Phase = "Updating"
	// PhaseDone: the pod runs the new revision and the gate is True.
	PhaseDone Phase = "Done"
)

// ContainerMark is what a container looked like before its image changed.
type ContainerMark struct {
	ImageID      string `json:"imageID,omitempty"`
	RestartCount int32  `json:"restartCount"`
}

// State is the engine's record on a pod (annotation
// apps.drover.dev/inplace-update-state).
type State struct {
	// Revision the pod is being moved to.
	Revision string `json:"revision"`
	Phase    Phase  `json:"phase"`
	// Since is when the phase began.
	Since metav1.Time `json:"since"`
	// Containers being restarted with their pre-update marks.
	Containers map[string]ContainerMark `json:"containers,omitempty"`
	// NoGate: this update leaves the InPlaceUpdateReady gate alone (the
	// pod has none, or Request.NoDrain).
	NoGate bool `json:"noGate,omitempty"`
}

// Track says where an update keeps its record on the pod. A pod can be
// updated on two tracks at once, by its workload and by a SidecarSet,
// without one overwriting the other's state.
type Track int

const (
	// WorkloadTrack is a workload's own update: state in
	// AnnotationInPlaceUpdateState, and the revision label moves to
	// Request.Revision.
	WorkloadTrack Track = iota
	// SidecarTrack is a SidecarSet's sidecar upgrade: state in
	// AnnotationSidecarInPlaceUpdateState; the revision label (the
	// workload's) is left alone.
	SidecarTrack
)

// Annotation is the track's state annotation.
func (t Track) Annotation() string {
	if t == SidecarTrack {
		return appsv1alpha1.AnnotationSidecarInPlaceUpdateState
	}
	return appsv1alpha1.AnnotationInPlaceUpdateState
}

func (t Track) revisionLabel() string {
	if t == SidecarTrack {
		return ""
	}
	return revision.LabelRevisionHash
}

func (t Track) other() Track {
	if t == SidecarTrack {
		return WorkloadTrack
	}
	return SidecarTrack
}

// StateOn returns the engine state a track recorded on a pod, if any.
func StateOn(pod *corev1.Pod, t Track) (State, bool) {
	raw, ok := pod.Annotations[t.Annotation()]
	if !ok {
		return State{}, false
	}
	return ParseState(raw)
}

// StateOf returns the engine state the workload track recorded on a pod, if any.
func StateOf(pod *corev1.Pod) (State, bool) {
	return StateOn(pod, WorkloadTrack)
}

// ParseState decodes the value of the state annotation.
func ParseState(raw string) (State, bool) {
	var s State
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return State{}, false
	}
	return s, true
}

// InFlight reports whether the pod is in the middle of an in-place update
// of its workload.
func InFlight(pod *corev1.Pod) bool {
	return InFlightOn(pod, WorkloadTrack)
}

// InFlightOn reports whether the pod is in the middle of an in-place update
// on a track.
func InFlightOn(pod *corev1.Pod, t Track) bool {
	s, ok := StateOn(pod, t)
	return ok && s.Phase != PhaseDone
}

// holdsGate reports whether an update on track t closed the pod's gate and
// has not reopened it yet.
func holdsGate(pod *corev1.Pod, t Track) bool {
	s, ok := StateOn(pod, t)
	return ok && s.Phase != PhaseDone && !s.NoGate
}

// Engine applies in-place updates.
type Engine struct {
	Client client.Client
	Clock  clock.PassiveClock
}

// ReadyAckTimeout bounds how long a drained pod waits for the kubelet to
// report it not ready before its containers change anyway (a kubelet that
// does not answer would not restart them either; the new spec waits for it).
const ReadyAckTimeout = 10 * time.Second

// Request asks the engine to move a pod to a revision.
type Request struct {
	// Pod is only read, never modified: it may be the informer cache's own
	// object. Writes go through a patch naming the pod.
	Pod *corev1.Pod
	// State is the pod's parsed state annotation when the caller has it
	// (nil: the engine parses it).
	State *State
	// Revision is the target revision name (the pod's new revision label).
	Revision string
	Change   Change
	// GracePeriod the pod stays not-ready before its containers change.
	GracePeriod time.Duration
	// Track records the update as the workload's (default) or a
	// SidecarSet's.
	Track Track
	// NoDrain leaves the pod ready while its containers change: the
	// changed containers do not serve (a HotUpgrade sidecar's idle slot).
	// Pods without the InPlaceUpdateReady gate are never drained either.
	NoDrain bool
}

// Result of one engine step.
type Result struct {
	// Done is true when the pod runs the target revision and is ready to
	// serve again.
	Done bool
	// RequeueAfter is set while waiting for the grace period.
	RequeueAfter time.Duration
	// ResourceVersion of the pod after the last write ("" when nothing was
	// written), for the caller's update expectations.
	ResourceVersion string
}

// Update starts, or moves on, the in-place update of req.Pod. Call it on
// every reconcile until Done; each call does at most the writes of the
// steps that are due.
func (e *Engine) Update(ctx context.Context, req Request) (Result, error) {
	pod := req.Pod
	var state State
	var ok bool
	if req.State != nil {
		state, ok = *req.State, true
	} else {
		state, ok = StateOn(pod, req.Track)
	}
	if !ok || state.Revision != req.Revision {
		if l := req.Track.revisionLabel(); l != "" && pod.Labels[l] == req.Revision && (!ok || state.Phase == PhaseDone) {
			return Result{Done: true}, nil
		}
		state = State{Revision: req.Revision, NoGate: req.NoDrain || !HasGate(pod)}
	}
	var res Result
	for {
		switch state.Phase {
		case "":
			if !req.Change.RestartsContainers() {
				// Nothing restarts: no need to drain; write the spec directly.
				state.Phase = PhaseDone
				rv, err := e.writeSpec(ctx, pod, req, state)
				res.ResourceVersion = rv
				return Result{Done: true, ResourceVersion: rv}, err
			}
			if state.NoGate {
				// Nothing to drain: write the new spec at once.
				state.Phase, state.Since = PhaseUpdating, metav1.NewTime(e.Clock.Now())
				state.Containers = marks(pod, req.Change.Images)
				rv, err := e.writeSpec(ctx, pod, req, state)
				res.ResourceVersion = rv
				return res, err
			}
			state.Phase, state.Since = PhaseDraining, metav1.NewTime(e.Clock.Now())
			rv, err := e.patchStatus(ctx, pod, req.Track, corev1.ConditionFalse, "InPlaceUpdateDraining", &state)
			if err != nil {
				return res, err
			}
			res.ResourceVersion = rv
		case PhaseDraining:
			wait := state.Since.Add(req.GracePeriod).Sub(e.Clock.Now())
			if podstate.IsReady(pod) {
				// The kubelet has not yet reported the closed gate: the pod
				// may still receive traffic. Restart its containers once it
				// is reported not ready, or after ReadyAckTimeout when the
				// kubelet does not answer.
				wait = max(wait, state.Since.Add(ReadyAckTimeout).Sub(e.Clock.Now()))
			}
			if wait > 0 {
				res.RequeueAfter = wait
				return res, nil
			}
			state.Phase, state.Since = PhaseUpdating, metav1.NewTime(e.Clock.Now())
			state.Containers = marks(pod, req.Change.Images)
			rv, err := e.writeSpec(ctx, pod, req, state)
			if err != nil {
				return res, err
			}
			res.ResourceVersion = rv
			// The containers restart asynchronously: come back on the
			// pod's next status change.
			return res, nil
		case PhaseUpdating:
			if !restarted(pod, state) {
				return res, nil
			}
			state.Phase, state.Since = PhaseDone, metav1.NewTime(e.Clock.Now())
			var rv string
			var err error
			switch {
			case state.NoGate:
				rv, err = e.patchState(ctx, pod, req.Track, &state)
			case holdsGate(pod, req.Track.other()):
				// The other track's update closed the gate too: it opens
				// it when it is done.
				rv, err = e.patchState(ctx, pod, req.Track, &state)
			default:
				rv, err = e.patchStatus(ctx, pod, req.Track, corev1.ConditionTrue, "InPlaceUpdateDone", &state)
			}
			if err != nil {
				return res, err
			}
			return Result{Done: true, ResourceVersion: rv}, nil
		default: // PhaseDone for this revision
			return Result{Done: true}, nil
		}
	}
}

// restarted reports whether every container being updated runs its new
// image (a new imageID or a higher restart count) and is running and ready.
func restarted(pod *corev1.Pod, state State) bool {
	specImages := map[string]string{}
	for _, c := range pod.Spec.Containers {
		specImages[c.Name] = c.Image
	}
	for _, c := range pod.Spec.InitContainers {
		specImages[c.Name] = c.Image
	}
	statuses := map[string]corev1.ContainerStatus{}
	for _, s := range pod.Status.ContainerStatuses {
		statuses[s.Name] = s
	}
	for _, s := range pod.Status.InitContainerStatuses {
		statuses[s.Name] = s
	}
	for name, mark := range state.Containers {
		s, ok := statuses[name]
		if !ok || s.State.Running == nil || !s.Ready {
			return false
		}
		if s.ImageID == mark.ImageID && s.RestartCount <= mark.RestartCount {
			return false
		}
		if s.Image != specImages[name] && s.ImageID == mark.ImageID {
			return false
		}
	}
	return true
}

// marks records, for every container whose image changes, what it runs
// now, so that restarted can tell when it runs the new image. A container
// that already runs its new image (a pod sent back and forth before the
// kubelet acted on the first change) gets no mark: there is no restart to
// wait for.
func marks(pod *corev1.Pod, images map[string]string) map[string]ContainerMark {
	out := make(map[string]ContainerMark, len(images))
	all := append(append([]corev1.ContainerStatus(nil), pod.Status.ContainerStatuses...), pod.Status.InitContainerStatuses...)
	running := map[string]bool{}
	for _, s := range all {
		img, ok := images[s.Name]
		if !ok {
			continue
		}
		if s.Image == img && s.State.Running != nil && s.Ready {
			running[s.Name] = true
			continue
		}
		out[s.Name] = ContainerMark{ImageID: s.ImageID, RestartCount: s.RestartCount}
	}
	for name := range images {
		if _, ok := out[name]; !ok && !running[name] {
			out[name] = ContainerMark{}
		}
	}
	return out
}

// writeSpec resizes resources (pods/resize) and then patches images,
// labels and annotations in one write. The revision label moves last, so a
// failed resize leaves the pod on its old revision to be retried.
func (e *Engine) writeSpec(ctx context.Context, pod *corev1.Pod, req Request, state State) (string, error) {
	if len(req.Change.Resources) > 0 {
		var containers []map[string]any
		for name, r := range req.Change.Resources {
			containers = append(containers, map[string]any{"name": name, "resources": r})
		}
		body, err := json.Marshal(map[string]any{"spec": map[string]any{"containers": containers}})
		if err != nil {
			return "", fmt.Errorf("encoding resize: %w", err)
		}
		if err := e.Client.SubResource("resize").Patch(ctx, shell(pod), client.RawPatch(types.StrategicMergePatchType, body)); err != nil {
			return "", fmt.Errorf("resizing pod %s: %w", pod.Name, err)
		}
	}

	stateJSON, err := json.Marshal(state)
	if err != nil {
		return "", fmt.Errorf("encoding in-place state: %w", err)
	}
	labels := map[string]any{}
	if l := req.Track.revisionLabel(); l != "" {
		labels[l] = req.Revision
	}
	for k, v := range req.Change.Labels {
		labels[k] = v
	}
	for _, k := range req.Change.RemoveLabels {
		labels[k] = nil
	}
	annotations := map[string]any{req.Track.Annotation(): string(stateJSON)}
	for k, v := range req.Change.Annotations {
		annotations[k] = v
	}
	for _, k := range req.Change.RemoveAnnotations {
		annotations[k] = nil
	}
	meta := map[string]any{"annotations": annotations}
	if len(labels) > 0 {
		meta["labels"] = labels
	}
	patch := map[string]any{"metadata": meta}
	if len(req.Change.Images) > 0 {
		var containers, inits []map[string]any
		sidecars := map[string]bool{}
		for _, c := range pod.Spec.InitContainers {
			sidecars[c.Name] = true
		}
		for name, image := range req.Change.Images {
			entry := map[string]any{"name": name, "image": image}
			if sidecars[name] {
				inits = append(inits, entry)
			} else {
				containers = append(containers, entry)
			}
		}
		spec := map[string]any{}
		if len(containers) > 0 {
			spec["containers"] = containers
		}
		if len(inits) > 0 {
			spec["initContainers"] = inits
		}
		patch["spec"] = spec
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return "", fmt.Errorf("encoding in-place patch: %w", err)
	}
	target := shell(pod)
	if err := e.Client.Patch(ctx, target, client.RawPatch(types.StrategicMergePatchType, body)); err != nil {
		return "", fmt.Errorf("updating pod %s in place: %w", pod.Name, err)
	}
	return target.ResourceVersion, nil
}

// patchStatus sets the InPlaceUpdateReady condition and records state in
// the track's annotation, in one pods/status write.
func (e *Engine) patchStatus(ctx context.Context, pod *corev1.Pod, t Track, status corev1.ConditionStatus, reason string, state *State) (string, error) {
	var annotations map[string]any
	if state != nil {
		b, err := json.Marshal(state)
		if err != nil {
			return "", fmt.Errorf("encoding in-place state: %w", err)
		}
		annotations = map[string]any{t.Annotation(): string(b)}
	}
	return SetGate(ctx, e.Client, pod, status, reason, annotations, e.Clock.Now(), nil)
}

// patchState records state in the track's annotation, leaving the gate alone.
func (e *Engine) patchState(ctx context.Context, pod *corev1.Pod, t Track, state *State) (string, error) {
	b, err := json.Marshal(state)
	if err != nil {
		return "", fmt.Errorf("encoding in-place state: %w", err)
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{t.Annotation(): string(b)}}})
	if err != nil {
		return "", fmt.Errorf("encoding in-place state: %w", err)
	}
	target := shell(pod)
	if err := e.Client.Patch(ctx, target, client.RawPatch(types.MergePatchType, body)); err != nil {
		return "", fmt.Errorf("recording the in-place state of pod %s: %w", pod.Name, err)
	}
	return target.ResourceVersion, nil
}
