package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// SidecarSetUpdateStrategyType says whether a SidecarSet upgrades the
// sidecars of running pods.
// +kubebuilder:validation:Enum=RollingUpdate;NotUpdate
type SidecarSetUpdateStrategyType string

const (
	// RollingUpdateSidecarSetStrategyType upgrades the sidecars of running
	// pods in place when only their images changed, a few pods at a time.
	RollingUpdateSidecarSetStrategyType SidecarSetUpdateStrategyType = "RollingUpdate"
	// NotUpdateSidecarSetStrategyType never touches running pods: a change
	// reaches only pods created afterwards.
	NotUpdateSidecarSetStrategyType SidecarSetUpdateStrategyType = "NotUpdate"
)

// PodInjectPolicyType says where injected containers go in the pod.
// +kubebuilder:validation:Enum=BeforeAppContainer;AfterAppContainer
type PodInjectPolicyType string

const (
	// BeforeAppContainer puts the sidecar before the pod's own containers
	// (init containers: before the pod's own init containers).
	BeforeAppContainer PodInjectPolicyType = "BeforeAppContainer"
	// AfterAppContainer puts the sidecar after the pod's own containers.
	AfterAppContainer PodInjectPolicyType = "AfterAppContainer"
)

// ShareVolumePolicyType says whether a sidecar mounts the volumes of the
// pod's own containers.
// +kubebuilder:validation:Enum=Enabled;Disabled
type ShareVolumePolicyType string

const (
	// ShareVolumePolicyEnabled: the sidecar also gets every volumeMount of the
	// pod's application containers (except paths it mounts itself).
	ShareVolumePolicyEnabled ShareVolumePolicyType = "Enabled"
	// ShareVolumePolicyDisabled: the sidecar mounts only its own volumeMounts.
	ShareVolumePolicyDisabled ShareVolumePolicyType = "Disabled"
)

// SidecarContainerUpgradeType says how a running sidecar moves to a new image.
// +kubebuilder:validation:Enum=ColdUpgrade;HotUpgrade
type SidecarContainerUpgradeType string

const (
	// ColdUpgrade restarts the sidecar container with its new image (the
	// application containers keep running).
	ColdUpgrade SidecarContainerUpgradeType = "ColdUpgrade"
	// HotUpgrade runs the sidecar in two container slots, <name>-1 and
	// <name>-2: one runs the image, the other hotUpgradeEmptyImage. An
	// upgrade starts the new image in the empty slot, waits until it is
	// ready, then empties the old slot, so the sidecar is never absent.
	HotUpgrade SidecarContainerUpgradeType = "HotUpgrade"
)

// SidecarSetSpec is the desired state of a SidecarSet.
// +kubebuilder:validation:XValidation:rule="(has(self.containers) && size(self.containers) > 0) || (has(self.initContainers) && size(self.initContainers) > 0)",message="a SidecarSet needs at least one entry in containers or initContainers"
// +kubebuilder:validation:XValidation:rule="(has(self.selector.matchLabels) && size(self.selector.matchLabels) > 0) || (has(self.selector.matchExpressions) && size(self.selector.matchExpressions) > 0) || (has(self.namespaceSelector) && ((has(self.namespaceSelector.matchLabels) && size(self.namespaceSelector.matchLabels) > 0) || (has(self.namespaceSelector.matchExpressions) && size(self.namespaceSelector.matchExpressions) > 0)))",message="selector is empty and would inject every pod of the cluster: give it matchLabels or matchExpressions, or narrow namespaceSelector",fieldPath=".selector"
// +kubebuilder:validation:XValidation:rule="!has(self.initContainers) || self.initContainers.all(c, !has(c.upgradeStrategy) || !has(c.upgradeStrategy.type) || c.upgradeStrategy.type != 'HotUpgrade')",message="initContainers cannot use upgradeStrategy.type HotUpgrade (only containers can)",fieldPath=".initContainers"
type SidecarSetSpec struct {
	// selector selects, by their labels, the pods to inject into and to
	// upgrade. It is matched when a pod is created (and again when the
	// SidecarSet upgrades it).
	// +required
	Selector *metav1.LabelSelector `json:"selector"`

	// namespaceSelector restricts injection to the namespaces whose labels
	// it matches; unset means every namespace (except kube-system and
	// Drover's own namespace, which are never injected).
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// containers are injected into the pod's containers.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Containers []SidecarContainer `json:"containers,omitempty"`

	// initContainers are injected into the pod's init containers. An init
	// container with restartPolicy Always is a native sidecar: it starts
	// before the application containers and keeps running; its image is
	// upgraded in place like a container's (ColdUpgrade).
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	InitContainers []SidecarContainer `json:"initContainers,omitempty"`

	// volumes are added to the pod, unless it already has a volume of the
	// same name (the pod's own wins).
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Volumes []corev1.Volume `json:"volumes,omitempty"`

	// imagePullSecrets are added to the pod's imagePullSecrets.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// updateStrategy says how running pods get a changed sidecar image.
	// +optional
	// +kubebuilder:default={}
	UpdateStrategy SidecarSetUpdateStrategy `json:"updateStrategy,omitempty"`
}

// SidecarContainer is a container to inject, with how to inject and
// upgrade it.
// +kubebuilder:validation:XValidation:rule="has(self.image) && size(self.image) > 0",message="image is required"
// +kubebuilder:validation:XValidation:rule="!has(self.upgradeStrategy) || !has(self.upgradeStrategy.type) || self.upgradeStrategy.type != 'HotUpgrade' || size(self.name) <= 61",message="name must be at most 61 characters with upgradeStrategy.type HotUpgrade (the slots are <name>-1 and <name>-2)",fieldPath=".name"
// +kubebuilder:validation:XValidation:rule="!has(self.upgradeStrategy) || !has(self.upgradeStrategy.hotUpgradeEmptyImage) || self.upgradeStrategy.hotUpgradeEmptyImage != self.image",message="upgradeStrategy.hotUpgradeEmptyImage must differ from image",fieldPath=".upgradeStrategy.hotUpgradeEmptyImage"
type SidecarContainer struct {
	corev1.Container `json:",inline"`

	// podInjectPolicy: BeforeAppContainer (default) or AfterAppContainer.
	// +optional
	// +kubebuilder:default=BeforeAppContainer
	PodInjectPolicy PodInjectPolicyType `json:"podInjectPolicy,omitempty"`

	// shareVolumePolicy: with type Enabled the sidecar also mounts every
	// volume the pod's application containers mount.
	// +optional
	ShareVolumePolicy *ShareVolumePolicy `json:"shareVolumePolicy,omitempty"`

	// transferEnv copies environment variables from an application
	// container of the pod into the sidecar.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	TransferEnv []TransferEnvVar `json:"transferEnv,omitempty"`

	// upgradeStrategy says how a running sidecar moves to a new image.
	// +optional
	UpgradeStrategy *SidecarContainerUpgradeStrategy `json:"upgradeStrategy,omitempty"`
}

// ShareVolumePolicy says whether a sidecar shares the application's volumes.
type ShareVolumePolicy struct {
	// type: Enabled or Disabled (default).
	// +required
	Type ShareVolumePolicyType `json:"type"`
}

// TransferEnvVar copies one or more environment variables of an
// application container into the sidecar.
// +kubebuilder:validation:XValidation:rule="has(self.envName) != (has(self.envNames) && size(self.envNames) > 0)",message="set exactly one of envName and envNames"
type TransferEnvVar struct {
	// sourceContainerName is the application container to copy from.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	SourceContainerName string `json:"sourceContainerName"`
	// envName is the variable to copy.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	EnvName string `json:"envName,omitempty"`
	// envNames are the variables to copy.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=256
	EnvNames []string `json:"envNames,omitempty"`
}

// SidecarContainerUpgradeStrategy says how one sidecar container is upgraded.
// +kubebuilder:validation:XValidation:rule="!has(self.type) || self.type != 'HotUpgrade' || (has(self.hotUpgradeEmptyImage) && size(self.hotUpgradeEmptyImage) > 0)",message="hotUpgradeEmptyImage is required when type is HotUpgrade",fieldPath=".hotUpgradeEmptyImage"
type SidecarContainerUpgradeStrategy struct {
	// type: ColdUpgrade (default) or HotUpgrade.
	// +optional
	// +kubebuilder:default=ColdUpgrade
	Type SidecarContainerUpgradeType `json:"type,omitempty"`

	// hotUpgradeEmptyImage is the image the idle HotUpgrade slot runs: a
	// container that does nothing (and is ready), with the same command
	// interface as the sidecar. Required with HotUpgrade.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	HotUpgradeEmptyImage string `json:"hotUpgradeEmptyImage,omitempty"`

	// upgrade tunes the rollout of this container's image changes.
	// +optional
	Upgrade *SidecarContainerUpgrade `json:"upgrade,omitempty"`
}

// SidecarContainerUpgrade tunes the rollout of one container's image.
type SidecarContainerUpgrade struct {
	// maxUnavailable caps, for this container, the number (or percentage of
	// matched pods, rounded down, at least 1) of pods upgraded at once: a
	// pod whose upgrade changes this container's image counts against it
	// until the upgrade is done and the pod is ready. It applies in
	// addition to spec.updateStrategy.maxUnavailable (the smaller wins).
	// +optional
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:MaxLength=4
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 1 : self.matches('^(100|[1-9][0-9]?)%$')",message="must be a positive integer or a percentage from 1% to 100%"
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
}

// SidecarSetUpdateStrategy says how running pods get a changed sidecar.
type SidecarSetUpdateStrategy struct {
	// type: RollingUpdate (default) or NotUpdate.
	// +optional
	// +kubebuilder:default=RollingUpdate
	Type SidecarSetUpdateStrategyType `json:"type,omitempty"`

	// partition is the number (or percentage of matched pods, rounded up)
	// of pods kept on their old sidecars. Defaults to 0.
	// +optional
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')",message="must be a non-negative integer or a percentage from 0% to 100%"
	Partition *intstr.IntOrString `json:"partition,omitempty"`

	// maxUnavailable is the number (or percentage of matched pods, rounded
	// down, at least 1) of pods that may be unavailable (not ready, or being
	// upgraded) while sidecars are upgraded. Defaults to 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 1 : self.matches('^(100|[1-9][0-9]?)%$')",message="must be a positive integer or a percentage from 1% to 100%"
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`

	// selector limits upgrades to the matched pods it selects (the others
	// keep their sidecars).
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`

	// paused stops upgrades where they are; injection into new pods goes on.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// priorityStrategy orders the pods of an upgrade.
	// +optional
	PriorityStrategy *UpdatePriorityStrategy `json:"priorityStrategy,omitempty"`

	// scatterStrategy spreads pods with given labels across the upgrade order.
	// +optional
	// +listType=atomic
	ScatterStrategy UpdateScatterStrategy `json:"scatterStrategy,omitempty"`
}

// SidecarSetStatus is the observed state of a SidecarSet.
type SidecarSetStatus struct {
	// observedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// matchedPods is the number of active pods that carry this SidecarSet's
	// sidecars and match its selectors.
	// +optional
	MatchedPods int32 `json:"matchedPods"`
	// updatedPods is the number of matched pods whose sidecars are those of
	// the latest revision.
	// +optional
	UpdatedPods int32 `json:"updatedPods"`
	// readyPods is the number of matched pods that are ready.
	// +optional
	ReadyPods int32 `json:"readyPods"`
	// updatedReadyPods is the number of updated pods that are ready.
	// +optional
	UpdatedReadyPods int32 `json:"updatedReadyPods"`
	// expectedUpdatedPods is the number of matched pods that should be
	// updated once the upgrade is done: those the strategy lets it upgrade
	// (not kept by partition or updateStrategy.selector, and changed only
	// in images since they were injected).
	// +optional
	ExpectedUpdatedPods int32 `json:"expectedUpdatedPods"`

	// latestRevision is the hash of the sidecars that new pods get.
	// +optional
	LatestRevision string `json:"latestRevision,omitempty"`

	// conditions: Ready, Reconciling, Stalled (kstatus), Progressing, and
	// InPlaceUpdateBlocked (True while matched pods were injected with a
	// revision that differs from the latest in more than images: they get
	// it only when recreated).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// SidecarSet injects sidecar containers into the pods its selectors match
// when they are created, and upgrades those sidecars in place.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=sidecarset,categories=all;drover
// +kubebuilder:printcolumn:name="Matched",type=integer,JSONPath=`.status.matchedPods`
// +kubebuilder:printcolumn:name="Updated",type=integer,JSONPath=`.status.updatedPods`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyPods`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.latestRevision`,priority=1
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.spec.containers[0].image`,priority=1
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters: it names the SidecarSet's admission webhook entry"
type SidecarSet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec SidecarSetSpec `json:"spec"`
	// +optional
	Status SidecarSetStatus `json:"status,omitempty"`
}

// SidecarSetList is a list of SidecarSets.
//
// +kubebuilder:object:root=true
type SidecarSetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SidecarSet `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SidecarSet{}, &SidecarSetList{})
}
