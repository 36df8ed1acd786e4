// Package cloneset holds the CloneSet end-to-end tests: the user stories of
// the CloneSet guide, run against a real API server with simulated nodes
// (kwok) and the drover-manager binary.
package cloneset

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/lifecycle"
	"github.com/drover-dev/drover/internal/podstate"
	"github.com/drover-dev/drover/internal/revision"
	"github.com/drover-dev/drover/test/e2e/framework"
)

func TestMain(m *testing.M) {
	os.Exit(framework.Run(m, framework.Options{
		Nodes:       4,
		AddToScheme: []func(*runtime.Scheme) error{appsv1alpha1.AddToScheme},
	}))
}

func inPlace(cs *appsv1alpha1.CloneSet) {
	cs.Spec.UpdateStrategy.Type = appsv1alpha1.InPlaceIfPossibleCloneSetUpdateStrategyType
}

func maxUnavailable(v intstr.IntOrString) option {
	return func(cs *appsv1alpha1.CloneSet) { cs.Spec.UpdateStrategy.MaxUnavailable = &v }
}

func setImage(image string) func(*appsv1alpha1.CloneSet) {
	return func(cs *appsv1alpha1.CloneSet) { cs.Spec.Template.Spec.Containers[0].Image = image }
}

func TestScaleUpAndDownWithRanking(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	cs := framework.Create(t, newCloneSet(ns, "rank", 4))
	waitReady(t, cs)
	ps := pods(t, cs)
	ctx := context.Background()
	notReady, cheap := ps[0].Name, ps[1].Name
	// A failing readiness probe makes one pod not ready; another gets a
	// low deletion cost.
	framework.PatchPod(t, ns, notReady, `{"metadata":{"annotations":{"kwok.drover.dev/ready":"false"}}}`)
	framework.PatchPod(t, ns, cheap, `{"metadata":{"annotations":{"controller.kubernetes.io/pod-deletion-cost":"-100"}}}`)
	framework.Eventually(t, timeout, func() error {
		p := &corev1.Pod{}
		_ = framework.Client().Get(ctx, client.ObjectKey{Namespace: ns, Name: notReady}, p)
		if podstate.IsReady(p) {
			return errors.New("pod still ready")
		}
		return nil
	})
	framework.Modify(t, cs, func(c *appsv1alpha1.CloneSet) { c.Spec.Replicas = ptr.To[int32](2) })
	framework.Eventually(t, timeout, func() error {
		got := names(pods(t, cs))
		if len(got) != 2 {
			return fmt.Errorf("want 2 pods, have %v", got)
		}
		for _, n := range got {
			if n == notReady || n == cheap {
				return fmt.Errorf("%s should have gone first (not ready / lowest cost): %v", n, got)
			}
		}
		return nil
	})
	framework.Modify(t, cs, func(c *appsv1alpha1.CloneSet) { c.Spec.Replicas = ptr.To[int32](5) })
	cur := waitReady(t, cs)
	if cur.Status.Replicas != 5 || cur.Status.AvailableReplicas != 5 {
		t.Fatalf("scale up to 5: %+v", cur.Status)
	}
}

func TestPodsToDeleteReplacesNamedPod(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	cs := framework.Create(t, newCloneSet(ns, "pick", 3))
	waitReady(t, cs)
	victim := pods(t, cs)[0]
	framework.Modify(t, cs, func(c *appsv1alpha1.CloneSet) { c.Spec.ScaleStrategy.PodsToDelete = []string{victim.Name} })
	framework.Eventually(t, timeout, func() error {
		ps := pods(t, cs)
		for _, p := range ps {
			if p.UID == victim.UID {
				return fmt.Errorf("victim %s still there", victim.Name)
			}
		}
		if len(ps) != 3 {
			return fmt.Errorf("want 3 pods (the victim replaced), have %v", names(ps))
		}
		return nil
	})
	waitReady(t, cs)
}

func TestInPlaceUpdateImageAndMetadata(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	cs := framework.Create(t, newCloneSet(ns, "inplace", 3, inPlace, maxUnavailable(intstr.FromInt32(1))))
	before := waitReady(t, cs)
	old := pods(t, cs)
	rec := record(t, ns, func(m map[string]*corev1.Pod) error {
		if ready, _ := availability(m, "inplace"); ready < 2 {
			return fmt.Errorf("only %d ready pods: maxUnavailable 1 of 3 broken", ready)
		}
		return nil
	})
	framework.Modify(t, cs, func(c *appsv1alpha1.CloneSet) {
		c.Spec.Template.Spec.Containers[0].Image = "example.com/app:v2"
		c.Spec.Template.Labels["tier"] = "gold"
		c.Spec.Template.Annotations = map[string]string{"note": "v2"}
	})
	after := waitReady(t, cs)
	if after.Status.UpdateRevision == before.Status.UpdateRevision || after.Status.CurrentRevision != after.Status.UpdateRevision {
		t.Fatalf("revisions did not move: %+v", after.Status)
	}
	now := pods(t, cs)
	if fmt.Sprint(framework.UIDs(old)) != fmt.Sprint(framework.UIDs(now)) {
		t.Fatalf("pods were recreated: before %v after %v", framework.UIDs(old), framework.UIDs(now))
	}
	for i, p := range now {
		app, side := framework.ContainerStatus(&p, "app"), framework.ContainerStatus(&p, "sidecar")
		if app.Image != "example.com/app:v2" || app.RestartCount != 1 || app.ImageID == framework.ContainerStatus(&old[i], "app").ImageID {
			t.Errorf("%s: app container not restarted on the new image: %+v", p.Name, app)
		}
		if side.RestartCount != 0 {
			t.Errorf("%s: the unchanged sidecar restarted", p.Name)
		}
		if p.Labels["tier"] != "gold" || p.Annotations["note"] != "v2" {
			t.Errorf("%s: metadata not updated in place: %v %v", p.Name, p.Labels, p.Annotations)
		}
		if p.Status.PodIP != old[i].Status.PodIP {
			t.Errorf("%s: IP changed %s -> %s", p.Name, old[i].Status.PodIP, p.Status.PodIP)
		}
		if seq := rec.gateSequence(p.Name); !containsFalseThenTrue(seq) {
			t.Errorf("%s: readiness gate never observed False then True: %v", p.Name, seq)
		}
	}
	rec.AssertNoViolations(t)
}

func containsFalseThenTrue(seq []corev1.ConditionStatus) bool {
	for i := 0; i+1 < len(seq); i++ {
		if seq[i] == corev1.ConditionFalse && seq[i+1] == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func TestRecreateFallbackWhenNotInPlace(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	cs := framework.Create(t, newCloneSet(ns, "fallback", 2, inPlace))
	waitReady(t, cs)
	old := framework.UIDs(pods(t, cs))
	framework.Modify(t, cs, func(c *appsv1alpha1.CloneSet) {
		c.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "MODE", Value: "new"}}
	})
	cur := waitReady(t, cs)
	for _, p := range pods(t, cs) {
		for _, u := range old {
			if string(p.UID) == u {
				t.Fatalf("pod %s kept: an env change must recreate", p.Name)
			}
		}
		if p.Labels[revision.LabelRevisionHash] != cur.Status.UpdateRevision || p.Spec.Containers[0].Env[0].Value != "new" {
			t.Fatalf("pod %s not on the new revision", p.Name)
		}
	}
}

func TestInPlaceOnlyRefusesNonInPlaceChange(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	cs := framework.Create(t, newCloneSet(ns, "only", 2, func(c *appsv1alpha1.CloneSet) {
		c.Spec.UpdateStrategy.Type = appsv1alpha1.InPlaceOnlyCloneSetUpdateStrategyType
	}))
	waitReady(t, cs)
	old := framework.UIDs(pods(t, cs))
	framework.Modify(t, cs, func(c *appsv1alpha1.CloneSet) { c.Spec.Template.Spec.Containers[1].Args = []string{"--verbose"} })
	framework.Eventually(t, timeout, func() error {
		c := condition(framework.Get(t, cs), appsv1alpha1.ConditionInPlaceUpdateBlocked)
		if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "spec.containers[1].args") {
			return fmt.Errorf("InPlaceUpdateBlocked: %+v", c)
		}
		return nil
	})
	time.Sleep(2 * time.Second)
	for _, p := range pods(t, cs) {
		if old[p.Name] != string(p.UID) || p.Spec.Containers[1].Args != nil {
			t.Fatalf("pod %s was touched", p.Name)
		}
	}
	// An image change is allowed again once the template is in-place-able.
	framework.Modify(t, cs, func(c *appsv1alpha1.CloneSet) {
		c.Spec.Template.Spec.Containers[1].Args = nil
		c.Spec.Template.Spec.Containers[1].Image = "example.com/sidecar:v2"
	})
	waitReady(t, cs)
	if fmt.Sprint(framework.UIDs(pods(t, cs))) != fmt.Sprint(old) {
		t.Fatal("pods recreated under InPlaceOnly")
	}
}

func TestPartitionIntAndPercent(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	cs := framework.Create(t, newCloneSet(ns, "part", 5, inPlace, maxUnavailable(intstr.FromString("100%")), func(c *appsv1alpha1.CloneSet) {
		p := intstr.FromInt32(2)
		c.Spec.UpdateStrategy.Partition = &p
	}))
	waitReady(t, cs)
	framework.Modify(t, cs, setImage("example.com/app:v2"))
	cur := waitReady(t, cs)
	if cur.Status.UpdatedReplicas != 3 || cur.Status.ExpectedUpdatedReplicas != 3 {
		t.Fatalf("partition 2 of 5: want 3 updated, got %+v", cur.Status)
	}
	if cur.Status.CurrentRevision == cur.Status.UpdateRevision {
		t.Fatal("with a partition the current revision stays the old one")
	}
	framework.Modify(t, cs, func(c *appsv1alpha1.CloneSet) {
		p := intstr.FromString("20%")
		c.Spec.UpdateStrategy.Partition = &p
	})
	cur = waitReady(t, cs)
	if cur.Status.UpdatedReplicas != 4 || cur.Status.ExpectedUpdatedReplicas != 4 {
		t.Fatalf("partition 20%% of 5: want 4 updated, got %+v", cur.Status)
	}
	var onOld int
	for _, p := range pods(t, cs) {
		if p.Labels[revision.LabelRevisionHash] != cur.Status.UpdateRevision {
			onOld++
		}
	}
	if onOld != 1 {
		t.Fatalf("want 1 pod on the old revision, have %d", onOld)
	}
}

func TestMaxUnavailableAndMaxSurgeRespected(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	const replicas = 6
	cs := framework.Create(t, newCloneSet(ns, "surge", replicas, maxUnavailable(intstr.FromInt32(1)), func(c *appsv1alpha1.CloneSet) {
		s := intstr.FromInt32(2)
		c.Spec.UpdateStrategy.MaxSurge = &s // ReCreate with surge
	}))
	waitReady(t, cs)
	var maxActive, minReady = 0, replicas
	rec := record(t, ns, func(m map[string]*corev1.Pod) error {
		ready, active := availability(m, "surge")
		maxActive, minReady = max(maxActive, active), min(minReady, ready)
		if active > replicas+2 {
			return fmt.Errorf("%d pods exist: above replicas+maxSurge=%d", active, replicas+2)
		}
		if ready < replicas-1 {
			return fmt.Errorf("%d ready pods: below replicas-maxUnavailable=%d", ready, replicas-1)
		}
		return nil
	})
	framework.Modify(t, cs, setImage("example.com/app:v2"))
	waitReady(t, cs)
	rec.Stop()
	rec.AssertNoViolations(t)
	if maxActive <= replicas {
		t.Fatalf("surge never used: at most %d pods", maxActive)
	}
	t.Logf("observed at most %d pods and at least %d ready", maxActive, minReady)
}

func TestPauseHoldsTheUpdate(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	cs := framework.Create(t, newCloneSet(ns, "pause", 3, inPlace, maxUnavailable(intstr.FromInt32(1))))
	waitReady(t, cs)
	framework.Modify(t, cs, func(c *appsv1alpha1.CloneSet) {
		c.Spec.UpdateStrategy.Paused = true
		c.Spec.Template.Spec.Containers[0].Image = "example.com/app:v2"
	})
	framework.Eventually(t, timeout, func() error {
		cur := framework.Get(t, cs)
		c := condition(cur, appsv1alpha1.ConditionReady)
		if cur.Status.ObservedGeneration != cur.Generation || c == nil || c.Reason != appsv1alpha1.ReasonPaused {
			return fmt.Errorf("not paused: %+v", c)
		}
		return nil
	})
	time.Sleep(3 * time.Second)
	for _, p := range pods(t, cs) {
		if p.Spec.Containers[0].Image != "example.com/app:v1" {
			t.Fatalf("pod %s updated while paused", p.Name)
		}
	}
	// Scaling goes on while paused.
	framework.Modify(t, cs, func(c *appsv1alpha1.CloneSet) { c.Spec.Replicas = ptr.To[int32](4) })
	framework.Eventually(t, timeout, func() error {
		if n := len(pods(t, cs)); n != 4 {
			return fmt.Errorf("%d pods", n)
		}
		return nil
	})
	framework.Modify(t, cs, func(c *appsv1alpha1.CloneSet) { c.Spec.UpdateStrategy.Paused = false })
	cur := waitReady(t, cs)
	if cur.Status.UpdatedReplicas != 4 {
		t.Fatalf("after resume: %+v", cur.Status)
	}
}

func TestPriorityAndScatterOrder(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	cs := framework.Create(t, newCloneSet(ns, "order", 4, inPlace, maxUnavailable(intstr.FromInt32(1))))
	waitReady(t, cs)
	ps := pods(t, cs)
	for i, p := range ps {
		framework.PatchPod(t, ns, p.Name, fmt.Sprintf(`{"metadata":{"labels":{"rank":"r-%d"}}}`, i))
	}
	// orderPriority: the bigger rank goes first.
	framework.Modify(t, cs, func(c *appsv1alpha1.CloneSet) {
		c.Spec.UpdateStrategy.PriorityStrategy = &appsv1alpha1.UpdatePriorityStrategy{
			OrderPriority: []appsv1alpha1.UpdatePriorityOrderTerm{{OrderedKey: "rank"}},
		}
	})
	waitReady(t, cs)
	rec := record(t, ns, nil)
	framework.Modify(t, cs, setImage("example.com/app:v2"))
	cur := waitReady(t, cs)
	order := rec.updateOrder(cur.Status.UpdateRevision)
	want := []string{ps[3].Name, ps[2].Name, ps[1].Name, ps[0].Name}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("orderPriority: updated in order %v, want %v", order, want)
	}

	// scatterStrategy spreads the two group=x pods across the order.
	framework.PatchPod(t, ns, ps[0].Name, `{"metadata":{"labels":{"group":"x"}}}`)
	framework.PatchPod(t, ns, ps[1].Name, `{"metadata":{"labels":{"group":"x"}}}`)
	rec2 := record(t, ns, nil)
	framework.Modify(t, cs, func(c *appsv1alpha1.CloneSet) {
		c.Spec.UpdateStrategy.PriorityStrategy = nil
		c.Spec.UpdateStrategy.ScatterStrategy = appsv1alpha1.UpdateScatterStrategy{{Key: "group", Value: "x"}}
		c.Spec.Template.Spec.Containers[0].Image = "example.com/app:v3"
	})
	cur = waitReady(t, cs)
	order = rec2.updateOrder(cur.Status.UpdateRevision)
	if len(order) != 4 {
		t.Fatalf("want 4 pods updated, saw %v", order)
	}
	x := map[string]bool{ps[0].Name: true, ps[1].Name: true}
	if x[order[0]] == x[order[1]] || x[order[2]] == x[order[3]] {
		t.Fatalf("scatter: group=x pods %v not spread across the update order %v", []string{ps[0].Name, ps[1].Name}, order)
	}
}

func TestLifecycleHooks(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	const hold = "e2e.drover.dev/hold"
	cs := framework.Create(t, newCloneSet(ns, "hooks", 2, inPlace, func(c *appsv1alpha1.CloneSet) {
		c.Spec.Template.Labels[hold] = "true"
		c.Spec.Lifecycle = &appsv1alpha1.Lifecycle{
			PreDelete:     &appsv1alpha1.LifecycleHook{LabelsHandler: map[string]string{hold: "true"}, MarkPodNotReady: true},
			InPlaceUpdate: &appsv1alpha1.LifecycleHook{FinalizersHandler: []string{"e2e.drover.dev/inplace"}},
		}
	}))
	waitReady(t, cs)
	ctx := context.Background()

	// preDelete: the pod waits in PreparingDelete, not ready, until released.
	framework.Modify(t, cs, func(c *appsv1alpha1.CloneSet) { c.Spec.Replicas = ptr.To[int32](1) })
	var held corev1.Pod
	framework.Eventually(t, timeout, func() error {
		for _, p := range pods(t, cs) {
			if lifecycle.StateOf(&p) == appsv1alpha1.LifecycleStatePreparingDelete && !podstate.IsReady(&p) {
				held = p
				return nil
			}
		}
		return errors.New("no pod in PreparingDelete and not ready")
	})
	time.Sleep(2 * time.Second)
	if p := getPod(t, ns, held.Name); p == nil || p.DeletionTimestamp != nil {
		t.Fatal("a hooked pod must not be deleted")
	}
	framework.PatchPod(t, ns, held.Name, fmt.Sprintf(`{"metadata":{"labels":{%q:null}}}`, hold))
	framework.Eventually(t, timeout, func() error {
		if p := getPod(t, ns, held.Name); p != nil && p.DeletionTimestamp == nil {
			return errors.New("released pod not deleted")
		}
		return nil
	})

	// inPlaceUpdate: a finalizer holds the pod in PreparingUpdate.
	remaining := pods(t, cs)[0]
	framework.PatchPod(t, ns, remaining.Name, `{"metadata":{"finalizers":["e2e.drover.dev/inplace"]}}`)
	framework.Modify(t, cs, setImage("example.com/app:v2"))
	framework.Eventually(t, timeout, func() error {
		p := getPod(t, ns, remaining.Name)
		if lifecycle.StateOf(p) != appsv1alpha1.LifecycleStatePreparingUpdate {
			return fmt.Errorf("state %s", lifecycle.StateOf(p))
		}
		return nil
	})
	time.Sleep(2 * time.Second)
	if p := getPod(t, ns, remaining.Name); p.Spec.Containers[0].Image != "example.com/app:v1" {
		t.Fatal("a hooked pod must not be updated")
	}
	framework.PatchPod(t, ns, remaining.Name, `{"metadata":{"finalizers":null}}`)
	framework.Eventually(t, timeout, func() error {
		p := getPod(t, ns, remaining.Name)
		if p.Spec.Containers[0].Image != "example.com/app:v2" || lifecycle.StateOf(p) != appsv1alpha1.LifecycleStateUpdated {
			return fmt.Errorf("image %s state %s", p.Spec.Containers[0].Image, lifecycle.StateOf(p))
		}
		return nil
	})
	// Setting the hook again returns the pod to Normal.
	framework.PatchPod(t, ns, remaining.Name, `{"metadata":{"finalizers":["e2e.drover.dev/inplace"]}}`)
	framework.Eventually(t, timeout, func() error {
		if s := lifecycle.StateOf(getPod(t, ns, remaining.Name)); s != appsv1alpha1.LifecycleStateNormal {
			return fmt.Errorf("state %s", s)
		}
		return nil
	})
	framework.PatchPod(t, ns, remaining.Name, `{"metadata":{"finalizers":null}}`)
	_ = ctx
}

func TestPVCReuse(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	node := framework.FirstNode(t)
	withClaims := func(c *appsv1alpha1.CloneSet) {
		// Claims stay unbound without a provisioner; binding the pods to a
		// node skips the scheduler's volume check.
		c.Spec.Template.Spec.NodeName = node
		c.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{{
			ObjectMeta: metav1.ObjectMeta{Name: "data"},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			},
		}}
	}
	cs := framework.Create(t, newCloneSet(ns, "pvc", 2, withClaims))
	waitReady(t, cs)
	before := pods(t, cs)
	claims := framework.ClaimUIDs(t, ns)
	framework.Modify(t, cs, func(c *appsv1alpha1.CloneSet) {
		c.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", Value: "b"}}
	})
	waitReady(t, cs)
	after := pods(t, cs)
	if fmt.Sprint(names(before)) != fmt.Sprint(names(after)) {
		t.Fatalf("recreated pods must keep their names to reuse claims: %v -> %v", names(before), names(after))
	}
	for i := range after {
		if after[i].UID == before[i].UID {
			t.Fatalf("pod %s was not recreated", after[i].Name)
		}
	}
	if got := framework.ClaimUIDs(t, ns); fmt.Sprint(got) != fmt.Sprint(claims) {
		t.Fatalf("claims replaced: %v -> %v", claims, got)
	}

	// With disablePVCReuse a recreated pod gets new claims.
	framework.Modify(t, cs, func(c *appsv1alpha1.CloneSet) {
		c.Spec.ScaleStrategy.DisablePVCReuse = true
		c.Spec.Template.Spec.Containers[0].Env[0].Value = "c"
	})
	waitReady(t, cs)
	framework.Eventually(t, timeout, func() error {
		got := framework.ClaimUIDs(t, ns)
		if len(got) != 2 {
			return fmt.Errorf("want 2 claims, have %v", got)
		}
		for n := range got {
			if _, ok := claims[n]; ok {
				return fmt.Errorf("claim %s survived", n)
			}
		}
		return nil
	})
}

func TestHPAScalesThroughScaleSubresource(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	cs := framework.Create(t, newCloneSet(ns, "hpa", 1))
	waitReady(t, cs)
	framework.CreateHPA(t, ns, "CloneSet", "hpa", 3, 5)
	framework.Eventually(t, 2*timeout, func() error {
		cur := framework.Get(t, cs)
		if ptr.Deref(cur.Spec.Replicas, 0) != 3 || cur.Status.AvailableReplicas != 3 {
			return fmt.Errorf("replicas %d, available %d", ptr.Deref(cur.Spec.Replicas, 0), cur.Status.AvailableReplicas)
		}
		return nil
	})
}

func TestKubectlScaleAndWaitReady(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	cs := framework.Create(t, newCloneSet(ns, "kubectl", 1))
	framework.Kubectl(t, "-n", ns, "wait", "--for=condition=Ready", "cloneset/kubectl", "--timeout=90s")
	framework.Kubectl(t, "-n", ns, "scale", "cloneset/kubectl", "--replicas=3")
	framework.Kubectl(t, "-n", ns, "wait", "--for=jsonpath={.status.availableReplicas}=3", "cloneset/kubectl", "--timeout=90s")
	framework.Kubectl(t, "-n", ns, "wait", "--for=condition=Ready", "cloneset/kubectl", "--timeout=90s")
	out := framework.Kubectl(t, "-n", ns, "get", "cloneset", "kubectl")
	for _, col := range []string{"DESIRED", "UPDATED", "READY", "AVAILABLE", "AGE"} {
		if !strings.Contains(out, col) {
			t.Fatalf("printer columns lack %s:\n%s", col, out)
		}
	}
	if got := framework.Get(t, cs); got.Status.Replicas != 3 {
		t.Fatalf("status replicas %d", got.Status.Replicas)
	}
}

func getPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{}
	if err := framework.Client().Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
		return nil
	}
	return p
}

func TestInPlaceResizeWithoutRestart(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	cs := framework.Create(t, newCloneSet(ns, "resize", 2, inPlace, func(c *appsv1alpha1.CloneSet) {
		c.Spec.Template.Spec.Containers[0].Resources = corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m")},
		}
	}))
	waitReady(t, cs)
	old := framework.UIDs(pods(t, cs))
	framework.Modify(t, cs, func(c *appsv1alpha1.CloneSet) {
		c.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("150m")
		c.Spec.Template.Spec.Containers[0].Resources.Limits[corev1.ResourceCPU] = resource.MustParse("300m")
	})
	cur := waitReady(t, cs)
	framework.Eventually(t, timeout, func() error {
		for _, p := range pods(t, cs) {
			s := framework.ContainerStatus(&p, "app")
			if s.Resources == nil || s.Resources.Limits.Cpu().String() != "300m" {
				return fmt.Errorf("%s: status resources %+v", p.Name, s.Resources)
			}
		}
		return nil
	})
	for _, p := range pods(t, cs) {
		if old[p.Name] != string(p.UID) {
			t.Fatalf("pod %s recreated for a resize", p.Name)
		}
		if r := framework.ContainerStatus(&p, "app").RestartCount; r != 0 {
			t.Fatalf("pod %s restarted (%d) for a resize", p.Name, r)
		}
		if p.Labels[revision.LabelRevisionHash] != cur.Status.UpdateRevision {
			t.Fatalf("pod %s not on the new revision", p.Name)
		}
		if q := p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; q.String() != "150m" {
			t.Fatalf("pod %s spec not resized: %s", p.Name, q.String())
		}
	}
}
