// Package v1alpha1 contains the rollouts.drover.dev/v1alpha1 API:
// progressive delivery (canary, blue-green, A/B) of the workloads Drover
// runs and of apps/v1 Deployments.
//
// +kubebuilder:object:generate=true
// +groupName=rollouts.drover.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "rollouts.drover.dev", Version: "v1alpha1"}

	// SchemeBuilder registers this API's types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds this API's types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
