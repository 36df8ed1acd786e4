package sidecarset

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/webhook/injection"
)

func testSet() *appsv1alpha1.SidecarSet {
	return &appsv1alpha1.SidecarSet{
		ObjectMeta: metav1.ObjectMeta{Name: "mesh"},
		Spec: appsv1alpha1.SidecarSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Containers: []appsv1alpha1.SidecarContainer{
				{Container: corev1.Container{Name: "logger", Image: "logger:1"}},
				{Container: corev1.Container{Name: "agent", Image: "agent:1"},
					UpgradeStrategy: &appsv1alpha1.SidecarContainerUpgradeStrategy{Type: appsv1alpha1.HotUpgrade, HotUpgradeEmptyImage: "empty:1"}},
			},
			InitContainers: []appsv1alpha1.SidecarContainer{
				{Container: corev1.Container{Name: "native", Image: "native:1", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}},
				{Container: corev1.Container{Name: "setup", Image: "setup:1"}},
			},
		},
	}
}

func injectedPod(ss *appsv1alpha1.SidecarSet) *corev1.Pod {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}
	injection.Inject(pod, ss)
	return pod
}

// apply writes a step's images and annotations on pod, as the engine would.
func apply(pod *corev1.Pod, s step) {
	for i := range pod.Spec.Containers {
		if img, ok := s.change.Images[pod.Spec.Containers[i].Name]; ok {
			pod.Spec.Containers[i].Image = img
		}
	}
	for i := range pod.Spec.InitContainers {
		if img, ok := s.change.Images[pod.Spec.InitContainers[i].Name]; ok {
			pod.Spec.InitContainers[i].Image = img
		}
	}
	for k, v := range s.change.Annotations {
		pod.Annotations[k] = v
	}
}

func TestNextStep(t *testing.T) {
	ss := testSet()
	pod := injectedPod(ss)
	if s, ok := nextStep(pod, ss, injection.Revision(&ss.Spec), injection.RecordsOf(pod)); !ok || s.kind != stepNone {
		t.Fatalf("fresh pod: %+v %v", s, ok)
	}

	// Cold + hot + native sidecar + plain init container change.
	ss.Spec.Containers[0].Image = "logger:2"
	ss.Spec.Containers[1].Image = "agent:2"
	ss.Spec.InitContainers[0].Image = "native:2"
	ss.Spec.InitContainers[1].Image = "setup:2"
	rev := injection.Revision(&ss.Spec)
	s, ok := nextStep(pod, ss, rev, injection.RecordsOf(pod))
	if !ok || s.kind != stepUpgrade || s.noDrain {
		t.Fatalf("upgrade: %+v %v", s, ok)
	}
	if want := map[string]string{"logger": "logger:2", "agent-2": "agent:2", "native": "native:2"}; !reflect.DeepEqual(s.change.Images, want) {
		t.Errorf("images: %v want %v (a finished init container keeps its image)", s.change.Images, want)
	}
	if s.revision != "mesh/"+rev.Hash {
		t.Errorf("revision %s", s.revision)
	}
	apply(pod, s)
	rec := injection.RecordsOf(pod)["mesh"]
	if rec.Hash != rev.Hash || rec.HotUpgrade["agent"] != "agent-2" {
		t.Fatalf("record after run 1: %+v", rec)
	}

	// Run 2 empties the old slot.
	s, ok = nextStep(pod, ss, rev, injection.RecordsOf(pod))
	if !ok || s.kind != stepRetire || !s.noDrain || !reflect.DeepEqual(s.change.Images, map[string]string{"agent-1": "empty:1"}) {
		t.Fatalf("retire: %+v", s)
	}
	apply(pod, s)
	if s, _ := nextStep(pod, ss, rev, injection.RecordsOf(pod)); s.kind != stepNone {
		t.Fatalf("done: %+v", s)
	}

	// A HotUpgrade-only change does not drain; it swaps back to slot 1.
	ss.Spec.Containers[1].Image = "agent:3"
	rev = injection.Revision(&ss.Spec)
	s, _ = nextStep(pod, ss, rev, injection.RecordsOf(pod))
	if !s.noDrain || !reflect.DeepEqual(s.change.Images, map[string]string{"agent-1": "agent:3"}) || !reflect.DeepEqual(s.containers, []string{"agent"}) {
		t.Fatalf("hot only: %+v", s)
	}

	// More than images changed: not upgradable in place.
	ss.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", Value: "1"}}
	if _, ok := nextStep(pod, ss, injection.Revision(&ss.Spec), injection.RecordsOf(pod)); ok {
		t.Error("an env change cannot be upgraded in place")
	}
	// A pod the SidecarSet never injected is not its to upgrade.
	if _, ok := nextStep(&corev1.Pod{}, ss, injection.Revision(&ss.Spec), injection.Records{}); ok {
		t.Error("pod without a record")
	}
}
