// Package sidecarset holds the SidecarSet end-to-end tests: injection by
// the admission webhook, its scoping and behaviour while the manager is
// down, and in-place sidecar upgrades, on a real API server with
// simulated nodes (kwok) and the drover-manager binary.
package sidecarset

import (
	"fmt"
	"os"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/webhook/injection"
	"github.com/drover-dev/drover/test/e2e/framework"
)

func TestMain(m *testing.M) {
	os.Exit(framework.Run(m, framework.Options{
		Nodes:       4,
		AddToScheme: []func(*runtime.Scheme) error{appsv1alpha1.AddToScheme},
	}))
}

// The brief's SidecarSet applies unchanged (but for apiVersion) and
// injects fluent-bit into the pods labelled app=web-frontend, before the
// application container; other pods are left alone.
func TestBriefExampleInjectsOnPodCreation(t *testing.T) {
	framework.RequireManager(t)
	ns := framework.Namespace(t)
	u := readExample(t, "sidecarset.yaml")
	if err := framework.Client().Create(ctx(), u); err != nil {
		t.Fatalf("the brief's SidecarSet is refused: %v", err)
	}
	ss := getSidecarSet(t, "logging-sidecar")
	t.Cleanup(func() { _ = framework.Client().Delete(ctx(), ss) })
	waitEntry(t, ss)

	pod := appPod(ns, "web-1", map[string]string{"app": "web-frontend"})
	pod.Spec.Volumes = []corev1.Volume{{Name: "log-volume", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "log-volume", MountPath: "/var/log/app"}}
	createPod(t, pod)
	other := createPod(t, appPod(ns, "db-1", map[string]string{"app": "db"}))

	got := getPod(t, ns, pod.Name)
	if names := containerNames(got.Spec.Containers); !reflect.DeepEqual(names, []string{"fluent-bit", "app"}) {
		t.Fatalf("containers after injection: %v", names)
	}
	fb := got.Spec.Containers[0]
	// (The API server adds the service account token mount after us.)
	if fb.Image != "fluent/fluent-bit:3.0" || len(fb.VolumeMounts) == 0 || fb.VolumeMounts[0].MountPath != "/var/log/app" {
		t.Errorf("injected container: %+v", fb)
	}
	if got.Labels[appsv1alpha1.LabelSidecarSetInjected] != "true" {
		t.Errorf("injected pods carry %s=true: %v", appsv1alpha1.LabelSidecarSetInjected, got.Labels)
	}
	rec, ok := record(got, "logging-sidecar")
	if want := injection.Revision(&ss.Spec); !ok || rec.Hash != want.Hash || rec.HashWithoutImage != want.WithoutImage {
		t.Errorf("record %+v (ok %v), want revision %+v", rec, ok, want)
	}
	if g := getPod(t, ns, other.Name); len(g.Spec.Containers) != 1 || len(g.Annotations[appsv1alpha1.AnnotationSidecarSetHash]) != 0 {
		t.Errorf("a pod the SidecarSet does not select was changed: %v", containerNames(g.Spec.Containers))
	}
	// The simulated kubelet runs the injected container.
	ready := waitReady(t, ns, pod.Name)
	if s := status(ready, "fluent-bit"); s == nil || s.State.Running == nil {
		t.Errorf("fluent-bit is not running: %+v", s)
	}
}

// Every injection feature at once: two SidecarSets on one pod, container
// order, transferEnv, shareVolumePolicy, volumes and pull secrets, a
// native sidecar (init container with restartPolicy Always) and a regular
// init container, a HotUpgrade sidecar's two slots, and namespaceSelector.
func TestInjectionFeatures(t *testing.T) {
	framework.RequireManager(t)
	ns := framework.Namespace(t)
	app := uniq("feat")
	team := uniq("team")
	mesh := newSidecarSet(uniq("a-mesh"), map[string]string{"app": app},
		appsv1alpha1.SidecarContainer{
			Container:       corev1.Container{Name: "proxy", Image: "example.com/proxy:v1"},
			PodInjectPolicy: appsv1alpha1.BeforeAppContainer,
			TransferEnv:     []appsv1alpha1.TransferEnvVar{{SourceContainerName: "app", EnvName: "REGION"}},
		},
		appsv1alpha1.SidecarContainer{
			Container:         corev1.Container{Name: "shipper", Image: "example.com/shipper:v1"},
			PodInjectPolicy:   appsv1alpha1.AfterAppContainer,
			ShareVolumePolicy: &appsv1alpha1.ShareVolumePolicy{Type: appsv1alpha1.ShareVolumePolicyEnabled},
		},
		appsv1alpha1.SidecarContainer{
			Container:       corev1.Container{Name: "agent", Image: "example.com/agent:v1"},
			PodInjectPolicy: appsv1alpha1.AfterAppContainer,
			UpgradeStrategy: &appsv1alpha1.SidecarContainerUpgradeStrategy{Type: appsv1alpha1.HotUpgrade, HotUpgradeEmptyImage: "example.com/empty:v1"},
		},
	)
	mesh.Spec.InitContainers = []appsv1alpha1.SidecarContainer{
		{Container: corev1.Container{Name: "mesh-init", Image: "example.com/mesh-init:v1"}},
		{Container: corev1.Container{Name: "native", Image: "example.com/native:v1", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}},
	}
	mesh.Spec.Volumes = []corev1.Volume{{Name: "mesh-certs", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	mesh.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "mesh-registry"}}
	mesh.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "mesh-certs", MountPath: "/certs"}}
	mesh.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": team}}
	logs := newSidecarSet(uniq("b-logs"), map[string]string{"app": app}, sidecar("logger", "example.com/logger:v1"))
	createSidecarSet(t, mesh)
	createSidecarSet(t, logs)

	// The namespace does not carry the team label yet: only logs injects.
	createPod(t, appPod(ns, "before-label", map[string]string{"app": app}))
	if got := containerNames(getPod(t, ns, "before-label").Spec.Containers); !reflect.DeepEqual(got, []string{"logger", "app"}) {
		t.Fatalf("namespaceSelector not honoured: %v", got)
	}
	nsObj := &corev1.Namespace{}
	if err := framework.Client().Get(ctx(), client.ObjectKey{Name: ns}, nsObj); err != nil {
		t.Fatal(err)
	}
	nsObj.Labels["team"] = team
	if err := framework.Client().Update(ctx(), nsObj); err != nil {
		t.Fatal(err)
	}

	pod := appPod(ns, "full", map[string]string{"app": app})
	pod.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	pod.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "example.com/migrate:v1"}}
	var got *corev1.Pod
	// The namespace's new label reaches the API server's webhook matching
	// and the manager's cache a moment later: retry with a new pod.
	framework.Eventually(t, 30*time.Second, func() error {
		p := pod.DeepCopy()
		p.Name = uniq("full")
		createPod(t, p)
		got = getPod(t, ns, p.Name)
		if len(injection.RecordsOf(got)) != 2 {
			return fmt.Errorf("pod %s injected by %v", p.Name, injection.RecordsOf(got).Names())
		}
		return nil
	})
	// mesh's entry comes first (entries are ordered by name, "a-" < "b-"),
	// then logs' BeforeAppContainer sidecar goes in front of everything.
	if names, want := containerNames(got.Spec.Containers), []string{"logger", "proxy", "app", "shipper", "agent-1", "agent-2"}; !reflect.DeepEqual(names, want) {
		t.Errorf("containers: got %v want %v", names, want)
	}
	if names, want := containerNames(got.Spec.InitContainers), []string{"mesh-init", "native", "migrate"}; !reflect.DeepEqual(names, want) {
		t.Errorf("init containers: got %v want %v", names, want)
	}
	var proxy, shipper corev1.Container
	for _, c := range got.Spec.Containers {
		switch c.Name {
		case "proxy":
			proxy = c
		case "shipper":
			shipper = c
		}
	}
	if len(proxy.Env) != 1 || proxy.Env[0].Name != "REGION" || proxy.Env[0].Value != "eu-west" {
		t.Errorf("transferEnv: proxy env %v", proxy.Env)
	}
	shared := false
	for _, m := range shipper.VolumeMounts {
		shared = shared || m.MountPath == "/data"
	}
	if !shared {
		t.Errorf("shareVolumePolicy: shipper mounts %v", shipper.VolumeMounts)
	}
	if image(got, "agent-1") != "example.com/agent:v1" || image(got, "agent-2") != "example.com/empty:v1" {
		t.Errorf("HotUpgrade slots: %s / %s", image(got, "agent-1"), image(got, "agent-2"))
	}
	hasVol, hasSecret := false, false
	for _, v := range got.Spec.Volumes {
		hasVol = hasVol || v.Name == "mesh-certs"
	}
	for _, s := range got.Spec.ImagePullSecrets {
		hasSecret = hasSecret || s.Name == "mesh-registry"
	}
	if !hasVol || !hasSecret {
		t.Errorf("volumes %v / pull secrets %v", got.Spec.Volumes, got.Spec.ImagePullSecrets)
	}
	// kwok runs the native sidecar (and completes the regular init container).
	ready := waitReady(t, ns, got.Name)
	if s := status(ready, "native"); s == nil || s.State.Running == nil {
		t.Errorf("native sidecar not running: %+v", s)
	}
}

// The webhook configuration follows the SidecarSets: an entry per
// SidecarSet scoped by its selectors (never kube-system), updated when the
// selectors change, removed with the SidecarSet.
func TestWebhookConfigurationIsScoped(t *testing.T) {
	framework.RequireManager(t)
	name := uniq("scoped")
	ss := newSidecarSet(name, map[string]string{"app": name}, sidecar("s", "example.com/s:v1"))
	ss.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"mesh": "on"}}
	createSidecarSet(t, ss)
	e := waitEntry(t, ss)
	if e.FailurePolicy == nil || *e.FailurePolicy != "Fail" || len(e.Rules) != 1 || e.Rules[0].Operations[0] != "CREATE" || e.Rules[0].Resources[0] != "pods" {
		t.Errorf("entry: failurePolicy %v rules %+v", e.FailurePolicy, e.Rules)
	}
	if e.NamespaceSelector.MatchLabels["mesh"] != "on" || len(e.NamespaceSelector.MatchExpressions) != 1 ||
		e.NamespaceSelector.MatchExpressions[0].Key != "kubernetes.io/metadata.name" || e.NamespaceSelector.MatchExpressions[0].Values[0] != "kube-system" {
		t.Errorf("namespaceSelector: %+v", e.NamespaceSelector)
	}
	if e.ClientConfig.URL == nil || *e.ClientConfig.URL != "https://localhost:"+portOf(framework.Manager().WebhookAddr())+"/inject-sidecarset/"+name {
		t.Errorf("clientConfig: %+v", e.ClientConfig)
	}

	modifySidecarSet(t, name, func(s *appsv1alpha1.SidecarSet) { s.Spec.Selector.MatchLabels["tier"] = "front" })
	waitEntry(t, getSidecarSet(t, name))

	if err := framework.Client().Delete(ctx(), ss); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, timeout, func() error {
		e, err := entry(name)
		if err != nil || e != nil {
			return fmt.Errorf("entry still there (%v)", err)
		}
		return nil
	})
}

func portOf(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[i+1:]
		}
	}
	return addr
}

// With the manager stopped, pods no SidecarSet selects are created as
// usual (the API server does not call the webhook for them), and a pod a
// SidecarSet selects is refused with an error naming the SidecarSet's
// webhook, rather than created without its sidecar. Once the manager is
// back the same pod is created with its sidecar.
func TestManagerDownOnlySelectedPodsWait(t *testing.T) {
	framework.RequireManager(t)
	ns := framework.Namespace(t)
	name := uniq("guarded")
	ss := createSidecarSet(t, newSidecarSet(name, map[string]string{"app": name}, sidecar("guard", "example.com/guard:v1")))

	mgr := framework.Manager()
	if err := mgr.Stop(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	restart := func() {
		if restarted {
			return
		}
		restarted = true
		if err := mgr.Start(); err != nil {
			t.Fatalf("restart manager: %v", err)
		}
		waitManagerReady(t)
	}
	t.Cleanup(restart) // later tests need the manager, even if this one fails

	plain := createPod(t, appPod(ns, "unselected", map[string]string{"app": "other"}))
	if got := getPod(t, ns, plain.Name); len(got.Spec.Containers) != 1 {
		t.Errorf("unselected pod changed: %v", containerNames(got.Spec.Containers))
	}
	err := framework.Client().Create(ctx(), appPod(ns, "selected", map[string]string{"app": name}))
	if !mentions(err, name+".sidecarset.apps.drover.dev") {
		t.Fatalf("a selected pod must be refused while the webhook is down, naming the SidecarSet; got %v", err)
	}
	t.Logf("refused as expected: %v", err)

	restart()
	waitEntry(t, ss)
	framework.Eventually(t, timeout, func() error {
		return framework.Client().Create(ctx(), appPod(ns, "selected", map[string]string{"app": name}))
	})
	if got := containerNames(getPod(t, ns, "selected").Spec.Containers); !reflect.DeepEqual(got, []string{"guard", "app"}) {
		t.Errorf("after the restart the pod is injected: %v", got)
	}
}
