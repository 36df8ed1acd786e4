package statefulset

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/lifecycle"
	"github.com/drover-dev/drover/test/e2e/framework"
)

// atLeastReady checks, at every event from mark on, that at least min
// pods of set were ready.
func atLeastReady(t *testing.T, log *podLog, mark int, set string, min int) {
	t.Helper()
	err := log.replay(mark, func(_ podEvent, before map[string]*corev1.Pod) error {
		if n := ready(before, set); n < min {
			return fmt.Errorf("only %d ready pods, want at least %d", n, min)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A RollingUpdate that recreates pods goes from the highest ordinal down,
// one pod at a time (OrderedReady).
func TestRollingUpdateHighestOrdinalFirst(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	set := framework.Create(t, newSet(ns, "roll", 3))
	waitReady(t, set)
	old := framework.UIDs(pods(t, set))
	log := watchPods(t, ns)
	framework.Modify(t, set, setEnv("v2"))
	cur := waitReady(t, set)
	log.Stop()
	if got := strings.Join(log.firstOn(cur.Status.UpdateRevision), ","); got != "roll-2,roll-1,roll-0" {
		t.Fatalf("update order %s", got)
	}
	for _, p := range pods(t, set) {
		if old[p.Name] == string(p.UID) {
			t.Errorf("pod %s not recreated", p.Name)
		}
	}
	if cur.Status.CurrentRevision != cur.Status.UpdateRevision || cur.Status.UpdatedReplicas != 3 {
		t.Fatalf("status %+v", cur.Status)
	}
	atLeastReady(t, log, 0, "roll", 2)
}

// InPlaceIfPossible changes the image of running pods: same pods, same
// IPs, the changed container restarted, the readiness gate False while it
// happens and True again.
func TestInPlaceUpdate(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	set := framework.Create(t, newSet(ns, "ip", 3, inPlace))
	waitReady(t, set)
	before := pods(t, set)
	log := watchPods(t, ns)
	framework.Modify(t, set, func(s *appsv1alpha1.StatefulSet) {
		setImage("example.com/db:v2")(s)
		s.Spec.Template.Labels = map[string]string{"release": "v2"}
	})
	cur := waitReady(t, set)
	log.Stop()
	after := pods(t, set)
	for i, p := range after {
		db, exp := framework.ContainerStatus(&p, "db"), framework.ContainerStatus(&p, "exporter")
		switch {
		case p.UID != before[i].UID:
			t.Errorf("%s recreated", p.Name)
		case p.Status.PodIP != before[i].Status.PodIP:
			t.Errorf("%s changed IP", p.Name)
		case db.Image != "example.com/db:v2" || db.RestartCount != 1:
			t.Errorf("%s: db container %+v", p.Name, db)
		case exp.RestartCount != 0:
			t.Errorf("%s: the unchanged exporter restarted", p.Name)
		case p.Labels["release"] != "v2" || rev(&p) != cur.Status.UpdateRevision:
			t.Errorf("%s: labels %v", p.Name, p.Labels)
		}
	}
	if got := strings.Join(log.firstOn(cur.Status.UpdateRevision), ","); got != "ip-2,ip-1,ip-0" {
		t.Errorf("update order %s", got)
	}
	// Each pod's gate went False (endpoints drain) and back to True.
	gates := map[string][]corev1.ConditionStatus{}
	_ = log.replay(0, func(ev podEvent, _ map[string]*corev1.Pod) error {
		g := inplace.GateStatus(ev.pod)
		if seq := gates[ev.pod.Name]; g != "" && (len(seq) == 0 || seq[len(seq)-1] != g) {
			gates[ev.pod.Name] = append(seq, g)
		}
		return nil
	})
	for _, p := range after {
		if got := fmt.Sprint(gates[p.Name]); !strings.Contains(got, "False True") {
			t.Errorf("%s: gate sequence %s", p.Name, got)
		}
	}
	atLeastReady(t, log, 0, "ip", 2)
}

// InPlaceOnly refuses a change that needs recreation: a condition names
// the field, and no pod is touched.
func TestInPlaceOnlyRefuses(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	set := framework.Create(t, newSet(ns, "only", 2, rolling(func(r *appsv1alpha1.RollingUpdateStatefulSetStrategy) {
		r.PodUpdatePolicy = appsv1alpha1.InPlaceOnlyStatefulSetPodUpdatePolicy
	})))
	waitReady(t, set)
	before := pods(t, set)
	framework.Modify(t, set, func(s *appsv1alpha1.StatefulSet) { s.Spec.Template.Spec.Containers[1].Args = []string{"--verbose"} })
	cur := waitReason(t, set, appsv1alpha1.ReasonNotInPlaceUpdatable)
	c := condition(cur, appsv1alpha1.ConditionInPlaceUpdateBlocked)
	if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "spec.containers[1].args") ||
		!strings.Contains(c.Message, "updateStrategy.rollingUpdate.podUpdatePolicy") {
		t.Fatalf("InPlaceUpdateBlocked %+v", c)
	}
	for i, p := range pods(t, set) {
		if p.UID != before[i].UID || rev(&p) != rev(&before[i]) || framework.ContainerStatus(&p, "exporter").RestartCount != 0 {
			t.Fatalf("pod %s touched", p.Name)
		}
	}
	// Going back to an in-place change unblocks it.
	framework.Modify(t, set, func(s *appsv1alpha1.StatefulSet) {
		s.Spec.Template.Spec.Containers[1].Args = nil
		s.Spec.Template.Spec.Containers[1].Image = "example.com/exporter:v2"
	})
	cur = waitReady(t, set)
	if c := condition(cur, appsv1alpha1.ConditionInPlaceUpdateBlocked); c == nil || c.Status != metav1.ConditionFalse {
		t.Fatalf("still blocked: %+v", c)
	}
	for i, p := range pods(t, set) {
		if p.UID != before[i].UID || p.Spec.Containers[1].Image != "example.com/exporter:v2" {
			t.Fatalf("pod %s not updated in place", p.Name)
		}
	}
}

// OnDelete updates a pod only when someone deletes it.
func TestOnDelete(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	set := framework.Create(t, newSet(ns, "ondel", 3, func(s *appsv1alpha1.StatefulSet) {
		s.Spec.UpdateStrategy.Type = appsv1alpha1.OnDeleteStatefulSetStrategyType
	}))
	first := waitReady(t, set)
	before := pods(t, set)
	framework.Modify(t, set, setImage("example.com/db:v2"))
	// Ready: OnDelete is done once the pods exist and are available.
	cur := waitReady(t, set)
	if cur.Status.UpdateRevision == first.Status.UpdateRevision || cur.Status.UpdatedReplicas != 0 || cur.Status.CurrentReplicas != 3 {
		t.Fatalf("status %+v", cur.Status)
	}
	for i, p := range pods(t, set) {
		if p.UID != before[i].UID || p.Spec.Containers[0].Image != "example.com/db:v1" {
			t.Fatalf("OnDelete touched %s", p.Name)
		}
	}
	if err := framework.Client().Delete(context.Background(), &before[1]); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, timeout, func() error {
		ps := pods(t, set)
		if len(ps) != 3 || ps[1].UID == before[1].UID || ps[1].Spec.Containers[0].Image != "example.com/db:v2" {
			return fmt.Errorf("ondel-1 not recreated at v2: %v", names(ps))
		}
		return nil
	})
	cur = waitReady(t, set)
	if cur.Status.UpdatedReplicas != 1 || cur.Status.CurrentReplicas != 2 {
		t.Fatalf("status %+v", cur.Status)
	}
}

// partition keeps the pods below it on the current revision.
func TestPartition(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	set := framework.Create(t, newSet(ns, "part", 4, inPlace, rolling(func(r *appsv1alpha1.RollingUpdateStatefulSetStrategy) {
		r.Partition = ptr.To(intstr.FromInt32(2))
	})))
	first := waitReady(t, set)
	framework.Modify(t, set, setImage("example.com/db:v2"))
	cur := waitReady(t, set)
	for _, p := range pods(t, set) {
		want := first.Status.UpdateRevision
		if ordinal(&p) >= 2 {
			want = cur.Status.UpdateRevision
		}
		if rev(&p) != want {
			t.Errorf("%s on %s, want %s", p.Name, rev(&p), want)
		}
	}
	if cur.Status.UpdatedReplicas != 2 || cur.Status.CurrentReplicas != 2 || cur.Status.ExpectedUpdatedReplicas != 2 ||
		cur.Status.CurrentRevision != first.Status.UpdateRevision {
		t.Fatalf("status %+v", cur.Status)
	}
	framework.Modify(t, set, func(s *appsv1alpha1.StatefulSet) { s.Spec.UpdateStrategy.RollingUpdate.Partition = nil })
	cur = waitReady(t, set)
	if cur.Status.UpdatedReplicas != 4 || cur.Status.CurrentRevision != cur.Status.UpdateRevision {
		t.Fatalf("status %+v", cur.Status)
	}
}

// With Parallel, maxUnavailable updates several ordinals at once and never
// more.
func TestParallelMaxUnavailable(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	set := framework.Create(t, newSet(ns, "wide", 6, parallel, inPlace, rolling(func(r *appsv1alpha1.RollingUpdateStatefulSetStrategy) {
		r.MaxUnavailable = ptr.To(intstr.FromString("50%"))
	})))
	waitReady(t, set)
	log := watchPods(t, ns)
	framework.Modify(t, set, setImage("example.com/db:v2"))
	cur := waitReady(t, set)
	log.Stop()
	if cur.Status.UpdatedReplicas != 6 {
		t.Fatalf("status %+v", cur.Status)
	}
	atLeastReady(t, log, 0, "wide", 3)
	most := 0
	_ = log.replay(0, func(ev podEvent, before map[string]*corev1.Pod) error {
		n := 0
		for _, p := range before {
			if inplace.GateStatus(p) == corev1.ConditionFalse {
				n++
			}
		}
		most = max(most, n)
		return nil
	})
	if most < 2 || most > 3 {
		t.Fatalf("at most %d pods were updating at once, want 2 or 3 (maxUnavailable 50%% of 6)", most)
	}
}

// unorderedUpdate.priorityStrategy orders a Parallel update: higher
// priority first, equal priorities from the highest ordinal down.
func TestUnorderedUpdatePriority(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	set := framework.Create(t, newSet(ns, "prio", 4, parallel, inPlace, rolling(func(r *appsv1alpha1.RollingUpdateStatefulSetStrategy) {
		r.UnorderedUpdate = &appsv1alpha1.StatefulSetUnorderedUpdateStrategy{PriorityStrategy: &appsv1alpha1.UpdatePriorityStrategy{
			WeightPriority: []appsv1alpha1.UpdatePriorityWeightTerm{{Weight: 50, MatchSelector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "replica"}}}},
		}}
	})))
	waitReady(t, set)
	framework.PatchPod(t, ns, "prio-0", `{"metadata":{"labels":{"role":"replica"}}}`)
	framework.PatchPod(t, ns, "prio-2", `{"metadata":{"labels":{"role":"replica"}}}`)
	log := watchPods(t, ns)
	framework.Modify(t, set, setImage("example.com/db:v2"))
	cur := waitReady(t, set)
	log.Stop()
	if got := strings.Join(log.firstOn(cur.Status.UpdateRevision), ","); got != "prio-2,prio-0,prio-3,prio-1" {
		t.Fatalf("update order %s, want the replicas first (highest first), then the rest", got)
	}
}

// Pausing mid-update leaves the set exactly where it is, inspectable: a pod
// held by the inPlaceUpdate hook stays held even once released, no other
// pod moves while the set scales, and the status shows updated against
// current pods. Resuming finishes the update.
func TestPauseMidUpdate(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	set := framework.Create(t, newSet(ns, "pause", 4, inPlace, func(s *appsv1alpha1.StatefulSet) {
		s.Spec.Lifecycle = &appsv1alpha1.Lifecycle{InPlaceUpdate: &appsv1alpha1.LifecycleHook{LabelsHandler: map[string]string{"hold": "true"}}}
		s.Spec.Template.Labels = map[string]string{"hold": "true"}
	}))
	first := waitReady(t, set)
	// Pods 3 and 2 may go; pod 1 is held by the hook when its turn comes.
	for _, n := range []string{"pause-3", "pause-2", "pause-0"} {
		framework.PatchPod(t, ns, n, `{"metadata":{"labels":{"hold":null}}}`)
	}
	framework.Modify(t, set, func(s *appsv1alpha1.StatefulSet) {
		setImage("example.com/db:v2")(s)
		s.Spec.Template.Labels = nil // the update does not put the hold back
	})
	framework.Eventually(t, timeout, func() error {
		p := pods(t, set)[1]
		if lifecycle.StateOf(&p) != appsv1alpha1.LifecycleStatePreparingUpdate {
			return fmt.Errorf("pause-1 in state %s", lifecycle.StateOf(&p))
		}
		return nil
	})
	framework.Modify(t, set, func(s *appsv1alpha1.StatefulSet) { s.Spec.UpdateStrategy.RollingUpdate.Paused = true })
	cur := waitReason(t, set, appsv1alpha1.ReasonPaused)
	if cur.Status.UpdatedReplicas != 2 || cur.Status.CurrentReplicas != 2 || cur.Status.CurrentRevision != first.Status.UpdateRevision {
		t.Fatalf("paused status %+v", cur.Status)
	}
	if c := condition(cur, appsv1alpha1.ConditionReady); !strings.Contains(c.Message, "paused: 2/4 updated") {
		t.Fatalf("Ready message %q", c.Message)
	}
	held := pods(t, set)
	log := watchPods(t, ns)
	mark := log.mark()
	// Released while paused, pause-1 stays; scaling goes on.
	framework.PatchPod(t, ns, "pause-1", `{"metadata":{"labels":{"hold":null}}}`)
	framework.Modify(t, set, func(s *appsv1alpha1.StatefulSet) { s.Spec.Replicas = ptr.To[int32](5) })
	waitNames(t, set, "pause-0", "pause-1", "pause-2", "pause-3", "pause-4")
	framework.Eventually(t, timeout, func() error {
		cur = framework.Get(t, set)
		if cur.Status.ObservedGeneration != cur.Generation || cur.Status.AvailableReplicas != 5 {
			return fmt.Errorf("status %+v", cur.Status)
		}
		return nil
	})
	err := log.replay(mark, func(ev podEvent, before map[string]*corev1.Pod) error {
		if ev.pod.Name == "pause-4" {
			return nil
		}
		prev := before[ev.pod.Name]
		if ev.typ == watch.Deleted || ev.pod.DeletionTimestamp != nil || prev == nil || rev(ev.pod) != rev(prev) ||
			inplace.GateStatus(ev.pod) != inplace.GateStatus(prev) || lifecycle.StateOf(ev.pod) != lifecycle.StateOf(prev) {
			return errors.New("a pod moved while the update was paused")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pods(t, set)[:4] {
		if p.UID != held[i].UID || rev(&p) != rev(&held[i]) {
			t.Fatalf("%s moved while paused", p.Name)
		}
	}
	// pause-4 was created from the current template.
	if p := pods(t, set)[4]; rev(&p) != cur.Status.UpdateRevision {
		t.Errorf("pause-4 on %s", rev(&p))
	}
	framework.Modify(t, set, func(s *appsv1alpha1.StatefulSet) { s.Spec.UpdateStrategy.RollingUpdate.Paused = false })
	cur = waitReady(t, set)
	log.Stop()
	if cur.Status.UpdatedReplicas != 5 {
		t.Fatalf("resumed status %+v", cur.Status)
	}
	for i, p := range pods(t, set)[:4] {
		if p.UID != held[i].UID {
			t.Errorf("%s recreated", p.Name)
		}
	}
}

// lifecycle.preDelete holds a scaled-away pod in PreparingDelete until
// its hook is released.
func TestPreDeleteHook(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	set := framework.Create(t, newSet(ns, "hook", 3, func(s *appsv1alpha1.StatefulSet) {
		s.Spec.Lifecycle = &appsv1alpha1.Lifecycle{PreDelete: &appsv1alpha1.LifecycleHook{
			FinalizersHandler: []string{"example.com/drain"}, MarkPodNotReady: true,
		}}
		s.Spec.Template.Finalizers = []string{"example.com/drain"}
	}))
	waitReady(t, set)
	framework.Modify(t, set, func(s *appsv1alpha1.StatefulSet) { s.Spec.Replicas = ptr.To[int32](2) })
	framework.Eventually(t, timeout, func() error {
		p := pods(t, set)[2]
		if lifecycle.StateOf(&p) != appsv1alpha1.LifecycleStatePreparingDelete || inplace.GateStatus(&p) != corev1.ConditionFalse {
			return fmt.Errorf("hook-2: state %s gate %s", lifecycle.StateOf(&p), inplace.GateStatus(&p))
		}
		return nil
	})
	cur := waitReason(t, set, appsv1alpha1.ReasonScaling)
	if cur.Status.Replicas != 3 {
		t.Fatalf("the held pod must still count: %+v", cur.Status)
	}
	// The hook's owner is done: it removes its finalizer.
	framework.PatchPod(t, ns, "hook-2", `{"metadata":{"finalizers":null}}`)
	waitNames(t, set, "hook-0", "hook-1")
	waitReady(t, set)
	for _, p := range pods(t, set) {
		framework.PatchPod(t, ns, p.Name, `{"metadata":{"finalizers":null}}`) // let the namespace go
	}
}
