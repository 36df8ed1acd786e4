package manager

import (
	corev1 "k8s.io/api/core/v1"
)

// trimPod is the cache transform for pods: it keeps only the fields Drover's
// controllers read (identity, labels and annotations, owner and deletion
// state, node, container names and images, readiness gates, phase,
// conditions and the container statuses' image, readiness, restarts and
// start) and drops the rest (volumes, env, probes, resources, IPs...), so a
// large fleet costs the manager little memory. Writes never start from a
// cached pod's spec or status: they are patches naming the fields they set.
func trimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a tombstone
	}
	pod.ManagedFields = nil
	delete(pod.Annotations, corev1.LastAppliedConfigAnnotation)
	pod.Spec = corev1.PodSpec{
		NodeName:       pod.Spec.NodeName,
		RestartPolicy:  pod.Spec.RestartPolicy,
		ReadinessGates: pod.Spec.ReadinessGates,
		Containers:     trimContainers(pod.Spec.Containers),
		InitContainers: trimContainers(pod.Spec.InitContainers),
	}
	pod.Status = corev1.PodStatus{
		Phase:                 pod.Status.Phase,
		Conditions:            pod.Status.Conditions,
		StartTime:             pod.Status.StartTime,
		ContainerStatuses:     trimStatuses(pod.Status.ContainerStatuses),
		InitContainerStatuses: trimStatuses(pod.Status.InitContainerStatuses),
	}
	for i := range pod.Status.Conditions {
		pod.Status.Conditions[i].Message = ""
	}
	return pod, nil
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
