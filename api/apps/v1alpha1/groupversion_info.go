// Package v1alpha1 contains the apps.drover.dev/v1alpha1 API: Drover's
// advanced workloads (CloneSet and, later, StatefulSet, DaemonSet,
// SidecarSet and BroadcastJob) and the strategy types they share.
//
// +kubebuilder:object:generate=true
// +groupName=apps.drover.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "apps.drover.dev", Version: "v1alpha1"}

	// SchemeBuilder registers this API's types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds this API's types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
