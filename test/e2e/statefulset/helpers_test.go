// Package statefulset holds the Advanced StatefulSet end-to-end tests: the
// user stories of docs/statefulset.md, run against a real API server with
// simulated nodes (kwok), the cluster's own garbage collector, and the
// drover-manager binary.
package statefulset

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/podstate"
	"github.com/drover-dev/drover/internal/revision"
	"github.com/drover-dev/drover/test/e2e/framework"
)

const timeout = 90 * time.Second

func TestMain(m *testing.M) {
	os.Exit(framework.Run(m, framework.Options{
		Nodes:       4,
		AddToScheme: []func(*runtime.Scheme) error{appsv1alpha1.AddToScheme},
	}))
}

type option func(*appsv1alpha1.StatefulSet)

// newSet has the brief's shape: no selector, a template without labels.
func newSet(ns, name string, replicas int32, opts ...option) *appsv1alpha1.StatefulSet {
	set := &appsv1alpha1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1alpha1.StatefulSetSpec{
			Replicas:    ptr.To(replicas),
			ServiceName: name,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
				{Name: "db", Image: "example.com/db:v1"},
				{Name: "exporter", Image: "example.com/exporter:v1"},
			}}},
		},
	}
	for _, o := range opts {
		o(set)
	}
	return set
}

func parallel(s *appsv1alpha1.StatefulSet) {
	s.Spec.PodManagementPolicy = appsv1alpha1.ParallelPodManagement
}

func rolling(f func(*appsv1alpha1.RollingUpdateStatefulSetStrategy)) option {
	return func(s *appsv1alpha1.StatefulSet) {
		if s.Spec.UpdateStrategy.RollingUpdate == nil {
			s.Spec.UpdateStrategy.RollingUpdate = &appsv1alpha1.RollingUpdateStatefulSetStrategy{}
		}
		f(s.Spec.UpdateStrategy.RollingUpdate)
	}
}

func inPlace(s *appsv1alpha1.StatefulSet) {
	rolling(func(r *appsv1alpha1.RollingUpdateStatefulSetStrategy) {
		r.PodUpdatePolicy = appsv1alpha1.InPlaceIfPossibleStatefulSetPodUpdatePolicy
	})(s)
}

func setImage(image string) func(*appsv1alpha1.StatefulSet) {
	return func(s *appsv1alpha1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Image = image }
}

func setEnv(value string) func(*appsv1alpha1.StatefulSet) {
	return func(s *appsv1alpha1.StatefulSet) {
		s.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "MODE", Value: value}}
	}
}

// pods lists the set's live pods in ordinal order.
func pods(t *testing.T, set *appsv1alpha1.StatefulSet) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := framework.Client().List(context.Background(), &list, client.InNamespace(set.Namespace),
		client.MatchingLabels{appsv1alpha1.LabelStatefulSet: set.Name}); err != nil {
		t.Fatalf("list pods: %v", err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return ordinal(&out[i]) < ordinal(&out[j]) })
	return out
}

func ordinal(p *corev1.Pod) int {
	n, err := strconv.Atoi(p.Labels[appsv1.PodIndexLabel])
	if err != nil {
		return -1
	}
	return n
}

func names(ps []corev1.Pod) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

func waitNames(t *testing.T, set *appsv1alpha1.StatefulSet, want ...string) {
	t.Helper()
	framework.Eventually(t, timeout, func() error {
		if got := names(pods(t, set)); strings.Join(got, ",") != strings.Join(want, ",") {
			return fmt.Errorf("pods %v, want %v", got, want)
		}
		return nil
	})
}

// waitReady waits until the set reports Ready for its current generation.
func waitReady(t *testing.T, set *appsv1alpha1.StatefulSet) *appsv1alpha1.StatefulSet {
	t.Helper()
	return framework.WaitFor(t, timeout, set, func(cur *appsv1alpha1.StatefulSet) error {
		return framework.NotReady(cur, cur.Status.ObservedGeneration, cur.Status.Conditions)
	})
}

// waitReason waits until the set's Ready condition, for its current
// generation, has reason.
func waitReason(t *testing.T, set *appsv1alpha1.StatefulSet, reason string) *appsv1alpha1.StatefulSet {
	t.Helper()
	return framework.WaitFor(t, timeout, set, func(cur *appsv1alpha1.StatefulSet) error {
		c := meta.FindStatusCondition(cur.Status.Conditions, appsv1alpha1.ConditionReady)
		if cur.Status.ObservedGeneration != cur.Generation || c == nil || c.Reason != reason {
			return fmt.Errorf("%s: Ready %+v, want reason %s", set.Name, c, reason)
		}
		return nil
	})
}

func condition(set *appsv1alpha1.StatefulSet, typ string) *metav1.Condition {
	return meta.FindStatusCondition(set.Status.Conditions, typ)
}

func rev(p *corev1.Pod) string { return p.Labels[revision.LabelRevisionHash] }

// podLog records every pod event of a namespace, from a consistent list
// onwards, so that a test can replay the history afterwards and check an
// invariant at every step.
type podLog struct {
	*framework.PodRecorder
	start  []*corev1.Pod
	events []podEvent
}

type podEvent struct {
	typ watch.EventType
	pod *corev1.Pod
}

func watchPods(t *testing.T, ns string) *podLog {
	t.Helper()
	l := &podLog{}
	l.PodRecorder = framework.RecordPods(t, ns, nil, func(ev framework.PodEvent) {
		if ev.Index == 0 {
			l.start = append(l.start, ev.Pod)
			return
		}
		l.events = append(l.events, podEvent{typ: ev.Type, pod: ev.Pod})
	})
	return l
}

// mark returns the number of events so far: replay from a mark skips
// what happened before.
func (l *podLog) mark() (n int) {
	l.Locked(func() { n = len(l.events) })
	return n
}

// replay calls visit for every event from index from on, with the live
// pods (by name) as they were just before the event. It stops at the first
// error.
func (l *podLog) replay(from int, visit func(ev podEvent, before map[string]*corev1.Pod) error) error {
	var events []podEvent
	state := map[string]*corev1.Pod{}
	l.Locked(func() {
		events = append(events, l.events...)
		for _, p := range l.start {
			state[p.Name] = p
		}
	})
	for i, ev := range events {
		if i >= from {
			if err := visit(ev, state); err != nil {
				return fmt.Errorf("event %d (%s %s): %w", i, ev.typ, ev.pod.Name, err)
			}
		}
		if ev.typ == watch.Deleted {
			delete(state, ev.pod.Name)
		} else {
			state[ev.pod.Name] = ev.pod
		}
	}
	return nil
}

// firstOn returns the pods in the order they first carried revision r.
func (l *podLog) firstOn(r string) []string {
	var out []string
	seen := map[string]bool{}
	_ = l.replay(0, func(ev podEvent, _ map[string]*corev1.Pod) error {
		if ev.typ != watch.Deleted && rev(ev.pod) == r && !seen[ev.pod.Name] {
			seen[ev.pod.Name] = true
			out = append(out, ev.pod.Name)
		}
		return nil
	})
	return out
}

// ready counts the ready live pods of set among pods.
func ready(pods map[string]*corev1.Pod, set string) (n int) {
	for _, p := range pods {
		if p.Labels[appsv1alpha1.LabelStatefulSet] == set && p.DeletionTimestamp == nil && podstate.IsReady(p) {
			n++
		}
	}
	return n
}
