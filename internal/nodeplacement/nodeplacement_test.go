package nodeplacement

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name string, labels map[string]string, mod ...func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	for _, m := range mod {
		m(n)
	}
	return n
}

func taint(key string, effect corev1.TaintEffect) func(*corev1.Node) {
	return func(n *corev1.Node) {
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: key, Value: "v", Effect: effect})
	}
}

func TestFits(t *testing.T) {
	gpu := map[string]string{"gpu": "true"}
	affinity := &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a", "b"}},
		}}},
	}}}
	cases := []struct {
		name   string
		node   *corev1.Node
		spec   corev1.PodSpec
		fits   bool
		reason string
	}{
		{name: "plain node", node: node("n", nil), fits: true},
		{name: "nodeSelector matches", node: node("n", gpu), spec: corev1.PodSpec{NodeSelector: gpu}, fits: true},
		{name: "nodeSelector misses", node: node("n", nil), spec: corev1.PodSpec{NodeSelector: gpu}, reason: "nodeSelector"},
		{name: "affinity matches", node: node("n", map[string]string{"zone": "b"}), spec: corev1.PodSpec{Affinity: affinity}, fits: true},
		{name: "affinity misses", node: node("n", map[string]string{"zone": "c"}), spec: corev1.PodSpec{Affinity: affinity}, reason: "node affinity"},
		{name: "NoSchedule taint not tolerated", node: node("n", nil, taint("dedicated", corev1.TaintEffectNoSchedule)), reason: "taint dedicated=v:NoSchedule"},
		{name: "NoExecute taint not tolerated", node: node("n", nil, taint("dedicated", corev1.TaintEffectNoExecute)), reason: "taint dedicated"},
		{name: "PreferNoSchedule taint ignored", node: node("n", nil, taint("dedicated", corev1.TaintEffectPreferNoSchedule)), fits: true},
		{name: "taint tolerated", node: node("n", nil, taint("dedicated", corev1.TaintEffectNoSchedule)),
			spec: corev1.PodSpec{Tolerations: []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}}, fits: true},
		{name: "cordoned node keeps daemon pods", node: node("n", nil, func(n *corev1.Node) {
			n.Spec.Unschedulable = true
			n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule})
		}), fits: true},
		{name: "not-ready node keeps daemon pods", node: node("n", nil, taint(corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute)), fits: true},
		{name: "memory pressure keeps daemon pods", node: node("n", nil, taint(corev1.TaintNodeMemoryPressure, corev1.TaintEffectNoSchedule)), fits: true},
		{name: "disk pressure keeps daemon pods", node: node("n", nil, taint(corev1.TaintNodeDiskPressure, corev1.TaintEffectNoSchedule)), fits: true},
		{name: "pid pressure keeps daemon pods", node: node("n", nil, taint(corev1.TaintNodePIDPressure, corev1.TaintEffectNoSchedule)), fits: true},
		{name: "network unavailable refuses pod-network pods", node: node("n", nil, taint(corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule)), reason: "network-unavailable"},
		{name: "network unavailable keeps host-network pods", node: node("n", nil, taint(corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule)),
			spec: corev1.PodSpec{HostNetwork: true}, fits: true},
		{name: "node being deleted", node: node("n", nil, func(n *corev1.Node) { n.DeletionTimestamp = &metav1.Time{} }), reason: "deleted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ok, reason := Fits(c.node, &c.spec)
			if ok != c.fits {
				t.Fatalf("Fits = %v (%q), want %v", ok, reason, c.fits)
			}
			if !c.fits && !strings.Contains(reason, c.reason) {
				t.Fatalf("reason %q does not mention %q", reason, c.reason)
			}
		})
	}
}

func TestPinToNode(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
			{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}}},
			{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"b"}}}},
		}},
	}}}}
	PinToNode(pod, "old")
	PinToNode(pod, "node-1")
	if got := NodeOf(pod); got != "node-1" {
		t.Fatalf("NodeOf = %q, want node-1", got)
	}
	terms := pod.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	for i, term := range terms {
		if len(term.MatchExpressions) != 1 || len(term.MatchFields) != 1 || term.MatchFields[0].Values[0] != "node-1" {
			t.Fatalf("term %d = %+v: want the user's expression kept and one name field for node-1", i, term)
		}
	}
	if n := len(pod.Spec.Tolerations); n != 6 {
		t.Fatalf("%d tolerations after pinning twice, want the 6 daemon tolerations once", n)
	}
	// The pinned spec matches its node only.
	if ok, _ := Fits(node("node-1", map[string]string{"zone": "b"}), &pod.Spec); !ok {
		t.Fatal("pinned pod does not fit its own node")
	}
	if ok, _ := Fits(node("node-2", map[string]string{"zone": "b"}), &pod.Spec); ok {
		t.Fatal("pinned pod fits another node")
	}
	// Before binding, the cache's trimmed pod (no affinity) still knows its node.
	trimmed := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: pod.Annotations}}
	if got := NodeOf(trimmed); got != "node-1" {
		t.Fatalf("NodeOf(trimmed) = %q", got)
	}
	bound := &corev1.Pod{Spec: corev1.PodSpec{NodeName: "node-3"}}
	if got := NodeOf(bound); got != "node-3" {
		t.Fatalf("NodeOf(bound) = %q", got)
	}
}
