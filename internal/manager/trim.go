package manager

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// newPodTrimmer returns the cache transform for pods: it keeps only the
// fields Drover's controllers read (identity, labels, Drover's and
// Kubernetes' controller annotations, owner and deletion state, node,
// container names and images, readiness gates, phase, the readiness
// conditions and the container statuses' image, readiness, restarts and
// start) and drops the rest (volumes, env, probes, resources, IPs, other
// annotations...), so a large fleet costs the manager little memory. The
// strings pods repeat (namespace, labels, owner, node, images, condition
// types...) are deduplicated through in, which the manager's informers
// share. Writes never start from a cached pod's spec or status: they are
// patches naming the fields they set.
func newPodTrimmer(in *interner) func(any) (any, error) {
	return func(obj any) (any, error) {
		pod, ok := obj.(*corev1.Pod)
		if !ok {
			return obj, nil // a tombstone
		}
		in.mu.Lock()
		defer in.mu.Unlock()
		trimPod(pod, in.intern)
		return pod, nil
	}
}

// trimPod trims pod in place, passing the strings it keeps that pods
// share through intern.
func trimPod(pod *corev1.Pod, intern func(string) string) {
	pod.ManagedFields = nil
	for k := range pod.Annotations {
		if !keptAnnotation(k) {
			delete(pod.Annotations, k)
		}
	}
	if len(pod.Annotations) == 0 {
		pod.Annotations = nil
	}
	for k, v := range pod.Annotations {
		pod.Annotations[intern(k)] = v // a string key's storage is replaced too
	}
	for k, v := range pod.Labels {
		pod.Labels[intern(k)] = intern(v)
	}
	pod.Namespace = intern(pod.Namespace)
	pod.GenerateName = intern(pod.GenerateName)
	for i := range pod.OwnerReferences {
		r := &pod.OwnerReferences[i]
		r.APIVersion, r.Kind, r.Name, r.UID = intern(r.APIVersion), intern(r.Kind), intern(r.Name), types.UID(intern(string(r.UID)))
	}
	for i := range pod.Finalizers {
		pod.Finalizers[i] = intern(pod.Finalizers[i])
	}
	gates := pod.Spec.ReadinessGates
	for i := range gates {
		gates[i].ConditionType = corev1.PodConditionType(intern(string(gates[i].ConditionType)))
	}
	pod.Spec = corev1.PodSpec{
		NodeName:       intern(pod.Spec.NodeName),
		RestartPolicy:  corev1.RestartPolicy(intern(string(pod.Spec.RestartPolicy))),
		ReadinessGates: gates,
		Containers:     trimContainers(pod.Spec.Containers, intern),
		InitContainers: trimContainers(pod.Spec.InitContainers, intern),
	}
	pod.Status = corev1.PodStatus{
		Phase:                 corev1.PodPhase(intern(string(pod.Status.Phase))),
		Conditions:            keptConditions(pod, intern),
		StartTime:             pod.Status.StartTime,
		ContainerStatuses:     trimStatuses(pod.Status.ContainerStatuses, intern),
		InitContainerStatuses: trimStatuses(pod.Status.InitContainerStatuses, intern),
	}
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
// nodeName), in a slice of their exact size.
func keptConditions(pod *corev1.Pod, intern func(string) string) []corev1.PodCondition {
	kept := func(c *corev1.PodCondition) bool {
		if c.Type == corev1.ContainersReady || c.Type == corev1.PodReady {
			return true
		}
		for _, g := range pod.Spec.ReadinessGates {
			if c.Type == g.ConditionType {
				return true
			}
		}
		return false
	}
	n := 0
	for i := range pod.Status.Conditions {
		if kept(&pod.Status.Conditions[i]) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]corev1.PodCondition, 0, n)
	for _, c := range pod.Status.Conditions {
		if kept(&c) {
			c.Type = corev1.PodConditionType(intern(string(c.Type)))
			c.Status = corev1.ConditionStatus(intern(string(c.Status)))
			c.Reason = intern(c.Reason)
			c.Message = ""
			out = append(out, c)
		}
	}
	return out
}

func trimContainers(cs []corev1.Container, intern func(string) string) []corev1.Container {
	if len(cs) == 0 {
		return nil
	}
	out := make([]corev1.Container, len(cs))
	for i, c := range cs {
		out[i] = corev1.Container{Name: intern(c.Name), Image: intern(c.Image), RestartPolicy: c.RestartPolicy}
	}
	return out
}

func trimStatuses(ss []corev1.ContainerStatus, intern func(string) string) []corev1.ContainerStatus {
	if len(ss) == 0 {
		return nil
	}
	out := make([]corev1.ContainerStatus, len(ss))
	for i, s := range ss {
		out[i] = corev1.ContainerStatus{
			Name: intern(s.Name), Image: intern(s.Image), ImageID: intern(s.ImageID), Ready: s.Ready,
			RestartCount: s.RestartCount, Started: s.Started,
			State: corev1.ContainerState{Running: s.State.Running},
		}
	}
	return out
}
