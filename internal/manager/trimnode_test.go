package manager

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover-dev/drover/internal/nodeplacement"
)

func fullNode() *corev1.Node {
	now := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "u1", ResourceVersion: "7", Labels: map[string]string{"zone": "a"},
			Annotations:   map[string]string{"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}, DeletionTimestamp: &now},
		Spec: corev1.NodeSpec{PodCIDR: "10.0.0.0/24", ProviderID: "kwok://n1", Unschedulable: true,
			Taints: []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}},
		Status: corev1.NodeStatus{
			Capacity:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8")},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now}},
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}},
			Images:     []corev1.ContainerImage{{Names: []string{"app:1"}, SizeBytes: 1 << 30}},
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.37.2"},
		},
	}
}

func TestTrimNodeKeepsPlacementFields(t *testing.T) {
	full := fullNode()
	out, err := trimNode(fullNode())
	if err != nil {
		t.Fatal(err)
	}
	n := out.(*corev1.Node)
	if n.Name != "n1" || n.UID != "u1" || n.ResourceVersion != "7" || n.Labels["zone"] != "a" || n.DeletionTimestamp == nil {
		t.Errorf("identity, labels or deletion lost: %+v", n.ObjectMeta)
	}
	if !n.Spec.Unschedulable || len(n.Spec.Taints) != 1 || n.Spec.Taints[0] != full.Spec.Taints[0] {
		t.Errorf("taints or unschedulable lost: %+v", n.Spec)
	}
	if len(n.Status.Conditions) != 1 || n.Status.Conditions[0].Type != corev1.NodeReady || n.Status.Conditions[0].Status != corev1.ConditionTrue {
		t.Errorf("conditions lost: %+v", n.Status.Conditions)
	}
	// Placement decisions are the same on the trimmed node.
	spec := &corev1.PodSpec{NodeSelector: map[string]string{"zone": "a"},
		Tolerations: []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}}
	full.DeletionTimestamp, n.DeletionTimestamp = nil, nil
	for _, s := range []*corev1.PodSpec{spec, {}} {
		a, _ := nodeplacement.Fits(full, s)
		b, _ := nodeplacement.Fits(n, s)
		if a != b {
			t.Errorf("Fits differs on the trimmed node for %+v: %v vs %v", s, a, b)
		}
	}
}

func TestTrimNodeDropsTheRest(t *testing.T) {
	out, _ := trimNode(fullNode())
	n := out.(*corev1.Node)
	if n.Annotations != nil || n.ManagedFields != nil || n.Spec.PodCIDR != "" || n.Spec.ProviderID != "" {
		t.Errorf("metadata or spec not trimmed: %+v %+v", n.ObjectMeta, n.Spec)
	}
	if n.Status.Capacity != nil || n.Status.Addresses != nil || n.Status.Images != nil || n.Status.NodeInfo.KubeletVersion != "" {
		t.Errorf("status not trimmed: %+v", n.Status)
	}
	if c := n.Status.Conditions[0]; c.Message != "" || !c.LastHeartbeatTime.IsZero() {
		t.Errorf("condition message or heartbeat kept: %+v", c)
	}
	if got, _ := trimNode("tombstone"); got != "tombstone" {
		t.Errorf("a tombstone must pass through, got %v", got)
	}
}
