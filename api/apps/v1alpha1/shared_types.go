package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// InPlaceUpdateStrategy tunes in-place updates.
type InPlaceUpdateStrategy struct {
	// gracePeriodSeconds is how long a pod stays not-ready (its
	// InPlaceUpdateReady gate False) before its containers are changed, so
	// load balancers stop sending it traffic first.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	GracePeriodSeconds int32 `json:"gracePeriodSeconds,omitempty"`
}

// UpdatePriorityStrategy orders the pods of an update: pods with higher
// priority are updated first. Exactly one of weightPriority and
// orderPriority may be set.
// +kubebuilder:validation:XValidation:rule="!(has(self.weightPriority) && size(self.weightPriority) > 0 && has(self.orderPriority) && size(self.orderPriority) > 0)",message="weightPriority and orderPriority are mutually exclusive: set only one"
type UpdatePriorityStrategy struct {
	// weightPriority gives every pod the sum of the weights of the terms
	// whose selector matches its labels; heavier pods are updated first.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	WeightPriority []UpdatePriorityWeightTerm `json:"weightPriority,omitempty"`

	// orderPriority orders pods by the integer value of the listed label
	// keys, the first key deciding first; bigger values are updated first
	// and pods without the label last.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	OrderPriority []UpdatePriorityOrderTerm `json:"orderPriority,omitempty"`
}

// UpdatePriorityWeightTerm adds weight to the pods that its selector matches.
type UpdatePriorityWeightTerm struct {
	// weight added to matching pods.
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Weight int32 `json:"weight"`
	// matchSelector selects the pods that get this weight.
	// +required
	MatchSelector metav1.LabelSelector `json:"matchSelector"`
}

// UpdatePriorityOrderTerm orders pods by the integer value of one label.
type UpdatePriorityOrderTerm struct {
	// orderedKey is a label key whose value (the integer at its end, as in
	// "tier-3") orders pods: bigger first.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=317
	OrderedKey string `json:"orderedKey"`
}

// UpdateScatterTerm spreads the pods carrying label key=value evenly across
// the update order instead of updating them together.
type UpdateScatterTerm struct {
	// key of the label.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=317
	Key string `json:"key"`
	// value of the label.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Value string `json:"value"`
}

// UpdateScatterStrategy is a list of scatter terms.
// +kubebuilder:validation:MaxItems=16
type UpdateScatterStrategy []UpdateScatterTerm

// Lifecycle holds the hooks that gate pod deletion and in-place update.
type Lifecycle struct {
	// preDelete holds a pod, in state PreparingDelete, until its hook is
	// released, before the pod is deleted (scale-down or recreate update).
	// +optional
	PreDelete *LifecycleHook `json:"preDelete,omitempty"`
	// inPlaceUpdate holds a pod, in state PreparingUpdate, until its hook is
	// released, before it is updated in place.
	// +optional
	InPlaceUpdate *LifecycleHook `json:"inPlaceUpdate,omitempty"`
}

// LifecycleHook is satisfied ("hooked") while a pod carries all of its
// labels (with these values) or any of its finalizers. A pod waits in the
// hook's state until another component removes them.
// +kubebuilder:validation:XValidation:rule="(has(self.labelsHandler) && size(self.labelsHandler) > 0) || (has(self.finalizersHandler) && size(self.finalizersHandler) > 0)",message="a lifecycle hook needs labelsHandler or finalizersHandler"
type LifecycleHook struct {
	// labelsHandler: labels whose presence on a pod holds it.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	LabelsHandler map[string]string `json:"labelsHandler,omitempty"`
	// finalizersHandler: finalizers whose presence on a pod holds it.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	FinalizersHandler []string `json:"finalizersHandler,omitempty"`
	// markPodNotReady sets the pod's InPlaceUpdateReady gate False when the
	// pod enters the hook's state, so it leaves Service endpoints before the
	// hook runs.
	// +optional
	MarkPodNotReady bool `json:"markPodNotReady,omitempty"`
}

// Condition types and reasons shared by every Drover workload. They follow
// kstatus: Ready is normal-true; Reconciling and Stalled are abnormal-true.
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
	ConditionProgressing = "Progressing"
	// ConditionInPlaceUpdateBlocked is True when an InPlaceOnly update cannot
	// be done in place; its message names the field that prevents it.
	ConditionInPlaceUpdateBlocked = "InPlaceUpdateBlocked"

	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	ReasonUpdating                 = "Updating"
	ReasonScaling                  = "Scaling"
	ReasonPaused                   = "Paused"
	ReasonAvailable                = "Available"
	ReasonNotAvailable             = "NotAvailable"
	ReasonNotInPlaceUpdatable      = "NotInPlaceUpdatable"
	ReasonInPlaceUpdatable         = "InPlaceUpdatable"
	ReasonCreateFailed             = "CreateFailed"
	// ReasonInvalidRolloutControl: the rollout control annotation
	// (AnnotationRolloutControl) cannot be used; updates hold until it is
	// fixed.
	ReasonInvalidRolloutControl = "InvalidRolloutControl"
	ReasonComplete              = "Complete"
)
