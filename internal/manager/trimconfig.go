package manager

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// trimConfigMetadata is the cache transform for ConfigMaps and Secrets.
// The manager watches them by metadata only (a Rollout with
// spec.trackConfigs reacts to a change of a config its workload
// references, and lists its snapshots), so their content is never cached;
// their annotations are dropped too: kubectl's last-applied-configuration
// annotation holds a whole applied object, Secret data included, and no
// controller reads them.
func trimConfigMetadata(obj any) (any, error) {
	if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
		m.ManagedFields, m.Annotations = nil, nil
	}
	return obj, nil
}
