package injection

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

func names(cs []corev1.Container) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func appPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "migrate", Image: "migrate:1"}},
			Containers: []corev1.Container{{
				Name: "app", Image: "app:1",
				Env:          []corev1.EnvVar{{Name: "REGION", Value: "eu"}, {Name: "ZONE", Value: "a"}, {Name: "SECRET", Value: "s"}},
				VolumeMounts: []corev1.VolumeMount{{Name: "logs", MountPath: "/var/log/app"}, {Name: "data", MountPath: "/data"}},
			}},
			Volumes:          []corev1.Volume{{Name: "logs"}, {Name: "data"}},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}},
		},
	}
}

func sidecarSet() *appsv1alpha1.SidecarSet {
	return &appsv1alpha1.SidecarSet{
		ObjectMeta: metav1.ObjectMeta{Name: "mesh"},
		Spec: appsv1alpha1.SidecarSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Containers: []appsv1alpha1.SidecarContainer{
				{Container: corev1.Container{Name: "proxy", Image: "proxy:1", Env: []corev1.EnvVar{{Name: "OWN", Value: "1"}}},
					PodInjectPolicy: appsv1alpha1.BeforeAppContainer,
					TransferEnv:     []appsv1alpha1.TransferEnvVar{{SourceContainerName: "app", EnvNames: []string{"REGION", "ZONE", "MISSING"}}, {SourceContainerName: "nope", EnvName: "X"}}},
				{Container: corev1.Container{Name: "logger", Image: "logger:1", VolumeMounts: []corev1.VolumeMount{{Name: "own", MountPath: "/data"}}},
					PodInjectPolicy:   appsv1alpha1.AfterAppContainer,
					ShareVolumePolicy: &appsv1alpha1.ShareVolumePolicy{Type: appsv1alpha1.ShareVolumePolicyEnabled}},
				{Container: corev1.Container{Name: "agent", Image: "agent:1"},
					PodInjectPolicy: appsv1alpha1.AfterAppContainer,
					UpgradeStrategy: &appsv1alpha1.SidecarContainerUpgradeStrategy{Type: appsv1alpha1.HotUpgrade, HotUpgradeEmptyImage: "empty:1"}},
			},
			InitContainers: []appsv1alpha1.SidecarContainer{
				{Container: corev1.Container{Name: "native", Image: "native:1", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)},
					PodInjectPolicy: appsv1alpha1.BeforeAppContainer},
				{Container: corev1.Container{Name: "late-init", Image: "init:1"}, PodInjectPolicy: appsv1alpha1.AfterAppContainer},
			},
			Volumes:          []corev1.Volume{{Name: "own"}, {Name: "logs", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}, {Name: "mesh-registry"}},
		},
	}
}

func TestInject(t *testing.T) {
	pod := appPod()
	ss := sidecarSet()
	if !Inject(pod, ss) {
		t.Fatal("first injection must change the pod")
	}
	if got, want := names(pod.Spec.Containers), []string{"proxy", "app", "logger", "agent-1", "agent-2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("containers: got %v want %v", got, want)
	}
	if got, want := names(pod.Spec.InitContainers), []string{"native", "migrate", "late-init"}; !reflect.DeepEqual(got, want) {
		t.Errorf("init containers: got %v want %v", got, want)
	}
	proxy := pod.Spec.Containers[0]
	if got, want := proxy.Env, []corev1.EnvVar{{Name: "REGION", Value: "eu"}, {Name: "ZONE", Value: "a"}, {Name: "OWN", Value: "1"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("transferEnv: got %v want %v", got, want)
	}
	logger := pod.Spec.Containers[2]
	if got, want := logger.VolumeMounts, []corev1.VolumeMount{{Name: "own", MountPath: "/data"}, {Name: "logs", MountPath: "/var/log/app"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("shared volumes (own path wins): got %v want %v", got, want)
	}
	if pod.Spec.Containers[3].Image != "agent:1" || pod.Spec.Containers[4].Image != "empty:1" {
		t.Errorf("hot upgrade slots: %v %v", pod.Spec.Containers[3].Image, pod.Spec.Containers[4].Image)
	}
	if pod.Spec.InitContainers[0].RestartPolicy == nil || *pod.Spec.InitContainers[0].RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Error("native sidecar lost its restartPolicy")
	}
	if got := len(pod.Spec.Volumes); got != 3 || pod.Spec.Volumes[1].EmptyDir != nil {
		t.Errorf("volumes: the pod's own logs volume must win, and own is added: %+v", pod.Spec.Volumes)
	}
	if got, want := pod.Spec.ImagePullSecrets, []corev1.LocalObjectReference{{Name: "regcred"}, {Name: "mesh-registry"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("pull secrets: got %v", got)
	}
	if pod.Labels[appsv1alpha1.LabelSidecarSetInjected] != "true" {
		t.Error("injected label missing")
	}
	rec, ok := RecordsOf(pod)["mesh"]
	rev := Revision(&ss.Spec)
	if !ok || rec.Hash != rev.Hash || rec.HashWithoutImage != rev.WithoutImage || rec.HotUpgrade["agent"] != "agent-1" {
		t.Errorf("record: %+v (revision %+v)", rec, rev)
	}

	// Idempotent.
	before := pod.DeepCopy()
	if Inject(pod, ss) || !reflect.DeepEqual(before, pod) {
		t.Error("second injection must not change the pod")
	}

	// A second SidecarSet adds its record next to the first.
	other := &appsv1alpha1.SidecarSet{ObjectMeta: metav1.ObjectMeta{Name: "logs"}, Spec: appsv1alpha1.SidecarSetSpec{
		Containers: []appsv1alpha1.SidecarContainer{{Container: corev1.Container{Name: "proxy", Image: "other:1"}}, {Container: corev1.Container{Name: "shipper", Image: "shipper:1"}}},
	}}
	if !Inject(pod, other) {
		t.Fatal("second SidecarSet must inject")
	}
	if got, want := names(pod.Spec.Containers), []string{"shipper", "proxy", "app", "logger", "agent-1", "agent-2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("a name the pod already has is left out: got %v want %v", got, want)
	}
	if got := RecordsOf(pod).Names(); !reflect.DeepEqual(got, []string{"logs", "mesh"}) {
		t.Errorf("records: %v", got)
	}
}

func TestRevision(t *testing.T) {
	base := sidecarSet()
	r0 := Revision(&base.Spec)
	cases := []struct {
		name                    string
		mutate                  func(*appsv1alpha1.SidecarSetSpec)
		hashChanges, woiChanges bool
	}{
		{"image", func(s *appsv1alpha1.SidecarSetSpec) { s.Containers[0].Image = "proxy:2" }, true, false},
		{"init image", func(s *appsv1alpha1.SidecarSetSpec) { s.InitContainers[0].Image = "native:2" }, true, false},
		{"empty image", func(s *appsv1alpha1.SidecarSetSpec) { s.Containers[2].UpgradeStrategy.HotUpgradeEmptyImage = "empty:2" }, true, false},
		{"env", func(s *appsv1alpha1.SidecarSetSpec) { s.Containers[0].Env[0].Value = "2" }, true, true},
		{"volume", func(s *appsv1alpha1.SidecarSetSpec) { s.Volumes = s.Volumes[:1] }, true, true},
		{"rollout tuning", func(s *appsv1alpha1.SidecarSetSpec) {
			s.UpdateStrategy.Paused = true
			s.Containers[0].UpgradeStrategy = &appsv1alpha1.SidecarContainerUpgradeStrategy{Upgrade: &appsv1alpha1.SidecarContainerUpgrade{}}
			s.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"x": "y"}}
		}, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ss := sidecarSet()
			tc.mutate(&ss.Spec)
			r := Revision(&ss.Spec)
			if (r.Hash != r0.Hash) != tc.hashChanges || (r.WithoutImage != r0.WithoutImage) != tc.woiChanges {
				t.Errorf("got %+v from %+v", r, r0)
			}
		})
	}
}

func TestMatches(t *testing.T) {
	ss := sidecarSet()
	ss.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"mesh": "on"}}
	for _, tc := range []struct {
		pod, ns map[string]string
		want    bool
	}{
		{map[string]string{"app": "web"}, map[string]string{"mesh": "on"}, true},
		{map[string]string{"app": "web"}, map[string]string{}, false},
		{map[string]string{"app": "web"}, nil, true},
		{map[string]string{"app": "db"}, map[string]string{"mesh": "on"}, false},
	} {
		if got, err := Matches(ss, tc.pod, tc.ns); err != nil || got != tc.want {
			t.Errorf("Matches(%v, %v) = %v, %v; want %v", tc.pod, tc.ns, got, err, tc.want)
		}
	}
}
