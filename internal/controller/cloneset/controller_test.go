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
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/controller/cloneset"
	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/ownership"
	"github.com/drover-dev/drover/internal/revision"
	"github.com/drover-dev/drover/internal/testenv"
)

// These integration tests run the controller against a real API server
// (envtest). There is no kubelet: the helpers below play its part where a
// test needs running pods.

var k8s client.Client

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	env, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: testenv.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := ownership.RegisterIndexes(context.Background(), mgr.GetFieldIndexer()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := cloneset.SetupWithManager(mgr, cloneset.Options{MaxConcurrentReconciles: 2}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return 1
	}
	// The tests read the API server directly, never the manager's cache.
	if k8s, err = client.New(env.Config, client.Options{Scheme: testenv.Scheme()}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func namespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "cs-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
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
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %s", what, last)
}

// modify applies f to the latest CloneSet, retrying on conflicts with the
// controller's status writes.
func modify(t *testing.T, cs *appsv1alpha1.CloneSet, f func(*appsv1alpha1.CloneSet)) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := &appsv1alpha1.CloneSet{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(cs), cur); err != nil {
			return err
		}
		f(cur)
		return k8s.Update(ctx, cur)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func podsOf(t *testing.T, cs *appsv1alpha1.CloneSet) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := k8s.List(context.Background(), &list, client.InNamespace(cs.Namespace), client.MatchingLabels(cs.Spec.Selector.MatchLabels)); err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// kubeletRun marks every pod of cs running and ready, as a kubelet would.
func kubeletRun(t *testing.T, cs *appsv1alpha1.CloneSet) {
	t.Helper()
	ctx := context.Background()
	for _, p := range podsOf(t, cs) {
		p := p
		gateTrue := inplace.GateStatus(&p) == corev1.ConditionTrue
		p.Status.Phase = corev1.PodRunning
		p.Status.ContainerStatuses = nil
		for _, c := range p.Spec.Containers {
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
				Name: c.Name, Image: c.Image, ImageID: "id-" + c.Image, Ready: true,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
			})
		}
		ready := corev1.ConditionFalse
		if gateTrue {
			ready = corev1.ConditionTrue
		}
		setPodCondition(&p, corev1.PodReady, ready)
		if err := k8s.Status().Update(ctx, &p); err != nil {
			t.Logf("kubelet: %v", err) // a conflict: the next call retries
		}
	}
}

func setPodCondition(p *corev1.Pod, t corev1.PodConditionType, s corev1.ConditionStatus) {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			if p.Status.Conditions[i].Status != s {
				p.Status.Conditions[i].Status = s
				p.Status.Conditions[i].LastTransitionTime = metav1.Now()
			}
			return
		}
	}
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: t, Status: s, LastTransitionTime: metav1.Now()})
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
	time.Sleep(time.Second)
	pods := podsOf(t, cs)
	if len(pods) != 3 {
		t.Fatalf("want exactly 3 pods, got %d", len(pods))
	}
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
	time.Sleep(500 * time.Millisecond)
	if n := len(podsOf(t, cs)); n != 2 {
		t.Fatalf("podsToDelete with lower replicas must not be replaced: %d pods", n)
	}
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
	eventually(t, "adoption", func() (bool, string) {
		p := &corev1.Pod{}
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(orphan), p)
		return metav1.IsControlledBy(p, cs), fmt.Sprint(p.OwnerReferences)
	})
	time.Sleep(500 * time.Millisecond)
	if n := len(podsOf(t, cs)); n != 2 {
		t.Fatalf("the adopted pod counts toward replicas: want 2 pods, have %d", n)
	}
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
