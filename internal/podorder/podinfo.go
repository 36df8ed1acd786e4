package podorder

import (
	"math"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// readyCondition returns the pod's first Ready condition, or nil. It is the
// condition kubectl and the Kubernetes controllers look at.
func readyCondition(pod *corev1.Pod) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodReady {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

// readySince reports whether the pod is Ready and, if so, since when (the
// Ready condition's last transition time, zero if unknown).
func readySince(pod *corev1.Pod) (bool, time.Time) {
	c := readyCondition(pod)
	if c == nil || c.Status != corev1.ConditionTrue {
		return false, time.Time{}
	}
	return true, c.LastTransitionTime.Time
}

// isActive mirrors Kubernetes' controller.IsPodActive: the pod is neither
// terminal nor being deleted.
func isActive(pod *corev1.Pod) bool {
	return pod.Status.Phase != corev1.PodSucceeded &&
		pod.Status.Phase != corev1.PodFailed &&
		pod.DeletionTimestamp == nil
}

// phaseOrdinal mirrors podPhaseToOrdinal in Kubernetes' controller_utils.go:
// Pending < Unknown < Running; any other phase counts as Pending.
func phaseOrdinal(phase corev1.PodPhase) int8 {
	switch phase {
	case corev1.PodUnknown:
		return 1
	case corev1.PodRunning:
		return 2
	default:
		return 0
	}
}

// maxRestarts returns the highest restart count among the pod's regular
// containers and among its sidecars (init containers with restartPolicy
// Always), as Kubernetes' maxContainerRestarts does.
func maxRestarts(pod *corev1.Pod) (regular, sidecar int32) {
	for i := range pod.Status.ContainerStatuses {
		regular = max(regular, pod.Status.ContainerStatuses[i].RestartCount)
	}
	for i := range pod.Status.InitContainerStatuses {
		s := &pod.Status.InitContainerStatuses[i]
		if isSidecar(pod, s.Name) {
			sidecar = max(sidecar, s.RestartCount)
		}
	}
	return regular, sidecar
}

// isSidecar reports whether the named init container restarts Always. Pods
// have few init containers, so a linear scan beats building a set.
func isSidecar(pod *corev1.Pod, name string) bool {
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.Name == name {
			return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		}
	}
	return false
}

// deletionCost parses the pod-deletion-cost annotation like Kubernetes'
// GetDeletionCostFromPodAnnotations: a base-10 int32 without a plus sign or
// leading zeros. A missing or invalid value counts as 0.
func deletionCost(annotations map[string]string, key string) int32 {
	v, ok := annotations[key]
	if !ok || !validFirstDigit(v) {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0
	}
	return int32(n)
}

func validFirstDigit(s string) bool {
	if s == "" {
		return false
	}
	return s[0] == '-' || s == "0" || (s[0] >= '1' && s[0] <= '9')
}

// recencyRank turns a timestamp into a key where smaller means "more
// recent", following Kubernetes' ActivePodsWithRanks for ready and creation
// times:
//   - a zero time sorts first (afterOrZero treats it as the latest);
//   - with a zero now, later times sort first, compared exactly;
//   - otherwise times are bucketed by floor(log2(now - t)) in nanoseconds
//     (LogarithmicScaleDown), so pods of similar age tie; times at or after
//     now share bucket -1.
//
// Unlike Kubernetes, which breaks a bucket tie by pod UID on the spot, a tie
// here falls through to the next rule.
func recencyRank(t, now time.Time) int64 {
	switch {
	case t.IsZero():
		return math.MinInt64
	case now.IsZero():
		return -t.UnixNano()
	}
	d := now.Sub(t)
	if d <= 0 {
		return -1
	}
	return int64(math.Log2(float64(d)))
}
