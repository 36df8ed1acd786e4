package testenv

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The object helpers every envtest suite needs; they fail the test on an
// unexpected error.

// Namespace creates a namespace named prefix plus a random suffix for one
// test and returns its name.
func Namespace(t testing.TB, c client.Client, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating a namespace: %v", err)
	}
	return ns.Name
}

// Update applies fn to the latest version of obj and writes it, retrying
// on conflicts with the controllers' writes. obj itself is not modified.
func Update[T client.Object](t testing.TB, c client.Client, obj T, fn func(T)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := obj.DeepCopyObject().(T)
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(obj), cur); err != nil {
			return err
		}
		fn(cur)
		return c.Update(context.Background(), cur)
	})
	if err != nil {
		t.Fatalf("updating %s: %v", obj.GetName(), err)
	}
}

// LivePods returns the pods of namespace ns carrying labels that are not
// terminating.
func LivePods(t testing.TB, c client.Client, ns string, labels map[string]string) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := c.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels(labels)); err != nil {
		t.Fatalf("listing pods: %v", err)
	}
	out := make([]corev1.Pod, 0, len(list.Items))
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// RunPods plays the kubelet for pods (RunPod). A pod that could not be
// written (a conflict with a controller's write) is logged and left for
// the caller's next call.
func RunPods(t testing.TB, c client.Client, pods []corev1.Pod) {
	t.Helper()
	for i := range pods {
		if err := RunPod(context.Background(), c, &pods[i]); err != nil {
			t.Logf("kubelet: %v", err)
		}
	}
}
