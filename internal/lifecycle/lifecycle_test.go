package lifecycle

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

func TestHooked(t *testing.T) {
	hook := &appsv1alpha1.LifecycleHook{
		LabelsHandler:     map[string]string{"a": "1", "b": "2"},
		FinalizersHandler: []string{"example.com/hold"},
	}
	cases := []struct {
		name       string
		labels     map[string]string
		finalizers []string
		want       bool
	}{
		{"all labels", map[string]string{"a": "1", "b": "2", "c": "3"}, nil, true},
		{"one label missing", map[string]string{"a": "1"}, nil, false},
		{"label with another value", map[string]string{"a": "1", "b": "x"}, nil, false},
		{"finalizer", nil, []string{"other", "example.com/hold"}, true},
		{"nothing", nil, []string{"other"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: tc.labels, Finalizers: tc.finalizers}}
			if got := Hooked(hook, pod); got != tc.want {
				t.Fatalf("Hooked = %v, want %v", got, tc.want)
			}
		})
	}
	if Hooked(nil, &corev1.Pod{}) {
		t.Fatal("a nil hook holds nothing")
	}
}

func TestStateOf(t *testing.T) {
	if StateOf(&corev1.Pod{}) != appsv1alpha1.LifecycleStateNormal {
		t.Fatal("an unlabelled pod is Normal")
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{appsv1alpha1.LabelLifecycleState: "PreparingDelete"}}}
	if StateOf(p) != appsv1alpha1.LifecycleStatePreparingDelete {
		t.Fatal("state label not read")
	}
}
