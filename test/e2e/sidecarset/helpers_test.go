package sidecarset

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/podstate"
	"github.com/drover-dev/drover/internal/webhook"
	"github.com/drover-dev/drover/internal/webhook/injection"
	"github.com/drover-dev/drover/test/e2e/framework"
)

const timeout = 90 * time.Second

func ctx() context.Context { return context.Background() }

// uniq returns a short random suffix: SidecarSets are cluster-scoped, so
// each test selects its own label values.
func uniq(prefix string) string { return prefix + "-" + rand.String(5) }

func newSidecarSet(name string, selector map[string]string, containers ...appsv1alpha1.SidecarContainer) *appsv1alpha1.SidecarSet {
	return &appsv1alpha1.SidecarSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1alpha1.SidecarSetSpec{
			Selector:   &metav1.LabelSelector{MatchLabels: selector},
			Containers: containers,
		},
	}
}

func sidecar(name, image string) appsv1alpha1.SidecarContainer {
	return appsv1alpha1.SidecarContainer{Container: corev1.Container{Name: name, Image: image}}
}

// createSidecarSet creates ss, deletes it when the test ends, and waits
// until the API server calls the webhook for the pods it selects.
func createSidecarSet(t *testing.T, ss *appsv1alpha1.SidecarSet) *appsv1alpha1.SidecarSet {
	t.Helper()
	framework.RequireManager(t)
	if err := framework.Client().Create(ctx(), ss); err != nil {
		t.Fatalf("create SidecarSet: %v", err)
	}
	t.Cleanup(func() {
		if err := framework.Client().Delete(ctx(), ss); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete SidecarSet %s: %v", ss.Name, err)
		}
	})
	waitEntry(t, ss)
	return ss
}

// waitEntry waits until the webhook configuration has ss's entry, with the
// CA bundle and ss's current selector.
func waitEntry(t *testing.T, ss *appsv1alpha1.SidecarSet) *admissionregistrationv1.MutatingWebhook {
	t.Helper()
	var found *admissionregistrationv1.MutatingWebhook
	framework.Eventually(t, timeout, func() error {
		cur := getSidecarSet(t, ss.Name)
		e, err := entry(ss.Name)
		if err != nil {
			return err
		}
		if e == nil {
			return fmt.Errorf("no webhook entry for SidecarSet %s yet", ss.Name)
		}
		if len(e.ClientConfig.CABundle) == 0 {
			return fmt.Errorf("entry %s has no caBundle", e.Name)
		}
		if fmt.Sprint(e.ObjectSelector) != fmt.Sprint(cur.Spec.Selector) {
			return fmt.Errorf("entry %s selects %v, SidecarSet %v", e.Name, e.ObjectSelector, cur.Spec.Selector)
		}
		found = e
		return nil
	})
	return found
}

func webhookConfig() (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
	err := framework.Client().Get(ctx(), client.ObjectKey{Name: webhook.DefaultConfigName}, cfg)
	return cfg, err
}

// entry returns SidecarSet name's webhook entry (nil: none).
func entry(name string) (*admissionregistrationv1.MutatingWebhook, error) {
	cfg, err := webhookConfig()
	if err != nil {
		return nil, err
	}
	for i := range cfg.Webhooks {
		if cfg.Webhooks[i].Name == name+webhook.EntrySuffix {
			return &cfg.Webhooks[i], nil
		}
	}
	return nil, nil
}

func getSidecarSet(t *testing.T, name string) *appsv1alpha1.SidecarSet {
	t.Helper()
	out := &appsv1alpha1.SidecarSet{}
	if err := framework.Client().Get(ctx(), client.ObjectKey{Name: name}, out); err != nil {
		t.Fatalf("get SidecarSet: %v", err)
	}
	return out
}

// modifySidecarSet applies f to the latest SidecarSet, retrying on conflicts.
func modifySidecarSet(t *testing.T, name string, f func(*appsv1alpha1.SidecarSet)) {
	t.Helper()
	framework.Eventually(t, 10*time.Second, func() error {
		cur := getSidecarSet(t, name)
		f(cur)
		return framework.Client().Update(ctx(), cur)
	})
}

// appPod is a bare pod with an application container.
func appPod(ns, name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: "example.com/app:v1",
				Env: []corev1.EnvVar{{Name: "REGION", Value: "eu-west"}}}},
		},
	}
}

func createPod(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	if err := framework.Client().Create(ctx(), pod); err != nil {
		t.Fatalf("create pod %s: %v", pod.Name, err)
	}
	return pod
}

func getPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{}
	if err := framework.Client().Get(ctx(), client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
		t.Fatalf("get pod: %v", err)
	}
	return p
}

func containerNames(cs []corev1.Container) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}

func image(pod *corev1.Pod, container string) string {
	for _, c := range append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if c.Name == container {
			return c.Image
		}
	}
	return ""
}

func status(pod *corev1.Pod, container string) *corev1.ContainerStatus {
	for _, s := range append(append([]corev1.ContainerStatus(nil), pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
		if s.Name == container {
			return &s
		}
	}
	return nil
}

func record(pod *corev1.Pod, ss string) (injection.Record, bool) {
	r, ok := injection.RecordsOf(pod)[ss]
	return r, ok
}

func waitReady(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	var p *corev1.Pod
	framework.Eventually(t, timeout, func() error {
		p = getPod(t, ns, name)
		if !podstate.IsReady(p) {
			return fmt.Errorf("pod %s not ready: %v", name, p.Status.Conditions)
		}
		return nil
	})
	return p
}

// waitManagerReady waits until the manager's /readyz (which includes the
// webhook server) answers 200.
func waitManagerReady(t *testing.T) {
	t.Helper()
	framework.Eventually(t, timeout, func() error {
		resp, err := http.Get("http://" + framework.Manager().HealthAddr() + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	})
}

// readExample returns the repository's example manifest as an object.
func readExample(t *testing.T, file string) *unstructured.Unstructured {
	t.Helper()
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "examples", file))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(raw, &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

func mentions(err error, parts ...string) bool {
	if err == nil {
		return false
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			return false
		}
	}
	return true
}
