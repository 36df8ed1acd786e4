package workload

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

func TestControllerRequest(t *testing.T) {
	cloneSet := schema.GroupKind{Group: "apps.drover.dev", Kind: "CloneSet"}
	yes, no := true, false
	pod := func(refs ...metav1.OwnerReference) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", OwnerReferences: refs}}
	}
	ref := func(apiVersion, kind, name string, controller *bool) metav1.OwnerReference {
		return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID(name), Controller: controller}
	}
	cases := []struct {
		name string
		pod  *corev1.Pod
		gk   schema.GroupKind
		want string
	}{
		{"controller of the kind", pod(ref("apps.drover.dev/v1alpha1", "CloneSet", "web", &yes)), cloneSet, "ns/web"},
		{"another version of the group", pod(ref("apps.drover.dev/v1beta1", "CloneSet", "web", &yes)), cloneSet, "ns/web"},
		{"no owner", pod(), cloneSet, ""},
		{"owner that is not the controller", pod(ref("apps.drover.dev/v1alpha1", "CloneSet", "web", &no)), cloneSet, ""},
		{"controller of another kind", pod(ref("apps.drover.dev/v1alpha1", "StatefulSet", "db", &yes)), cloneSet, ""},
		{"same kind in another group", pod(ref("apps/v1", "StatefulSet", "db", &yes)), schema.GroupKind{Group: "apps.drover.dev", Kind: "StatefulSet"}, ""},
		{"core group", pod(ref("v1", "Node", "n1", &yes)), schema.GroupKind{Kind: "Node"}, "ns/n1"},
		{"core kind against a group", pod(ref("v1", "CloneSet", "web", &yes)), cloneSet, ""},
		{"controller among other owners", pod(ref("v1", "ConfigMap", "c", nil), ref("apps.drover.dev/v1alpha1", "CloneSet", "web", &yes)), cloneSet, "ns/web"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := controllerRequest(tc.pod, tc.gk)
			switch {
			case tc.want == "" && got != nil:
				t.Fatalf("got %v, want none", got)
			case tc.want != "" && (len(got) != 1 || got[0].String() != tc.want):
				t.Fatalf("got %v, want %s", got, tc.want)
			}
		})
	}
}
