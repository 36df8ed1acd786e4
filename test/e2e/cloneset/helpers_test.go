package cloneset

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/podstate"
	"github.com/drover-dev/drover/internal/revision"
	"github.com/drover-dev/drover/test/e2e/framework"
)

const timeout = 90 * time.Second

func requireManager(t *testing.T) {
	t.Helper()
	if ok, why := framework.Manager().Available(); !ok {
		t.Fatalf("drover-manager is required: %s (run 'make build')", why)
	}
}

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

func create(t *testing.T, cs *appsv1alpha1.CloneSet) *appsv1alpha1.CloneSet {
	t.Helper()
	requireManager(t)
	if err := framework.Client().Create(context.Background(), cs); err != nil {
		t.Fatalf("create cloneset: %v", err)
	}
	return cs
}

func get(t *testing.T, cs *appsv1alpha1.CloneSet) *appsv1alpha1.CloneSet {
	t.Helper()
	out := &appsv1alpha1.CloneSet{}
	if err := framework.Client().Get(context.Background(), client.ObjectKeyFromObject(cs), out); err != nil {
		t.Fatalf("get cloneset: %v", err)
	}
	return out
}

// modify applies f to the latest CloneSet, retrying on conflicts.
func modify(t *testing.T, cs *appsv1alpha1.CloneSet, f func(*appsv1alpha1.CloneSet)) {
	t.Helper()
	framework.Eventually(t, 10*time.Second, func() error {
		cur := get(t, cs)
		f(cur)
		return framework.Client().Update(context.Background(), cur)
	})
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
	var cur *appsv1alpha1.CloneSet
	framework.Eventually(t, timeout, func() error {
		cur = get(t, cs)
		c := meta.FindStatusCondition(cur.Status.Conditions, appsv1alpha1.ConditionReady)
		if cur.Status.ObservedGeneration != cur.Generation || c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("cloneset %s not ready: %+v", cs.Name, cur.Status)
		}
		return nil
	})
	return cur
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

func uids(pods []corev1.Pod) map[string]string {
	out := map[string]string{}
	for _, p := range pods {
		out[p.Name] = string(p.UID)
	}
	return out
}

func containerStatus(p *corev1.Pod, name string) corev1.ContainerStatus {
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == name {
			return s
		}
	}
	return corev1.ContainerStatus{}
}

// recorder watches a namespace's pods from a consistent list onwards and
// keeps, per pod, the readiness gate statuses seen and the event at which it
// first carried each revision; it checks an invariant on the whole set after
// every event.
type recorder struct {
	mu         sync.Mutex
	pods       map[string]*corev1.Pod
	gates      map[string][]corev1.ConditionStatus
	revisionAt map[string]map[string]int // pod -> revision -> first event index
	events     int
	check      func(pods map[string]*corev1.Pod) error
	violations []string
	stop       func()
}

func record(t *testing.T, ns string, check func(map[string]*corev1.Pod) error) *recorder {
	t.Helper()
	r := &recorder{pods: map[string]*corev1.Pod{}, gates: map[string][]corev1.ConditionStatus{},
		revisionAt: map[string]map[string]int{}, check: check}
	ctx, cancel := context.WithCancel(context.Background())
	pods := framework.Clientset().CoreV1().Pods(ns)
	list, err := pods.List(ctx, metav1.ListOptions{})
	if err != nil {
		cancel()
		t.Fatalf("list pods: %v", err)
	}
	r.mu.Lock()
	for i := range list.Items {
		r.remember(&list.Items[i])
	}
	r.mu.Unlock()
	w, err := pods.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		cancel()
		t.Fatalf("watch pods: %v", err)
	}
	done := make(chan struct{})
	var once sync.Once
	r.stop = func() { once.Do(func() { cancel(); w.Stop(); <-done }) }
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok {
				r.observe(ev.Type, p)
			}
		}
	}()
	t.Cleanup(r.stop)
	return r
}

func (r *recorder) remember(p *corev1.Pod) {
	r.pods[p.Name] = p
	g := inplace.GateStatus(p)
	if seq := r.gates[p.Name]; g != "" && (len(seq) == 0 || seq[len(seq)-1] != g) {
		r.gates[p.Name] = append(seq, g)
	}
	rev := p.Labels[revision.LabelRevisionHash]
	if r.revisionAt[p.Name] == nil {
		r.revisionAt[p.Name] = map[string]int{}
	}
	if _, ok := r.revisionAt[p.Name][rev]; !ok {
		r.revisionAt[p.Name][rev] = r.events
	}
}

func (r *recorder) observe(typ watch.EventType, p *corev1.Pod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events++
	if typ == watch.Deleted {
		delete(r.pods, p.Name)
	} else {
		r.remember(p)
	}
	if r.check != nil {
		if err := r.check(r.pods); err != nil && len(r.violations) < 20 {
			r.violations = append(r.violations, err.Error())
		}
	}
}

func (r *recorder) assertNoViolations(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.violations) > 0 {
		t.Fatalf("invariant violated %d times, first: %s", len(r.violations), strings.Join(r.violations, "\n"))
	}
}

// updateOrder returns the pods that reached revision rev, in the order they
// did.
func (r *recorder) updateOrder(rev string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for n, revs := range r.revisionAt {
		if _, ok := revs[rev]; ok {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return r.revisionAt[out[i]][rev] < r.revisionAt[out[j]][rev] })
	return out
}

func (r *recorder) gateSequence(name string) []corev1.ConditionStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]corev1.ConditionStatus(nil), r.gates[name]...)
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
