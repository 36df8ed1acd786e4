package demoapp

import (
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestSanitizeLabelName(t *testing.T) {
	for in, want := range map[string]string{
		"app":                        "app",
		"app.kubernetes.io/name":     "app_kubernetes_io_name",
		"pod-template-hash":          "pod_template_hash",
		"9lives":                     "_9lives",
		"apps.drover.dev/revision-2": "apps_drover_dev_revision_2",
		"__meta":                     "label__meta",
		"":                           "_",
	} {
		if got := sanitizeLabelName(in); got != want {
			t.Errorf("sanitizeLabelName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTargetGroupsJSON(t *testing.T) {
	a := readyPod("web-a", "127.1.0.2", map[string]string{"app.kubernetes.io/name": "web", "pod": "shadowed"},
		corev1.ContainerPort{ContainerPort: 9090}, corev1.ContainerPort{ContainerPort: 8080})
	b := readyPod("web-b", "127.1.1.2", nil)
	pending := readyPod("web-c", "", nil)
	pending.Status.Phase = corev1.PodPending

	got, err := json.Marshal(targetGroups([]*corev1.Pod{b, pending, a}))
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"targets":["127.1.0.2:8080","127.1.0.2:9090"],"labels":{"app_kubernetes_io_name":"web","namespace":"ns","pod":"web-a"}},` +
		`{"targets":["127.1.1.2:8080"],"labels":{"namespace":"ns","pod":"web-b"}}]`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got, _ := json.Marshal(targetGroups(nil)); string(got) != "[]" {
		t.Errorf("no pods: %s, want []", got)
	}
}
