package framework

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

// Get returns the latest version of obj, read from the API server into a
// new object of obj's type.
func Get[T client.Object](t testing.TB, obj T) T {
	t.Helper()
	out := reflect.New(reflect.TypeOf(obj).Elem()).Interface().(T)
	if err := Client().Get(context.Background(), client.ObjectKeyFromObject(obj), out); err != nil {
		t.Fatalf("get %T %s: %v", obj, client.ObjectKeyFromObject(obj), err)
	}
	return out
}

// Modify applies f to the latest version of obj and updates it, retrying
// on conflicts.
func Modify[T client.Object](t testing.TB, obj T, f func(T)) {
	t.Helper()
	Eventually(t, 10*time.Second, func() error {
		cur := Get(t, obj)
		f(cur)
		return Client().Update(context.Background(), cur)
	})
}

// PatchPod applies a JSON merge patch to pod ns/name.
func PatchPod(t testing.TB, ns, name, patch string) {
	t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := Client().Patch(context.Background(), p, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatalf("patch pod %s: %v", name, err)
	}
}

// FirstNode returns the name of one of the cluster's nodes.
func FirstNode(t testing.TB) string {
	t.Helper()
	var nodes corev1.NodeList
	if err := Client().List(context.Background(), &nodes); err != nil || len(nodes.Items) == 0 {
		t.Fatalf("list nodes: %v", err)
	}
	return nodes.Items[0].Name
}

// CreateHPA creates, in ns, a HorizontalPodAutoscaler named like its
// target, the Drover workload kind/name, keeping between min and max
// replicas.
func CreateHPA(t testing.TB, ns, kind, name string, minReplicas, maxReplicas int32) {
	t.Helper()
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps.drover.dev/v1alpha1", Kind: kind, Name: name},
			MinReplicas:    ptr.To(minReplicas),
			MaxReplicas:    maxReplicas,
		},
	}
	if err := Client().Create(context.Background(), hpa); err != nil {
		t.Fatal(err)
	}
}

// RequireManager fails the test when the drover-manager binary is not
// available (the suites under test need it: a skip would hide them).
func RequireManager(t testing.TB) {
	t.Helper()
	if ok, why := Manager().Available(); !ok {
		t.Fatalf("drover-manager is required: %s (run 'make build')", why)
	}
}

// Create requires the manager and creates obj.
func Create[T client.Object](t testing.TB, obj T) T {
	t.Helper()
	RequireManager(t)
	if err := Client().Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, client.ObjectKeyFromObject(obj), err)
	}
	return obj
}

// WaitFor waits until ok accepts the latest version of obj, and returns
// that version.
func WaitFor[T client.Object](t testing.TB, timeout time.Duration, obj T, ok func(cur T) error) T {
	t.Helper()
	var cur T
	Eventually(t, timeout, func() error {
		cur = Get(t, obj)
		return ok(cur)
	})
	return cur
}

// ClaimUIDs returns the UIDs of ns's PersistentVolumeClaims that are not
// being deleted, by name.
func ClaimUIDs(t testing.TB, ns string) map[string]string {
	t.Helper()
	var list corev1.PersistentVolumeClaimList
	if err := Client().List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range list.Items {
		if c.DeletionTimestamp == nil {
			out[c.Name] = string(c.UID)
		}
	}
	return out
}

// NotReady says why a workload with the given status fields is not Ready
// (condition Ready True) for its current generation; nil if it is.
func NotReady(obj client.Object, observedGeneration int64, conditions []metav1.Condition) error {
	c := meta.FindStatusCondition(conditions, appsv1alpha1.ConditionReady)
	if observedGeneration != obj.GetGeneration() || c == nil || c.Status != metav1.ConditionTrue {
		return fmt.Errorf("%T %s not ready: observed generation %d of %d, Ready %+v", obj, obj.GetName(), observedGeneration, obj.GetGeneration(), c)
	}
	return nil
}
