package sidecarset_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/controller/sidecarset"
	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/testenv"
	"github.com/drover-dev/drover/internal/webhook/injection"
)

// These integration tests run the controller against a real API server
// (envtest) with its own injected-pod cache. There is neither kubelet nor
// webhook: the tests inject pods with the webhook's injection function and
// play the kubelet where a container must restart.

var k8s client.Client

func TestMain(m *testing.M) {
	os.Exit(testenv.MainWithManager(m, func(mgr ctrl.Manager) error {
		pods, err := sidecarset.NewPodCache(mgr.GetConfig(), mgr.GetScheme(), mgr.GetRESTMapper(), mgr.GetHTTPClient(), nil)
		if err != nil {
			return err
		}
		if err := mgr.Add(pods); err != nil {
			return err
		}
		return sidecarset.SetupWithManager(mgr, sidecarset.Options{Pods: pods, MaxConcurrentReconciles: 2})
	}, func(c client.Client) { k8s = c }))
}

func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if last = cond(); last == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, last)
}

// runningPod creates pod (already injected) and runs it (testenv.RunPod).
func runningPod(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	if err := k8s.Create(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	if err := testenv.RunPod(context.Background(), k8s, pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

// restart plays the kubelet: every container whose spec image differs
// from its status restarts with it.
func restart(t *testing.T, name string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod := &corev1.Pod{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: name}, pod); err != nil {
			return err
		}
		for i, s := range pod.Status.ContainerStatuses {
			for _, c := range pod.Spec.Containers {
				if c.Name == s.Name && c.Image != s.Image {
					pod.Status.ContainerStatuses[i].Image, pod.Status.ContainerStatuses[i].ImageID = c.Image, "id-"+c.Image
					pod.Status.ContainerStatuses[i].RestartCount++
				}
			}
		}
		return k8s.Status().Update(context.Background(), pod)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func getPod(t *testing.T, name string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: name}, pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

func imageOf(pod *corev1.Pod, name string) string {
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			return c.Image
		}
	}
	return ""
}

// With maxUnavailable 1 and no kubelet, exactly one pod is upgraded and
// the controller waits for its sidecar to restart before the next; once
// all restarted, status counts them updated and Ready is True. A pod the
// SidecarSet no longer selects is neither counted nor upgraded.
func TestRollingUpgradeOneAtATime(t *testing.T) {
	ctx := context.Background()
	ss := &appsv1alpha1.SidecarSet{
		ObjectMeta: metav1.ObjectMeta{Name: "one-at-a-time"},
		Spec: appsv1alpha1.SidecarSetSpec{
			Selector:   &metav1.LabelSelector{MatchLabels: map[string]string{"app": "roll"}},
			Containers: []appsv1alpha1.SidecarContainer{{Container: corev1.Container{Name: "proxy", Image: "proxy:1"}}},
		},
	}
	if err := k8s.Create(ctx, ss); err != nil {
		t.Fatal(err)
	}
	names := []string{"roll-0", "roll-1", "roll-2", "gone"}
	for _, n := range names {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: "default", Labels: map[string]string{"app": "roll"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}
		injection.Inject(pod, ss)
		if n == "gone" {
			pod.Labels["app"] = "elsewhere" // relabelled after injection
		}
		runningPod(t, pod)
	}
	status := func(matched, updated int32) func() error {
		return func() error {
			cur := &appsv1alpha1.SidecarSet{}
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(ss), cur); err != nil {
				return err
			}
			s := cur.Status
			if s.ObservedGeneration != cur.Generation || s.MatchedPods != matched || s.UpdatedPods != updated || s.ReadyPods != matched {
				return fmt.Errorf("status %+v (generation %d)", s, cur.Generation)
			}
			return nil
		}
	}
	eventually(t, "initial status", status(3, 3))

	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := &appsv1alpha1.SidecarSet{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(ss), cur); err != nil {
			return err
		}
		cur.Spec.Containers[0].Image = "proxy:2"
		one := intstr.FromInt(1)
		cur.Spec.UpdateStrategy.MaxUnavailable = &one
		return k8s.Update(ctx, cur)
	})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		var moved []string
		eventually(t, "one more pod upgraded", func() error {
			moved = nil
			for _, n := range names[:3] {
				p := getPod(t, n)
				if imageOf(p, "proxy") == "proxy:2" && inplace.InFlightOn(p, inplace.SidecarTrack) {
					moved = append(moved, n)
				}
			}
			if len(moved) != 1 {
				return fmt.Errorf("in flight: %v", moved)
			}
			return nil
		})
		// Give the controller every chance to (wrongly) start another.
		eventually(t, "status observed", status(3, int32(round)))
		for _, n := range names[:3] {
			p := getPod(t, n)
			if imageOf(p, "proxy") == "proxy:2" && inplace.InFlightOn(p, inplace.SidecarTrack) && n != moved[0] {
				t.Fatalf("round %d: %s started while %s is in flight", round, n, moved[0])
			}
		}
		restart(t, moved[0])
		eventually(t, "upgrade done", func() error {
			if inplace.InFlightOn(getPod(t, moved[0]), inplace.SidecarTrack) {
				return fmt.Errorf("%s still in flight", moved[0])
			}
			return nil
		})
	}
	eventually(t, "all updated", status(3, 3))
	cur := &appsv1alpha1.SidecarSet{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(ss), cur); err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(cur.Status.Conditions, appsv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Ready: %+v", c)
	}
	if imageOf(getPod(t, "gone"), "proxy") != "proxy:1" {
		t.Error("a pod no longer selected was upgraded")
	}
	for _, n := range names[:3] {
		if rec := injection.RecordsOf(getPod(t, n))[ss.Name]; rec.Hash != cur.Status.LatestRevision {
			t.Errorf("%s records %s, latest %s", n, rec.Hash, cur.Status.LatestRevision)
		}
	}
}
