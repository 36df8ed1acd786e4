package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// StatefulSetPodManagementPolicy says how pods are created and deleted
// when the set scales.
// +kubebuilder:validation:Enum=OrderedReady;Parallel
type StatefulSetPodManagementPolicy string

const (
	// OrderedReadyPodManagement creates pods in ordinal order, each once the
	// previous one is Running and Ready (and available for minReadySeconds),
	// and removes them from the highest ordinal down, one at a time.
	OrderedReadyPodManagement StatefulSetPodManagementPolicy = "OrderedReady"
	// ParallelPodManagement creates and deletes pods without waiting.
	ParallelPodManagement StatefulSetPodManagementPolicy = "Parallel"
)

// StatefulSetUpdateStrategyType says how a StatefulSet moves its pods to
// a new revision.
// +kubebuilder:validation:Enum=RollingUpdate;OnDelete
type StatefulSetUpdateStrategyType string

const (
	// RollingUpdateStatefulSetStrategyType updates pods automatically.
	RollingUpdateStatefulSetStrategyType StatefulSetUpdateStrategyType = "RollingUpdate"
	// OnDeleteStatefulSetStrategyType updates a pod only when it is deleted:
	// the replacement gets the new revision.
	OnDeleteStatefulSetStrategyType StatefulSetUpdateStrategyType = "OnDelete"
)

// StatefulSetPodUpdatePolicy says how one pod moves to a new revision
// during a rolling update.
// +kubebuilder:validation:Enum=ReCreate;InPlaceIfPossible;InPlaceOnly
type StatefulSetPodUpdatePolicy string

const (
	// ReCreateStatefulSetPodUpdatePolicy deletes the pod and creates it
	// again under the same name, with the same claims.
	ReCreateStatefulSetPodUpdatePolicy StatefulSetPodUpdatePolicy = "ReCreate"
	// InPlaceIfPossibleStatefulSetPodUpdatePolicy updates the pod in place
	// when only images, metadata or resources changed, and recreates it
	// otherwise.
	InPlaceIfPossibleStatefulSetPodUpdatePolicy StatefulSetPodUpdatePolicy = "InPlaceIfPossible"
	// InPlaceOnlyStatefulSetPodUpdatePolicy updates pods in place and
	// refuses (touching no pod) a change that cannot be done in place.
	InPlaceOnlyStatefulSetPodUpdatePolicy StatefulSetPodUpdatePolicy = "InPlaceOnly"
)

// PersistentVolumeClaimRetentionPolicyType says what happens to a pod's
// claims when the set is deleted or scaled down.
// +kubebuilder:validation:Enum=Retain;Delete
type PersistentVolumeClaimRetentionPolicyType string

const (
	// RetainPersistentVolumeClaimRetentionPolicyType keeps the claims.
	RetainPersistentVolumeClaimRetentionPolicyType PersistentVolumeClaimRetentionPolicyType = "Retain"
	// DeletePersistentVolumeClaimRetentionPolicyType deletes the claims
	// (through owner references and the garbage collector).
	DeletePersistentVolumeClaimRetentionPolicyType PersistentVolumeClaimRetentionPolicyType = "Delete"
)

// StatefulSetSpec is the desired state of an Advanced StatefulSet.
// +kubebuilder:validation:XValidation:rule="!has(self.selector) || !has(self.selector.matchLabels) || (has(self.template.metadata) && has(self.template.metadata.labels) && self.selector.matchLabels.all(k, k in self.template.metadata.labels && self.template.metadata.labels[k] == self.selector.matchLabels[k]))",message="selector.matchLabels must match template.metadata.labels",fieldPath=".selector"
// +kubebuilder:validation:XValidation:rule="!has(self.selector) || !has(self.selector.matchExpressions) || self.selector.matchExpressions.all(e, e.operator == 'In' ? (has(self.template.metadata.labels) && e.key in self.template.metadata.labels && has(e.values) && self.template.metadata.labels[e.key] in e.values) : e.operator == 'NotIn' ? (!has(self.template.metadata.labels) || !(e.key in self.template.metadata.labels) || !has(e.values) || !(self.template.metadata.labels[e.key] in e.values)) : e.operator == 'Exists' ? (has(self.template.metadata.labels) && e.key in self.template.metadata.labels) : (!has(self.template.metadata.labels) || !(e.key in self.template.metadata.labels)))",message="selector.matchExpressions must match template.metadata.labels",fieldPath=".selector"
// +kubebuilder:validation:XValidation:rule="has(self.selector) == has(oldSelf.selector) && (!has(self.selector) || self.selector == oldSelf.selector)",message="selector is immutable (it may be omitted, but only when the set is created)",fieldPath=".selector"
// +kubebuilder:validation:XValidation:rule="has(self.serviceName) == has(oldSelf.serviceName) && (!has(self.serviceName) || self.serviceName == oldSelf.serviceName)",message="serviceName is immutable",fieldPath=".serviceName"
// +kubebuilder:validation:XValidation:rule="self.podManagementPolicy == oldSelf.podManagementPolicy",message="podManagementPolicy is immutable",fieldPath=".podManagementPolicy"
// +kubebuilder:validation:XValidation:rule="!has(self.updateStrategy.rollingUpdate) || !has(self.updateStrategy.rollingUpdate.maxUnavailable) || self.podManagementPolicy == 'Parallel' || self.updateStrategy.rollingUpdate.maxUnavailable == 1",message="updateStrategy.rollingUpdate.maxUnavailable other than 1 needs podManagementPolicy Parallel: OrderedReady updates one ordinal at a time, from the highest down",fieldPath=".updateStrategy.rollingUpdate.maxUnavailable"
// +kubebuilder:validation:XValidation:rule="!has(self.updateStrategy.rollingUpdate) || !has(self.updateStrategy.rollingUpdate.unorderedUpdate) || self.podManagementPolicy == 'Parallel'",message="updateStrategy.rollingUpdate.unorderedUpdate needs podManagementPolicy Parallel",fieldPath=".updateStrategy.rollingUpdate.unorderedUpdate"
// +kubebuilder:validation:XValidation:rule="self.updateStrategy.type == 'RollingUpdate' || !has(self.updateStrategy.rollingUpdate)",message="updateStrategy.rollingUpdate is only allowed with updateStrategy.type RollingUpdate",fieldPath=".updateStrategy.rollingUpdate"
type StatefulSetSpec struct {
	// replicas is the desired number of pods. Defaults to 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	Replicas *int32 `json:"replicas,omitempty"`

	// selector selects the pods of this set. It must match the template's
	// labels and cannot change. When omitted, Drover selects the set's pods
	// by the label apps.drover.dev/statefulset=<name>, which it adds to
	// every pod it creates; status.labelSelector shows the selector in use.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`

	// template describes the pods to create. Pod <name>-<ordinal> gets the
	// hostname <name>-<ordinal> and, with serviceName, the subdomain
	// serviceName.
	// +required
	Template corev1.PodTemplateSpec `json:"template"`

	// volumeClaimTemplates: every pod gets one PersistentVolumeClaim per
	// template, named <template>-<name>-<ordinal>. Claims outlive their pod:
	// a recreated or updated pod reuses them (see
	// persistentVolumeClaimRetentionPolicy). A change applies to claims
	// created afterwards.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	VolumeClaimTemplates []corev1.PersistentVolumeClaim `json:"volumeClaimTemplates,omitempty"`

	// serviceName is the headless Service that gives the pods their DNS
	// names (<pod>.<serviceName>.<namespace>.svc); it is set as the pods'
	// subdomain. Immutable.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	ServiceName string `json:"serviceName,omitempty"`

	// podManagementPolicy: OrderedReady (default) creates pods one at a time
	// in ordinal order, each once the previous is Running and Ready, and
	// removes them from the highest ordinal down; Parallel does not wait.
	// Immutable.
	// +optional
	// +kubebuilder:default=OrderedReady
	PodManagementPolicy StatefulSetPodManagementPolicy `json:"podManagementPolicy,omitempty"`

	// updateStrategy tunes how pods move to a new revision.
	// +optional
	// +kubebuilder:default={type: RollingUpdate}
	UpdateStrategy StatefulSetUpdateStrategy `json:"updateStrategy,omitempty"`

	// revisionHistoryLimit is how many old ControllerRevisions to keep.
	// Defaults to 10.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	RevisionHistoryLimit *int32 `json:"revisionHistoryLimit,omitempty"`

	// minReadySeconds is how long a new or updated pod must be ready to
	// count as available (native StatefulSet field; see also
	// updateStrategy.rollingUpdate.minReadySeconds, which wins when set).
	// +optional
	// +kubebuilder:validation:Minimum=0
	MinReadySeconds int32 `json:"minReadySeconds,omitempty"`

	// ordinals sets the number of the first pod.
	// +optional
	Ordinals *StatefulSetOrdinals `json:"ordinals,omitempty"`

	// reserveOrdinals are ordinals never used: integers and ranges "a-b"
	// (both ends included). A reserved ordinal is skipped, so the set's pods
	// take the next free ordinals; reserving the ordinal of a running pod
	// deletes it and creates the next free one.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:XValidation:rule="self.all(o, type(o) == int ? o >= 0 : (o.matches('^[0-9]{1,9}-[0-9]{1,9}$') && int(o.split('-')[0]) <= int(o.split('-')[1])))",message="reserveOrdinals items must be non-negative integers or ranges \"a-b\" with a <= b (for example 3 or \"3-5\")"
	ReserveOrdinals []intstr.IntOrString `json:"reserveOrdinals,omitempty"`

	// persistentVolumeClaimRetentionPolicy says whether the claims of
	// volumeClaimTemplates are deleted when the set is deleted (whenDeleted)
	// or scaled down (whenScaled). Both default to Retain.
	// +optional
	PersistentVolumeClaimRetentionPolicy *StatefulSetPersistentVolumeClaimRetentionPolicy `json:"persistentVolumeClaimRetentionPolicy,omitempty"`

	// lifecycle hooks that gate pod deletion and in-place update.
	// +optional
	Lifecycle *Lifecycle `json:"lifecycle,omitempty"`

	// progressDeadlineSeconds is how long an update or scale may make no
	// progress before the Progressing condition turns False with reason
	// ProgressDeadlineExceeded (and Stalled True). Defaults to 600.
	// +optional
	// +kubebuilder:default=600
	// +kubebuilder:validation:Minimum=1
	ProgressDeadlineSeconds *int32 `json:"progressDeadlineSeconds,omitempty"`
}

// StatefulSetOrdinals sets the ordinals of a StatefulSet's pods.
type StatefulSetOrdinals struct {
	// start is the ordinal of the first pod. Defaults to 0.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Start int32 `json:"start,omitempty"`
}

// StatefulSetPersistentVolumeClaimRetentionPolicy says what happens to
// the claims of volumeClaimTemplates.
type StatefulSetPersistentVolumeClaimRetentionPolicy struct {
	// whenDeleted: Delete gives the claims an owner reference to the set,
	// so the garbage collector deletes them with it; Retain (default) keeps
	// them.
	// +optional
	// +kubebuilder:default=Retain
	WhenDeleted PersistentVolumeClaimRetentionPolicyType `json:"whenDeleted,omitempty"`
	// whenScaled: Delete gives the claims of a pod removed by a scale-down
	// an owner reference to that pod, so they go with it; Retain (default)
	// keeps them for a later scale-up.
	// +optional
	// +kubebuilder:default=Retain
	WhenScaled PersistentVolumeClaimRetentionPolicyType `json:"whenScaled,omitempty"`
}

// StatefulSetUpdateStrategy tunes updates.
type StatefulSetUpdateStrategy struct {
	// type of update: RollingUpdate (default) or OnDelete.
	// +optional
	// +kubebuilder:default=RollingUpdate
	Type StatefulSetUpdateStrategyType `json:"type,omitempty"`

	// rollingUpdate tunes a RollingUpdate.
	// +optional
	RollingUpdate *RollingUpdateStatefulSetStrategy `json:"rollingUpdate,omitempty"`
}

// RollingUpdateStatefulSetStrategy tunes a rolling update.
type RollingUpdateStatefulSetStrategy struct {
	// podUpdatePolicy: ReCreate (default), InPlaceIfPossible or InPlaceOnly.
	// +optional
	// +kubebuilder:default=ReCreate
	PodUpdatePolicy StatefulSetPodUpdatePolicy `json:"podUpdatePolicy,omitempty"`

	// partition: pods with an ordinal at or above the partition are
	// updated, those below keep (and are recreated at) the current
	// revision. Precisely, the set's pods in ordinal order (skipping
	// reserved ordinals, from ordinals.start) form positions 0..replicas-1;
	// pods at positions below partition are kept, which is "ordinal >=
	// partition" when ordinals start at 0 and none is reserved. An integer or
	// a percentage of replicas (rounded up). Defaults to 0.
	// +optional
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')",message="must be a non-negative integer or a percentage from 0% to 100%"
	Partition *intstr.IntOrString `json:"partition,omitempty"`

	// maxUnavailable is the number (or percentage of replicas, rounded
	// down, at least 1) of pods that may be unavailable during an update.
	// Above 1 it needs podManagementPolicy Parallel, which then updates
	// several ordinals at once. Defaults to 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 1 : self.matches('^(100|[1-9]?[0-9])%$')",message="must be a positive integer or a percentage from 0% to 100%"
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`

	// paused stops the update where it is: no running pod moves to the
	// new revision. Scaling goes on, and pods created meanwhile (scale-up,
	// replacement of a lost pod) get the update revision unless below the
	// partition, as with the native StatefulSet.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// unorderedUpdate updates pods in priority order instead of from the
	// highest ordinal down. Needs podManagementPolicy Parallel.
	// +optional
	UnorderedUpdate *StatefulSetUnorderedUpdateStrategy `json:"unorderedUpdate,omitempty"`

	// inPlaceUpdateStrategy tunes in-place updates.
	// +optional
	InPlaceUpdateStrategy *InPlaceUpdateStrategy `json:"inPlaceUpdateStrategy,omitempty"`

	// minReadySeconds is how long a created or updated pod must be ready
	// before it counts as available and the update moves on (OpenKruise's
	// field; it overrides spec.minReadySeconds). At most 300.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=300
	MinReadySeconds *int32 `json:"minReadySeconds,omitempty"`
}

// StatefulSetUnorderedUpdateStrategy orders an update by priority.
type StatefulSetUnorderedUpdateStrategy struct {
	// priorityStrategy orders the pods of an update: higher priority first;
	// pods of equal priority from the highest ordinal down.
	// +optional
	PriorityStrategy *UpdatePriorityStrategy `json:"priorityStrategy,omitempty"`
}

// StatefulSetStatus is the observed state of a StatefulSet.
type StatefulSetStatus struct {
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
	// currentReplicas is the number of pods of the current revision.
	// +optional
	CurrentReplicas int32 `json:"currentReplicas"`
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

	// currentRevision is the revision the pods ran before the update
	// started (equal to updateRevision once every pod is updated).
	// +optional
	CurrentRevision string `json:"currentRevision,omitempty"`
	// updateRevision is the revision of the current template.
	// +optional
	UpdateRevision string `json:"updateRevision,omitempty"`
	// collisionCount counts hash collisions of revision names.
	// +optional
	CollisionCount *int32 `json:"collisionCount,omitempty"`

	// labelSelector is the selector in use, in string form (for the scale
	// subresource, HPA and kubectl).
	// +optional
	LabelSelector string `json:"labelSelector,omitempty"`

	// conditions: Ready, Reconciling, Stalled, Progressing and
	// InPlaceUpdateBlocked.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// StatefulSet (Advanced StatefulSet) runs pods with stable names
// <name>-<ordinal>, stable network identities and per-pod volumes, like
// the native StatefulSet, and adds in-place updates, partitions by
// percentage, parallel updates within maxUnavailable, priority order,
// paused updates, reserved ordinals and lifecycle hooks.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.labelSelector
// +kubebuilder:resource:shortName=asts,categories=all;drover
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 52",message="metadata.name must be at most 52 characters: it prefixes pod and revision names, which are label values (at most 63)"
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.spec.replicas`
// +kubebuilder:printcolumn:name="Current",type=integer,JSONPath=`.status.currentReplicas`
// +kubebuilder:printcolumn:name="Updated",type=integer,JSONPath=`.status.updatedReplicas`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Available",type=integer,JSONPath=`.status.availableReplicas`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.updateRevision`,priority=1
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.spec.template.spec.containers[0].image`,priority=1
type StatefulSet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec StatefulSetSpec `json:"spec"`
	// +optional
	Status StatefulSetStatus `json:"status,omitempty"`
}

// StatefulSetList is a list of StatefulSets.
//
// +kubebuilder:object:root=true
type StatefulSetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []StatefulSet `json:"items"`
}

func init() {
	SchemeBuilder.Register(&StatefulSet{}, &StatefulSetList{})
}
