package daemonset

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/nodeplacement"
	"github.com/drover-dev/drover/internal/podstate"
	"github.com/drover-dev/drover/test/e2e/framework"
)

const timeout = 90 * time.Second

// testKey labels the nodes a test creates; every DaemonSet of the test
// selects it, so parallel tests (and the suite's own nodes) never share a
// node.
const testKey = "e2e.drover.dev/ds-test"

// env is one test's namespace and simulated nodes.
type env struct {
	t     *testing.T
	ns    string
	mu    sync.Mutex
	seq   int
	nodes []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	framework.RequireManager(t)
	e := &env{t: t, ns: framework.Namespace(t)}
	t.Cleanup(func() {
		for _, n := range e.nodes {
			_ = framework.Client().Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}})
		}
	})
	return e
}

// addNodes creates n kwok-managed nodes labelled for this test (plus
// labels) and waits until they are Ready and schedulable (the node
// lifecycle controller has removed the not-ready taint).
func (e *env) addNodes(n int, labels map[string]string) []string {
	e.t.Helper()
	ctx := context.Background()
	var names []string
	for range n {
		e.mu.Lock()
		e.seq++
		name := fmt.Sprintf("%s-n%d", e.ns, e.seq)
		e.nodes = append(e.nodes, name)
		e.mu.Unlock()
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      map[string]string{testKey: e.ns, "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"},
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
		}}
		for k, v := range labels {
			node.Labels[k] = v
		}
		if err := framework.Client().Create(ctx, node); err != nil {
			e.t.Fatalf("create node: %v", err)
		}
		names = append(names, name)
	}
	for _, name := range names {
		framework.Eventually(e.t, timeout, func() error {
			node := &corev1.Node{}
			if err := framework.Client().Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
				return err
			}
			ready := slices.ContainsFunc(node.Status.Conditions, func(c corev1.NodeCondition) bool {
				return c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
			})
			tainted := slices.ContainsFunc(node.Spec.Taints, func(t corev1.Taint) bool { return t.Key == corev1.TaintNodeNotReady })
			if !ready || tainted {
				return fmt.Errorf("node %s not ready yet (ready %v, not-ready taint %v)", name, ready, tainted)
			}
			return nil
		})
	}
	return names
}

func (e *env) modifyNode(name string, f func(*corev1.Node)) {
	e.t.Helper()
	framework.Eventually(e.t, 10*time.Second, func() error {
		n := &corev1.Node{}
		if err := framework.Client().Get(context.Background(), client.ObjectKey{Name: name}, n); err != nil {
			return err
		}
		f(n)
		return framework.Client().Update(context.Background(), n)
	})
}

func (e *env) deleteNode(name string) {
	e.t.Helper()
	if err := framework.Client().Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil && !apierrors.IsNotFound(err) {
		e.t.Fatalf("delete node: %v", err)
	}
}

type option func(*appsv1alpha1.DaemonSet)

// daemonSet returns a DaemonSet selecting this test's nodes.
func (e *env) daemonSet(name string, opts ...option) *appsv1alpha1.DaemonSet {
	ds := &appsv1alpha1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec: appsv1alpha1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{testKey: e.ns},
					Containers: []corev1.Container{
						{Name: "agent", Image: "example.com/agent:v1"},
						{Name: "exporter", Image: "example.com/exporter:v1"},
					},
				},
			},
		},
	}
	for _, o := range opts {
		o(ds)
	}
	return ds
}

func (e *env) create(ds *appsv1alpha1.DaemonSet) *appsv1alpha1.DaemonSet {
	e.t.Helper()
	return framework.Create(e.t, ds)
}

func rollingUpdate(ds *appsv1alpha1.DaemonSet) *appsv1alpha1.RollingUpdateDaemonSet {
	if ds.Spec.UpdateStrategy.RollingUpdate == nil {
		ds.Spec.UpdateStrategy.RollingUpdate = &appsv1alpha1.RollingUpdateDaemonSet{}
	}
	return ds.Spec.UpdateStrategy.RollingUpdate
}

func setImage(image string) func(*appsv1alpha1.DaemonSet) {
	return func(ds *appsv1alpha1.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Image = image }
}

// pods returns the DaemonSet's pods that are not terminating, by node.
func pods(t *testing.T, ds *appsv1alpha1.DaemonSet) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := framework.Client().List(context.Background(), &list, client.InNamespace(ds.Namespace),
		client.MatchingLabels(ds.Spec.Selector.MatchLabels)); err != nil {
		t.Fatalf("list pods: %v", err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.NodeName < out[j].Spec.NodeName })
	return out
}

// podByNode returns the live pods of ds by the node they run on.
func podByNode(t *testing.T, ds *appsv1alpha1.DaemonSet) map[string]corev1.Pod {
	t.Helper()
	out := map[string]corev1.Pod{}
	for _, p := range pods(t, ds) {
		out[nodeplacement.NodeOf(&p)] = p
	}
	return out
}

// waitOnNodes waits until exactly the given nodes run one running, ready
// pod of ds each, bound there by the scheduler.
func waitOnNodes(t *testing.T, ds *appsv1alpha1.DaemonSet, nodes ...string) map[string]corev1.Pod {
	t.Helper()
	want := slices.Sorted(slices.Values(nodes))
	var got map[string]corev1.Pod
	framework.Eventually(t, timeout, func() error {
		ps := pods(t, ds)
		got = map[string]corev1.Pod{}
		var on []string
		for _, p := range ps {
			on = append(on, p.Spec.NodeName)
			got[p.Spec.NodeName] = p
			if !podstate.IsReady(&p) {
				return fmt.Errorf("pod %s on %q not ready", p.Name, p.Spec.NodeName)
			}
		}
		sort.Strings(on)
		if !slices.Equal(on, want) {
			return fmt.Errorf("pods run on %v, want %v", on, want)
		}
		return nil
	})
	return got
}

// waitReady waits until the DaemonSet reports Ready for its generation on
// desired nodes.
func waitReady(t *testing.T, ds *appsv1alpha1.DaemonSet, desired int32) *appsv1alpha1.DaemonSet {
	t.Helper()
	return framework.WaitFor(t, timeout, ds, func(cur *appsv1alpha1.DaemonSet) error {
		if err := framework.NotReady(cur, cur.Status.ObservedGeneration, cur.Status.Conditions); err != nil {
			return err
		}
		if cur.Status.DesiredNumberScheduled != desired {
			return fmt.Errorf("daemonset %s not ready on %d nodes: %+v", ds.Name, desired, cur.Status)
		}
		return nil
	})
}

func condition(ds *appsv1alpha1.DaemonSet, t string) *metav1.Condition {
	return meta.FindStatusCondition(ds.Status.Conditions, t)
}

// nodeState is what a node shows of a DaemonSet at one moment: its live
// (not terminating) pods and the ready ones among them.
type nodeState struct {
	live, ready int
}

// recorder is the pod recorder of the DaemonSet tests: it checks an
// invariant over the per-node state after every event; it also keeps each
// pod's readiness gate statuses, the largest number of nodes that ran two
// pods at once and the largest number without a ready pod.
type recorder struct {
	*framework.PodRecorder
	gates     *framework.GateHistory
	maxDouble int
	maxDown   int
	// onEvent, when set (through Locked), sees every pod event.
	onEvent func(p *corev1.Pod)
}

// record watches ns; nodes are the nodes whose state is checked (a node
// with no live pod counts).
func record(t *testing.T, ns string, nodes []string, check func(map[string]nodeState) error) *recorder {
	t.Helper()
	r := &recorder{gates: framework.NewGateHistory()}
	r.PodRecorder = framework.RecordPods(t, ns, func(_ framework.PodEvent, pods map[string]*corev1.Pod) error {
		return r.checkNodes(pods, nodes, check)
	}, r.gates.Observe, func(ev framework.PodEvent) {
		if ev.Index > 0 && r.onEvent != nil {
			r.onEvent(ev.Pod)
		}
	})
	return r
}

// checkNodes runs check on the per-node state of pods (under the
// recorder's lock).
func (r *recorder) checkNodes(pods map[string]*corev1.Pod, nodes []string, check func(map[string]nodeState) error) error {
	state := map[string]nodeState{}
	for _, n := range nodes {
		state[n] = nodeState{}
	}
	for _, q := range pods {
		if q.DeletionTimestamp != nil {
			continue
		}
		n := nodeplacement.NodeOf(q)
		s := state[n]
		s.live++
		if podstate.IsReady(q) {
			s.ready++
		}
		state[n] = s
	}
	double, down := 0, 0
	for _, n := range nodes {
		if state[n].live > 1 {
			double++
		}
		if state[n].ready == 0 {
			down++
		}
	}
	r.maxDouble, r.maxDown = max(r.maxDouble, double), max(r.maxDown, down)
	if check == nil {
		return nil
	}
	return check(state)
}

func (r *recorder) gateSequence(name string) (out []corev1.ConditionStatus) {
	r.Locked(func() { out = r.gates.Sequence(name) })
	return out
}

// budget checks that at most maxDown of the nodes have no ready live pod
// and at most maxDouble run two, and that no node runs more than two.
func budget(maxDown, maxDouble int) func(map[string]nodeState) error {
	return func(nodes map[string]nodeState) error {
		down, double := 0, 0
		for n, s := range nodes {
			if s.live > 2 {
				return fmt.Errorf("node %s runs %d pods", n, s.live)
			}
			if s.live == 2 {
				double++
			}
			if s.ready == 0 {
				down++
			}
		}
		if down > maxDown {
			return fmt.Errorf("%d nodes without a ready pod, maxUnavailable %d", down, maxDown)
		}
		if double > maxDouble {
			return fmt.Errorf("%d nodes run two pods, maxSurge %d", double, maxDouble)
		}
		return nil
	}
}
