package inplace

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func tpl() *corev1.PodTemplateSpec {
	return &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", "old": "1"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "app", Image: "app:1", Command: []string{"run"}},
			{Name: "side", Image: "side:1"},
		}},
	}
}

func TestDiff(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	cases := []struct {
		name        string
		mutate      func(*corev1.PodTemplateSpec)
		inPlace     bool
		blocker     string
		images      int
		resources   int
		removeLabel bool
	}{
		{"identical", func(*corev1.PodTemplateSpec) {}, true, "", 0, 0, false},
		{"image", func(p *corev1.PodTemplateSpec) { p.Spec.Containers[1].Image = "side:2" }, true, "", 1, 0, false},
		{"labels", func(p *corev1.PodTemplateSpec) { delete(p.Labels, "old"); p.Labels["new"] = "2" }, true, "", 0, 0, true},
		{"resources", func(p *corev1.PodTemplateSpec) {
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}
		}, true, "", 0, 1, false},
		{"command", func(p *corev1.PodTemplateSpec) { p.Spec.Containers[0].Command = []string{"other"} }, false, "spec.containers[0].command[0]", 0, 0, false},
		{"env", func(p *corev1.PodTemplateSpec) { p.Spec.Containers[1].Env = []corev1.EnvVar{{Name: "A", Value: "b"}} }, false, "spec.containers[1].env", 0, 0, false},
		{"new container", func(p *corev1.PodTemplateSpec) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "x"})
		}, false, "spec.containers", 0, 0, false},
		{"plain init image", func(p *corev1.PodTemplateSpec) {}, true, "", 0, 0, false},
		{"sidecar init image", func(p *corev1.PodTemplateSpec) {
			p.Spec.InitContainers[0].Image = "proxy:2"
		}, true, "", 1, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			from, to := tpl(), tpl()
			if tc.name == "sidecar init image" {
				for _, p := range []*corev1.PodTemplateSpec{from, to} {
					p.Spec.InitContainers = []corev1.Container{{Name: "proxy", Image: "proxy:1", RestartPolicy: &always}}
				}
			}
			tc.mutate(to)
			c := Diff(from, to)
			if c.InPlace != tc.inPlace || c.Blocker != tc.blocker {
				t.Fatalf("got inPlace=%v blocker=%q", c.InPlace, c.Blocker)
			}
			if len(c.Images) != tc.images || len(c.Resources) != tc.resources {
				t.Fatalf("got images=%v resources=%v", c.Images, c.Resources)
			}
			if tc.removeLabel && (len(c.RemoveLabels) != 1 || c.Labels["new"] != "2") {
				t.Fatalf("label diff wrong: %v %v", c.Labels, c.RemoveLabels)
			}
		})
	}
}

func TestPlainInitContainerImageBlocks(t *testing.T) {
	from, to := tpl(), tpl()
	from.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "i:1"}}
	to.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "i:2"}}
	if c := Diff(from, to); c.InPlace || c.Blocker != "spec.initContainers[0].image" {
		t.Fatalf("an init container that already ran cannot take a new image in place: %+v", c)
	}
}
