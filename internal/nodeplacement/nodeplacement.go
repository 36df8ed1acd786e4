// Package nodeplacement decides which nodes run a per-node pod (Advanced
// DaemonSet, BroadcastJob) and pins a pod to its node, with the semantics
// of the native DaemonSet controller: nodeSelector and required node
// affinity must match, every NoSchedule/NoExecute taint must be tolerated,
// and per-node pods tolerate what the native controller adds for daemon
// pods (not-ready, unreachable, unschedulable), so a cordoned node keeps
// its daemon pods as it does for a native DaemonSet.
package nodeplacement

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	schedulinghelpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
)

// nodeNameField is the node field a pinned pod's affinity term matches.
const nodeNameField = "metadata.name"

// defaultTolerations are the tolerations every per-node pod gets, as
// native daemon pods do (the DaemonSet controller's
// AddOrUpdateDaemonPodTolerations): node trouble (not-ready, unreachable),
// resource pressure and cordoning do not keep or evict them, and a
// host-network pod does not need the node's pod network.
func defaultTolerations(spec *corev1.PodSpec) []corev1.Toleration {
	exists := func(key string, effect corev1.TaintEffect) corev1.Toleration {
		return corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: effect}
	}
	ts := []corev1.Toleration{
		exists(corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute),
		exists(corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute),
		exists(corev1.TaintNodeDiskPressure, corev1.TaintEffectNoSchedule),
		exists(corev1.TaintNodeMemoryPressure, corev1.TaintEffectNoSchedule),
		exists(corev1.TaintNodePIDPressure, corev1.TaintEffectNoSchedule),
		exists(corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule),
	}
	if spec.HostNetwork {
		ts = append(ts, exists(corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule))
	}
	return ts
}

// Fits reports whether a pod with spec should run on node and, when it
// should not, why (naming the field or taint that excludes the node).
func Fits(node *corev1.Node, spec *corev1.PodSpec) (ok bool, reason string) {
	if node.DeletionTimestamp != nil {
		return false, "node is being deleted"
	}
	match, err := nodeaffinity.NewRequiredNodeAffinity(spec.NodeSelector, spec.Affinity).Match(node)
	if err != nil {
		return false, fmt.Sprintf("invalid node affinity: %v", err)
	}
	if !match {
		if len(spec.NodeSelector) > 0 && !sets.New(labelPairs(node.Labels)...).HasAll(labelPairs(spec.NodeSelector)...) {
			return false, "nodeSelector does not match"
		}
		return false, "required node affinity does not match"
	}
	tolerations := append(append([]corev1.Toleration(nil), spec.Tolerations...), defaultTolerations(spec)...)
	taint, untolerated := schedulinghelpers.FindMatchingUntoleratedTaint(klog.Background(), node.Spec.Taints, tolerations,
		func(t *corev1.Taint) bool {
			return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
		}, false)
	if untolerated {
		return false, fmt.Sprintf("taint %s is not tolerated", taint.ToString())
	}
	return true, ""
}

func labelPairs(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

// AnnotationNode records the node a per-node pod is pinned to, so that
// controllers reading trimmed pods from the cache (no affinity) know it
// before the pod is bound.
const AnnotationNode = "apps.drover.dev/node"

// PinToNode makes pod schedulable only on nodeName: the required node
// affinity gets a metadata.name term in place of any earlier one (the
// user's other requirements stay), the daemon-pod tolerations are added
// when missing, and AnnotationNode names the node. The scheduler still
// binds the pod, so resources and ports are checked as for any pod.
func PinToNode(pod *corev1.Pod, nodeName string) {
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[AnnotationNode] = nodeName
	spec := &pod.Spec
	nameReq := corev1.NodeSelectorRequirement{Key: nodeNameField, Operator: corev1.NodeSelectorOpIn, Values: []string{nodeName}}
	if spec.Affinity == nil {
		spec.Affinity = &corev1.Affinity{}
	}
	if spec.Affinity.NodeAffinity == nil {
		spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	na := spec.Affinity.NodeAffinity
	if na.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		na.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{}
	}
	req := na.RequiredDuringSchedulingIgnoredDuringExecution
	// Terms are ORed, so the name requirement goes into every term; a
	// selector without terms gets one holding only the name.
	if len(req.NodeSelectorTerms) == 0 {
		req.NodeSelectorTerms = []corev1.NodeSelectorTerm{{}}
	}
	for i := range req.NodeSelectorTerms {
		term := &req.NodeSelectorTerms[i]
		fields := term.MatchFields[:0:0]
		for _, f := range term.MatchFields {
			if f.Key != nodeNameField {
				fields = append(fields, f)
			}
		}
		term.MatchFields = append(fields, nameReq)
	}
	for _, t := range defaultTolerations(spec) {
		if !hasToleration(spec.Tolerations, t) {
			spec.Tolerations = append(spec.Tolerations, t)
		}
	}
}

func hasToleration(ts []corev1.Toleration, want corev1.Toleration) bool {
	for _, t := range ts {
		if t.MatchToleration(&want) {
			return true
		}
	}
	return false
}

// NodeOf returns the node a pod is meant for: its spec.nodeName once bound,
// else AnnotationNode, else the node its affinity pins it to ("" when
// none).
func NodeOf(pod *corev1.Pod) string {
	if pod.Spec.NodeName != "" {
		return pod.Spec.NodeName
	}
	if n := pod.Annotations[AnnotationNode]; n != "" {
		return n
	}
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return ""
	}
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, f := range term.MatchFields {
			if f.Key == nodeNameField && f.Operator == corev1.NodeSelectorOpIn && len(f.Values) == 1 {
				return f.Values[0]
			}
		}
	}
	return ""
}
