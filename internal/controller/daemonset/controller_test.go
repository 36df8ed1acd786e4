package daemonset_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/controller/daemonset"
	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/nodeplacement"
	"github.com/drover-dev/drover/internal/revision"
	"github.com/drover-dev/drover/internal/testenv"
)

// These integration tests run the controller against a real API server
// (envtest). There is no scheduler and no kubelet: pods stay unbound (the
// controller knows their node from the pin) and the helpers below play the
// kubelet where a test needs running pods. Nodes are cluster-scoped, so
// every test labels its own nodes and selects only them.

var (
	k8s       client.Client
	clientset kubernetes.Interface
)

func TestMain(m *testing.M) {
	if os.Getenv("DROVER_TEST_LOG") != "" {
		ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	}
	os.Exit(testenv.MainWithManager(m, func(mgr ctrl.Manager) error {
		var err error
		if clientset, err = kubernetes.NewForConfig(mgr.GetConfig()); err != nil {
			return err
		}
		return daemonset.SetupWithManager(mgr, daemonset.Options{MaxConcurrentReconciles: 2})
	}, func(c client.Client) { k8s = c }))
}

// testKey is the node label that marks a test's nodes.
const testKey = "test.drover.dev/ds"

// fixture is one test's namespace and nodes.
type fixture struct {
	t     *testing.T
	ns    string
	label string // value of testKey on this test's nodes
	mu    sync.Mutex
	nodes []string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ds-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ns: ns.Name, label: ns.Name}
	t.Cleanup(func() {
		for _, n := range f.nodes {
			_ = k8s.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}})
		}
	})
	return f
}

// node creates a node carrying the test's label plus labels.
func (f *fixture) node(name string, labels map[string]string, taints ...corev1.Taint) string {
	f.t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: f.ns + "-" + name, Labels: map[string]string{testKey: f.label}},
		Spec: corev1.NodeSpec{Taints: taints}}
	for k, v := range labels {
		n.Labels[k] = v
	}
	if err := k8s.Create(context.Background(), n); err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.nodes = append(f.nodes, n.Name)
	f.mu.Unlock()
	// The API server taints a new node not-ready (NoSchedule), which daemon
	// pods do not tolerate; with no kubelet and no node lifecycle
	// controller here, the test says the node is ready.
	f.modifyNode(n.Name, func(n *corev1.Node) {
		n.Spec.Taints = slices.DeleteFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == corev1.TaintNodeNotReady })
	})
	return n.Name
}

func (f *fixture) modifyNode(name string, fn func(*corev1.Node)) {
	f.t.Helper()
	testenv.Update(f.t, k8s, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, fn)
}

func (f *fixture) daemonSet(name string) *appsv1alpha1.DaemonSet {
	return &appsv1alpha1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns},
		Spec: appsv1alpha1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{testKey: f.label},
					Containers:   []corev1.Container{{Name: "agent", Image: "agent:1"}},
				},
			},
		},
	}
}

func (f *fixture) create(ds *appsv1alpha1.DaemonSet) *appsv1alpha1.DaemonSet {
	f.t.Helper()
	if err := k8s.Create(context.Background(), ds); err != nil {
		f.t.Fatal(err)
	}
	return ds
}

func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	testenv.Eventually(t, what, cond)
}

func modify(t *testing.T, ds *appsv1alpha1.DaemonSet, fn func(*appsv1alpha1.DaemonSet)) {
	t.Helper()
	testenv.Update(t, k8s, ds, fn)
}

func get(t *testing.T, ds *appsv1alpha1.DaemonSet) *appsv1alpha1.DaemonSet {
	t.Helper()
	cur := &appsv1alpha1.DaemonSet{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(ds), cur); err != nil {
		t.Fatal(err)
	}
	return cur
}

// livePods returns the DaemonSet's pods that are not terminating.
func livePods(t *testing.T, ds *appsv1alpha1.DaemonSet) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ds.Namespace), client.MatchingLabels(ds.Spec.Selector.MatchLabels)); err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return nodeplacement.NodeOf(&out[i]) < nodeplacement.NodeOf(&out[j]) })
	return out
}

// podByNode returns the live pods of ds by node.
func podByNode(t *testing.T, ds *appsv1alpha1.DaemonSet) map[string]corev1.Pod {
	t.Helper()
	out := map[string]corev1.Pod{}
	for _, p := range livePods(t, ds) {
		out[nodeplacement.NodeOf(&p)] = p
	}
	return out
}

// podNodes returns the nodes of the live pods, sorted.
func podNodes(t *testing.T, ds *appsv1alpha1.DaemonSet) []string {
	t.Helper()
	var out []string
	for _, p := range livePods(t, ds) {
		out = append(out, nodeplacement.NodeOf(&p))
	}
	sort.Strings(out)
	return out
}

func waitPodNodes(t *testing.T, ds *appsv1alpha1.DaemonSet, want ...string) {
	t.Helper()
	sort.Strings(want)
	eventually(t, fmt.Sprintf("pods on %v", want), func() (bool, string) {
		got := podNodes(t, ds)
		return slices.Equal(got, want), fmt.Sprint(got)
	})
}

// kubeletRun marks every live pod of ds running and ready (ready only when
// its readiness gate is True), as a kubelet would.
func kubeletRun(t *testing.T, ds *appsv1alpha1.DaemonSet) {
	t.Helper()
	for _, p := range livePods(t, ds) {
		if err := testenv.RunPod(context.Background(), k8s, &p); err != nil {
			t.Logf("kubelet: %v", err) // a conflict: the next call retries
		}
	}
}

// waitReady runs the kubelet until the DaemonSet reports Ready for its
// generation and returns it.
func waitReady(t *testing.T, ds *appsv1alpha1.DaemonSet) *appsv1alpha1.DaemonSet {
	t.Helper()
	var cur *appsv1alpha1.DaemonSet
	eventually(t, "Ready", func() (bool, string) {
		kubeletRun(t, ds)
		cur = get(t, ds)
		c := meta.FindStatusCondition(cur.Status.Conditions, appsv1alpha1.ConditionReady)
		return cur.Status.ObservedGeneration == cur.Generation && c != nil && c.Status == metav1.ConditionTrue, fmt.Sprintf("%+v", cur.Status)
	})
	return cur
}

// watchNodes records, from now on, every moment a node has more than one
// live pod of ds (none is allowed without surge).
func watchDoubles(t *testing.T, ds *appsv1alpha1.DaemonSet) func() []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pods := clientset.CoreV1().Pods(ds.Namespace)
	list, err := pods.List(ctx, metav1.ListOptions{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	w, err := pods.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var mu sync.Mutex
	live := map[string]*corev1.Pod{}
	for i := range list.Items {
		live[list.Items[i].Name] = &list.Items[i]
	}
	var doubles []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			mu.Lock()
			if ev.Type == watch.Deleted || p.DeletionTimestamp != nil {
				delete(live, p.Name)
			} else {
				live[p.Name] = p
			}
			perNode := map[string]int{}
			for _, lp := range live {
				perNode[nodeplacement.NodeOf(lp)]++
			}
			for n, c := range perNode {
				if c > 1 {
					doubles = append(doubles, fmt.Sprintf("%s: %d pods", n, c))
				}
			}
			mu.Unlock()
		}
	}()
	stop := func() []string {
		cancel()
		w.Stop()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return doubles
	}
	t.Cleanup(func() { stop() })
	return stop
}

func TestOnePodPerEligibleNode(t *testing.T) {
	f := newFixture(t)
	plain := f.node("plain", nil)
	cordoned := f.node("cordoned", nil)
	f.modifyNode(cordoned, func(n *corev1.Node) { n.Spec.Unschedulable = true })
	tainted := f.node("tainted", nil, corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule})
	tolerated := f.node("tolerated", map[string]string{"zone": "b"}, corev1.Taint{Key: "gpu", Effect: corev1.TaintEffectNoExecute})
	other := f.node("other", map[string]string{"zone": "c"})
	_ = f.node("elsewhere", nil) // matches nothing below but the test label... and is excluded by affinity
	elsewhere := f.ns + "-elsewhere"

	ds := f.daemonSet("agent")
	ds.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists}}
	ds.Spec.Template.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"c"}}},
			MatchFields:      []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpNotIn, Values: []string{elsewhere}}},
		}}},
	}}
	stop := watchDoubles(t, ds)
	f.create(ds)
	// plain, the cordoned node (daemon pods tolerate unschedulable) and the
	// node whose taint is tolerated; not the tainted one, not zone c, not
	// the node the affinity excludes by name.
	waitPodNodes(t, ds, plain, cordoned, tolerated)
	_ = tainted
	_ = other

	for _, p := range livePods(t, ds) {
		node := nodeplacement.NodeOf(&p)
		if p.Labels[appsv1alpha1.LabelWorkload] != daemonset.Kind || p.Labels[revision.LabelRevisionHash] == "" || p.Labels["app"] != "agent" {
			t.Errorf("pod %s labels: %v", p.Name, p.Labels)
		}
		if !inplace.HasGate(&p) {
			t.Errorf("pod %s lacks the %s readiness gate", p.Name, inplace.GateType)
		}
		if p.Spec.NodeName != "" {
			t.Errorf("pod %s bound by the controller; the scheduler binds", p.Name)
		}
		terms := p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		if len(terms) != 1 || len(terms[0].MatchExpressions) != 1 || !slices.ContainsFunc(terms[0].MatchFields, func(r corev1.NodeSelectorRequirement) bool {
			return r.Key == "metadata.name" && r.Operator == corev1.NodeSelectorOpIn && slices.Equal(r.Values, []string{node})
		}) {
			t.Errorf("pod %s is not pinned to %s keeping the user's terms: %+v", p.Name, node, terms)
		}
		if !slices.ContainsFunc(p.Spec.Tolerations, func(tol corev1.Toleration) bool { return tol.Key == corev1.TaintNodeUnschedulable }) {
			t.Errorf("pod %s lacks the daemon tolerations: %+v", p.Name, p.Spec.Tolerations)
		}
	}
	cur := waitReady(t, ds)
	st := cur.Status
	if st.DesiredNumberScheduled != 3 || st.CurrentNumberScheduled != 3 || st.NumberReady != 3 || st.NumberAvailable != 3 ||
		st.NumberUnavailable != 0 || st.UpdatedNumberScheduled != 3 || st.NumberMisscheduled != 0 || st.CurrentRevision != st.UpdateRevision {
		t.Fatalf("status: %+v", st)
	}
	for _, typ := range []string{appsv1alpha1.ConditionReconciling, appsv1alpha1.ConditionStalled} {
		if c := meta.FindStatusCondition(st.Conditions, typ); c == nil || c.Status != metav1.ConditionFalse {
			t.Errorf("%s: %+v", typ, c)
		}
	}
	if d := stop(); len(d) > 0 {
		t.Fatalf("a node ran two pods: %v", d)
	}
}

func TestReactsToNodesJoiningChangingAndLeaving(t *testing.T) {
	f := newFixture(t)
	a := f.node("a", map[string]string{"role": "edge"})
	b := f.node("b", map[string]string{"role": "edge"})
	ds := f.daemonSet("edge")
	ds.Spec.Template.Spec.NodeSelector["role"] = "edge"
	stop := watchDoubles(t, ds)
	f.create(ds)
	waitPodNodes(t, ds, a, b)
	waitReady(t, ds)

	// Joining: a matching node gets a pod, a non-matching one does not.
	c := f.node("c", map[string]string{"role": "edge"})
	d := f.node("d", map[string]string{"role": "core"})
	waitPodNodes(t, ds, a, b, c)

	// Relabelling: d starts to fit, b stops fitting.
	f.modifyNode(d, func(n *corev1.Node) { n.Labels["role"] = "edge" })
	f.modifyNode(b, func(n *corev1.Node) { n.Labels["role"] = "core" })
	waitPodNodes(t, ds, a, c, d)

	// Tainting, as the native DaemonSet: an untolerated NoSchedule taint
	// keeps the running pod (misscheduled, not desired); an untolerated
	// NoExecute taint removes it; removing the taints brings a pod back.
	kept := podByNode(t, ds)[c]
	f.modifyNode(c, func(n *corev1.Node) {
		n.Spec.Taints = []corev1.Taint{{Key: "maintenance", Effect: corev1.TaintEffectNoSchedule}}
	})
	eventually(t, "the NoSchedule node's pod counted misscheduled", func() (bool, string) {
		st := get(t, ds).Status
		return st.NumberMisscheduled == 1 && st.DesiredNumberScheduled == 2, fmt.Sprintf("%+v", st)
	})
	if cur := waitReady(t, ds); cur.Status.NumberMisscheduled != 1 {
		t.Fatalf("status: %+v", cur.Status)
	}
	if p := podByNode(t, ds)[c]; p.UID != kept.UID {
		t.Fatalf("a NoSchedule taint replaced the pod of %s", c)
	}
	f.modifyNode(c, func(n *corev1.Node) {
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: "evacuate", Effect: corev1.TaintEffectNoExecute})
	})
	waitPodNodes(t, ds, a, d)
	f.modifyNode(c, func(n *corev1.Node) { n.Spec.Taints = nil })
	waitPodNodes(t, ds, a, c, d)

	// Leaving: the node's pod is deleted at once (nothing runs its
	// termination), whatever its state.
	if err := k8s.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: a}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the pod of the node that left to be gone", func() (bool, string) {
		var list corev1.PodList
		if err := k8s.List(context.Background(), &list, client.InNamespace(f.ns)); err != nil {
			return false, err.Error()
		}
		for _, p := range list.Items {
			if nodeplacement.NodeOf(&p) == a {
				return false, p.Name + " still exists"
			}
		}
		return true, ""
	})
	cur := waitReady(t, ds)
	if cur.Status.DesiredNumberScheduled != 2 || cur.Status.NumberAvailable != 2 {
		t.Fatalf("status after the changes: %+v", cur.Status)
	}
	if dbl := stop(); len(dbl) > 0 {
		t.Fatalf("a node ran two pods: %v", dbl)
	}
}

func TestMisscheduledPodHeldByPreDeleteHook(t *testing.T) {
	f := newFixture(t)
	a := f.node("a", nil)
	b := f.node("b", nil)
	ds := f.daemonSet("hooked")
	ds.Spec.Lifecycle = &appsv1alpha1.Lifecycle{PreDelete: &appsv1alpha1.LifecycleHook{FinalizersHandler: []string{"example.com/drain"}}}
	ds.Spec.Template.Finalizers = nil
	f.create(ds)
	waitPodNodes(t, ds, a, b)
	waitReady(t, ds)
	// The hook's owner holds b's pod with its finalizer.
	var held string
	for _, p := range livePods(t, ds) {
		if nodeplacement.NodeOf(&p) == b {
			held = p.Name
			if p.Labels[appsv1alpha1.LabelLifecycleState] != string(appsv1alpha1.LifecycleStateNormal) {
				t.Fatalf("pod %s lifecycle state: %v", p.Name, p.Labels)
			}
			patch := []byte(`{"metadata":{"finalizers":["example.com/drain"]}}`)
			if err := k8s.Patch(context.Background(), &p, client.RawPatch("application/merge-patch+json", patch)); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.modifyNode(b, func(n *corev1.Node) { n.Labels[testKey] = "someone-else" })
	eventually(t, "PreparingDelete", func() (bool, string) {
		p := &corev1.Pod{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: held}, p); err != nil {
			return false, err.Error()
		}
		return p.Labels[appsv1alpha1.LabelLifecycleState] == string(appsv1alpha1.LifecycleStatePreparingDelete) && p.DeletionTimestamp == nil, fmt.Sprint(p.Labels)
	})
	eventually(t, "misscheduled counted", func() (bool, string) {
		st := get(t, ds).Status
		return st.NumberMisscheduled == 1 && st.DesiredNumberScheduled == 1, fmt.Sprintf("%+v", st)
	})
	// Release: the pod goes.
	p := &corev1.Pod{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: held}, p); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Patch(context.Background(), p, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`))); err != nil {
		t.Fatal(err)
	}
	waitPodNodes(t, ds, a)
	if st := waitReady(t, ds).Status; st.NumberMisscheduled != 0 {
		t.Fatalf("status: %+v", st)
	}
}

func TestRollingUpdateStatusAndOnDelete(t *testing.T) {
	f := newFixture(t)
	nodes := []string{f.node("a", nil), f.node("b", nil), f.node("c", nil)}
	ds := f.daemonSet("roll")
	f.create(ds)
	waitPodNodes(t, ds, nodes...)
	first := waitReady(t, ds).Status.UpdateRevision

	// OnDelete: a template change touches no pod; a deleted pod comes back
	// on the new revision.
	modify(t, ds, func(d *appsv1alpha1.DaemonSet) {
		d.Spec.UpdateStrategy.Type = appsv1alpha1.OnDeleteDaemonSetStrategyType
		d.Spec.Template.Spec.Containers[0].Image = "agent:2"
	})
	var cur *appsv1alpha1.DaemonSet
	eventually(t, "new revision observed", func() (bool, string) {
		cur = get(t, ds)
		return cur.Status.ObservedGeneration == cur.Generation && cur.Status.UpdateRevision != first, fmt.Sprintf("%+v", cur.Status)
	})
	second := cur.Status.UpdateRevision
	time.Sleep(time.Second)
	for _, p := range livePods(t, ds) {
		if p.Labels[revision.LabelRevisionHash] != first {
			t.Fatalf("OnDelete updated pod %s", p.Name)
		}
	}
	if c := meta.FindStatusCondition(cur.Status.Conditions, appsv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("OnDelete with old pods should stay Ready: %+v", c)
	}
	victim := livePods(t, ds)[0]
	if err := k8s.Delete(context.Background(), &victim); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replacement on the new revision", func() (bool, string) {
		for _, p := range livePods(t, ds) {
			if nodeplacement.NodeOf(&p) == nodeplacement.NodeOf(&victim) && p.Name != victim.Name {
				return p.Labels[revision.LabelRevisionHash] == second, p.Labels[revision.LabelRevisionHash]
			}
		}
		return false, "no replacement"
	})

	// RollingUpdate with maxUnavailable 100%: everything moves; status
	// counts nodes.
	modify(t, ds, func(d *appsv1alpha1.DaemonSet) {
		d.Spec.UpdateStrategy.Type = appsv1alpha1.RollingUpdateDaemonSetStrategyType
		d.Spec.UpdateStrategy.RollingUpdate = &appsv1alpha1.RollingUpdateDaemonSet{MaxUnavailable: ptr.To(intstr.FromString("100%"))}
	})
	cur = waitReady(t, ds)
	st := cur.Status
	if st.UpdatedNumberScheduled != 3 || st.UpdatedNumberAvailable != 3 || st.ExpectedUpdatedNumber != 3 || st.CurrentRevision != second || st.UpdateRevision != second {
		t.Fatalf("status after the update: %+v", st)
	}
	for _, p := range livePods(t, ds) {
		if p.Labels[revision.LabelRevisionHash] != second || p.Spec.Containers[0].Image != "agent:2" {
			t.Fatalf("pod %s not updated: %s %s", p.Name, p.Labels[revision.LabelRevisionHash], p.Spec.Containers[0].Image)
		}
	}
}

func TestPausedAndPartitionReportStatus(t *testing.T) {
	f := newFixture(t)
	nodes := []string{f.node("a", nil), f.node("b", nil), f.node("c", nil), f.node("d", nil)}
	ds := f.daemonSet("part")
	ds.Spec.UpdateStrategy.RollingUpdate = &appsv1alpha1.RollingUpdateDaemonSet{
		MaxUnavailable: ptr.To(intstr.FromInt32(4)), Partition: ptr.To(intstr.FromString("50%")),
	}
	f.create(ds)
	waitPodNodes(t, ds, nodes...)
	waitReady(t, ds)
	modify(t, ds, func(d *appsv1alpha1.DaemonSet) { d.Spec.Template.Spec.Containers[0].Image = "agent:2" })
	cur := waitReady(t, ds)
	if cur.Status.UpdatedNumberScheduled != 2 || cur.Status.ExpectedUpdatedNumber != 2 {
		t.Fatalf("partition 50%% of 4: %+v", cur.Status)
	}
	modify(t, ds, func(d *appsv1alpha1.DaemonSet) {
		d.Spec.UpdateStrategy.RollingUpdate.Paused = true
		d.Spec.UpdateStrategy.RollingUpdate.Partition = nil
	})
	eventually(t, "paused", func() (bool, string) {
		cur = get(t, ds)
		c := meta.FindStatusCondition(cur.Status.Conditions, appsv1alpha1.ConditionReady)
		p := meta.FindStatusCondition(cur.Status.Conditions, appsv1alpha1.ConditionProgressing)
		return cur.Status.ObservedGeneration == cur.Generation && c != nil && c.Reason == appsv1alpha1.ReasonPaused &&
			p != nil && p.Status == metav1.ConditionUnknown, fmt.Sprintf("%+v", cur.Status.Conditions)
	})
	if cur.Status.UpdatedNumberScheduled != 2 {
		t.Fatalf("paused set moved: %+v", cur.Status)
	}
	modify(t, ds, func(d *appsv1alpha1.DaemonSet) { d.Spec.UpdateStrategy.RollingUpdate.Paused = false })
	if st := waitReady(t, ds).Status; st.UpdatedNumberScheduled != 4 {
		t.Fatalf("after resume: %+v", st)
	}
}

func TestInPlaceUpdateWithHook(t *testing.T) {
	f := newFixture(t)
	a := f.node("a", nil)
	ds := f.daemonSet("ipu")
	ds.Spec.UpdateStrategy.RollingUpdate = &appsv1alpha1.RollingUpdateDaemonSet{Type: appsv1alpha1.InPlaceIfPossibleRollingUpdateType}
	ds.Spec.Lifecycle = &appsv1alpha1.Lifecycle{InPlaceUpdate: &appsv1alpha1.LifecycleHook{LabelsHandler: map[string]string{"example.com/hold": "true"}}}
	ds.Spec.Template.Labels["example.com/hold"] = "true"
	f.create(ds)
	waitPodNodes(t, ds, a)
	waitReady(t, ds)
	uid := livePods(t, ds)[0].UID

	modify(t, ds, func(d *appsv1alpha1.DaemonSet) { d.Spec.Template.Spec.Containers[0].Image = "agent:2" })
	eventually(t, "PreparingUpdate held by the hook", func() (bool, string) {
		p := livePods(t, ds)[0]
		return p.Labels[appsv1alpha1.LabelLifecycleState] == string(appsv1alpha1.LifecycleStatePreparingUpdate), fmt.Sprint(p.Labels)
	})
	time.Sleep(time.Second)
	if p := livePods(t, ds)[0]; p.Spec.Containers[0].Image != "agent:1" {
		t.Fatalf("updated while held by the hook: %s", p.Spec.Containers[0].Image)
	}
	p := livePods(t, ds)[0]
	if err := k8s.Patch(context.Background(), &p, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"labels":{"example.com/hold":null}}}`))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "updated in place", func() (bool, string) {
		kubeletRun(t, ds)
		p := livePods(t, ds)[0]
		return p.UID == uid && p.Spec.Containers[0].Image == "agent:2" && inplace.GateStatus(&p) == corev1.ConditionTrue,
			fmt.Sprintf("%s %s %v", p.UID, p.Spec.Containers[0].Image, inplace.GateStatus(&p))
	})
}

func TestInvalidNodeSelectorStalls(t *testing.T) {
	f := newFixture(t)
	a := f.node("a", nil)
	ds := f.daemonSet("badsel")
	ds.Spec.UpdateStrategy.RollingUpdate = &appsv1alpha1.RollingUpdateDaemonSet{Selector: &metav1.LabelSelector{
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "zone", Operator: "Near"}},
	}}
	f.create(ds)
	// Nodes still get their pods; the update cannot be planned.
	waitPodNodes(t, ds, a)
	eventually(t, "Stalled", func() (bool, string) {
		c := meta.FindStatusCondition(get(t, ds).Status.Conditions, appsv1alpha1.ConditionStalled)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == "InvalidSelector" &&
			strings.Contains(c.Message, "rollingUpdate.selector"), fmt.Sprintf("%+v", c)
	})
}

func TestFailedPodReplacedWithBackoff(t *testing.T) {
	f := newFixture(t)
	a := f.node("a", nil)
	ds := f.create(f.daemonSet("failing"))
	waitPodNodes(t, ds, a)

	// A pod the kubelet refuses (phase Failed) is replaced, after a delay
	// that doubles with each failure on the node while no pod runs there.
	fail := func() (string, time.Time) {
		// The controller writes a new pod's gate right after creating it:
		// retry the kubelet's write on a conflict, on the latest pod.
		for {
			p := livePods(t, ds)[0]
			p.Status.Phase = corev1.PodFailed
			p.Status.Reason = "OutOfcpu"
			err := k8s.Status().Update(context.Background(), &p)
			if err == nil {
				return p.Name, time.Now()
			}
			if !apierrors.IsConflict(err) {
				t.Fatal(err)
			}
		}
	}
	replaced := func(old string) time.Time {
		var at time.Time
		eventually(t, "a replacement for "+old, func() (bool, string) {
			ps := livePods(t, ds)
			if len(ps) == 1 && ps[0].Name != old && ps[0].Status.Phase != corev1.PodFailed {
				at = time.Now()
				return true, ""
			}
			return false, fmt.Sprint(len(ps), " live pods")
		})
		return at
	}
	first, failedAt := fail()
	gap1 := replaced(first).Sub(failedAt)
	second, failedAt := fail()
	gap2 := replaced(second).Sub(failedAt)
	if gap1 < 800*time.Millisecond || gap2 < 1800*time.Millisecond {
		t.Fatalf("replacements after %s and %s; want at least 1s, then 2s", gap1, gap2)
	}
	// A pod that runs resets the backoff.
	waitReady(t, ds)
}

func TestProgressDeadlineStalls(t *testing.T) {
	f := newFixture(t)
	a := f.node("a", nil)
	ds := f.daemonSet("stuck")
	ds.Spec.ProgressDeadlineSeconds = ptr.To[int32](1)
	f.create(ds)
	waitPodNodes(t, ds, a)
	// No kubelet runs the pod: after the deadline the DaemonSet stalls.
	eventually(t, "Stalled", func() (bool, string) {
		st := get(t, ds).Status
		p := meta.FindStatusCondition(st.Conditions, appsv1alpha1.ConditionProgressing)
		s := meta.FindStatusCondition(st.Conditions, appsv1alpha1.ConditionStalled)
		return p != nil && p.Status == metav1.ConditionFalse && p.Reason == appsv1alpha1.ReasonProgressDeadlineExceeded &&
			s != nil && s.Status == metav1.ConditionTrue, fmt.Sprintf("%+v", st.Conditions)
	})
	// Progress clears it.
	cur := waitReady(t, ds)
	if s := meta.FindStatusCondition(cur.Status.Conditions, appsv1alpha1.ConditionStalled); s.Status != metav1.ConditionFalse {
		t.Fatalf("still stalled: %+v", s)
	}
}

func TestRefusedCreateStalls(t *testing.T) {
	f := newFixture(t)
	f.node("a", nil)
	// An admission policy refuses every pod of the test's namespace.
	ctx := context.Background()
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: f.ns},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Create},
					Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
				},
			}}},
			Validations: []admissionv1.Validation{{Expression: "false", Message: "no pods here"}},
		},
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: f.ns},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        f.ns,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": f.ns},
			}},
		},
	}
	for _, o := range []client.Object{policy, binding} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), o) })
	}
	probe := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-", Namespace: f.ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	eventually(t, "the policy to refuse pods", func() (bool, string) {
		err := k8s.Create(ctx, probe.DeepCopy())
		return err != nil && strings.Contains(err.Error(), "no pods here"), fmt.Sprint(err)
	})

	ds := f.create(f.daemonSet("refused"))
	eventually(t, "Stalled with CreateFailed", func() (bool, string) {
		st := get(t, ds).Status
		s := meta.FindStatusCondition(st.Conditions, appsv1alpha1.ConditionStalled)
		r := meta.FindStatusCondition(st.Conditions, appsv1alpha1.ConditionReady)
		return s != nil && s.Status == metav1.ConditionTrue && s.Reason == appsv1alpha1.ReasonCreateFailed && strings.Contains(s.Message, "no pods here") &&
			r != nil && r.Status == metav1.ConditionFalse, fmt.Sprintf("%+v", st.Conditions)
	})
	// Once pods are allowed again, the DaemonSet recovers.
	if err := k8s.Delete(ctx, binding); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ds)
}
