package testenv

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// envtest runs no kubelet. RunPod plays its part for one pod: the pod is
// Running, every container runs its spec image (image ID "id-<image>") and
// is ready, and the pod is Ready when all its readiness gates are True, as
// a kubelet reports it. pod is the caller's copy; it is written through
// pods/status and may fail with a conflict, which the caller retries.
func RunPod(ctx context.Context, c client.Client, pod *corev1.Pod) error {
	p := pod.DeepCopy()
	p.Status.Phase = corev1.PodRunning
	p.Status.ContainerStatuses = nil
	for _, ct := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: ct.Name, Image: ct.Image, ImageID: "id-" + ct.Image, Ready: true,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
		})
	}
	ready := corev1.ConditionTrue
	for _, g := range p.Spec.ReadinessGates {
		if podCondition(p, g.ConditionType) != corev1.ConditionTrue {
			ready = corev1.ConditionFalse
		}
	}
	setPodCondition(p, corev1.ContainersReady, corev1.ConditionTrue)
	setPodCondition(p, corev1.PodReady, ready)
	if err := c.Status().Update(ctx, p); err != nil {
		return fmt.Errorf("running pod %s: %w", p.Name, err)
	}
	return nil
}

func podCondition(p *corev1.Pod, t corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

func setPodCondition(p *corev1.Pod, t corev1.PodConditionType, s corev1.ConditionStatus) {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			if p.Status.Conditions[i].Status != s {
				p.Status.Conditions[i].Status = s
				p.Status.Conditions[i].LastTransitionTime = metav1.Now()
			}
			return
		}
	}
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: t, Status: s, LastTransitionTime: metav1.Now()})
}

// Kubelet plays the kubelet for every pod of namespace ns until the test
// ends: a pod that does not look as RunPod would leave it (not Running,
// containers not on their spec images, readiness not matching its gates)
// is run again. Conflicts with controllers' writes are retried on the next
// pass.
func Kubelet(t testing.TB, c client.Client, ns string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			var pods corev1.PodList
			if err := c.List(ctx, &pods, client.InNamespace(ns)); err == nil {
				for i := range pods.Items {
					if p := &pods.Items[i]; p.DeletionTimestamp == nil && !Running(p) {
						_ = RunPod(ctx, c, p)
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
}

// Running reports whether a pod already looks as RunPod leaves it.
func Running(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != len(p.Spec.Containers) {
		return false
	}
	for i, ct := range p.Spec.Containers {
		if p.Status.ContainerStatuses[i].Image != ct.Image {
			return false
		}
	}
	gates := corev1.ConditionTrue
	for _, g := range p.Spec.ReadinessGates {
		if podCondition(p, g.ConditionType) != corev1.ConditionTrue {
			gates = corev1.ConditionFalse
		}
	}
	return podCondition(p, corev1.PodReady) == gates
}
