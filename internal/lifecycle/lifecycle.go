// Package lifecycle implements the preDelete and inPlaceUpdate hooks: a pod
// about to be deleted or updated in place enters a visible state (label
// lifecycle.apps.drover.dev/state) and waits there while another component
// holds it with the hook's labels or finalizers.
package lifecycle

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
	"github.com/drover-dev/drover/internal/inplace"
)

// StateOf returns the lifecycle state of a pod (Normal when unlabelled).
func StateOf(pod *corev1.Pod) appsv1alpha1.LifecycleState {
	if s, ok := pod.Labels[appsv1alpha1.LabelLifecycleState]; ok && s != "" {
		return appsv1alpha1.LifecycleState(s)
	}
	return appsv1alpha1.LifecycleStateNormal
}

// Hooked reports whether hook holds the pod: it carries every label of the
// hook's labelsHandler with its value, or any finalizer of its
// finalizersHandler. A nil hook never holds a pod.
func Hooked(hook *appsv1alpha1.LifecycleHook, pod *corev1.Pod) bool {
	if hook == nil {
		return false
	}
	if len(hook.LabelsHandler) > 0 {
		all := true
		for k, v := range hook.LabelsHandler {
			if pod.Labels[k] != v {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	for _, f := range hook.FinalizersHandler {
		for _, pf := range pod.Finalizers {
			if pf == f {
				return true
			}
		}
	}
	return false
}

// SetState labels the pod with a lifecycle state. With markNotReady the
// InPlaceUpdateReady gate is set False in the same write (a pods/status
// patch carries the label too). pod is only read; the pod's new
// resourceVersion is returned.
func SetState(ctx context.Context, c client.Client, pod *corev1.Pod, state appsv1alpha1.LifecycleState, markNotReady bool, now time.Time) (string, error) {
	labels := map[string]any{appsv1alpha1.LabelLifecycleState: string(state)}
	if markNotReady && inplace.HasGate(pod) {
		return inplace.SetGate(ctx, c, pod, corev1.ConditionFalse, "Lifecycle"+string(state), nil, now, labels)
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
	if err != nil {
		return "", fmt.Errorf("encoding lifecycle patch: %w", err)
	}
	target := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace}}
	if err := c.Patch(ctx, target, client.RawPatch(types.MergePatchType, body)); err != nil {
		return "", fmt.Errorf("setting lifecycle state %s on pod %s: %w", state, pod.Name, err)
	}
	return target.ResourceVersion, nil
}
