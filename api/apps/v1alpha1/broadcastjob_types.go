package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// BroadcastJobCompletionPolicyType says when a BroadcastJob is done.
// +kubebuilder:validation:Enum=Always;Never
type BroadcastJobCompletionPolicyType string

const (
	// AlwaysBroadcastJobCompletionPolicyType: the job completes once every
	// node it targets ran its pod to the end (succeeded, or failed after
	// failurePolicy.restartLimit retries).
	AlwaysBroadcastJobCompletionPolicyType BroadcastJobCompletionPolicyType = "Always"
	// NeverBroadcastJobCompletionPolicyType: the job never completes; it
	// stays open and runs its pod on every node that joins (or starts to
	// match) later.
	NeverBroadcastJobCompletionPolicyType BroadcastJobCompletionPolicyType = "Never"
)

// BroadcastJobFailurePolicyType says what a node failure does to the job.
// +kubebuilder:validation:Enum=Continue;FailFast;Pause
type BroadcastJobFailurePolicyType string

const (
	// ContinueBroadcastJobFailurePolicyType counts failed nodes and goes on
	// with the others.
	ContinueBroadcastJobFailurePolicyType BroadcastJobFailurePolicyType = "Continue"
	// FailFastBroadcastJobFailurePolicyType fails the job at the first
	// failed node and deletes its active pods.
	FailFastBroadcastJobFailurePolicyType BroadcastJobFailurePolicyType = "FailFast"
	// PauseBroadcastJobFailurePolicyType pauses the job at the first failed
	// node: running pods finish, no new pod starts until the spec changes.
	PauseBroadcastJobFailurePolicyType BroadcastJobFailurePolicyType = "Pause"
)

// BroadcastJobPhase summarises a BroadcastJob's state.
// +kubebuilder:validation:Enum=Running;Paused;Completed;Failed
type BroadcastJobPhase string

const (
	// BroadcastJobRunning: pods are running or will be started.
	BroadcastJobRunning BroadcastJobPhase = "Running"
	// BroadcastJobPaused: spec.paused, or failurePolicy Pause after a node
	// failed; no new pod starts.
	BroadcastJobPaused BroadcastJobPhase = "Paused"
	// BroadcastJobCompleted: every targeted node ran the pod (final).
	BroadcastJobCompleted BroadcastJobPhase = "Completed"
	// BroadcastJobFailed: a node failed under FailFast, or
	// activeDeadlineSeconds passed (final).
	BroadcastJobFailed BroadcastJobPhase = "Failed"
)

// Condition types and reasons of a BroadcastJob, besides the kstatus ones
// (Ready, Reconciling, Stalled) shared by every workload.
const (
	// BroadcastJobConditionComplete is True once a job with completionPolicy
	// Always has run on every targeted node (as a Job's Complete condition).
	BroadcastJobConditionComplete = "Complete"
	// BroadcastJobConditionFailed is True once a job failed (as a Job's
	// Failed condition).
	BroadcastJobConditionFailed = "Failed"
	// BroadcastJobConditionPaused is True while the job starts no new pod:
	// reason Paused for spec.paused, NodeFailed for failurePolicy Pause.
	BroadcastJobConditionPaused = "Paused"

	// BroadcastJobReasonRunning: pods are being run.
	BroadcastJobReasonRunning = "Running"
	// BroadcastJobReasonDeadlineExceeded: activeDeadlineSeconds passed.
	BroadcastJobReasonDeadlineExceeded = "DeadlineExceeded"
	// BroadcastJobReasonNodeFailed: a node's pod failed more than
	// failurePolicy.restartLimit times.
	BroadcastJobReasonNodeFailed = "NodeFailed"
	// BroadcastJobReasonAllNodesDone: a job with completionPolicy Never has
	// run on every node it targets so far.
	BroadcastJobReasonAllNodesDone = "AllNodesDone"
)

// BroadcastJobSpec is the desired state of a BroadcastJob.
// +kubebuilder:validation:XValidation:rule="has(self.template.spec) && has(self.template.spec.restartPolicy) && self.template.spec.restartPolicy in ['Never', 'OnFailure']",message="template.spec.restartPolicy must be Never or OnFailure: a job's pods run to completion",fieldPath=".template.spec.restartPolicy"
type BroadcastJobSpec struct {
	// parallelism is the most pods that run at once: an integer, or a
	// percentage of the nodes the job targets (rounded up). Unset: no limit.
	// +optional
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 1 : self.matches('^(100|[1-9][0-9]?)%$')",message="must be a positive integer or a percentage from 1% to 100%"
	Parallelism *intstr.IntOrString `json:"parallelism,omitempty"`

	// template is the pod run once on every node it fits (its nodeSelector,
	// node affinity and tolerations choose the nodes). Its restartPolicy
	// must be Never or OnFailure. Changing it affects only pods created
	// afterwards.
	// +required
	Template corev1.PodTemplateSpec `json:"template"`

	// completionPolicy says when the job is done and what happens then.
	// +optional
	// +kubebuilder:default={}
	CompletionPolicy BroadcastJobCompletionPolicy `json:"completionPolicy,omitempty"`

	// failurePolicy says what a failed node does to the job.
	// +optional
	// +kubebuilder:default={}
	FailurePolicy BroadcastJobFailurePolicy `json:"failurePolicy,omitempty"`

	// paused stops the job from starting new pods; running pods go on.
	// +optional
	Paused bool `json:"paused,omitempty"`
}

// BroadcastJobCompletionPolicy says when a job is done.
type BroadcastJobCompletionPolicy struct {
	// type Always (default) completes the job once every targeted node ran
	// the pod; Never keeps it open for nodes that join later.
	// +optional
	// +kubebuilder:default=Always
	Type BroadcastJobCompletionPolicyType `json:"type,omitempty"`

	// activeDeadlineSeconds bounds how long the job may run, counted from
	// status.startTime (pausing does not stop the clock). When it passes,
	// the job fails with reason DeadlineExceeded and its active pods are
	// deleted.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`

	// ttlSecondsAfterFinished deletes the job (and its pods) this long after
	// it completed or failed. Unset: the job is kept.
	// +optional
	// +kubebuilder:validation:Minimum=0
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`
}

// BroadcastJobFailurePolicy says what a failed node does to the job.
type BroadcastJobFailurePolicy struct {
	// type Continue, FailFast (default) or Pause.
	// +optional
	// +kubebuilder:default=FailFast
	Type BroadcastJobFailurePolicyType `json:"type,omitempty"`

	// restartLimit is how many times a node's pod is retried (a new pod, or
	// a container restart with restartPolicy OnFailure) before the node
	// counts as failed. Defaults to 0: the first failure counts.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	RestartLimit int32 `json:"restartLimit,omitempty"`
}

// BroadcastJobStatus is the observed state of a BroadcastJob.
type BroadcastJobStatus struct {
	// observedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// desired is the number of nodes the job targets: the nodes its pod
	// fits, and the nodes it already ran on.
	// +optional
	Desired int32 `json:"desired"`
	// active is the number of pods pending or running.
	// +optional
	Active int32 `json:"active"`
	// succeeded is the number of nodes whose pod succeeded.
	// +optional
	Succeeded int32 `json:"succeeded"`
	// failed is the number of nodes whose pod failed more than
	// failurePolicy.restartLimit times.
	// +optional
	Failed int32 `json:"failed"`

	// phase is Running, Paused, Completed or Failed.
	// +optional
	Phase BroadcastJobPhase `json:"phase,omitempty"`

	// startTime is when the job first started pods (not set while it was
	// created paused); activeDeadlineSeconds counts from it.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// completionTime is when the job completed or failed;
	// ttlSecondsAfterFinished counts from it.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// failuresAcknowledged is the number of failed nodes accepted by
	// resuming a job that failurePolicy Pause had paused; the job pauses
	// again when more nodes fail.
	// +optional
	FailuresAcknowledged int32 `json:"failuresAcknowledged,omitempty"`

	// conditions: Complete, Failed, Paused and the kstatus conditions
	// Ready, Reconciling and Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// BroadcastJob runs a pod to completion once on every node it fits, like a
// Job spread over the nodes: node cleanup, certificate rotation, node
// configuration.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=bcj,categories=all;drover
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters: it is the value of the label apps.drover.dev/broadcastjob on the job's pods"
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.status.desired`
// +kubebuilder:printcolumn:name="Active",type=integer,JSONPath=`.status.active`
// +kubebuilder:printcolumn:name="Succeeded",type=integer,JSONPath=`.status.succeeded`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.failed`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Parallelism",type=string,JSONPath=`.spec.parallelism`,priority=1
// +kubebuilder:printcolumn:name="Completion",type=string,JSONPath=`.spec.completionPolicy.type`,priority=1
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.spec.template.spec.containers[0].image`,priority=1
type BroadcastJob struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec BroadcastJobSpec `json:"spec"`
	// +optional
	Status BroadcastJobStatus `json:"status,omitempty"`
}

// BroadcastJobList is a list of BroadcastJobs.
//
// +kubebuilder:object:root=true
type BroadcastJobList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BroadcastJob `json:"items"`
}

func init() {
	SchemeBuilder.Register(&BroadcastJob{}, &BroadcastJobList{})
}
