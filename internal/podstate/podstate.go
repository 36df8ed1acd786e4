// Package podstate answers questions about one pod's observed state:
// readiness, availability, termination. Every workload controller and the
// ordering rules ask them the same way.
package podstate

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Condition returns the pod condition of a type, or nil.
func Condition(pod *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == t {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

// IsTerminating reports whether the pod is being deleted.
func IsTerminating(pod *corev1.Pod) bool {
	return pod.DeletionTimestamp != nil
}

// IsFinished reports whether the pod's phase is Succeeded or Failed.
func IsFinished(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// IsActive reports whether the pod counts toward replicas: not terminating
// and not finished.
func IsActive(pod *corev1.Pod) bool {
	return !IsTerminating(pod) && !IsFinished(pod)
}

// IsReady reports whether the pod is Running with a True Ready condition.
func IsReady(pod *corev1.Pod) bool {
	if pod.Status.Phase != corev1.PodRunning {
		return false
	}
	c := Condition(pod, corev1.PodReady)
	return c != nil && c.Status == corev1.ConditionTrue
}

// ReadySince returns when the pod last became ready, or the zero time.
func ReadySince(pod *corev1.Pod) time.Time {
	if !IsReady(pod) {
		return time.Time{}
	}
	return Condition(pod, corev1.PodReady).LastTransitionTime.Time
}

// Available reports whether the pod has been ready for minReadySeconds at
// now; when it is ready but not yet available, wait is how long until it is.
func Available(pod *corev1.Pod, minReadySeconds int32, now time.Time) (available bool, wait time.Duration) {
	if !IsReady(pod) {
		return false, 0
	}
	if minReadySeconds <= 0 {
		return true, 0
	}
	since := ReadySince(pod)
	at := since.Add(time.Duration(minReadySeconds) * time.Second)
	if since.IsZero() || !now.Before(at) {
		return true, 0
	}
	return false, at.Sub(now)
}

// Restarts returns the sum of container restart counts.
func Restarts(pod *corev1.Pod) int32 {
	var n int32
	for _, s := range pod.Status.ContainerStatuses {
		n += s.RestartCount
	}
	return n
}

// ContainersReady reports whether every container status says ready. It
// guards against a pod Ready condition that lags a container restart.
func ContainersReady(pod *corev1.Pod) bool {
	if len(pod.Status.ContainerStatuses) < len(pod.Spec.Containers) {
		return false
	}
	for _, s := range pod.Status.ContainerStatuses {
		if !s.Ready {
			return false
		}
	}
	return true
}
