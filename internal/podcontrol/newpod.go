package podcontrol

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// NewPod renders pod name of owner (of kind gvk) from a template: the
// template's labels, annotations and finalizers (copied), then labels on
// top (the workload label, the revision label...), a controller reference
// to owner and a deep copy of the template's spec. The caller adds what its
// kind needs (readiness gate, node pin, volumes, hostname).
func NewPod(owner metav1.Object, gvk schema.GroupVersionKind, name string, tpl *corev1.PodTemplateSpec, labels map[string]string) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            name,
			Namespace:       owner.GetNamespace(),
			Labels:          make(map[string]string, len(tpl.Labels)+len(labels)),
			Annotations:     make(map[string]string, len(tpl.Annotations)),
			Finalizers:      append([]string(nil), tpl.Finalizers...),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(owner, gvk)},
		},
		Spec: *tpl.Spec.DeepCopy(),
	}
	for k, v := range tpl.Labels {
		pod.Labels[k] = v
	}
	for k, v := range labels {
		pod.Labels[k] = v
	}
	for k, v := range tpl.Annotations {
		pod.Annotations[k] = v
	}
	return pod
}
