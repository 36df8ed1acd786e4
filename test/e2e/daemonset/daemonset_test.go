// Package daemonset holds the Advanced DaemonSet end-to-end tests: the user
// stories of the DaemonSet guide, run against a real API server, scheduler
// and controller manager with simulated nodes (kwok) and the drover-manager
// binary. Every test creates its own nodes, labelled for it, and its
// DaemonSets select only them, so tests run in parallel.
package daemonset

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/lifecycle"
	"github.com/drover-dev/drover/internal/podstate"
	"github.com/drover-dev/drover/internal/revision"
	"github.com/drover-dev/drover/test/e2e/framework"
)

func TestMain(m *testing.M) {
	os.Exit(framework.Run(m, framework.Options{
		Nodes:       2,
		AddToScheme: []func(*runtime.Scheme) error{appsv1alpha1.AddToScheme},
	}))
}

func TestNodesJoinLeaveRelabelTaint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	nodes := e.addNodes(3, map[string]string{"role": "edge"})
	ds := e.create(e.daemonSet("edge", func(d *appsv1alpha1.DaemonSet) { d.Spec.Template.Spec.NodeSelector["role"] = "edge" }))
	all := append([]string(nil), nodes...)
	// At no moment does a node run two pods of the DaemonSet.
	rec := record(t, e.ns, nil, func(state map[string]nodeState) error {
		for n, s := range state {
			if s.live > 1 {
				return fmt.Errorf("node %s runs %d pods", n, s.live)
			}
		}
		return nil
	})
	first := waitOnNodes(t, ds, all...)
	waitReady(t, ds, 3)

	// A node joins: it gets a pod; one that does not match does not.
	joined := e.addNodes(1, map[string]string{"role": "edge"})[0]
	other := e.addNodes(1, map[string]string{"role": "core"})[0]
	all = append(all, joined)
	waitOnNodes(t, ds, all...)

	// Labels change: other starts to fit, nodes[0] stops fitting.
	e.modifyNode(other, func(n *corev1.Node) { n.Labels["role"] = "edge" })
	e.modifyNode(nodes[0], func(n *corev1.Node) { n.Labels["role"] = "core" })
	all = []string{nodes[1], nodes[2], joined, other}
	waitOnNodes(t, ds, all...)

	// Taints, as with the native DaemonSet: a NoSchedule taint the pod does
	// not tolerate keeps the running pod (misscheduled) but would refuse a
	// new one; a NoExecute taint removes it; removing the taints brings a
	// pod back. Cordoning keeps it (daemon pods tolerate unschedulable).
	tainted := podByNode(t, ds)[nodes[1]]
	e.modifyNode(nodes[1], func(n *corev1.Node) {
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: "maintenance", Value: "true", Effect: corev1.TaintEffectNoSchedule})
	})
	framework.Eventually(t, timeout, func() error {
		if st := framework.Get(t, ds).Status; st.NumberMisscheduled != 1 || st.DesiredNumberScheduled != 3 {
			return fmt.Errorf("NoSchedule taint not observed: %+v", st)
		}
		return nil
	})
	waitReady(t, ds, 3)
	if p := podByNode(t, ds)[nodes[1]]; p.UID != tainted.UID {
		t.Fatalf("a NoSchedule taint replaced the pod of %s", nodes[1])
	}
	e.modifyNode(nodes[1], func(n *corev1.Node) {
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: "evacuate", Value: "true", Effect: corev1.TaintEffectNoExecute})
	})
	waitOnNodes(t, ds, nodes[2], joined, other)
	e.modifyNode(nodes[1], func(n *corev1.Node) {
		n.Spec.Taints = slices.DeleteFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == "maintenance" || t.Key == "evacuate" })
	})
	waitOnNodes(t, ds, all...)
	cordoned := podByNode(t, ds)[nodes[2]]
	e.modifyNode(nodes[2], func(n *corev1.Node) { n.Spec.Unschedulable = true })
	time.Sleep(2 * time.Second)
	if p := podByNode(t, ds)[nodes[2]]; p.UID != cordoned.UID {
		t.Fatalf("cordoning %s replaced its pod", nodes[2])
	}

	// A node leaves: its pod goes at once (no kubelet will finish it).
	e.deleteNode(joined)
	waitOnNodes(t, ds, nodes[1], nodes[2], other)
	framework.Eventually(t, timeout, func() error {
		var list corev1.PodList
		if err := framework.Client().List(context.Background(), &list, client.InNamespace(e.ns)); err != nil {
			return err
		}
		for _, p := range list.Items {
			if p.Spec.NodeName == joined {
				return fmt.Errorf("pod %s of the node that left still exists", p.Name)
			}
		}
		return nil
	})
	cur := waitReady(t, ds, 3)
	if st := cur.Status; st.CurrentNumberScheduled != 3 || st.NumberAvailable != 3 || st.NumberMisscheduled != 0 || st.UpdatedNumberScheduled != 3 {
		t.Fatalf("status: %+v", st)
	}
	// The pods that never had a reason to move did not.
	if p := podByNode(t, ds)[nodes[2]]; p.UID != first[nodes[2]].UID {
		t.Fatalf("the pod of %s was replaced", nodes[2])
	}
	rec.Stop()
	rec.AssertNoViolations(t)
}

func TestRollingUpdateRespectsMaxUnavailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	nodes := e.addNodes(6, nil)
	ds := e.create(e.daemonSet("unavail", func(d *appsv1alpha1.DaemonSet) {
		rollingUpdate(d).MaxUnavailable = ptr.To(intstr.FromString("33%")) // 2 of 6, rounded up
	}))
	before := waitOnNodes(t, ds, nodes...)
	waitReady(t, ds, 6)
	rec := record(t, e.ns, nodes, budget(2, 0))
	framework.Modify(t, ds, setImage("example.com/agent:v2"))
	cur := waitReady(t, ds, 6)
	rec.Stop()
	rec.AssertNoViolations(t)
	if cur.Status.UpdatedNumberScheduled != 6 || cur.Status.CurrentRevision != cur.Status.UpdateRevision {
		t.Fatalf("status after the update: %+v", cur.Status)
	}
	for n, p := range waitOnNodes(t, ds, nodes...) {
		if p.UID == before[n].UID || p.Spec.Containers[0].Image != "example.com/agent:v2" {
			t.Fatalf("pod on %s not recreated on the new image", n)
		}
	}
	t.Logf("at most %d nodes without a ready pod (maxUnavailable 2)", rec.maxDown)
}

func TestRollingUpdateWithMaxSurge(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	nodes := e.addNodes(5, nil)
	ds := e.create(e.daemonSet("surge", func(d *appsv1alpha1.DaemonSet) {
		rollingUpdate(d).MaxUnavailable = ptr.To(intstr.FromInt32(0))
		rollingUpdate(d).MaxSurge = ptr.To(intstr.FromString("40%")) // 2 of 5
	}))
	before := waitOnNodes(t, ds, nodes...)
	waitReady(t, ds, 5)
	// With maxUnavailable 0 every node keeps a ready pod at every moment;
	// at most 2 nodes run a new pod beside the old one.
	rec := record(t, e.ns, nodes, budget(0, 2))
	framework.Modify(t, ds, setImage("example.com/agent:v2"))
	cur := waitReady(t, ds, 5)
	rec.Stop()
	rec.AssertNoViolations(t)
	if rec.maxDouble == 0 {
		t.Fatalf("no node ever ran the new pod beside the old one")
	}
	if cur.Status.UpdatedNumberScheduled != 5 {
		t.Fatalf("status: %+v", cur.Status)
	}
	for n, p := range waitOnNodes(t, ds, nodes...) {
		if p.UID == before[n].UID || p.Spec.Containers[0].Image != "example.com/agent:v2" {
			t.Fatalf("pod on %s not replaced", n)
		}
	}
	t.Logf("at most %d nodes ran two pods (maxSurge 2)", rec.maxDouble)
}

func TestMinReadySeconds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	nodes := e.addNodes(3, nil)
	const minReady = 4 * time.Second
	ds := e.create(e.daemonSet("minready", func(d *appsv1alpha1.DaemonSet) {
		d.Spec.MinReadySeconds = int32(minReady / time.Second)
	}))
	waitOnNodes(t, ds, nodes...)
	waitReady(t, ds, 3)

	// Watch when each new pod turns ready and when each old pod is
	// deleted: with maxUnavailable 1, an old pod may go only once the
	// previous node's new pod has been ready for minReadySeconds.
	type mark struct {
		at   time.Time
		what string
	}
	var mu sync.Mutex
	var marks []mark
	seen := map[string]bool{}
	rec := record(t, e.ns, nodes, func(state map[string]nodeState) error { return nil })
	rec.Locked(func() {
		rec.onEvent = func(p *corev1.Pod) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case p.DeletionTimestamp != nil && !seen["del/"+p.Name]:
				seen["del/"+p.Name] = true
				marks = append(marks, mark{time.Now(), "delete " + p.Name})
			case p.DeletionTimestamp == nil && podstate.IsReady(p) && p.Spec.Containers[0].Image == "example.com/agent:v2" && !seen["ready/"+p.Name]:
				seen["ready/"+p.Name] = true
				marks = append(marks, mark{time.Now(), "ready " + p.Name})
			}
		}
	})
	framework.Modify(t, ds, setImage("example.com/agent:v2"))
	if cur := waitReady(t, ds, 3); cur.Status.UpdatedNumberAvailable != 3 {
		t.Fatalf("status: %+v", cur.Status)
	}
	rec.Stop()
	mu.Lock()
	defer mu.Unlock()
	var lastReady time.Time
	deletes := 0
	for _, m := range marks {
		switch {
		case strings.HasPrefix(m.what, "ready "):
			lastReady = m.at
		case !lastReady.IsZero():
			deletes++
			// Observation delays of the two events differ a little.
			if gap := m.at.Sub(lastReady); gap < minReady-time.Second {
				t.Fatalf("%s only %s after the previous new pod turned ready (minReadySeconds %s)", m.what, gap.Round(time.Millisecond), minReady)
			}
		}
	}
	if deletes != 2 {
		t.Fatalf("want 2 old pods deleted after a new pod turned ready, saw %v", marks)
	}
}

func TestPartitionAndNodeSelectorForUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	canary := e.addNodes(2, map[string]string{"pool": "canary"})
	rest := e.addNodes(3, nil)
	all := append(append([]string(nil), canary...), rest...)
	ds := e.create(e.daemonSet("staged", func(d *appsv1alpha1.DaemonSet) {
		rollingUpdate(d).MaxUnavailable = ptr.To(intstr.FromInt32(5))
	}))
	waitOnNodes(t, ds, all...)
	old := waitReady(t, ds, 5).Status.UpdateRevision

	revOn := func() map[string]string {
		out := map[string]string{}
		for n, p := range waitOnNodes(t, ds, all...) {
			out[n] = p.Labels[revision.LabelRevisionHash]
		}
		return out
	}

	// Only the nodes the selector matches are updated.
	framework.Modify(t, ds, func(d *appsv1alpha1.DaemonSet) {
		d.Spec.Template.Spec.Containers[0].Image = "example.com/agent:v2"
		rollingUpdate(d).Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"pool": "canary"}}
	})
	cur := waitReady(t, ds, 5)
	if cur.Status.UpdatedNumberScheduled != 2 || cur.Status.ExpectedUpdatedNumber != 2 {
		t.Fatalf("selector: %+v", cur.Status)
	}
	update := cur.Status.UpdateRevision
	revs := revOn()
	for _, n := range canary {
		if revs[n] != update {
			t.Fatalf("canary node %s not updated", n)
		}
	}
	for _, n := range rest {
		if revs[n] != old {
			t.Fatalf("node %s outside the selector updated", n)
		}
	}

	// Without the selector, a partition of 1 keeps one node on the old
	// revision.
	framework.Modify(t, ds, func(d *appsv1alpha1.DaemonSet) {
		rollingUpdate(d).Selector = nil
		rollingUpdate(d).Partition = ptr.To(intstr.FromInt32(1))
	})
	cur = waitReady(t, ds, 5)
	if cur.Status.UpdatedNumberScheduled != 4 || cur.Status.ExpectedUpdatedNumber != 4 {
		t.Fatalf("partition 1: %+v", cur.Status)
	}
	onOld := 0
	for _, r := range revOn() {
		if r == old {
			onOld++
		}
	}
	if onOld != 1 {
		t.Fatalf("partition 1: %d nodes on the old revision", onOld)
	}
	framework.Modify(t, ds, func(d *appsv1alpha1.DaemonSet) { rollingUpdate(d).Partition = nil })
	if cur = waitReady(t, ds, 5); cur.Status.UpdatedNumberScheduled != 5 {
		t.Fatalf("partition 0: %+v", cur.Status)
	}
}

func TestPausedHoldsTheUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	nodes := e.addNodes(3, nil)
	ds := e.create(e.daemonSet("pause", func(d *appsv1alpha1.DaemonSet) {
		rollingUpdate(d).MaxUnavailable = ptr.To(intstr.FromInt32(3))
	}))
	before := waitOnNodes(t, ds, nodes...)
	waitReady(t, ds, 3)
	framework.Modify(t, ds, func(d *appsv1alpha1.DaemonSet) {
		rollingUpdate(d).Paused = true
		d.Spec.Template.Spec.Containers[0].Image = "example.com/agent:v2"
	})
	framework.Eventually(t, timeout, func() error {
		cur := framework.Get(t, ds)
		c := condition(cur, appsv1alpha1.ConditionReady)
		if cur.Status.ObservedGeneration != cur.Generation || c == nil || c.Reason != appsv1alpha1.ReasonPaused {
			return fmt.Errorf("not paused: %+v", c)
		}
		return nil
	})
	time.Sleep(3 * time.Second)
	for n, p := range podByNode(t, ds) {
		if p.UID != before[n].UID || p.Spec.Containers[0].Image != "example.com/agent:v1" {
			t.Fatalf("pod on %s changed while paused", n)
		}
	}
	// A node joining while paused gets a pod, on the template it asks for.
	joined := e.addNodes(1, nil)[0]
	all := append(append([]string(nil), nodes...), joined)
	if p := waitOnNodes(t, ds, all...)[joined]; p.Spec.Containers[0].Image != "example.com/agent:v2" {
		t.Fatalf("a new node got %s while paused", p.Spec.Containers[0].Image)
	}
	framework.Modify(t, ds, func(d *appsv1alpha1.DaemonSet) { rollingUpdate(d).Paused = false })
	if cur := waitReady(t, ds, 4); cur.Status.UpdatedNumberScheduled != 4 {
		t.Fatalf("after resume: %+v", cur.Status)
	}
}

func TestInPlaceUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	nodes := e.addNodes(3, nil)
	ds := e.create(e.daemonSet("inplace", func(d *appsv1alpha1.DaemonSet) {
		rollingUpdate(d).Type = appsv1alpha1.InPlaceIfPossibleRollingUpdateType
		rollingUpdate(d).MaxUnavailable = ptr.To(intstr.FromInt32(1))
	}))
	before := waitOnNodes(t, ds, nodes...)
	waitReady(t, ds, 3)
	rec := record(t, e.ns, nodes, budget(1, 0))
	framework.Modify(t, ds, setImage("example.com/agent:v2"))
	cur := waitReady(t, ds, 3)
	rec.Stop()
	rec.AssertNoViolations(t)
	after := waitOnNodes(t, ds, nodes...)
	for _, n := range nodes {
		p, old := after[n], before[n]
		if p.UID != old.UID {
			t.Fatalf("pod on %s recreated; want in place", n)
		}
		if p.Spec.Containers[0].Image != "example.com/agent:v2" || p.Labels[revision.LabelRevisionHash] != cur.Status.UpdateRevision {
			t.Fatalf("pod on %s not updated: %s %v", n, p.Spec.Containers[0].Image, p.Labels)
		}
		if got, was := framework.ContainerStatus(&p, "agent").RestartCount, framework.ContainerStatus(&old, "agent").RestartCount; got != was+1 {
			t.Fatalf("agent container on %s: restartCount %d -> %d, want one restart", n, was, got)
		}
		if got, was := framework.ContainerStatus(&p, "exporter").RestartCount, framework.ContainerStatus(&old, "exporter").RestartCount; got != was {
			t.Fatalf("exporter container on %s restarted (%d -> %d)", n, was, got)
		}
		if seq := rec.gateSequence(p.Name); !containsFalseThenTrue(seq) {
			t.Fatalf("readiness gate of %s: %v, want False then True", p.Name, seq)
		}
	}

	// A change that cannot go in place recreates the pods.
	framework.Modify(t, ds, func(d *appsv1alpha1.DaemonSet) {
		d.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "MODE", Value: "verbose"}}
	})
	waitReady(t, ds, 3)
	for n, p := range waitOnNodes(t, ds, nodes...) {
		if p.UID == after[n].UID {
			t.Fatalf("pod on %s kept for a change that cannot go in place", n)
		}
	}
}

func containsFalseThenTrue(seq []corev1.ConditionStatus) bool {
	for i := 0; i+1 < len(seq); i++ {
		if seq[i] == corev1.ConditionFalse && seq[i+1] == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func TestPreDeleteHook(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	nodes := e.addNodes(2, nil)
	const hold = "example.com/drain"
	ds := e.create(e.daemonSet("hooked", func(d *appsv1alpha1.DaemonSet) {
		d.Spec.Template.Labels[hold] = "true"
		d.Spec.Lifecycle = &appsv1alpha1.Lifecycle{PreDelete: &appsv1alpha1.LifecycleHook{
			LabelsHandler: map[string]string{hold: "true"}, MarkPodNotReady: true,
		}}
		rollingUpdate(d).MaxUnavailable = ptr.To(intstr.FromInt32(1))
	}))
	before := waitOnNodes(t, ds, nodes...)
	waitReady(t, ds, 2)
	framework.Modify(t, ds, setImage("example.com/agent:v2"))

	for i := range nodes {
		// One pod at a time waits in PreparingDelete, not ready, and is not
		// deleted; its node gets no second pod.
		var held corev1.Pod
		framework.Eventually(t, timeout, func() error {
			var waiting []corev1.Pod
			for _, p := range pods(t, ds) {
				if lifecycle.StateOf(&p) == appsv1alpha1.LifecycleStatePreparingDelete {
					waiting = append(waiting, p)
				}
			}
			if len(waiting) != 1 {
				return fmt.Errorf("%d pods in PreparingDelete", len(waiting))
			}
			held = waiting[0]
			return nil
		})
		time.Sleep(2 * time.Second)
		ps := pods(t, ds)
		if len(ps) != 2 {
			t.Fatalf("round %d: %d live pods while the hook holds %s", i, len(ps), held.Name)
		}
		p := &corev1.Pod{}
		if err := framework.Client().Get(context.Background(), client.ObjectKeyFromObject(&held), p); err != nil || p.DeletionTimestamp != nil {
			t.Fatalf("held pod %s deleted: %v", held.Name, err)
		}
		if lifecycle.StateOf(p) != appsv1alpha1.LifecycleStatePreparingDelete {
			t.Fatalf("held pod state %s", lifecycle.StateOf(p))
		}
		// The hook's owner lets go: the pod is deleted and replaced.
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:null}}}`, hold)
		if err := framework.Client().Patch(context.Background(), p, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
			t.Fatal(err)
		}
		framework.Eventually(t, timeout, func() error {
			q := &corev1.Pod{}
			err := framework.Client().Get(context.Background(), client.ObjectKeyFromObject(&held), q)
			if err == nil && q.DeletionTimestamp == nil {
				return fmt.Errorf("pod %s still there", held.Name)
			}
			return nil
		})
	}
	cur := waitReady(t, ds, 2)
	for n, p := range waitOnNodes(t, ds, nodes...) {
		if p.UID == before[n].UID || p.Labels[revision.LabelRevisionHash] != cur.Status.UpdateRevision {
			t.Fatalf("pod on %s not replaced", n)
		}
	}
}

// TestExampleAppliesAndKubectl runs alone (not parallel): the example
// selects every Linux node of the cluster.
func TestExampleAppliesAndKubectl(t *testing.T) {
	framework.RequireManager(t)
	ns := framework.Namespace(t)
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "examples", "daemonset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ds := &appsv1alpha1.DaemonSet{}
	if err := yaml.UnmarshalStrict(raw, ds); err != nil {
		t.Fatalf("the example does not decode strictly: %v", err)
	}
	ds.Namespace = ns
	if err := framework.Client().Create(context.Background(), ds); err != nil {
		t.Fatalf("the example is refused: %v", err)
	}
	var nodes corev1.NodeList
	if err := framework.Client().List(context.Background(), &nodes, client.MatchingLabels{"kubernetes.io/os": "linux"}); err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) == 0 {
		t.Fatal("no Linux node in the cluster")
	}
	framework.Kubectl(t, "-n", ns, "wait", "--for=condition=Ready", "ads/log-agent", "--timeout=90s")
	cur := framework.Get(t, ds)
	if cur.Status.DesiredNumberScheduled != int32(len(nodes.Items)) || cur.Status.NumberAvailable != cur.Status.DesiredNumberScheduled {
		t.Fatalf("example status on %d nodes: %+v", len(nodes.Items), cur.Status)
	}
	out := framework.Kubectl(t, "-n", ns, "get", "ads", "log-agent", "-o", "wide")
	for _, col := range []string{"DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "STATUS", "AGE", "STRATEGY", "IMAGE", "InPlaceIfPossible", "fluent/fluent-bit:3.0"} {
		if !strings.Contains(out, col) {
			t.Fatalf("kubectl get ads -o wide lacks %s:\n%s", col, out)
		}
	}
	if err := framework.Client().Delete(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
}
