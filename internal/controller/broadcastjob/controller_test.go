package broadcastjob_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/controller/broadcastjob"
	"github.com/drover-dev/drover/internal/nodeplacement"
	"github.com/drover-dev/drover/internal/ownership"
	"github.com/drover-dev/drover/internal/testenv"
)

// These integration tests run the controller against a real API server
// (envtest). There is no scheduler and no kubelet: the helpers below bind
// pods and finish them where a test needs it. Nodes are shared by the
// whole API server, so each test creates its own, labelled with its
// namespace, and its jobs select them.
//
// Two managers run: one with the controller, which ignores jobs labelled
// manualLabel; and a cache-only one whose client a test-driven reconciler
// with a fake clock uses, for deadlines and TTLs.

const manualLabel = "test.drover.dev/manual"

var (
	k8s       client.Client
	manual    client.Client
	mgrManual ctrl.Manager
)

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
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 1 }

	notManual, err := labels.NewRequirement(manualLabel, selection.DoesNotExist, nil)
	if err != nil {
		return fail(err)
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  testenv.Scheme(),
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&appsv1alpha1.BroadcastJob{}: {Label: labels.NewSelector().Add(*notManual)},
		}},
	})
	if err != nil {
		return fail(err)
	}
	if err := ownership.RegisterIndexes(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return fail(err)
	}
	if err := broadcastjob.SetupWithManager(mgr, broadcastjob.Options{MaxConcurrentReconciles: 2}); err != nil {
		return fail(err)
	}
	mgrManual, err = ctrl.NewManager(env.Config, ctrl.Options{Scheme: testenv.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return fail(err)
	}
	if err := ownership.RegisterIndexes(context.Background(), mgrManual.GetFieldIndexer()); err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, m := range []ctrl.Manager{mgr, mgrManual} {
		go func() {
			if err := m.Start(ctx); err != nil {
				fmt.Fprintln(os.Stderr, "manager:", err)
			}
		}()
		if !m.GetCache().WaitForCacheSync(ctx) {
			return 1
		}
	}
	manual = mgrManual.GetClient()
	// The tests read the API server directly, never a manager's cache.
	if k8s, err = client.New(env.Config, client.Options{Scheme: testenv.Scheme()}); err != nil {
		return fail(err)
	}
	return m.Run()
}

// fixture is one test's namespace and nodes.
type fixture struct {
	t  *testing.T
	ns string
}

func setup(t *testing.T) *fixture {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bcj-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, ns: ns.Name}
}

// node creates a node carrying the test's label (plus extra ones) and
// deletes it when the test ends.
func (f *fixture) node(name string, extra map[string]string, mod ...func(*corev1.Node)) *corev1.Node {
	f.t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: f.ns + "-" + name, Labels: map[string]string{"test.drover.dev/ns": f.ns}}}
	for k, v := range extra {
		n.Labels[k] = v
	}
	for _, m := range mod {
		m(n)
	}
	taints := n.Spec.Taints
	if err := k8s.Create(context.Background(), n); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = k8s.Delete(context.Background(), n) })
	// The API server taints new nodes not-ready (NoSchedule); the node
	// lifecycle controller, absent here, lifts the taint once the node
	// is ready.
	n.Spec.Taints = taints
	if err := k8s.Update(context.Background(), n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// job returns a job in the test's namespace selecting the test's nodes.
func (f *fixture) job(name string, mod ...func(*appsv1alpha1.BroadcastJob)) *appsv1alpha1.BroadcastJob {
	j := &appsv1alpha1.BroadcastJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns},
		Spec: appsv1alpha1.BroadcastJobSpec{
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{
					NodeSelector:  map[string]string{"test.drover.dev/ns": f.ns},
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "task", Image: "busybox:1.36"}},
				},
			},
		},
	}
	for _, m := range mod {
		m(j)
	}
	return j
}

func (f *fixture) create(j *appsv1alpha1.BroadcastJob) *appsv1alpha1.BroadcastJob {
	f.t.Helper()
	if err := k8s.Create(context.Background(), j); err != nil {
		f.t.Fatalf("create job: %v", err)
	}
	return j
}

func get(t *testing.T, j *appsv1alpha1.BroadcastJob) *appsv1alpha1.BroadcastJob {
	t.Helper()
	out := &appsv1alpha1.BroadcastJob{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(j), out); err != nil {
		t.Fatalf("get job: %v", err)
	}
	return out
}

func modify(t *testing.T, j *appsv1alpha1.BroadcastJob, f func(*appsv1alpha1.BroadcastJob)) {
	t.Helper()
	eventually(t, "job updated", func() (bool, string) {
		cur := get(t, j)
		f(cur)
		err := k8s.Update(context.Background(), cur)
		return err == nil, fmt.Sprint(err)
	})
}

// pods returns the job's pods (terminating ones included), by name.
func pods(t *testing.T, j *appsv1alpha1.BroadcastJob) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := k8s.List(context.Background(), &list, client.InNamespace(j.Namespace),
		client.MatchingLabels{appsv1alpha1.LabelBroadcastJob: j.Name}); err != nil {
		t.Fatal(err)
	}
	sort.Slice(list.Items, func(a, b int) bool { return list.Items[a].Name < list.Items[b].Name })
	return list.Items
}

// byNode groups the job's pods by the node they are meant for.
func byNode(ps []corev1.Pod) map[string][]corev1.Pod {
	out := map[string][]corev1.Pod{}
	for _, p := range ps {
		out[nodeplacement.NodeOf(&p)] = append(out[nodeplacement.NodeOf(&p)], p)
	}
	return out
}

// unfinished counts pods that may still run.
func unfinished(ps []corev1.Pod) int {
	n := 0
	for _, p := range ps {
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			n++
		}
	}
	return n
}

func live(ps []corev1.Pod) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range ps {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
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
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %s", what, last)
}

// kubelet plays the scheduler and the kubelet for one pod: it binds the
// pod to its node (when not bound yet) and sets its phase.
func kubelet(t *testing.T, p corev1.Pod, phase corev1.PodPhase, restarts int32) {
	t.Helper()
	ctx := context.Background()
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(&p), &p); err != nil {
		t.Fatal(err)
	}
	if p.Spec.NodeName == "" {
		b := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace},
			Target: corev1.ObjectReference{Kind: "Node", Name: nodeplacement.NodeOf(&p)}}
		if err := k8s.SubResource("binding").Create(ctx, &p, b); err != nil {
			t.Fatalf("bind %s: %v", p.Name, err)
		}
	}
	eventually(t, "pod status "+p.Name, func() (bool, string) {
		cur := &corev1.Pod{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(&p), cur); err != nil {
			return false, err.Error()
		}
		cur.Status.Phase = phase
		state := corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}
		switch phase {
		case corev1.PodSucceeded:
			state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}
		case corev1.PodFailed:
			state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error"}}
		}
		cur.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "task", Image: "busybox:1.36", State: state, RestartCount: restarts}}
		err := k8s.Status().Update(ctx, cur)
		return err == nil, fmt.Sprint(err)
	})
}

func condition(j *appsv1alpha1.BroadcastJob, typ string) *metav1.Condition {
	return meta.FindStatusCondition(j.Status.Conditions, typ)
}

// waitStatus waits until the job's status (for its generation) satisfies ok.
func waitStatus(t *testing.T, j *appsv1alpha1.BroadcastJob, what string, ok func(*appsv1alpha1.BroadcastJobStatus) bool) *appsv1alpha1.BroadcastJob {
	t.Helper()
	var cur *appsv1alpha1.BroadcastJob
	eventually(t, what, func() (bool, string) {
		cur = get(t, j)
		return cur.Status.ObservedGeneration == cur.Generation && ok(&cur.Status), fmt.Sprintf("%+v", cur.Status)
	})
	return cur
}

func counts(st *appsv1alpha1.BroadcastJobStatus) [4]int32 {
	return [4]int32{st.Desired, st.Active, st.Succeeded, st.Failed}
}

var podName = regexp.MustCompile(`^[a-z0-9-]+-[a-z0-9]{5}$`)

func TestOnePodPerMatchingNodeUntilComplete(t *testing.T) {
	f := setup(t)
	a := f.node("a", nil)
	b := f.node("b", nil)
	f.node("tainted", nil, func(n *corev1.Node) {
		n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}}
	})
	// A node without the test's label.
	f.node("other", nil, func(n *corev1.Node) { delete(n.Labels, "test.drover.dev/ns") })

	j := f.create(f.job("cleanup"))
	eventually(t, "a pod on a and b", func() (bool, string) {
		by := byNode(pods(t, j))
		return len(by) == 2 && len(by[a.Name]) == 1 && len(by[b.Name]) == 1, fmt.Sprint(by)
	})
	cur := waitStatus(t, j, "running status", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return counts(st) == [4]int32{2, 2, 0, 0} && st.Phase == appsv1alpha1.BroadcastJobRunning && st.StartTime != nil
	})
	if c := condition(cur, appsv1alpha1.ConditionReconciling); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("running: Reconciling = %+v, want True", c)
	}
	if c := condition(cur, appsv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("running: Ready = %+v, want False", c)
	}
	for _, p := range pods(t, j) {
		if !podName.MatchString(p.Name) || p.Name[:len("cleanup-")] != "cleanup-" {
			t.Errorf("pod name %q is not cleanup-<5 chars>", p.Name)
		}
		if p.Labels[appsv1alpha1.LabelWorkload] != "BroadcastJob" || p.Labels[appsv1alpha1.LabelBroadcastJob] != "cleanup" || p.Labels["app"] != "cleanup" {
			t.Errorf("pod %s labels %v", p.Name, p.Labels)
		}
		if !metav1.IsControlledBy(&p, cur) {
			t.Errorf("pod %s is not controlled by the job", p.Name)
		}
		if p.Spec.NodeName != "" || p.Spec.Affinity == nil || p.Spec.Affinity.NodeAffinity == nil {
			t.Errorf("pod %s is not pinned through node affinity: %+v", p.Name, p.Spec.Affinity)
		}
		if p.Spec.RestartPolicy != corev1.RestartPolicyNever {
			t.Errorf("pod %s restartPolicy %s", p.Name, p.Spec.RestartPolicy)
		}
	}

	// Pod events make the controller reconcile again and again: it never
	// creates a second pod for a node.
	ps := pods(t, j)
	kubelet(t, ps[0], corev1.PodRunning, 0)
	kubelet(t, ps[1], corev1.PodRunning, 0)
	waitStatus(t, j, "2 active", func(st *appsv1alpha1.BroadcastJobStatus) bool { return st.Active == 2 })
	if n := len(pods(t, j)); n != 2 {
		t.Fatalf("%d pods after pod events, want 2", n)
	}

	kubelet(t, ps[0], corev1.PodSucceeded, 0)
	kubelet(t, ps[1], corev1.PodSucceeded, 0)
	cur = waitStatus(t, j, "completed", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return st.Phase == appsv1alpha1.BroadcastJobCompleted
	})
	if counts(&cur.Status) != [4]int32{2, 0, 2, 0} || cur.Status.CompletionTime == nil {
		t.Errorf("completed status %+v", cur.Status)
	}
	for typ, want := range map[string]metav1.ConditionStatus{
		appsv1alpha1.BroadcastJobConditionComplete: metav1.ConditionTrue,
		appsv1alpha1.ConditionReady:                metav1.ConditionTrue,
		appsv1alpha1.ConditionReconciling:          metav1.ConditionFalse,
		appsv1alpha1.ConditionStalled:              metav1.ConditionFalse,
	} {
		if c := condition(cur, typ); c == nil || c.Status != want {
			t.Errorf("completed: %s = %+v, want %s", typ, c, want)
		}
	}
	if condition(cur, appsv1alpha1.BroadcastJobConditionFailed) != nil {
		t.Errorf("completed job has a Failed condition")
	}

	// A node joining a completed job gets nothing.
	f.node("late", nil)
	time.Sleep(500 * time.Millisecond)
	if n := len(pods(t, j)); n != 2 {
		t.Fatalf("a node that joined a completed job got a pod: %d pods", n)
	}
}

func TestParallelismCapsActivePods(t *testing.T) {
	f := setup(t)
	for i := range 5 {
		f.node(fmt.Sprint(i), nil)
	}
	j := f.create(f.job("par", func(j *appsv1alpha1.BroadcastJob) { j.Spec.Parallelism = ptr.To(intstr.FromString("40%")) }))
	for done := 0; done < 5; {
		eventually(t, "pods up to parallelism", func() (bool, string) {
			ps := pods(t, j)
			return unfinished(ps) == min(2, 5-done), fmt.Sprintf("%d unfinished of %d", unfinished(ps), len(ps))
		})
		ps := pods(t, j)
		if n := unfinished(ps); n > 2 {
			t.Fatalf("%d pods may run, parallelism 40%% of 5 = 2", n)
		}
		for _, p := range ps {
			if p.Status.Phase == "" || p.Status.Phase == corev1.PodPending {
				kubelet(t, p, corev1.PodSucceeded, 0)
				done++
				break
			}
		}
	}
	cur := waitStatus(t, j, "completed", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return st.Phase == appsv1alpha1.BroadcastJobCompleted
	})
	if counts(&cur.Status) != [4]int32{5, 0, 5, 0} || len(pods(t, j)) != 5 {
		t.Fatalf("status %+v with %d pods", cur.Status, len(pods(t, j)))
	}
}

func TestRestartLimitThenFailFast(t *testing.T) {
	f := setup(t)
	a := f.node("a", nil)
	b := f.node("b", nil)
	j := f.create(f.job("ff", func(j *appsv1alpha1.BroadcastJob) {
		j.Spec.FailurePolicy = appsv1alpha1.BroadcastJobFailurePolicy{Type: appsv1alpha1.FailFastBroadcastJobFailurePolicyType, RestartLimit: 1}
	}))
	eventually(t, "2 pods", func() (bool, string) { n := len(pods(t, j)); return n == 2, fmt.Sprint(n) })
	onA := byNode(pods(t, j))[a.Name][0]
	kubelet(t, byNode(pods(t, j))[b.Name][0], corev1.PodRunning, 0)
	kubelet(t, onA, corev1.PodFailed, 0)
	// One retry: a new pod on a.
	eventually(t, "a retry on a", func() (bool, string) {
		n := len(byNode(pods(t, j))[a.Name])
		return n == 2, fmt.Sprint(n)
	})
	cur := get(t, j)
	if cur.Status.Phase != appsv1alpha1.BroadcastJobRunning || cur.Status.Failed != 0 {
		t.Fatalf("after the first failure (restartLimit 1): %+v", cur.Status)
	}
	var retry corev1.Pod
	for _, p := range byNode(pods(t, j))[a.Name] {
		if p.UID != onA.UID {
			retry = p
		}
	}
	kubelet(t, retry, corev1.PodFailed, 0)
	cur = waitStatus(t, j, "failed", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return st.Phase == appsv1alpha1.BroadcastJobFailed
	})
	c := condition(cur, appsv1alpha1.BroadcastJobConditionFailed)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != appsv1alpha1.BroadcastJobReasonNodeFailed {
		t.Fatalf("Failed condition %+v", c)
	}
	if s := condition(cur, appsv1alpha1.ConditionStalled); s == nil || s.Status != metav1.ConditionTrue {
		t.Fatalf("failed: Stalled = %+v, want True", s)
	}
	if cur.Status.Failed != 1 || cur.Status.CompletionTime == nil {
		t.Fatalf("failed status %+v", cur.Status)
	}
	// FailFast stops the pod still running on b; no third pod on a.
	eventually(t, "b's pod deleted", func() (bool, string) {
		for _, p := range byNode(pods(t, j))[b.Name] {
			if p.DeletionTimestamp == nil {
				return false, p.Name
			}
		}
		return true, ""
	})
	if n := len(byNode(pods(t, j))[a.Name]); n != 2 {
		t.Fatalf("node a got %d pods, want 2 (restartLimit 1)", n)
	}
}

func TestContinueCountsFailedNodes(t *testing.T) {
	f := setup(t)
	for i := range 3 {
		f.node(fmt.Sprint(i), nil)
	}
	j := f.create(f.job("cont", func(j *appsv1alpha1.BroadcastJob) {
		j.Spec.FailurePolicy.Type = appsv1alpha1.ContinueBroadcastJobFailurePolicyType
	}))
	eventually(t, "3 pods", func() (bool, string) { n := len(pods(t, j)); return n == 3, fmt.Sprint(n) })
	ps := pods(t, j)
	kubelet(t, ps[0], corev1.PodFailed, 0)
	waitStatus(t, j, "one failed", func(st *appsv1alpha1.BroadcastJobStatus) bool { return st.Failed == 1 })
	kubelet(t, ps[1], corev1.PodSucceeded, 0)
	kubelet(t, ps[2], corev1.PodSucceeded, 0)
	cur := waitStatus(t, j, "completed", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return st.Phase == appsv1alpha1.BroadcastJobCompleted
	})
	if counts(&cur.Status) != [4]int32{3, 0, 2, 1} || len(pods(t, j)) != 3 {
		t.Fatalf("status %+v, %d pods (no retry with restartLimit 0)", cur.Status, len(pods(t, j)))
	}
}

func TestPausePolicyHoldsUntilTheSpecChanges(t *testing.T) {
	f := setup(t)
	for i := range 3 {
		f.node(fmt.Sprint(i), nil)
	}
	j := f.create(f.job("pause", func(j *appsv1alpha1.BroadcastJob) {
		j.Spec.FailurePolicy.Type = appsv1alpha1.PauseBroadcastJobFailurePolicyType
		j.Spec.Parallelism = ptr.To(intstr.FromInt32(1))
	}))
	eventually(t, "1 pod", func() (bool, string) { n := len(pods(t, j)); return n == 1, fmt.Sprint(n) })
	kubelet(t, pods(t, j)[0], corev1.PodFailed, 0)
	cur := waitStatus(t, j, "paused by the failure", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return st.Phase == appsv1alpha1.BroadcastJobPaused
	})
	c := condition(cur, appsv1alpha1.BroadcastJobConditionPaused)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != appsv1alpha1.BroadcastJobReasonNodeFailed {
		t.Fatalf("Paused condition %+v", c)
	}
	if s := condition(cur, appsv1alpha1.ConditionStalled); s == nil || s.Status != metav1.ConditionTrue {
		t.Fatalf("paused by a failure: Stalled = %+v, want True", s)
	}
	// Nothing new starts while held, whatever events come.
	f.node("late", nil)
	time.Sleep(500 * time.Millisecond)
	if n := len(pods(t, j)); n != 1 {
		t.Fatalf("%d pods while paused by a failure", n)
	}
	// Toggling spec.paused acknowledges the failure and resumes.
	modify(t, j, func(j *appsv1alpha1.BroadcastJob) { j.Spec.Paused = true })
	modify(t, j, func(j *appsv1alpha1.BroadcastJob) { j.Spec.Paused = false })
	cur = waitStatus(t, j, "resumed", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return st.Phase == appsv1alpha1.BroadcastJobRunning && st.FailuresAcknowledged == 1
	})
	if condition(cur, appsv1alpha1.BroadcastJobConditionPaused) != nil {
		t.Fatalf("resumed job keeps a Paused condition: %+v", cur.Status.Conditions)
	}
	eventually(t, "a second pod", func() (bool, string) { n := len(pods(t, j)); return n == 2, fmt.Sprint(n) })
	// A second failure pauses again.
	for _, p := range pods(t, j) {
		if p.Status.Phase != corev1.PodFailed {
			kubelet(t, p, corev1.PodFailed, 0)
		}
	}
	waitStatus(t, j, "paused again", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return st.Phase == appsv1alpha1.BroadcastJobPaused && st.Failed == 2
	})
}

func TestPausedStartsNothingAndNeverRunsOnNewNodes(t *testing.T) {
	f := setup(t)
	f.node("a", nil)
	j := f.create(f.job("never", func(j *appsv1alpha1.BroadcastJob) {
		j.Spec.Paused = true
		j.Spec.CompletionPolicy.Type = appsv1alpha1.NeverBroadcastJobCompletionPolicyType
	}))
	cur := waitStatus(t, j, "paused", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return st.Phase == appsv1alpha1.BroadcastJobPaused && st.Desired == 1
	})
	if cur.Status.StartTime != nil || len(pods(t, j)) != 0 {
		t.Fatalf("a job created paused started: %+v, %d pods", cur.Status, len(pods(t, j)))
	}
	if c := condition(cur, appsv1alpha1.BroadcastJobConditionPaused); c == nil || c.Reason != appsv1alpha1.ReasonPaused {
		t.Fatalf("Paused condition %+v", c)
	}
	modify(t, j, func(j *appsv1alpha1.BroadcastJob) { j.Spec.Paused = false })
	eventually(t, "1 pod", func() (bool, string) { n := len(pods(t, j)); return n == 1, fmt.Sprint(n) })
	kubelet(t, pods(t, j)[0], corev1.PodSucceeded, 0)
	cur = waitStatus(t, j, "done on every node, still open", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return st.Succeeded == 1 && meta.IsStatusConditionTrue(st.Conditions, appsv1alpha1.ConditionReady)
	})
	if cur.Status.Phase != appsv1alpha1.BroadcastJobRunning || condition(cur, appsv1alpha1.BroadcastJobConditionComplete) != nil {
		t.Fatalf("completionPolicy Never completed: %+v", cur.Status)
	}
	if c := condition(cur, appsv1alpha1.ConditionReady); c.Reason != appsv1alpha1.BroadcastJobReasonAllNodesDone {
		t.Fatalf("Ready reason %q", c.Reason)
	}
	// A node that joins later runs it too.
	late := f.node("late", nil)
	eventually(t, "a pod on the new node", func() (bool, string) {
		n := len(byNode(pods(t, j))[late.Name])
		return n == 1, fmt.Sprint(n)
	})
	waitStatus(t, j, "reconciling again", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return st.Desired == 2 && meta.IsStatusConditionTrue(st.Conditions, appsv1alpha1.ConditionReconciling)
	})
	// Paused again: the running pod keeps running, a new node waits.
	modify(t, j, func(j *appsv1alpha1.BroadcastJob) { j.Spec.Paused = true })
	waitStatus(t, j, "paused", func(st *appsv1alpha1.BroadcastJobStatus) bool { return st.Phase == appsv1alpha1.BroadcastJobPaused })
	f.node("later", nil)
	waitStatus(t, j, "3 desired", func(st *appsv1alpha1.BroadcastJobStatus) bool { return st.Desired == 3 })
	ps := pods(t, j)
	if len(ps) != 2 || len(live(ps)) != 2 {
		t.Fatalf("paused: want the 2 pods kept and none new, have %d (%d live)", len(ps), len(live(ps)))
	}
}

func TestOnFailureRestartsCountTowardRestartLimit(t *testing.T) {
	f := setup(t)
	f.node("a", nil)
	j := f.create(f.job("onfailure", func(j *appsv1alpha1.BroadcastJob) {
		j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
		j.Spec.FailurePolicy.RestartLimit = 2
	}))
	eventually(t, "1 pod", func() (bool, string) { n := len(pods(t, j)); return n == 1, fmt.Sprint(n) })
	p := pods(t, j)[0]
	kubelet(t, p, corev1.PodRunning, 2)
	waitStatus(t, j, "running with 2 restarts", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return st.Active == 1 && st.Phase == appsv1alpha1.BroadcastJobRunning
	})
	kubelet(t, p, corev1.PodRunning, 3)
	cur := waitStatus(t, j, "failed", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return st.Phase == appsv1alpha1.BroadcastJobFailed
	})
	if cur.Status.Failed != 1 {
		t.Fatalf("status %+v", cur.Status)
	}
	eventually(t, "the crash-looping pod deleted", func() (bool, string) {
		n := len(live(pods(t, j)))
		return n == 0, fmt.Sprint(n)
	})
}

func TestUnscheduledPodLeavesWithItsNode(t *testing.T) {
	f := setup(t)
	a := f.node("a", map[string]string{"role": "cache"})
	f.node("b", map[string]string{"role": "cache"})
	j := f.create(f.job("labels", func(j *appsv1alpha1.BroadcastJob) {
		j.Spec.Template.Spec.NodeSelector["role"] = "cache"
	}))
	eventually(t, "2 pods", func() (bool, string) { n := len(pods(t, j)); return n == 2, fmt.Sprint(n) })
	// a loses the label before its pod was scheduled: the pod could never
	// run, it goes and a no longer counts.
	cur := &corev1.Node{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(a), cur); err != nil {
		t.Fatal(err)
	}
	delete(cur.Labels, "role")
	if err := k8s.Update(context.Background(), cur); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a's pod deleted", func() (bool, string) {
		n := len(live(byNode(pods(t, j))[a.Name]))
		return n == 0, fmt.Sprint(n)
	})
	waitStatus(t, j, "1 desired", func(st *appsv1alpha1.BroadcastJobStatus) bool { return st.Desired == 1 })
}

// reconciler is a test-driven reconciler with a fake clock, for the jobs
// labelled manualLabel.
type reconciler struct {
	t     *testing.T
	clock *clocktesting.FakeClock
	r     *broadcastjob.Reconciler
}

func newReconciler(t *testing.T) *reconciler {
	clk := clocktesting.NewFakeClock(time.Now())
	return &reconciler{t: t, clock: clk,
		r: broadcastjob.New(manual, clk, mgrManual.GetEventRecorder("test"), 4, time.Nanosecond)}
}

// reconcile runs reconciles until one is not waiting for the cache, and
// returns its result. The clock moves a microsecond per reconcile, so that
// status writes are never held back by the write limiter.
func (r *reconciler) reconcile(j *appsv1alpha1.BroadcastJob) reconcile.Result {
	r.t.Helper()
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: j.Namespace, Name: j.Name}}
	for range 600 {
		r.clock.Step(time.Microsecond)
		res, err := r.r.Reconcile(context.Background(), req)
		if err != nil {
			r.t.Fatalf("reconcile: %v", err)
		}
		if res.RequeueAfter != 5*time.Second && res.RequeueAfter != 250*time.Millisecond {
			return res
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatal("the cache never caught up")
	return reconcile.Result{}
}

// until reconciles until the job's status (in the manual cache) satisfies ok.
func (r *reconciler) until(j *appsv1alpha1.BroadcastJob, what string, ok func(*appsv1alpha1.BroadcastJob) bool) reconcile.Result {
	r.t.Helper()
	var res reconcile.Result
	eventually(r.t, what, func() (bool, string) {
		res = r.reconcile(j)
		cur := &appsv1alpha1.BroadcastJob{}
		if err := manual.Get(context.Background(), client.ObjectKeyFromObject(j), cur); err != nil {
			return false, err.Error()
		}
		return ok(cur), fmt.Sprintf("%+v", cur.Status)
	})
	return res
}

func manualJob(j *appsv1alpha1.BroadcastJob) { j.Labels = map[string]string{manualLabel: "true"} }

func TestActiveDeadline(t *testing.T) {
	f := setup(t)
	f.node("a", nil)
	f.node("b", nil)
	r := newReconciler(t)
	j := f.create(f.job("deadline", manualJob, func(j *appsv1alpha1.BroadcastJob) {
		j.Spec.CompletionPolicy.ActiveDeadlineSeconds = ptr.To[int64](30)
	}))
	res := r.until(j, "2 pods", func(*appsv1alpha1.BroadcastJob) bool { return len(pods(t, j)) == 2 })
	r.until(j, "started", func(cur *appsv1alpha1.BroadcastJob) bool { return cur.Status.StartTime != nil })
	if res.RequeueAfter <= 29*time.Second || res.RequeueAfter > 30*time.Second {
		t.Fatalf("requeue after %s, want the deadline (30s)", res.RequeueAfter)
	}
	kubelet(t, pods(t, j)[0], corev1.PodSucceeded, 0)
	r.until(j, "one succeeded", func(cur *appsv1alpha1.BroadcastJob) bool { return cur.Status.Succeeded == 1 })
	r.clock.Step(29 * time.Second)
	r.reconcile(j)
	if cur := get(t, j); cur.Status.Phase != appsv1alpha1.BroadcastJobRunning {
		t.Fatalf("failed before the deadline: %+v", cur.Status)
	}
	r.clock.Step(time.Second)
	r.until(j, "failed", func(cur *appsv1alpha1.BroadcastJob) bool { return cur.Status.Phase == appsv1alpha1.BroadcastJobFailed })
	cur := get(t, j)
	if c := condition(cur, appsv1alpha1.BroadcastJobConditionFailed); c == nil || c.Reason != appsv1alpha1.BroadcastJobReasonDeadlineExceeded {
		t.Fatalf("Failed condition %+v", c)
	}
	if len(live(pods(t, j))) != 1 {
		t.Fatalf("want the succeeded pod kept and the active one deleted: %d live", len(live(pods(t, j))))
	}
	for _, p := range live(pods(t, j)) {
		if p.Status.Phase != corev1.PodSucceeded {
			t.Fatalf("active pod %s not deleted", p.Name)
		}
	}
}

func TestTTLAfterFinished(t *testing.T) {
	f := setup(t)
	f.node("a", nil)
	r := newReconciler(t)
	j := f.create(f.job("ttl", manualJob, func(j *appsv1alpha1.BroadcastJob) {
		j.Spec.CompletionPolicy.TTLSecondsAfterFinished = ptr.To[int32](600)
	}))
	r.until(j, "1 pod", func(*appsv1alpha1.BroadcastJob) bool { return len(pods(t, j)) == 1 })
	kubelet(t, pods(t, j)[0], corev1.PodSucceeded, 0)
	res := r.until(j, "completed", func(cur *appsv1alpha1.BroadcastJob) bool {
		return cur.Status.Phase == appsv1alpha1.BroadcastJobCompleted
	})
	if res.RequeueAfter <= 599*time.Second || res.RequeueAfter > 600*time.Second {
		t.Fatalf("requeue after %s, want the TTL (600s)", res.RequeueAfter)
	}
	r.clock.Step(599 * time.Second)
	if res := r.reconcile(j); res.RequeueAfter <= 0 || res.RequeueAfter > time.Second {
		t.Fatalf("requeue after %s one second before the TTL", res.RequeueAfter)
	}
	get(t, j) // still there
	r.clock.Step(time.Second)
	r.reconcile(j)
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(j), &appsv1alpha1.BroadcastJob{}); !apierrors.IsNotFound(err) {
		t.Fatalf("job not deleted after its TTL: %v", err)
	}
}

// A pod creation the API server refuses (here pod validation, stricter
// than the CRD's schema: a container name with capitals) stalls the job
// with the error; fixing the template, which only pods created afterwards
// use, lets it go on.
func TestRefusedPodCreationStallsTheJob(t *testing.T) {
	f := setup(t)
	f.node("a", nil)
	j := f.create(f.job("refused", func(j *appsv1alpha1.BroadcastJob) { j.Spec.Template.Spec.Containers[0].Name = "Task" }))
	cur := waitStatus(t, j, "stalled", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return meta.IsStatusConditionTrue(st.Conditions, appsv1alpha1.ConditionStalled)
	})
	c := condition(cur, appsv1alpha1.ConditionStalled)
	if c.Reason != appsv1alpha1.ReasonCreateFailed || !strings.Contains(c.Message, "creating pods") || !strings.Contains(c.Message, "Task") {
		t.Fatalf("Stalled condition %+v", c)
	}
	if r := condition(cur, appsv1alpha1.ConditionReady); r == nil || r.Status != metav1.ConditionFalse || r.Reason != appsv1alpha1.ReasonCreateFailed {
		t.Fatalf("Ready %+v", r)
	}
	modify(t, j, func(j *appsv1alpha1.BroadcastJob) { j.Spec.Template.Spec.Containers[0].Name = "task" })
	eventually(t, "a pod", func() (bool, string) { n := len(pods(t, j)); return n == 1, fmt.Sprint(n) })
	waitStatus(t, j, "no longer stalled", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return meta.IsStatusConditionFalse(st.Conditions, appsv1alpha1.ConditionStalled) && st.Active == 1
	})
}
