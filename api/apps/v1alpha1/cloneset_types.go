package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// CloneSetUpdateStrategyType says how a CloneSet moves pods to a new revision.
// +kubebuilder:validation:Enum=ReCreate;InPlaceIfPossible;InPlaceOnly;OnDelete
type CloneSetUpdateStrategyType string

const (
	// ReCreateCloneSetUpdateStrategyType deletes old pods and creates new ones.
	ReCreateCloneSetUpdateStrategyType CloneSetUpdateStrategyType = "ReCreate"
	// InPlaceIfPossibleCloneSetUpdateStrategyType updates pods in place when
	// only images, metadata or resources changed, and recreates them otherwise.
	InPlaceIfPossibleCloneSetUpdateStrategyType CloneSetUpdateStrategyType = "InPlaceIfPossible"
	// InPlaceOnlyCloneSetUpdateStrategyType updates pods in place and refuses
	// (touching no pod) a change that cannot be done in place.
	InPlaceOnlyCloneSetUpdateStrategyType CloneSetUpdateStrategyType = "InPlaceOnly"
	// OnDeleteCloneSetUpdateStrategyType updates a pod only when a user deletes it.
	OnDeleteCloneSetUpdateStrategyType CloneSetUpdateStrategyType = "OnDelete"
)

// CloneSetSpec is the desired state of a CloneSet.
// +kubebuilder:validation:XValidation:rule="!has(self.selector.matchLabels) || (has(self.template.metadata) && has(self.template.metadata.labels) && self.selector.matchLabels.all(k, k in self.template.metadata.labels && self.template.metadata.labels[k] == self.selector.matchLabels[k]))",message="selector.matchLabels must match template.metadata.labels",fieldPath=".selector"
// +kubebuilder:validation:XValidation:rule="!has(self.selector.matchExpressions) || self.selector.matchExpressions.all(e, e.operator == 'In' ? (has(self.template.metadata.labels) && e.key in self.template.metadata.labels && has(e.values) && self.template.metadata.labels[e.key] in e.values) : e.operator == 'NotIn' ? (!has(self.template.metadata.labels) || !(e.key in self.template.metadata.labels) || !has(e.values) || !(self.template.metadata.labels[e.key] in e.values)) : e.operator == 'Exists' ? (has(self.template.metadata.labels) && e.key in self.template.metadata.labels) : (!has(self.template.metadata.labels) || !(e.key in self.template.metadata.labels)))",message="selector.matchExpressions must match template.metadata.labels",fieldPath=".selector"
type CloneSetSpec struct {
	// replicas is the desired number of pods. Defaults to 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	Replicas *int32 `json:"replicas,omitempty"`

	// selector selects the pods of this CloneSet. It must match the
	// template's labels and cannot change.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="selector is immutable"
	Selector *metav1.LabelSelector `json:"selector"`

	// template describes the pods to create.
	// +required
	Template corev1.PodTemplateSpec `json:"template"`

	// volumeClaimTemplates: one PersistentVolumeClaim per template is
	// created for every pod, named <template>-<pod>. A pod that is
	// recreated reuses its claims unless scaleStrategy.disablePVCReuse.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	VolumeClaimTemplates []corev1.PersistentVolumeClaim `json:"volumeClaimTemplates,omitempty"`

	// scaleStrategy tunes scale-up and scale-down.
	// +optional
	ScaleStrategy CloneSetScaleStrategy `json:"scaleStrategy,omitempty"`

	// updateStrategy tunes how pods move to a new revision.
	// +optional
	// +kubebuilder:default={}
	UpdateStrategy CloneSetUpdateStrategy `json:"updateStrategy,omitempty"`

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

	// progressDeadlineSeconds is how long an update or scale may make no
	// progress before the Progressing condition turns False with reason
	// ProgressDeadlineExceeded (and Stalled True). Defaults to 600.
	// +optional
	// +kubebuilder:default=600
	// +kubebuilder:validation:Minimum=1
	ProgressDeadlineSeconds *int32 `json:"progressDeadlineSeconds,omitempty"`
}

// CloneSetScaleStrategy tunes scaling.
type CloneSetScaleStrategy struct {
	// podsToDelete names pods to delete first. With replicas unchanged they
	// are replaced; with replicas lowered they are the ones removed.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1000
	PodsToDelete []string `json:"podsToDelete,omitempty"`

	// maxUnavailable limits how many new pods may be not ready during a
	// scale-up: creation waits until fewer are. Integer or percentage of
	// replicas; unset means no limit.
	// +optional
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')",message="must be a non-negative integer or a percentage from 0% to 100%"
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`

	// disablePVCReuse: when true, the claims of a deleted pod are deleted
	// with it and a recreated pod gets new ones.
	// +optional
	DisablePVCReuse bool `json:"disablePVCReuse,omitempty"`
}

// CloneSetUpdateStrategy tunes updates.
// +kubebuilder:validation:XValidation:rule="!(has(self.maxUnavailable) && has(self.maxSurge) && (self.maxUnavailable == 0 || self.maxUnavailable == '0%') && (self.maxSurge == 0 || self.maxSurge == '0%'))",message="maxUnavailable and maxSurge cannot both be 0: the update could never progress"
type CloneSetUpdateStrategy struct {
	// type of update: ReCreate (default), InPlaceIfPossible, InPlaceOnly or
	// OnDelete.
	// +optional
	// +kubebuilder:default=ReCreate
	Type CloneSetUpdateStrategyType `json:"type,omitempty"`

	// partition is the number (or percentage of replicas) of pods kept on
	// the old revision. Defaults to 0: every pod is updated.
	// +optional
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')",message="must be a non-negative integer or a percentage from 0% to 100%"
	Partition *intstr.IntOrString `json:"partition,omitempty"`

	// maxUnavailable is the number (or percentage of replicas, rounded
	// down, at least 1 unless maxSurge is set) of pods that may be
	// unavailable during an update. Defaults to 20%.
	// +optional
	// +kubebuilder:default="20%"
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')",message="must be a non-negative integer or a percentage from 0% to 100%"
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`

	// maxSurge is the number (or percentage of replicas, rounded up) of
	// extra pods of the new revision that may be created above replicas
	// during an update. Defaults to 0.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')",message="must be a non-negative integer or a percentage from 0% to 100%"
	MaxSurge *intstr.IntOrString `json:"maxSurge,omitempty"`

	// paused stops the update where it is; scaling goes on.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// inPlaceUpdate tunes in-place updates.
	// +optional
	InPlaceUpdate *InPlaceUpdateStrategy `json:"inPlaceUpdate,omitempty"`

	// priorityStrategy orders the pods of an update.
	// +optional
	PriorityStrategy *UpdatePriorityStrategy `json:"priorityStrategy,omitempty"`

	// scatterStrategy spreads pods with given labels across the update order.
	// +optional
	// +listType=atomic
	ScatterStrategy UpdateScatterStrategy `json:"scatterStrategy,omitempty"`
}

// CloneSetStatus is the observed state of a CloneSet.
type CloneSetStatus struct {
	// observedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// replicas is the number of pods that exist and are not terminating.
	// +optional
	Replicas int32 `json:"replicas"`
	// readyReplicas is the number of pods with a Ready condition.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas"`
	// availableReplicas is the number of pods ready for at least minReadySeconds.
	// +optional
	AvailableReplicas int32 `json:"availableReplicas"`
	// updatedReplicas is the number of pods of the update revision.
	// +optional
	UpdatedReplicas int32 `json:"updatedReplicas"`
	// updatedReadyReplicas is the number of ready pods of the update revision.
	// +optional
	UpdatedReadyReplicas int32 `json:"updatedReadyReplicas"`
	// updatedAvailableReplicas is the number of available pods of the
	// update revision.
	// +optional
	UpdatedAvailableReplicas int32 `json:"updatedAvailableReplicas"`
	// expectedUpdatedReplicas is the number of pods that should be on the
	// update revision once the update is done: replicas minus partition.
	// +optional
	ExpectedUpdatedReplicas int32 `json:"expectedUpdatedReplicas"`

	// currentRevision is the revision that all pods ran before the update
	// started (equal to updateRevision once it is done).
	// +optional
	CurrentRevision string `json:"currentRevision,omitempty"`
	// updateRevision is the revision of the current template.
	// +optional
	UpdateRevision string `json:"updateRevision,omitempty"`
	// collisionCount counts hash collisions of revision names; it is added
	// to the hash to make names unique.
	// +optional
	CollisionCount *int32 `json:"collisionCount,omitempty"`

	// labelSelector is the selector in string form, for the scale subresource.
	// +optional
	LabelSelector string `json:"labelSelector,omitempty"`

	// conditions: Ready, Reconciling, Stalled, Progressing and
	// InPlaceUpdateBlocked.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// CloneSet runs a set of identical pods, like a Deployment, with in-place
// updates, partitions, calculated scale-down order and lifecycle hooks.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.labelSelector
// +kubebuilder:resource:shortName=clone;cs,categories=all;drover
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.spec.replicas`
// +kubebuilder:printcolumn:name="Updated",type=integer,JSONPath=`.status.updatedReplicas`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Available",type=integer,JSONPath=`.status.availableReplicas`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.updateRevision`,priority=1
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.spec.template.spec.containers[0].image`,priority=1
type CloneSet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec CloneSetSpec `json:"spec"`
	// +optional
	Status CloneSetStatus `json:"status,omitempty"`
}

// CloneSetList is a list of CloneSets.
//
// +kubebuilder:object:root=true
type CloneSetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CloneSet `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CloneSet{}, &CloneSetList{})
}
