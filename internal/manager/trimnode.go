package manager

import (
	corev1 "k8s.io/api/core/v1"
)

// trimNode is the cache transform for nodes: it keeps what decides which
// per-node pods (DaemonSet, BroadcastJob) a node runs — identity, labels,
// deletion state, taints, unschedulable — and the node conditions' types,
// statuses and reasons, and drops the rest (annotations, addresses,
// images, capacity, heartbeat times, messages...), so a large cluster costs
// the manager little memory.
func trimNode(obj any) (any, error) {
	node, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil // a tombstone
	}
	node.ManagedFields = nil
	node.Annotations = nil
	node.Spec = corev1.NodeSpec{
		Taints:        node.Spec.Taints,
		Unschedulable: node.Spec.Unschedulable,
	}
	var conds []corev1.NodeCondition
	for _, c := range node.Status.Conditions {
		conds = append(conds, corev1.NodeCondition{Type: c.Type, Status: c.Status, Reason: c.Reason, LastTransitionTime: c.LastTransitionTime})
	}
	node.Status = corev1.NodeStatus{Conditions: conds}
	return node, nil
}
