package podcontrol

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/revision"
)

// TestSyncRevisionsWithConfigs: the update revision of a workload whose
// rollout control maps configs holds the template with the references
// renamed to the snapshots; a new snapshot is a new revision; the
// workload's own template is not touched; no control, or an unreadable
// one, maps nothing.
func TestSyncRevisionsWithConfigs(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientBuilder().Build()
	tpl := &corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		Volumes: []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}}}}},
		Containers: []corev1.Container{{Name: "app", Image: "app:1",
			EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-secret"}}}}}},
	}}
	pristine := tpl.DeepCopy()
	cs := &appsv1alpha1.CloneSet{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "cs-uid"}}
	owner := revision.Owner{Object: cs, GVK: appsv1alpha1.GroupVersion.WithKind("CloneSet")}
	control := func(configs map[string]string) {
		cs.Annotations = map[string]string{appsv1alpha1.AnnotationRolloutControl: appsv1alpha1.RolloutControl{
			Rollout: "web", StableRevision: "web-x", Configs: configs}.String()}
	}
	var history []*appsv1.ControllerRevision
	sync := func() (*appsv1.ControllerRevision, *corev1.PodTemplateSpec) {
		t.Helper()
		revs, err := SyncRevisions(ctx, c, owner, tpl, history, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		history = revs.History
		stored, err := revision.Template(revs.Update())
		if err != nil {
			t.Fatal(err)
		}
		return revs.Update(), stored
	}
	names := func(p *corev1.PodTemplateSpec) (string, string) {
		return p.Spec.Volumes[0].ConfigMap.Name, p.Spec.Containers[0].EnvFrom[0].SecretRef.Name
	}

	plain, stored := sync()
	if cm, sec := names(stored); cm != "app-config" || sec != "app-secret" {
		t.Fatalf("without a control the revision references %s, %s", cm, sec)
	}

	control(map[string]string{"ConfigMap/app-config": "app-config-aaaaaaaaaa", "Secret/app-secret": "app-secret-bbbbbbbbbb"})
	first, stored := sync()
	if cm, sec := names(stored); cm != "app-config-aaaaaaaaaa" || sec != "app-secret-bbbbbbbbbb" {
		t.Fatalf("with configs the revision references %s, %s", cm, sec)
	}
	if first.Name == plain.Name {
		t.Fatal("mapping the configs did not make a new revision")
	}

	control(map[string]string{"ConfigMap/app-config": "app-config-cccccccccc", "Secret/app-secret": "app-secret-bbbbbbbbbb"})
	second, stored := sync()
	if cm, sec := names(stored); cm != "app-config-cccccccccc" || sec != "app-secret-bbbbbbbbbb" {
		t.Fatalf("after a config change the revision references %s, %s", cm, sec)
	}
	if second.Name == first.Name {
		t.Fatal("a new snapshot did not make a new revision")
	}

	// Back to the first content: the first revision again.
	control(map[string]string{"ConfigMap/app-config": "app-config-aaaaaaaaaa", "Secret/app-secret": "app-secret-bbbbbbbbbb"})
	if again, _ := sync(); again.Name != first.Name {
		t.Fatalf("same snapshots, revision %s, want %s again", again.Name, first.Name)
	}

	// A control without configs, or an unreadable one: the plain template.
	control(nil)
	if again, _ := sync(); again.Name != plain.Name {
		t.Fatalf("control without configs: revision %s, want %s", again.Name, plain.Name)
	}
	cs.Annotations = map[string]string{appsv1alpha1.AnnotationRolloutControl: `{"configs":{"x":"y"}}`}
	if again, _ := sync(); again.Name != plain.Name {
		t.Fatalf("unreadable control: revision %s, want %s", again.Name, plain.Name)
	}
	if cm, sec := names(tpl); cm != "app-config" || sec != "app-secret" || tpl.Spec.Containers[0].Image != pristine.Spec.Containers[0].Image {
		t.Fatal("SyncRevisions modified the workload's template")
	}
}
