package manager

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// trimPod is the cache transform for pods: it keeps only the fields Drover's
// controllers read (identity, labels, Drover's and Kubernetes' controller
// annotations, owner and deletion state, node, container names and images,
// readiness gates, phase, the readiness conditions and the
// container statuses' image, readiness, restarts and start) and drops the
// rest (volumes, env, probes, resources, IPs, other annotations...), so a
// large fleet costs the manager little memory. Writes never start from a
// cached pod's spec or status: they are patches naming the fields they set.
func trimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a tombstone
	}
	pod.ManagedFields = nil
	for k := range pod.Annotations {
		if !keptAnnotation(k) {
			delete(pod.Annotations, k)
		}
	}
	pod.Spec = corev1.PodSpec{
		NodeName:       pod.Spec.NodeName,
		RestartPolicy:  pod.Spec.RestartPolicy,
		ReadinessGates: pod.Spec.ReadinessGates,
		Containers:     trimContainers(pod.Spec.Containers),
		InitContainers: trimContainers(pod.Spec.InitContainers),
	}
	pod.Status = corev1.PodStatus{
		Phase:                 pod.Status.Phase,
		Conditions:            keptConditions(pod),
		StartTime:             pod.Status.StartTime,
		ContainerStatuses:     trimStatuses(pod.Status.ContainerStatuses),
		InitContainerStatuses: trimStatuses(pod.Status.InitContainerStatuses),
	}
	return pod, nil
}

// keptAnnotation: annotations of Drover's own domains (*.drover.dev, e.g.
// the in-place state, lifecycle and node annotations) and of Kubernetes'
// controllers (controller.kubernetes.io/pod-deletion-cost). Users' and
// meshes' annotations, often large, are dropped.
func keptAnnotation(key string) bool {
	domain, _, found := strings.Cut(key, "/")
	if !found {
		return false
	}
	return domain == "drover.dev" || strings.HasSuffix(domain, ".drover.dev") || domain == "controller.kubernetes.io"
}

// keptConditions are ContainersReady, Ready and the readiness gates'
// conditions, without messages (whether a pod is scheduled is its
// nodeName).
func keptConditions(pod *corev1.Pod) []corev1.PodCondition {
	var out []corev1.PodCondition
	for _, c := range pod.Status.Conditions {
		keep := c.Type == corev1.ContainersReady || c.Type == corev1.PodReady
		for _, g := range pod.Spec.ReadinessGates {
			keep = keep || c.Type == g.ConditionType
		}
		if keep {
			c.Message = ""
			out = append(out, c)
		}
	}
	return out
}

func trimContainers(cs []corev1.Container) []corev1.Container {
	if len(cs) == 0 {
		return nil
	}
	out := make([]corev1.Container, len(cs))
	for i, c := range cs {
		out[i] = corev1.Container{Name: c.Name, Image: c.Image, RestartPolicy: c.RestartPolicy}
	}
	return out
}

func trimStatuses(ss []corev1.ContainerStatus) []corev1.ContainerStatus {
	if len(ss) == 0 {
		return nil
	}
	out := make([]corev1.ContainerStatus, len(ss))
	for i, s := range ss {
		out[i] = corev1.ContainerStatus{
			Name: s.Name, Image: s.Image, ImageID: s.ImageID, Ready: s.Ready,
			RestartCount: s.RestartCount, Started: s.Started,
			State: corev1.ContainerState{Running: s.State.Running},
		}
	}
	return out
}
