package podorder

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// podModifier changes a test pod, in the style of cert-manager's
// test/unit/gen builders.
type podModifier func(*corev1.Pod)

// newPod returns a pod in namespace "ns" with the modifiers applied in
// order. Without modifiers the pod is unscheduled, with no phase and no
// conditions.
func newPod(name string, mods ...podModifier) *corev1.Pod {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name:      name,
		Namespace: "ns",
		UID:       types.UID("uid-" + name),
	}}
	for _, mod := range mods {
		mod(pod)
	}
	return pod
}

func withNode(node string) podModifier {
	return func(p *corev1.Pod) { p.Spec.NodeName = node }
}

func withPhase(phase corev1.PodPhase) podModifier {
	return func(p *corev1.Pod) { p.Status.Phase = phase }
}

// withReadyCondition sets the pod's Ready condition.
func withReadyCondition(status corev1.ConditionStatus, since time.Time) podModifier {
	return func(p *corev1.Pod) {
		c := corev1.PodCondition{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.NewTime(since)}
		for i := range p.Status.Conditions {
			if p.Status.Conditions[i].Type == corev1.PodReady {
				p.Status.Conditions[i] = c
				return
			}
		}
		p.Status.Conditions = append(p.Status.Conditions, c)
	}
}

func withReady(since time.Time) podModifier { return withReadyCondition(corev1.ConditionTrue, since) }

func withNotReady() podModifier { return withReadyCondition(corev1.ConditionFalse, time.Time{}) }

// withRunningReady makes a scheduled, Running, Ready pod.
func withRunningReady(node string, since time.Time) podModifier {
	return func(p *corev1.Pod) {
		withNode(node)(p)
		withPhase(corev1.PodRunning)(p)
		withReady(since)(p)
	}
}

func withLabel(key, value string) podModifier {
	return func(p *corev1.Pod) {
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		p.Labels[key] = value
	}
}

func withRevision(rev string) podModifier {
	return withLabel(appsv1.ControllerRevisionHashLabelKey, rev)
}

func withAnnotation(key, value string) podModifier {
	return func(p *corev1.Pod) {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[key] = value
	}
}

func withCreated(t time.Time) podModifier {
	return func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(t) }
}

func withDeletionTimestamp(t time.Time) podModifier {
	return func(p *corev1.Pod) {
		ts := metav1.NewTime(t)
		p.DeletionTimestamp = &ts
	}
}

// withRestarts adds a regular container with this restart count.
func withRestarts(n int32) podModifier {
	return func(p *corev1.Pod) {
		name := "c" + string(rune('0'+len(p.Status.ContainerStatuses)))
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: name})
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses,
			corev1.ContainerStatus{Name: name, RestartCount: n})
	}
}

// withInitRestarts adds an init container with this restart count; sidecar
// makes it restart Always.
func withInitRestarts(n int32, sidecar bool) podModifier {
	return func(p *corev1.Pod) {
		name := "init" + string(rune('0'+len(p.Status.InitContainerStatuses)))
		c := corev1.Container{Name: name}
		if sidecar {
			always := corev1.ContainerRestartPolicyAlways
			c.RestartPolicy = &always
		}
		p.Spec.InitContainers = append(p.Spec.InitContainers, c)
		p.Status.InitContainerStatuses = append(p.Status.InitContainerStatuses,
			corev1.ContainerStatus{Name: name, RestartCount: n})
	}
}

func podNames(pods []*corev1.Pod) []string {
	names := make([]string, len(pods))
	for i, p := range pods {
		names[i] = p.Name
	}
	return names
}
