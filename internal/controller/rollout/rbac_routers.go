package rollout

// The traffic routers' objects (internal/traffic/...; controller-gen reads
// RBAC markers only under internal/controller). The manager reads them
// uncached (get only) and patches them; it creates the ones it owns
// (canary Ingresses, TrafficSplits).
// +kubebuilder:rbac:groups=networking.istio.io,resources=virtualservices;destinationrules,verbs=get;patch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses,verbs=get;create;patch
// +kubebuilder:rbac:groups=split.smi-spec.io,resources=trafficsplits,verbs=get;create;patch
