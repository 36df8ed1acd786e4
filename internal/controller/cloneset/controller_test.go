package cloneset_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/controller/cloneset"
	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/revision"
	"github.com/drover-dev/drover/internal/testenv"
)

// These integration tests run the controller against a real API server
// (envtest). There is no kubelet: kubeletRun plays its part where a test
// needs running pods. The tests read the API server directly, never the
// manager's cache.

var k8s client.Client

func TestMain(m *testing.M) {
	os.Exit(testenv.MainWithManager(m, func(mgr ctrl.Manager) error {
		return cloneset.SetupWithManager(mgr, cloneset.Options{MaxConcurrentReconciles: 2})
	}, func(c client.Client) { k8s = c }))
}

func namespace(t *testing.T) string {
	t.Helper()
	return testenv.Namespace(t, k8s, "cs-")
}

func newCloneSet(ns, name string, replicas int32) *appsv1alpha1.CloneSet {
	return &appsv1alpha1.CloneSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1alpha1.CloneSetSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
			},
		},
	}
}

func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	testenv.Eventually(t, what, cond)
}

// modify applies f to the latest CloneSet, retrying on conflicts with the
// controller's status writes.
func modify(t *testing.T, cs *appsv1alpha1.CloneSet, f func(*appsv1alpha1.CloneSet)) {
	t.Helper()
	testenv.Update(t, k8s, cs, f)
}

// podsOf returns the live (not terminating) pods of cs.
func podsOf(t *testing.T, cs *appsv1alpha1.CloneSet) []corev1.Pod {
	t.Helper()
	return testenv.LivePods(t, k8s, cs.Namespace, cs.Spec.Selector.MatchLabels)
}

// podCountStays checks that cs still has want live pods after settle: the
// controller, once there, creates and deletes no more (expectations keep
// it from acting twice on a lagging cache). It returns the pods.
func podCountStays(t *testing.T, cs *appsv1alpha1.CloneSet, want int, settle time.Duration, what string) []corev1.Pod {
	t.Helper()
	time.Sleep(settle)
	pods := podsOf(t, cs)
	if len(pods) != want {
		t.Fatalf("%s: want %d pods, have %d", what, want, len(pods))
	}
	return pods
}

// kubeletRun marks every pod of cs running, and ready when its readiness
// gate is True, as a kubelet would.
func kubeletRun(t *testing.T, cs *appsv1alpha1.CloneSet) {
	t.Helper()
	testenv.RunPods(t, k8s, podsOf(t, cs))
}

func TestCreatesPodsWithIdentityGateAndClaims(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	cs := newCloneSet(ns, "web", 3)
	cs.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{{
		ObjectMeta: metav1.ObjectMeta{Name: "data"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}}
	if err := k8s.Create(ctx, cs); err != nil {
		t.Fatal(err)
	}
	eventually(t, "3 pods", func() (bool, string) {
		n := len(podsOf(t, cs))
		return n == 3, fmt.Sprint(n)
	})
	// Expectations: the controller never overshoots, even while its cache lags.
	pods := podCountStays(t, cs, 3, time.Second, "exactly the replicas")
	for _, p := range pods {
		id := p.Labels[appsv1alpha1.LabelInstanceID]
		if p.Name != "web-"+id || len(id) != 5 {
			t.Errorf("pod name %q is not web-<5 chars>", p.Name)
		}
		if !strings.HasPrefix(p.Labels[revision.LabelRevisionHash], "web-") {
			t.Errorf("pod %s lacks the revision label: %v", p.Name, p.Labels)
		}
		if !inplace.HasGate(&p) {
			t.Errorf("pod %s lacks the InPlaceUpdateReady gate", p.Name)
		}
		if !metav1.IsControlledBy(&p, cs) {
			t.Errorf("pod %s not controlled by the CloneSet", p.Name)
		}
		claim := &corev1.PersistentVolumeClaim{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "data-" + p.Name}, claim); err != nil {
			t.Errorf("claim of %s: %v", p.Name, err)
		}
		found := false
		for _, v := range p.Spec.Volumes {
			found = found || (v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "data-"+p.Name)
		}
		if !found {
			t.Errorf("pod %s does not mount its claim", p.Name)
		}
	}
	eventually(t, "gates set True", func() (bool, string) {
		for _, p := range podsOf(t, cs) {
			if inplace.GateStatus(&p) != corev1.ConditionTrue {
				return false, p.Name
			}
		}
		return true, ""
	})
	got := &appsv1alpha1.CloneSet{}
	eventually(t, "status", func() (bool, string) {
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(cs), got)
		s := got.Status
		return s.Replicas == 3 && s.UpdatedReplicas == 3 && s.ExpectedUpdatedReplicas == 3 && s.LabelSelector == "app=web" &&
			s.ObservedGeneration == got.Generation && s.UpdateRevision != "" && s.CurrentRevision == s.UpdateRevision, fmt.Sprintf("%+v", s)
	})
	if c := meta.FindStatusCondition(got.Status.Conditions, appsv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse {
		t.Fatalf("not-running pods: Ready must be False, got %+v", c)
	}
	kubeletRun(t, cs)
	eventually(t, "Ready", func() (bool, string) {
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(cs), got)
		return meta.IsStatusConditionTrue(got.Status.Conditions, appsv1alpha1.ConditionReady) &&
			meta.IsStatusConditionFalse(got.Status.Conditions, appsv1alpha1.ConditionReconciling), fmt.Sprintf("%+v", got.Status)
	})
}

func TestScaleOnlyDoesNotUpdateAndTemplateRevertReusesRevision(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	cs := newCloneSet(ns, "rev", 2)
	cs.Spec.UpdateStrategy.Paused = true // observe revisions without pods moving
	if err := k8s.Create(ctx, cs); err != nil {
		t.Fatal(err)
	}
	got := &appsv1alpha1.CloneSet{}
	eventually(t, "first revision", func() (bool, string) {
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(cs), got)
		return got.Status.UpdateRevision != "", ""
	})
	first := got.Status.UpdateRevision

	modify(t, cs, func(c *appsv1alpha1.CloneSet) { c.Spec.Replicas = ptr.To[int32](4) })
	eventually(t, "scale to 4", func() (bool, string) {
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(cs), got)
		return got.Status.Replicas == 4 && got.Status.ObservedGeneration == got.Generation, ""
	})
	if got.Status.UpdateRevision != first {
		t.Fatalf("a scale-only change made a new revision %s (was %s)", got.Status.UpdateRevision, first)
	}

	modify(t, cs, func(c *appsv1alpha1.CloneSet) { c.Spec.Template.Spec.Containers[0].Image = "app:2" })
	eventually(t, "second revision", func() (bool, string) {
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(cs), got)
		return got.Status.UpdateRevision != first && got.Status.ObservedGeneration == got.Generation, ""
	})
	modify(t, cs, func(c *appsv1alpha1.CloneSet) { c.Spec.Template.Spec.Containers[0].Image = "app:1" })
	eventually(t, "revert", func() (bool, string) {
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(cs), got)
		return got.Status.ObservedGeneration == got.Generation && got.Status.UpdateRevision == first, got.Status.UpdateRevision
	})
	if got.Status.UpdatedReplicas != 4 {
		t.Fatalf("reverting the template must make every pod current again without restarts, got %d updated", got.Status.UpdatedReplicas)
	}
	var revs appsv1.ControllerRevisionList
	if err := k8s.List(ctx, &revs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(revs.Items) != 2 {
		t.Fatalf("want 2 revisions (reused, not duplicated), got %d", len(revs.Items))
	}
	for _, r := range revs.Items {
		if r.Name == first && r.Revision != 3 {
			t.Fatalf("reused revision must be renumbered to 3, got %d", r.Revision)
		}
	}
}

func TestInPlaceOnlyRefusesAndTouchesNothing(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	cs := newCloneSet(ns, "only", 2)
	cs.Spec.UpdateStrategy.Type = appsv1alpha1.InPlaceOnlyCloneSetUpdateStrategyType
	if err := k8s.Create(ctx, cs); err != nil {
		t.Fatal(err)
	}
	eventually(t, "2 pods", func() (bool, string) { return len(podsOf(t, cs)) == 2, "" })
	kubeletRun(t, cs)
	before := map[string]string{}
	for _, p := range podsOf(t, cs) {
		before[p.Name] = p.ResourceVersion
	}
	got := &appsv1alpha1.CloneSet{}
	modify(t, cs, func(c *appsv1alpha1.CloneSet) {
		c.Spec.Template.Spec.Containers[0].Command = []string{"serve", "--new"}
	})
	eventually(t, "InPlaceUpdateBlocked", func() (bool, string) {
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(cs), got)
		c := meta.FindStatusCondition(got.Status.Conditions, appsv1alpha1.ConditionInPlaceUpdateBlocked)
		return c != nil && c.Status == metav1.ConditionTrue && strings.Contains(c.Message, "spec.containers[0].command"), fmt.Sprintf("%+v", c)
	})
	if !meta.IsStatusConditionTrue(got.Status.Conditions, appsv1alpha1.ConditionStalled) {
		t.Fatal("a blocked update is Stalled")
	}
	for _, p := range podsOf(t, cs) {
		if before[p.Name] != p.ResourceVersion {
			t.Fatalf("pod %s was touched", p.Name)
		}
	}
}

func TestPodsToDeleteWithLowerReplicas(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	cs := newCloneSet(ns, "pick", 3)
	if err := k8s.Create(ctx, cs); err != nil {
		t.Fatal(err)
	}
	eventually(t, "3 pods", func() (bool, string) { return len(podsOf(t, cs)) == 3, "" })
	victim := podsOf(t, cs)[1].Name
	modify(t, cs, func(c *appsv1alpha1.CloneSet) {
		c.Spec.Replicas = ptr.To[int32](2)
		c.Spec.ScaleStrategy.PodsToDelete = []string{victim}
	})
	eventually(t, "victim gone", func() (bool, string) {
		pods := podsOf(t, cs)
		for _, p := range pods {
			if p.Name == victim {
				return false, "still there"
			}
		}
		return len(pods) == 2, fmt.Sprint(len(pods))
	})
	podCountStays(t, cs, 2, 500*time.Millisecond, "podsToDelete with lower replicas must not be replaced")
}

func TestProgressDeadlineExceeded(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	cs := newCloneSet(ns, "slow", 2)
	cs.Spec.ProgressDeadlineSeconds = ptr.To[int32](2)
	if err := k8s.Create(ctx, cs); err != nil {
		t.Fatal(err)
	}
	// No kubelet runs the pods: the CloneSet cannot become available.
	got := &appsv1alpha1.CloneSet{}
	eventually(t, "ProgressDeadlineExceeded", func() (bool, string) {
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(cs), got)
		c := meta.FindStatusCondition(got.Status.Conditions, appsv1alpha1.ConditionProgressing)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == appsv1alpha1.ReasonProgressDeadlineExceeded, fmt.Sprintf("%+v", c)
	})
	if c := meta.FindStatusCondition(got.Status.Conditions, appsv1alpha1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("deadline exceeded must set Stalled, got %+v", c)
	}
	if meta.IsStatusConditionTrue(got.Status.Conditions, appsv1alpha1.ConditionReconciling) {
		t.Fatal("a stalled CloneSet is not Reconciling")
	}
	// Progress clears it.
	kubeletRun(t, cs)
	eventually(t, "Ready after progress", func() (bool, string) {
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(cs), got)
		return meta.IsStatusConditionTrue(got.Status.Conditions, appsv1alpha1.ConditionReady) &&
			meta.IsStatusConditionFalse(got.Status.Conditions, appsv1alpha1.ConditionStalled), fmt.Sprintf("%+v", got.Status.Conditions)
	})
}

func TestAdoptsMatchingOrphans(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	// A pod left behind by a CloneSet deleted with --cascade=orphan.
	orphan := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "adopt-orphan", Namespace: ns, Labels: map[string]string{
			"app": "adopt", appsv1alpha1.LabelWorkload: cloneset.Kind, appsv1alpha1.LabelInstanceID: "orphn",
		}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
	}
	if err := k8s.Create(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	cs := newCloneSet(ns, "adopt", 2)
	// The orphan has no revision label, so it counts as an old revision;
	// pausing keeps it from being replaced by the update.
	cs.Spec.UpdateStrategy.Paused = true
	if err := k8s.Create(ctx, cs); err != nil {
		t.Fatal(err)
	}
	// The controller may see the CloneSet before its cache holds the
	// orphan: it then creates two pods, adopts the orphan on the next
	// reconcile and scales the surplus down, the unready old-revision
	// orphan first. Either way the orphan was adopted: a controller only
	// deletes pods it controls.
	eventually(t, "adoption", func() (bool, string) {
		p := &corev1.Pod{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(orphan), p); apierrors.IsNotFound(err) {
			return true, ""
		}
		return metav1.IsControlledBy(p, cs), fmt.Sprint(p.OwnerReferences)
	})
	podCountStays(t, cs, 2, 500*time.Millisecond, "the adopted pod counts toward replicas")
}

func TestRepairsMissingReadinessGate(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	cs := newCloneSet(ns, "repair", 1)
	if err := k8s.Create(ctx, cs); err != nil {
		t.Fatal(err)
	}
	eventually(t, "gate True", func() (bool, string) {
		ps := podsOf(t, cs)
		return len(ps) == 1 && inplace.GateStatus(&ps[0]) == corev1.ConditionTrue, ""
	})
	// As if the manager had stopped between creating the pod and opening
	// its gate.
	p := podsOf(t, cs)[0]
	p.Status.Conditions = nil
	if err := k8s.Status().Update(ctx, &p); err != nil {
		t.Fatal(err)
	}
	kubeletRun(t, cs) // a status change wakes the controller
	eventually(t, "gate repaired", func() (bool, string) {
		ps := podsOf(t, cs)
		return len(ps) == 1 && inplace.GateStatus(&ps[0]) == corev1.ConditionTrue, fmt.Sprint(ps[0].Status.Conditions)
	})
}
