package cloneset

import (
	"context"
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/podstate"
	"github.com/drover-dev/drover/internal/revision"
	"github.com/drover-dev/drover/test/e2e/framework"
)

const timeout = 90 * time.Second

type option func(*appsv1alpha1.CloneSet)

func newCloneSet(ns, name string, replicas int32, opts ...option) *appsv1alpha1.CloneSet {
	cs := &appsv1alpha1.CloneSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1alpha1.CloneSetSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "app", Image: "example.com/app:v1"},
					{Name: "sidecar", Image: "example.com/sidecar:v1"},
				}},
			},
		},
	}
	for _, o := range opts {
		o(cs)
	}
	return cs
}

func pods(t *testing.T, cs *appsv1alpha1.CloneSet) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := framework.Client().List(context.Background(), &list, client.InNamespace(cs.Namespace),
		client.MatchingLabels(cs.Spec.Selector.MatchLabels)); err != nil {
		t.Fatalf("list pods: %v", err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// waitReady waits until the CloneSet reports Ready for its current generation.
func waitReady(t *testing.T, cs *appsv1alpha1.CloneSet) *appsv1alpha1.CloneSet {
	t.Helper()
	return framework.WaitFor(t, timeout, cs, func(cur *appsv1alpha1.CloneSet) error {
		return framework.NotReady(cur, cur.Status.ObservedGeneration, cur.Status.Conditions)
	})
}

func condition(cs *appsv1alpha1.CloneSet, t string) *metav1.Condition {
	return meta.FindStatusCondition(cs.Status.Conditions, t)
}

func names(pods []corev1.Pod) []string {
	out := make([]string, len(pods))
	for i, p := range pods {
		out[i] = p.Name
	}
	return out
}

// recorder is the pod recorder of the CloneSet tests: besides checking an
// invariant on the whole set after every event it keeps, per pod, the
// readiness gate statuses seen and the event at which it first carried
// each revision.
type recorder struct {
	*framework.PodRecorder
	gates      *framework.GateHistory
	revisionAt map[string]map[string]int // pod -> revision -> first event index
}

func record(t *testing.T, ns string, check func(map[string]*corev1.Pod) error) *recorder {
	t.Helper()
	r := &recorder{gates: framework.NewGateHistory(), revisionAt: map[string]map[string]int{}}
	var c framework.PodCheck
	if check != nil {
		c = func(_ framework.PodEvent, pods map[string]*corev1.Pod) error { return check(pods) }
	}
	r.PodRecorder = framework.RecordPods(t, ns, c, r.gates.Observe, r.remember)
	return r
}

func (r *recorder) remember(ev framework.PodEvent) {
	if ev.Type == watch.Deleted {
		return
	}
	rev := ev.Pod.Labels[revision.LabelRevisionHash]
	if r.revisionAt[ev.Pod.Name] == nil {
		r.revisionAt[ev.Pod.Name] = map[string]int{}
	}
	if _, ok := r.revisionAt[ev.Pod.Name][rev]; !ok {
		r.revisionAt[ev.Pod.Name][rev] = ev.Index
	}
}

// updateOrder returns the pods that reached revision rev, in the order they
// did.
func (r *recorder) updateOrder(rev string) []string {
	var out []string
	r.Locked(func() {
		for n, revs := range r.revisionAt {
			if _, ok := revs[rev]; ok {
				out = append(out, n)
			}
		}
		sort.Slice(out, func(i, j int) bool { return r.revisionAt[out[i]][rev] < r.revisionAt[out[j]][rev] })
	})
	return out
}

func (r *recorder) gateSequence(name string) (out []corev1.ConditionStatus) {
	r.Locked(func() { out = r.gates.Sequence(name) })
	return out
}

// availability counts, among live pods of a set, the ready ones and all.
func availability(pods map[string]*corev1.Pod, app string) (ready, active int) {
	for _, p := range pods {
		if p.Labels["app"] != app || p.DeletionTimestamp != nil {
			continue
		}
		active++
		if podstate.IsReady(p) {
			ready++
		}
	}
	return ready, active
}
