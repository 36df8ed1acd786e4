package v1alpha1

// Labels, annotations and condition types that Drover writes on the pods it
// manages. They are part of the API: users, hooks and other tools read them.
const (
	// LabelInstanceID identifies the pod slot of a CloneSet: the random
	// suffix of the pod name. PVCs carry it too, so a recreated pod gets the
	// same name and reuses its volumes.
	LabelInstanceID = "apps.drover.dev/instance-id"

	// LabelLifecycleState is the lifecycle state of a pod (see LifecycleState).
	LabelLifecycleState = "lifecycle.apps.drover.dev/state"

	// AnnotationInPlaceUpdateState records the in-place update engine's state
	// for a pod as JSON (target revision, prior image IDs, timestamps).
	AnnotationInPlaceUpdateState = "apps.drover.dev/inplace-update-state"

	// AnnotationPodDeletionCost is the native pod deletion cost annotation;
	// lower cost pods are removed first on scale-down.
	AnnotationPodDeletionCost = "controller.kubernetes.io/pod-deletion-cost"

	// AnnotationSpecifiedDelete, set to any value on a pod, asks its workload
	// to delete it first (like scaleStrategy.podsToDelete).
	AnnotationSpecifiedDelete = "apps.drover.dev/specified-delete"

	// ConditionInPlaceUpdateReady is the readiness gate that Drover injects in
	// every pod it creates. It is False while the pod is being updated in
	// place (or held not-ready by a lifecycle hook), so endpoints drain before
	// containers restart.
	ConditionInPlaceUpdateReady = "InPlaceUpdateReady"
)

// LifecycleState is the value of LabelLifecycleState on a pod.
type LifecycleState string

const (
	// LifecycleStateNormal is a pod in service.
	LifecycleStateNormal LifecycleState = "Normal"
	// LifecycleStatePreparingUpdate is a pod waiting for its inPlaceUpdate
	// hook to be released before it is updated in place.
	LifecycleStatePreparingUpdate LifecycleState = "PreparingUpdate"
	// LifecycleStateUpdating is a pod being updated in place.
	LifecycleStateUpdating LifecycleState = "Updating"
	// LifecycleStateUpdated is a pod updated in place, waiting for its
	// inPlaceUpdate hook to be set again before returning to Normal.
	LifecycleStateUpdated LifecycleState = "Updated"
	// LifecycleStatePreparingDelete is a pod chosen for deletion, waiting for
	// its preDelete hook to be released.
	LifecycleStatePreparingDelete LifecycleState = "PreparingDelete"
)

// LabelWorkload is set on every pod, claim and revision a Drover workload
// creates; its value is the workload kind. The manager caches only objects
// carrying it, so pods Drover does not own cost it no memory.
const LabelWorkload = "apps.drover.dev/workload"

// LabelBroadcastJob is set on a BroadcastJob's pods; its value is the job's
// name (kubectl logs -l apps.drover.dev/broadcastjob=<name>).
const LabelBroadcastJob = "apps.drover.dev/broadcastjob"

// SidecarSet injection and upgrade records on pods.
const (
	// LabelSidecarSetInjected is set ("true") on every pod a SidecarSet
	// injected. The manager caches pods carrying it (besides its own
	// workloads' pods), so that it can upgrade their sidecars.
	LabelSidecarSetInjected = "apps.drover.dev/sidecarset-injected"

	// AnnotationSidecarSetHash records, as JSON keyed by SidecarSet name,
	// which SidecarSets injected a pod and at which revision (see
	// internal/webhook.Record).
	AnnotationSidecarSetHash = "apps.drover.dev/sidecarset-hash"

	// AnnotationSidecarInPlaceUpdateState is the in-place engine's state for
	// a sidecar upgrade; a workload's own in-place updates use
	// AnnotationInPlaceUpdateState, so the two never overwrite each other.
	AnnotationSidecarInPlaceUpdateState = "apps.drover.dev/sidecar-inplace-update-state"
)

// LabelStatefulSet is set on every pod and claim of an Advanced
// StatefulSet; its value is the set's name. A StatefulSet without
// spec.selector selects its pods by this label.
const LabelStatefulSet = "apps.drover.dev/statefulset"
