package revision

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func template(image string) *corev1.PodTemplateSpec {
	return &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}},
	}
}

func TestHashStableAndSensitive(t *testing.T) {
	a, _ := Data(template("nginx:1.25"))
	b, _ := Data(template("nginx:1.25"))
	c, _ := Data(template("nginx:1.26"))
	if Hash(a, nil) != Hash(b, nil) {
		t.Fatal("equal templates must hash equally")
	}
	if Hash(a, nil) == Hash(c, nil) {
		t.Fatal("different images must hash differently")
	}
	one := int32(1)
	if Hash(a, nil) == Hash(a, &one) {
		t.Fatal("collision count must change the hash")
	}
}

func TestNewRoundTrip(t *testing.T) {
	owner := &metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "u1"}
	gvk := schema.GroupVersionKind{Group: "apps.drover.dev", Version: "v1alpha1", Kind: "CloneSet"}
	rev, err := New(owner, gvk, map[string]string{"x": "y"}, template("nginx:1.25"), 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rev.Revision != 3 || rev.Labels["x"] != "y" || rev.Labels[LabelRevisionHash] != rev.Name {
		t.Fatalf("unexpected revision %+v", rev.ObjectMeta)
	}
	if !metav1.IsControlledBy(rev, owner) {
		t.Fatal("revision must be controlled by its owner")
	}
	got, err := Template(rev)
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Containers[0].Image != "nginx:1.25" {
		t.Fatalf("round trip lost the image: %+v", got)
	}
}

func TestPrunableKeepsLiveAndLimit(t *testing.T) {
	var h []*appsv1.ControllerRevision
	for i, n := range []string{"a", "b", "c", "d", "e"} {
		h = append(h, &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: n}, Revision: int64(i + 1)})
	}
	Sort(h)
	got := Prunable(h, map[string]bool{"a": true, "e": true}, 1)
	if len(got) != 2 || got[0].Name != "b" || got[1].Name != "c" {
		t.Fatalf("want b,c pruned, got %v", names(got))
	}
	if got := Prunable(h, nil, 10); got != nil {
		t.Fatalf("nothing to prune under the limit, got %v", names(got))
	}
}

func TestNext(t *testing.T) {
	if Next(nil) != 1 {
		t.Fatal("first revision is 1")
	}
	h := []*appsv1.ControllerRevision{{Revision: 4}, {Revision: 2}}
	if Next(h) != 5 {
		t.Fatal("next follows the highest")
	}
}

func names(h []*appsv1.ControllerRevision) []string {
	var out []string
	for _, r := range h {
		out = append(out, r.Name)
	}
	return out
}
