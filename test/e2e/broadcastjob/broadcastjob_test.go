// Package broadcastjob holds the BroadcastJob end-to-end tests: the user
// stories of the BroadcastJob guide, run against a real API server and
// scheduler with simulated nodes (kwok) and the drover-manager binary. A
// job pod finishes when it carries the annotation kwok.drover.dev/exit-code
// (0: Succeeded, else Failed), from its template or patched on by a test.
package broadcastjob

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/test/e2e/framework"
)

func TestMain(m *testing.M) {
	os.Exit(framework.Run(m, framework.Options{
		Nodes:       4,
		AddToScheme: []func(*runtime.Scheme) error{appsv1alpha1.AddToScheme},
	}))
}

// The brief's example, applied unchanged but for apiVersion, runs its
// cleanup pod once on every node and completes. kwok runs no command:
// the test stands in for "rm -rf" ending by giving each pod its exit code.
// Not parallel: it targets every node, and TestNeverRunsOnNodesThatJoinLater
// changes the node count.
func TestBriefExampleRunsOnEveryNode(t *testing.T) {
	framework.RequireManager(t)
	ns := framework.Namespace(t)
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	framework.Kubectl(t, "apply", "-n", ns, "-f", filepath.Join(root, "examples", "broadcastjob.yaml"))
	j := &appsv1alpha1.BroadcastJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "node-cleanup"}}
	all := nodes(t)
	framework.Eventually(t, timeout, func() error {
		rs := running(t, j)
		if len(rs) != len(all) {
			return fmt.Errorf("%d running pods, want one on each of %d nodes", len(rs), len(all))
		}
		return nil
	})
	by := byNode(pods(t, j))
	for _, n := range all {
		if len(by[n]) != 1 || by[n][0].Spec.NodeName != n {
			t.Fatalf("node %s: pods %v", n, by[n])
		}
	}
	cur := waitStatus(t, j, "running", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return counts(st) == [4]int32{int32(len(all)), int32(len(all)), 0, 0}
	})
	if cur.Status.Phase != appsv1alpha1.BroadcastJobRunning {
		t.Fatalf("phase %s", cur.Status.Phase)
	}
	for _, p := range running(t, j) {
		exit(t, p, "0")
	}
	framework.Kubectl(t, "-n", ns, "wait", "--for=condition=Complete", "bcj/node-cleanup", "--timeout=90s")
	framework.Kubectl(t, "-n", ns, "wait", "--for=condition=Ready", "broadcastjob/node-cleanup", "--timeout=90s")
	cur = framework.Get(t, j)
	if counts(&cur.Status) != [4]int32{int32(len(all)), 0, int32(len(all)), 0} || cur.Status.Phase != appsv1alpha1.BroadcastJobCompleted ||
		cur.Status.CompletionTime == nil || cur.Status.StartTime == nil {
		t.Fatalf("completed status %+v", cur.Status)
	}
	// ttlSecondsAfterFinished is 600: the job stays meanwhile.
	out := framework.Kubectl(t, "-n", ns, "get", "bcj", "node-cleanup")
	for _, col := range []string{"DESIRED", "ACTIVE", "SUCCEEDED", "FAILED", "PHASE", "AGE", "Completed"} {
		if !strings.Contains(out, col) {
			t.Fatalf("kubectl get lacks %s:\n%s", col, out)
		}
	}
	if len(pods(t, j)) != len(all) {
		t.Fatalf("%d pods for %d nodes", len(pods(t, j)), len(all))
	}
}

// completionPolicy Never keeps the job open: a node that joins the
// cluster later runs the pod too. Not parallel: it adds a node.
func TestNeverRunsOnNodesThatJoinLater(t *testing.T) {
	framework.RequireManager(t)
	ns := framework.Namespace(t)
	before := nodes(t)
	j := framework.Create(t, newJob(ns, "agent-setup", "0", func(j *appsv1alpha1.BroadcastJob) {
		j.Spec.CompletionPolicy.Type = appsv1alpha1.NeverBroadcastJobCompletionPolicyType
	}))
	cur := waitStatus(t, j, "done on every node", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return st.Succeeded == int32(len(before)) && meta.IsStatusConditionTrue(st.Conditions, appsv1alpha1.ConditionReady)
	})
	if cur.Status.Phase != appsv1alpha1.BroadcastJobRunning || condition(cur, appsv1alpha1.BroadcastJobConditionComplete) != nil {
		t.Fatalf("completionPolicy Never completed: %+v", cur.Status)
	}
	framework.Kubectl(t, "-n", ns, "wait", "--for=condition=Ready", "bcj/agent-setup", "--timeout=10s")

	if err := framework.Cluster().ScaleNodes(bg(), len(before)+1); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := framework.Cluster().ScaleNodes(bg(), len(before)); err != nil {
			t.Errorf("scale nodes back: %v", err)
		}
	})
	after := nodes(t)
	var added string
	for _, n := range after {
		if !strings.Contains(" "+strings.Join(before, " ")+" ", " "+n+" ") {
			added = n
		}
	}
	if added == "" {
		t.Fatalf("no new node: %v -> %v", before, after)
	}
	cur = waitStatus(t, j, "done on the new node too", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return st.Desired == int32(len(after)) && st.Succeeded == int32(len(after))
	})
	by := byNode(pods(t, j))
	if len(by[added]) != 1 || by[added][0].Status.Phase != corev1.PodSucceeded {
		t.Fatalf("new node %s: pods %v", added, by[added])
	}
	if cur.Status.Phase != appsv1alpha1.BroadcastJobRunning || !meta.IsStatusConditionTrue(cur.Status.Conditions, appsv1alpha1.ConditionReady) {
		t.Fatalf("status %+v", cur.Status)
	}
}

// Pods that exit 0 succeed, others fail; with failurePolicy Continue the
// failed node is counted and the job completes.
func TestSuccessAndFailurePathsWithContinue(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	all := nodes(t)
	key := label(t, all[:3]...)
	j := framework.Create(t, newJob(ns, "mixed", "", onNodesLabelled(key), func(j *appsv1alpha1.BroadcastJob) {
		j.Spec.FailurePolicy.Type = appsv1alpha1.ContinueBroadcastJobFailurePolicyType
	}))
	framework.Eventually(t, timeout, func() error {
		if n := len(running(t, j)); n != 3 {
			return fmt.Errorf("%d running pods, want 3", n)
		}
		return nil
	})
	rs := running(t, j)
	exit(t, rs[0], "3")
	waitStatus(t, j, "one failed node", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return st.Failed == 1 && st.Phase == appsv1alpha1.BroadcastJobRunning
	})
	exit(t, rs[1], "0")
	exit(t, rs[2], "0")
	cur := waitStatus(t, j, "completed", phase(appsv1alpha1.BroadcastJobCompleted))
	if counts(&cur.Status) != [4]int32{3, 0, 2, 1} {
		t.Fatalf("status %+v", cur.Status)
	}
	for _, p := range pods(t, j) {
		want := corev1.PodSucceeded
		if p.Name == rs[0].Name {
			want = corev1.PodFailed
		}
		if p.Status.Phase != want {
			t.Fatalf("pod %s phase %s, want %s", p.Name, p.Status.Phase, want)
		}
	}
	if len(pods(t, j)) != 3 {
		t.Fatalf("%d pods: the failed node was retried with restartLimit 0", len(pods(t, j)))
	}
	if c := condition(cur, appsv1alpha1.BroadcastJobConditionComplete); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("Complete condition %+v", c)
	}
}

// parallelism caps the pods that may run, checked at every pod event the
// API server sends, and a node never has two pods running at once.
func TestParallelismAtEveryWatchEvent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		parallelism intstr.IntOrString
		limit       int
	}{
		{intstr.FromInt32(2), 2},
		{intstr.FromString("25%"), 1}, // of 4 nodes
	} {
		t.Run(tc.parallelism.String(), func(t *testing.T) {
			t.Parallel()
			ns := framework.Namespace(t)
			all := nodes(t)
			key := label(t, all...)
			rec := record(t, ns, atMostOnePerNode(tc.limit))
			j := framework.Create(t, newJob(ns, "par", "0", onNodesLabelled(key), completeDelay("1500ms"), func(j *appsv1alpha1.BroadcastJob) {
				j.Spec.Parallelism = &tc.parallelism
			}))
			cur := waitStatus(t, j, "completed", phase(appsv1alpha1.BroadcastJobCompleted))
			if counts(&cur.Status) != [4]int32{int32(len(all)), 0, int32(len(all)), 0} {
				t.Fatalf("status %+v", cur.Status)
			}
			if n := len(pods(t, j)); n != len(all) {
				t.Fatalf("%d pods for %d nodes", n, len(all))
			}
			rec.assertNoViolations(t)
		})
	}
}

// failurePolicy FailFast (the default): the first failed node fails the
// job, and its other pods are stopped.
func TestFailFastStopsTheJob(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	key := label(t, nodes(t)[:3]...)
	j := framework.Create(t, newJob(ns, "ff", "", onNodesLabelled(key)))
	framework.Eventually(t, timeout, func() error {
		if n := len(running(t, j)); n != 3 {
			return fmt.Errorf("%d running pods, want 3", n)
		}
		return nil
	})
	failing := running(t, j)[1]
	exit(t, failing, "1")
	framework.Kubectl(t, "-n", ns, "wait", "--for=condition=Failed", "bcj/ff", "--timeout=90s")
	cur := framework.Get(t, j)
	c := condition(cur, appsv1alpha1.BroadcastJobConditionFailed)
	if cur.Status.Phase != appsv1alpha1.BroadcastJobFailed || c.Reason != appsv1alpha1.BroadcastJobReasonNodeFailed ||
		!strings.Contains(c.Message, failing.Name) || !strings.Contains(c.Message, "FailFast") {
		t.Fatalf("failed status %+v", cur.Status)
	}
	if !meta.IsStatusConditionTrue(cur.Status.Conditions, appsv1alpha1.ConditionStalled) {
		t.Fatalf("a failed job is not Stalled: %+v", cur.Status.Conditions)
	}
	framework.Eventually(t, timeout, func() error {
		ps := pods(t, j)
		if len(ps) != 1 || ps[0].Name != failing.Name {
			return fmt.Errorf("want only the failed pod left, have %d pods", len(ps))
		}
		return nil
	})
	if cur.Status.Failed != 1 {
		t.Fatalf("status %+v", cur.Status)
	}
}

// restartLimit: a failed node gets a new pod up to restartLimit times
// before it counts as failed.
func TestRestartLimitRetriesANode(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	key := label(t, nodes(t)[:2]...)
	j := framework.Create(t, newJob(ns, "retry", "1", onNodesLabelled(key), func(j *appsv1alpha1.BroadcastJob) {
		j.Spec.FailurePolicy = appsv1alpha1.BroadcastJobFailurePolicy{Type: appsv1alpha1.ContinueBroadcastJobFailurePolicyType, RestartLimit: 2}
	}))
	cur := waitStatus(t, j, "completed", phase(appsv1alpha1.BroadcastJobCompleted))
	if counts(&cur.Status) != [4]int32{2, 0, 0, 2} {
		t.Fatalf("status %+v", cur.Status)
	}
	by := byNode(pods(t, j))
	if len(by) != 2 {
		t.Fatalf("pods on %d nodes", len(by))
	}
	for n, ps := range by {
		if len(ps) != 3 {
			t.Fatalf("node %s got %d pods, want 3 (1 + restartLimit 2)", n, len(ps))
		}
		for _, p := range ps {
			if p.Status.Phase != corev1.PodFailed {
				t.Fatalf("pod %s phase %s", p.Name, p.Status.Phase)
			}
		}
	}
}

// A retry that succeeds: the node counts as succeeded.
func TestRetryThatSucceeds(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	key := label(t, nodes(t)[0])
	j := framework.Create(t, newJob(ns, "flaky", "", onNodesLabelled(key), func(j *appsv1alpha1.BroadcastJob) {
		j.Spec.FailurePolicy.RestartLimit = 1
	}))
	framework.Eventually(t, timeout, func() error {
		if n := len(running(t, j)); n != 1 {
			return fmt.Errorf("%d running pods", n)
		}
		return nil
	})
	first := running(t, j)[0]
	exit(t, first, "2")
	var second corev1.Pod
	framework.Eventually(t, timeout, func() error {
		for _, p := range running(t, j) {
			if p.Name != first.Name {
				second = p
				return nil
			}
		}
		return errors.New("no retry pod running")
	})
	exit(t, second, "0")
	cur := waitStatus(t, j, "completed", phase(appsv1alpha1.BroadcastJobCompleted))
	if counts(&cur.Status) != [4]int32{1, 0, 1, 0} {
		t.Fatalf("status %+v", cur.Status)
	}
}

// The job follows node labels: a node that gains the selected label gets
// the pod.
func TestNodeSelectorFollowsLabels(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	all := nodes(t)
	key := label(t, all[:2]...)
	j := framework.Create(t, newJob(ns, "labelled", "0", onNodesLabelled(key), func(j *appsv1alpha1.BroadcastJob) {
		j.Spec.CompletionPolicy.Type = appsv1alpha1.NeverBroadcastJobCompletionPolicyType
	}))
	waitStatus(t, j, "done on the 2 labelled nodes", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return counts(st) == [4]int32{2, 0, 2, 0} && meta.IsStatusConditionTrue(st.Conditions, appsv1alpha1.ConditionReady)
	})
	by := byNode(pods(t, j))
	if len(by) != 2 || len(by[all[0]]) != 1 || len(by[all[1]]) != 1 {
		t.Fatalf("pods by node %v", by)
	}
	setNodeLabel(t, all[2], key, "yes")
	t.Cleanup(func() { setNodeLabel(t, all[2], key, "") })
	waitStatus(t, j, "done on the newly labelled node", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return counts(st) == [4]int32{3, 0, 3, 0}
	})
	if n := len(byNode(pods(t, j))[all[2]]); n != 1 {
		t.Fatalf("newly labelled node %s got %d pods", all[2], n)
	}
	if n := len(byNode(pods(t, j))[all[3]]); n != 0 {
		t.Fatalf("unlabelled node %s got %d pods", all[3], n)
	}
}

// ttlSecondsAfterFinished deletes a finished job, and its pods with it.
func TestTTLDeletesTheFinishedJob(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	key := label(t, nodes(t)[:2]...)
	j := framework.Create(t, newJob(ns, "ttl", "0", onNodesLabelled(key), func(j *appsv1alpha1.BroadcastJob) {
		j.Spec.CompletionPolicy.TTLSecondsAfterFinished = ptr.To[int32](4)
	}))
	cur := waitStatus(t, j, "completed", phase(appsv1alpha1.BroadcastJobCompleted))
	if cur.Status.CompletionTime == nil || cur.Status.Succeeded != 2 {
		t.Fatalf("status %+v", cur.Status)
	}
	framework.Eventually(t, timeout, func() error {
		err := framework.Client().Get(bg(), client.ObjectKeyFromObject(j), &appsv1alpha1.BroadcastJob{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("job still there: %v", err)
		}
		return nil
	})
	deletedAt := time.Now()
	if deletedAt.Before(cur.Status.CompletionTime.Add(4 * time.Second)) {
		t.Fatalf("job deleted at %s, before completionTime %s + 4s", deletedAt, cur.Status.CompletionTime)
	}
	framework.Eventually(t, timeout, func() error {
		if n := len(pods(t, j)); n != 0 {
			return fmt.Errorf("%d pods left", n)
		}
		return nil
	})
}

// activeDeadlineSeconds: the job fails with DeadlineExceeded and its
// running pods are stopped.
func TestActiveDeadlineFailsTheJob(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	key := label(t, nodes(t)[:2]...)
	j := framework.Create(t, newJob(ns, "deadline", "", onNodesLabelled(key), func(j *appsv1alpha1.BroadcastJob) {
		j.Spec.CompletionPolicy.ActiveDeadlineSeconds = ptr.To[int64](3)
	}))
	framework.Eventually(t, timeout, func() error {
		if n := len(running(t, j)); n != 2 {
			return fmt.Errorf("%d running pods", n)
		}
		return nil
	})
	cur := waitStatus(t, j, "failed", phase(appsv1alpha1.BroadcastJobFailed))
	c := condition(cur, appsv1alpha1.BroadcastJobConditionFailed)
	if c == nil || c.Reason != appsv1alpha1.BroadcastJobReasonDeadlineExceeded {
		t.Fatalf("Failed condition %+v", c)
	}
	if cur.Status.CompletionTime.Sub(cur.Status.StartTime.Time) < 3*time.Second {
		t.Fatalf("failed %s after start, before the deadline", cur.Status.CompletionTime.Sub(cur.Status.StartTime.Time))
	}
	framework.Eventually(t, timeout, func() error {
		if n := len(pods(t, j)); n != 0 {
			return fmt.Errorf("%d pods left", n)
		}
		return nil
	})
}

// paused: no new pod starts, running ones finish; unpausing goes on.
func TestPausedStartsNoNewPod(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	key := label(t, nodes(t)[:3]...)
	j := framework.Create(t, newJob(ns, "paused", "0", onNodesLabelled(key), completeDelay("3s"), func(j *appsv1alpha1.BroadcastJob) {
		j.Spec.Paused = true
		j.Spec.Parallelism = ptr.To(intstr.FromInt32(1))
	}))
	cur := waitStatus(t, j, "paused", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return st.Phase == appsv1alpha1.BroadcastJobPaused && st.Desired == 3
	})
	if n := len(pods(t, j)); n != 0 || cur.Status.StartTime != nil {
		t.Fatalf("a job created paused started: %d pods, %+v", n, cur.Status)
	}
	framework.Modify(t, j, func(j *appsv1alpha1.BroadcastJob) { j.Spec.Paused = false })
	framework.Eventually(t, timeout, func() error {
		if n := len(running(t, j)); n != 1 {
			return fmt.Errorf("%d running pods", n)
		}
		return nil
	})
	framework.Modify(t, j, func(j *appsv1alpha1.BroadcastJob) { j.Spec.Paused = true })
	// The running pod finishes (after 3s); the status written after it
	// did shows that the controller saw it and started nothing.
	cur = waitStatus(t, j, "paused with the pod finished", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return st.Phase == appsv1alpha1.BroadcastJobPaused && st.Succeeded == 1 && st.Active == 0
	})
	if n := len(pods(t, j)); n != 1 {
		t.Fatalf("%d pods while paused", n)
	}
	if c := condition(cur, appsv1alpha1.BroadcastJobConditionPaused); c == nil || c.Reason != appsv1alpha1.ReasonPaused {
		t.Fatalf("Paused condition %+v", c)
	}
	framework.Modify(t, j, func(j *appsv1alpha1.BroadcastJob) { j.Spec.Paused = false })
	cur = waitStatus(t, j, "completed", phase(appsv1alpha1.BroadcastJobCompleted))
	if counts(&cur.Status) != [4]int32{3, 0, 3, 0} {
		t.Fatalf("status %+v", cur.Status)
	}
}

// failurePolicy Pause: the first failed node pauses the job (Stalled, so
// kstatus tools report it); toggling spec.paused acknowledges the failure
// and resumes.
func TestPausePolicyWaitsForTheUser(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	key := label(t, nodes(t)[:3]...)
	j := framework.Create(t, newJob(ns, "careful", "", onNodesLabelled(key), func(j *appsv1alpha1.BroadcastJob) {
		j.Spec.FailurePolicy.Type = appsv1alpha1.PauseBroadcastJobFailurePolicyType
		j.Spec.Parallelism = ptr.To(intstr.FromInt32(1))
	}))
	framework.Eventually(t, timeout, func() error {
		if n := len(running(t, j)); n != 1 {
			return fmt.Errorf("%d running pods", n)
		}
		return nil
	})
	exit(t, running(t, j)[0], "1")
	cur := waitStatus(t, j, "paused by the failure", func(st *appsv1alpha1.BroadcastJobStatus) bool {
		return st.Phase == appsv1alpha1.BroadcastJobPaused && st.Failed == 1 && st.Active == 0
	})
	c := condition(cur, appsv1alpha1.BroadcastJobConditionPaused)
	if c == nil || c.Reason != appsv1alpha1.BroadcastJobReasonNodeFailed || !strings.Contains(c.Message, "spec.paused") {
		t.Fatalf("Paused condition %+v", c)
	}
	if !meta.IsStatusConditionTrue(cur.Status.Conditions, appsv1alpha1.ConditionStalled) {
		t.Fatalf("paused by a failure but not Stalled: %+v", cur.Status.Conditions)
	}
	if n := len(pods(t, j)); n != 1 {
		t.Fatalf("%d pods while paused by the failure", n)
	}
	framework.Modify(t, j, func(j *appsv1alpha1.BroadcastJob) { j.Spec.Paused = true })
	framework.Modify(t, j, func(j *appsv1alpha1.BroadcastJob) { j.Spec.Paused = false })
	framework.Eventually(t, timeout, func() error {
		rs := running(t, j)
		if len(rs) != 1 {
			return fmt.Errorf("%d running pods after resuming", len(rs))
		}
		exit(t, rs[0], "0")
		return nil
	})
	framework.Eventually(t, timeout, func() error {
		for _, p := range running(t, j) {
			exit(t, p, "0")
		}
		cur = framework.Get(t, j)
		if cur.Status.Phase != appsv1alpha1.BroadcastJobCompleted {
			return fmt.Errorf("status %+v", cur.Status)
		}
		return nil
	})
	if counts(&cur.Status) != [4]int32{3, 0, 2, 1} || cur.Status.FailuresAcknowledged != 1 {
		t.Fatalf("status %+v", cur.Status)
	}
}
