package target

import (
	"context"
	"errors"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/revision"
)

const control = `{"rollout":"ro","stableRevision":"r1","canaryRevision":"r2","canaryReplicas":1}`

func meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "ns", Generation: 3,
		Annotations: map[string]string{appsv1alpha1.AnnotationRolloutControl: control}}
}

// summary renders what a Rollout reads of a workload.
func summary(w *Workload) string {
	ctl := "none"
	if w.Control != nil {
		ctl = fmt.Sprintf("%s/%s+%d", w.Control.StableRevision, w.Control.CanaryRevision, w.Control.CanaryReplicas)
	}
	return fmt.Sprintf("replicas=%d caughtUp=%v revs=%s->%s counts=%+v labels=%v revLabel=%s image=%s control=%s",
		w.Replicas, w.CaughtUp, w.CurrentRevision, w.UpdateRevision, w.Counts, w.PodLabels, w.RevisionLabel,
		w.Template.Spec.Containers[0].Image, ctl)
}

func template(image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}}}
}

func TestFromStatefulSet(t *testing.T) {
	set := &appsv1alpha1.StatefulSet{
		ObjectMeta: meta("db"),
		Spec:       appsv1alpha1.StatefulSetSpec{Replicas: ptr.To[int32](5), Template: template("db:2")},
		Status: appsv1alpha1.StatefulSetStatus{ObservedGeneration: 3, CurrentRevision: "r1", UpdateRevision: "r2",
			Replicas: 5, ReadyReplicas: 4, AvailableReplicas: 4, UpdatedReplicas: 2, UpdatedReadyReplicas: 1},
	}
	want := "replicas=5 caughtUp=true revs=r1->r2 counts={Replicas:5 Ready:4 Updated:2 UpdatedReady:1} " +
		"labels=map[apps.drover.dev/statefulset:db] revLabel=" + revision.LabelRevisionHash + " image=db:2 control=r1/r2+1"
	if got := summary(fromStatefulSet(set)); got != want {
		t.Errorf("no selector:\n got  %s\n want %s", got, want)
	}
	set.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}
	set.Status.ObservedGeneration = 2
	w := fromStatefulSet(set)
	if w.CaughtUp || fmt.Sprint(w.PodLabels) != "map[app:db]" {
		t.Errorf("with a selector, status behind: caughtUp %v labels %v", w.CaughtUp, w.PodLabels)
	}
	set.Spec.Replicas = nil
	if w := fromStatefulSet(set); w.Replicas != 1 {
		t.Errorf("replicas unset: %d, want 1", w.Replicas)
	}
}

func TestFromDaemonSet(t *testing.T) {
	ds := &appsv1alpha1.DaemonSet{
		ObjectMeta: meta("agent"),
		Spec: appsv1alpha1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
			Template: template("agent:2")},
		Status: appsv1alpha1.DaemonSetStatus{ObservedGeneration: 3, CurrentRevision: "r1", UpdateRevision: "r2",
			DesiredNumberScheduled: 4, CurrentNumberScheduled: 3, NumberReady: 3, NumberAvailable: 2,
			UpdatedNumberScheduled: 2, UpdatedNumberAvailable: 1},
	}
	want := "replicas=4 caughtUp=true revs=r1->r2 counts={Replicas:3 Ready:3 Updated:2 UpdatedReady:1} " +
		"labels=map[app:agent] revLabel=" + revision.LabelRevisionHash + " image=agent:2 control=r1/r2+1"
	if got := summary(fromDaemonSet(ds)); got != want {
		t.Errorf("\n got  %s\n want %s", got, want)
	}
	ds.Status.UpdateRevision = ""
	if fromDaemonSet(ds).CaughtUp {
		t.Error("a DaemonSet without an update revision in status is not caught up")
	}
}

func TestGet(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := appsv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	objs := []client.Object{
		&appsv1alpha1.CloneSet{ObjectMeta: meta("cs"), Spec: appsv1alpha1.CloneSetSpec{Template: template("cs:1")}},
		&appsv1alpha1.StatefulSet{ObjectMeta: meta("sts"), Spec: appsv1alpha1.StatefulSetSpec{Template: template("sts:1")}},
		&appsv1alpha1.DaemonSet{ObjectMeta: meta("ds"), Spec: appsv1alpha1.DaemonSetSpec{Template: template("ds:1")}},
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	apps := appsv1alpha1.GroupVersion.String()
	for kind, name := range map[string]string{"CloneSet": "cs", "StatefulSet": "sts", "DaemonSet": "ds"} {
		w, err := Get(context.Background(), c, "ns", rolloutsv1alpha1.TargetRef{APIVersion: apps, Kind: kind, Name: name})
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if w.Object.GetName() != name || w.Template.Spec.Containers[0].Image != name+":1" || w.Control == nil {
			t.Errorf("%s: read %s, image %s, control %v", kind, w.Object.GetName(), w.Template.Spec.Containers[0].Image, w.Control)
		}
	}
	if _, err := Get(context.Background(), c, "ns", rolloutsv1alpha1.TargetRef{APIVersion: apps, Kind: "StatefulSet", Name: "missing"}); !apierrors.IsNotFound(err) {
		t.Errorf("missing StatefulSet: %v, want NotFound", err)
	}
	if _, err := Get(context.Background(), c, "ns", rolloutsv1alpha1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}); !apierrors.IsNotFound(err) {
		t.Errorf("missing Deployment: %v, want NotFound", err)
	}
	for _, ref := range []rolloutsv1alpha1.TargetRef{
		{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "sts"},
		{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "ds"},
	} {
		if _, err := Get(context.Background(), c, "ns", ref); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s %s: %v, want ErrUnsupported", ref.APIVersion, ref.Kind, err)
		}
	}
}

func TestSetControlOnStatefulSet(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := appsv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	set := &appsv1alpha1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "ns"}, Spec: appsv1alpha1.StatefulSetSpec{Template: template("db:1")}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(set).Build()
	ref := rolloutsv1alpha1.TargetRef{APIVersion: appsv1alpha1.GroupVersion.String(), Kind: "StatefulSet", Name: "db"}
	w, err := Get(context.Background(), c, "ns", ref)
	if err != nil {
		t.Fatal(err)
	}
	ctl := &appsv1alpha1.RolloutControl{Rollout: "ro", StableRevision: "r1", CanaryRevision: "r2", CanaryReplicas: 2}
	if err := SetControl(context.Background(), c, w, ctl); err != nil {
		t.Fatal(err)
	}
	if w, err = Get(context.Background(), c, "ns", ref); err != nil || w.Control == nil || !equality.Semantic.DeepEqual(w.Control, ctl) {
		t.Fatalf("control after SetControl: %+v %v", w.Control, err)
	}
	if err := SetControl(context.Background(), c, w, nil); err != nil {
		t.Fatal(err)
	}
	if w, err = Get(context.Background(), c, "ns", ref); err != nil || w.Control != nil {
		t.Fatalf("control after removal: %+v %v", w.Control, err)
	}
}
