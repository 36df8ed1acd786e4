package testenv

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// The helpers run against a fake client here; the envtest suites use them
// against a real API server.

func TestNamespace(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(Scheme()).Build()
	a, b := Namespace(t, c, "cs-"), Namespace(t, c, "cs-")
	if !strings.HasPrefix(a, "cs-") || a == b {
		t.Fatalf("namespaces %q and %q: want two distinct cs-* names", a, b)
	}
}

// Update retries a write that conflicts with a controller's and applies fn
// to the latest version, leaving the caller's object alone.
func TestUpdateRetriesConflicts(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: map[string]string{"v": "1"}}}
	conflicts := 2
	c := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(pod.DeepCopy()).WithInterceptorFuncs(interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if conflicts > 0 {
				conflicts--
				return apierrors.NewConflict(schema.GroupResource{Resource: "pods"}, obj.GetName(), nil)
			}
			return c.Update(ctx, obj, opts...)
		},
	}).Build()
	calls := 0
	Update(t, c, pod, func(p *corev1.Pod) { calls++; p.Labels["v"] = "2" })
	got := &corev1.Pod{}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(pod), got); err != nil {
		t.Fatal(err)
	}
	if got.Labels["v"] != "2" || calls != 3 || conflicts != 0 {
		t.Fatalf("label %q after %d calls: want 2 after 3", got.Labels["v"], calls)
	}
	if pod.Labels["v"] != "1" {
		t.Fatal("the caller's object was modified")
	}
}

// LivePods leaves out terminating pods and pods without the labels; RunPods
// makes the rest Running and Ready (no readiness gate).
func TestLivePodsAndRunPods(t *testing.T) {
	now := metav1.Now()
	mk := func(name string, labels map[string]string, deleting bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i:1"}}}}
		if deleting {
			p.DeletionTimestamp, p.Finalizers = &now, []string{"test/hold"}
		}
		return p
	}
	app := map[string]string{"app": "web"}
	c := fake.NewClientBuilder().WithScheme(Scheme()).WithStatusSubresource(&corev1.Pod{}).
		WithObjects(mk("live", app, false), mk("leaving", app, true), mk("other", map[string]string{"app": "db"}, false)).Build()
	pods := LivePods(t, c, "ns", app)
	if len(pods) != 1 || pods[0].Name != "live" {
		t.Fatalf("live pods %v: want [live]", pods)
	}
	RunPods(t, c, pods)
	got := &corev1.Pod{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "ns", Name: "live"}, got); err != nil {
		t.Fatal(err)
	}
	ready := false
	for _, cond := range got.Status.Conditions {
		ready = ready || (cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue)
	}
	if got.Status.Phase != corev1.PodRunning || !ready {
		t.Fatalf("pod not running and ready: %+v", got.Status)
	}
}
