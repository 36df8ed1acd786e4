package inplace

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/podstate"
)

// GateType is the readiness gate Drover owns on its pods.
const GateType = corev1.PodConditionType(appsv1alpha1.ConditionInPlaceUpdateReady)

// InjectReadinessGate adds the InPlaceUpdateReady readiness gate to a pod
// spec that lacks it. Pods are created with it, since gates cannot be added
// later.
func InjectReadinessGate(spec *corev1.PodSpec) {
	for _, g := range spec.ReadinessGates {
		if g.ConditionType == GateType {
			return
		}
	}
	spec.ReadinessGates = append(spec.ReadinessGates, corev1.PodReadinessGate{ConditionType: GateType})
}

// GateStatus returns the status of the pod's InPlaceUpdateReady condition
// ("" when the pod has none yet).
func GateStatus(pod *corev1.Pod) corev1.ConditionStatus {
	if c := podstate.Condition(pod, GateType); c != nil {
		return c.Status
	}
	return ""
}

// HasGate reports whether the pod carries the InPlaceUpdateReady readiness gate.
func HasGate(pod *corev1.Pod) bool {
	for _, g := range pod.Spec.ReadinessGates {
		if g.ConditionType == GateType {
			return true
		}
	}
	return false
}

// SetGate writes the InPlaceUpdateReady condition, and optional annotation
// and label changes (nil values remove keys), in one pods/status patch. pod
// is only read; the pod's new resourceVersion is returned.
func SetGate(ctx context.Context, c client.Client, pod *corev1.Pod, status corev1.ConditionStatus, reason string, annotations map[string]any, now time.Time, labels map[string]any) (string, error) {
	cond := map[string]any{
		"type":               string(GateType),
		"status":             string(status),
		"reason":             reason,
		"lastTransitionTime": metav1.NewTime(now).Rfc3339Copy(),
	}
	if old := podstate.Condition(pod, GateType); old != nil && old.Status == status {
		cond["lastTransitionTime"] = old.LastTransitionTime
	}
	patch := map[string]any{"status": map[string]any{"conditions": []any{cond}}}
	meta := map[string]any{}
	if len(annotations) > 0 {
		meta["annotations"] = annotations
	}
	if len(labels) > 0 {
		meta["labels"] = labels
	}
	if len(meta) > 0 {
		patch["metadata"] = meta
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return "", fmt.Errorf("encoding readiness gate patch: %w", err)
	}
	target := shell(pod)
	if err := c.Status().Patch(ctx, target, client.RawPatch(types.StrategicMergePatchType, body)); err != nil {
		return "", fmt.Errorf("setting %s=%s on pod %s: %w", GateType, status, pod.Name, err)
	}
	return target.ResourceVersion, nil
}

// shell is an empty pod naming pod, to receive a patch's answer without
// copying (or touching) the pod it was computed from.
func shell(pod *corev1.Pod) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace}}
}
