package podcontrol

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestNewPod(t *testing.T) {
	owner := &metav1.ObjectMeta{Name: "agent", Namespace: "ns", UID: "u1"}
	gvk := schema.GroupVersionKind{Group: "apps.drover.dev", Version: "v1alpha1", Kind: "DaemonSet"}
	tpl := &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "agent", "rev": "template"},
			Annotations: map[string]string{"a": "b"}, Finalizers: []string{"example.com/f"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i:1"}}},
	}
	pod := NewPod(owner, gvk, "agent-x", tpl, map[string]string{"rev": "r2"})
	if pod.Name != "agent-x" || pod.Namespace != "ns" {
		t.Fatalf("identity: %s/%s", pod.Namespace, pod.Name)
	}
	if pod.Labels["app"] != "agent" || pod.Labels["rev"] != "r2" || pod.Annotations["a"] != "b" || pod.Finalizers[0] != "example.com/f" {
		t.Fatalf("metadata: %+v", pod.ObjectMeta)
	}
	ref := metav1.GetControllerOf(pod)
	if ref == nil || ref.UID != "u1" || ref.Kind != "DaemonSet" || ref.Name != "agent" {
		t.Fatalf("controller reference: %+v", ref)
	}
	// The template is not shared with the pod.
	pod.Labels["app"], pod.Annotations["a"], pod.Finalizers[0] = "x", "x", "x"
	pod.Spec.Containers[0].Image = "x"
	if tpl.Labels["app"] != "agent" || tpl.Annotations["a"] != "b" || tpl.Finalizers[0] != "example.com/f" || tpl.Spec.Containers[0].Image != "i:1" {
		t.Fatalf("the template was modified through the pod: %+v", tpl)
	}
}
