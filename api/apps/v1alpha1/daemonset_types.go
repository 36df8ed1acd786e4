package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// DaemonSetUpdateStrategyType says when a DaemonSet moves pods to a new
// revision.
// +kubebuilder:validation:Enum=RollingUpdate;OnDelete
type DaemonSetUpdateStrategyType string

const (
	// RollingUpdateDaemonSetStrategyType replaces or updates pods node by
	// node within rollingUpdate's limits.
	RollingUpdateDaemonSetStrategyType DaemonSetUpdateStrategyType = "RollingUpdate"
	// OnDeleteDaemonSetStrategyType updates a node's pod only when a user
	// deletes it.
	OnDeleteDaemonSetStrategyType DaemonSetUpdateStrategyType = "OnDelete"
)

// RollingUpdateType says how a DaemonSet's rolling update changes a pod.
// +kubebuilder:validation:Enum=Standard;InPlaceIfPossible
type RollingUpdateType string

const (
	// StandardRollingUpdateType deletes the old pod and creates a new one
	// (with maxSurge, the new one first).
	StandardRollingUpdateType RollingUpdateType = "Standard"
	// InPlaceIfPossibleRollingUpdateType updates the pod in place when only
	// images, metadata or resources changed, and recreates it otherwise.
	InPlaceIfPossibleRollingUpdateType RollingUpdateType = "InPlaceIfPossible"
)

// ReasonPlacing is the Ready/Reconciling/Progressing reason of a DaemonSet
// whose pods are being created on, or removed from, nodes (nodes joined,
// left or changed), or are becoming available.
const ReasonPlacing = "Placing"

// DaemonSetSpec is the desired state of a DaemonSet.
// +kubebuilder:validation:XValidation:rule="!has(self.selector.matchLabels) || (has(self.template.metadata) && has(self.template.metadata.labels) && self.selector.matchLabels.all(k, k in self.template.metadata.labels && self.template.metadata.labels[k] == self.selector.matchLabels[k]))",message="selector.matchLabels must match template.metadata.labels",fieldPath=".selector"
// +kubebuilder:validation:XValidation:rule="!has(self.selector.matchExpressions) || self.selector.matchExpressions.all(e, e.operator == 'In' ? (has(self.template.metadata.labels) && e.key in self.template.metadata.labels && has(e.values) && self.template.metadata.labels[e.key] in e.values) : e.operator == 'NotIn' ? (!has(self.template.metadata.labels) || !(e.key in self.template.metadata.labels) || !has(e.values) || !(self.template.metadata.labels[e.key] in e.values)) : e.operator == 'Exists' ? (has(self.template.metadata.labels) && e.key in self.template.metadata.labels) : (!has(self.template.metadata.labels) || !(e.key in self.template.metadata.labels)))",message="selector.matchExpressions must match template.metadata.labels",fieldPath=".selector"
// +kubebuilder:validation:XValidation:rule="!has(self.template.spec.restartPolicy) || self.template.spec.restartPolicy == 'Always'",message="template.spec.restartPolicy must be Always: a daemon pod runs until its node leaves",fieldPath=".template.spec.restartPolicy"
// +kubebuilder:validation:XValidation:rule="!has(self.template.spec.nodeName) || size(self.template.spec.nodeName) == 0",message="template.spec.nodeName must be empty: the DaemonSet pins each pod to its node",fieldPath=".template.spec.nodeName"
type DaemonSetSpec struct {
	// selector selects the pods of this DaemonSet. It must match the
	// template's labels and cannot change.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="selector is immutable"
	Selector *metav1.LabelSelector `json:"selector"`

	// template describes the pod run on every eligible node: a node whose
	// labels match template.spec.nodeSelector and the required node
	// affinity, and whose NoSchedule/NoExecute taints the pod tolerates
	// (daemon pods also tolerate not-ready, unreachable and unschedulable
	// nodes, as native DaemonSet pods do).
	// +required
	Template corev1.PodTemplateSpec `json:"template"`

	// updateStrategy tunes how pods move to a new revision.
	// +optional
	// +kubebuilder:default={}
	UpdateStrategy DaemonSetUpdateStrategy `json:"updateStrategy,omitempty"`

	// lifecycle hooks that gate pod deletion and in-place update.
	// +optional
	Lifecycle *Lifecycle `json:"lifecycle,omitempty"`

	// minReadySeconds is how long a new pod must be ready, with none of its
	// containers crashing, to count as available.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MinReadySeconds int32 `json:"minReadySeconds,omitempty"`

	// revisionHistoryLimit is how many old ControllerRevisions to keep.
	// Defaults to 10.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	RevisionHistoryLimit *int32 `json:"revisionHistoryLimit,omitempty"`

	// progressDeadlineSeconds is how long an update or rollout to new nodes
	// may make no progress before the Progressing condition turns False
	// with reason ProgressDeadlineExceeded (and Stalled True). Defaults to
	// 600.
	// +optional
	// +kubebuilder:default=600
	// +kubebuilder:validation:Minimum=1
	ProgressDeadlineSeconds *int32 `json:"progressDeadlineSeconds,omitempty"`
}

// DaemonSetUpdateStrategy tunes updates.
type DaemonSetUpdateStrategy struct {
	// type of update: RollingUpdate (default) or OnDelete.
	// +optional
	// +kubebuilder:default=RollingUpdate
	Type DaemonSetUpdateStrategyType `json:"type,omitempty"`

	// rollingUpdate tunes a RollingUpdate; ignored with OnDelete.
	// +optional
	// +kubebuilder:default={}
	RollingUpdate *RollingUpdateDaemonSet `json:"rollingUpdate,omitempty"`
}

// RollingUpdateDaemonSet tunes a DaemonSet's rolling update. Counts and
// percentages are of nodes: a percentage is of the nodes that should run
// the pod (desiredNumberScheduled), rounded up.
// +kubebuilder:validation:XValidation:rule="!(has(self.maxUnavailable) && has(self.maxSurge) && (self.maxUnavailable == 0 || self.maxUnavailable == '0%') && (self.maxSurge == 0 || self.maxSurge == '0%'))",message="maxUnavailable and maxSurge cannot both be 0: the update could never progress"
type RollingUpdateDaemonSet struct {
	// type of pod update: Standard (default: delete and recreate) or
	// InPlaceIfPossible (in place when only images, metadata or resources
	// changed, recreate otherwise).
	// +optional
	// +kubebuilder:default=Standard
	Type RollingUpdateType `json:"type,omitempty"`

	// maxUnavailable is the number (or percentage) of nodes that may be
	// without an available pod during the update. Defaults to 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')",message="must be a non-negative integer or a percentage from 0% to 100%"
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`

	// maxSurge is the number (or percentage) of nodes that may run a new
	// pod beside their old one: the new pod starts first and the old one is
	// deleted once the new one is available, so the node never goes
	// without its daemon. Defaults to 0.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')",message="must be a non-negative integer or a percentage from 0% to 100%"
	MaxSurge *intstr.IntOrString `json:"maxSurge,omitempty"`

	// partition is the number (or percentage) of nodes whose pods are kept
	// on the old revision. Defaults to 0: every node is updated.
	// +optional
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')",message="must be a non-negative integer or a percentage from 0% to 100%"
	Partition *intstr.IntOrString `json:"partition,omitempty"`

	// selector is a node label selector: only the pods of nodes it matches
	// are updated. Widen it (or remove it) to go on with the other nodes.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`

	// paused stops the update where it is; nodes joining or leaving are
	// still handled (a new node gets the current revision).
	// +optional
	Paused bool `json:"paused,omitempty"`

	// inPlaceUpdate tunes in-place updates.
	// +optional
	InPlaceUpdate *InPlaceUpdateStrategy `json:"inPlaceUpdate,omitempty"`
}

// DaemonSetStatus is the observed state of a DaemonSet. Its counters have
// the meaning of the native DaemonSet's.
type DaemonSetStatus struct {
	// observedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// desiredNumberScheduled is the number of nodes that should run the pod.
	// +optional
	DesiredNumberScheduled int32 `json:"desiredNumberScheduled"`
	// currentNumberScheduled is the number of nodes that should run the pod
	// and run at least one.
	// +optional
	CurrentNumberScheduled int32 `json:"currentNumberScheduled"`
	// numberMisscheduled is the number of nodes that run the pod but should
	// not.
	// +optional
	NumberMisscheduled int32 `json:"numberMisscheduled"`
	// numberReady is the number of nodes that should run the pod and run
	// one that is ready.
	// +optional
	NumberReady int32 `json:"numberReady"`
	// numberAvailable is the number of nodes that should run the pod and
	// run one that has been ready for minReadySeconds.
	// +optional
	NumberAvailable int32 `json:"numberAvailable"`
	// numberUnavailable is desiredNumberScheduled minus numberAvailable.
	// +optional
	NumberUnavailable int32 `json:"numberUnavailable"`
	// updatedNumberScheduled is the number of nodes that run a pod of the
	// update revision.
	// +optional
	UpdatedNumberScheduled int32 `json:"updatedNumberScheduled"`
	// updatedNumberAvailable is the number of nodes that run an available
	// pod of the update revision.
	// +optional
	UpdatedNumberAvailable int32 `json:"updatedNumberAvailable"`
	// expectedUpdatedNumber is the number of nodes that should run the
	// update revision once the update is done (partition and
	// rollingUpdate.selector leave the others on old revisions).
	// +optional
	ExpectedUpdatedNumber int32 `json:"expectedUpdatedNumber"`

	// currentRevision is the revision that all pods ran before the update
	// started (equal to updateRevision once it is done).
	// +optional
	CurrentRevision string `json:"currentRevision,omitempty"`
	// updateRevision is the revision of the current template: the value of
	// the controller-revision-hash label on updated pods (OpenKruise's
	// daemonSetHash).
	// +optional
	UpdateRevision string `json:"updateRevision,omitempty"`
	// collisionCount counts hash collisions of revision names; it is added
	// to the hash to make names unique.
	// +optional
	CollisionCount *int32 `json:"collisionCount,omitempty"`

	// conditions: Ready, Reconciling, Stalled and Progressing.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// DaemonSet runs exactly one pod on every eligible node, like a native
// DaemonSet, with in-place updates, surge, partitions, node-selected
// updates and a preDelete hook.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ads,categories=all;drover
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.status.desiredNumberScheduled`
// +kubebuilder:printcolumn:name="Current",type=integer,JSONPath=`.status.currentNumberScheduled`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.numberReady`
// +kubebuilder:printcolumn:name="Up-to-date",type=integer,JSONPath=`.status.updatedNumberScheduled`
// +kubebuilder:printcolumn:name="Available",type=integer,JSONPath=`.status.numberAvailable`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Strategy",type=string,JSONPath=`.spec.updateStrategy.rollingUpdate.type`,priority=1
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.updateRevision`,priority=1
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.spec.template.spec.containers[0].image`,priority=1
type DaemonSet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec DaemonSetSpec `json:"spec"`
	// +optional
	Status DaemonSetStatus `json:"status,omitempty"`
}

// DaemonSetList is a list of DaemonSets.
//
// +kubebuilder:object:root=true
type DaemonSetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DaemonSet `json:"items"`
}

func init() {
	SchemeBuilder.Register(&DaemonSet{}, &DaemonSetList{})
}
