package broadcastjob

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/nodeplacement"
	"github.com/drover-dev/drover/test/e2e/framework"
)

const timeout = 90 * time.Second

// kwok pod stage annotations (config/kwok/pod-complete.yaml): a job pod
// finishes with this exit code after the delay (default 1s).
const (
	annExitCode      = "kwok.drover.dev/exit-code"
	annCompleteDelay = "kwok.drover.dev/complete-delay"
)

func bg() context.Context { return context.Background() }

type option func(*appsv1alpha1.BroadcastJob)

// newJob is a job whose pods run until they get an exit code (exitCode ""
// : never by themselves; the test annotates them).
func newJob(ns, name, exitCode string, opts ...option) *appsv1alpha1.BroadcastJob {
	j := &appsv1alpha1.BroadcastJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1alpha1.BroadcastJobSpec{
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}, Annotations: map[string]string{}},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "task", Image: "busybox:1.36", Command: []string{"sh", "-c", "true"}}},
				},
			},
		},
	}
	if exitCode != "" {
		j.Spec.Template.Annotations[annExitCode] = exitCode
	}
	for _, o := range opts {
		o(j)
	}
	return j
}

func onNodesLabelled(label string) option {
	return func(j *appsv1alpha1.BroadcastJob) {
		j.Spec.Template.Spec.NodeSelector = map[string]string{label: "yes"}
	}
}

func completeDelay(d string) option {
	return func(j *appsv1alpha1.BroadcastJob) { j.Spec.Template.Annotations[annCompleteDelay] = d }
}

// pods returns the job's pods, terminating ones included, by name.
func pods(t *testing.T, j *appsv1alpha1.BroadcastJob) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := framework.Client().List(bg(), &list, client.InNamespace(j.Namespace),
		client.MatchingLabels{appsv1alpha1.LabelBroadcastJob: j.Name}); err != nil {
		t.Fatalf("list pods: %v", err)
	}
	sort.Slice(list.Items, func(a, b int) bool { return list.Items[a].Name < list.Items[b].Name })
	return list.Items
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

func byNode(ps []corev1.Pod) map[string][]corev1.Pod {
	out := map[string][]corev1.Pod{}
	for _, p := range ps {
		n := nodeplacement.NodeOf(&p)
		out[n] = append(out[n], p)
	}
	return out
}

func finishedPod(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// running returns the job's pods that are Running.
func running(t *testing.T, j *appsv1alpha1.BroadcastJob) []corev1.Pod {
	t.Helper()
	var out []corev1.Pod
	for _, p := range live(pods(t, j)) {
		if p.Status.Phase == corev1.PodRunning {
			out = append(out, p)
		}
	}
	return out
}

// exit makes a running pod finish with code (the kwok stage reads the
// annotation), standing in for its command ending.
func exit(t *testing.T, p corev1.Pod, code string) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q,%q:"100ms"}}}`, annExitCode, code, annCompleteDelay)
	if err := framework.Client().Patch(bg(), &p, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatalf("patch pod %s: %v", p.Name, err)
	}
}

// waitStatus waits until the job's status, for its generation, satisfies ok.
func waitStatus(t *testing.T, j *appsv1alpha1.BroadcastJob, what string, ok func(*appsv1alpha1.BroadcastJobStatus) bool) *appsv1alpha1.BroadcastJob {
	t.Helper()
	return framework.WaitFor(t, timeout, j, func(cur *appsv1alpha1.BroadcastJob) error {
		if cur.Status.ObservedGeneration != cur.Generation || !ok(&cur.Status) {
			return fmt.Errorf("job %s not %s: %+v", j.Name, what, cur.Status)
		}
		return nil
	})
}

func phase(p appsv1alpha1.BroadcastJobPhase) func(*appsv1alpha1.BroadcastJobStatus) bool {
	return func(st *appsv1alpha1.BroadcastJobStatus) bool { return st.Phase == p }
}

func counts(st *appsv1alpha1.BroadcastJobStatus) [4]int32 {
	return [4]int32{st.Desired, st.Active, st.Succeeded, st.Failed}
}

func condition(j *appsv1alpha1.BroadcastJob, typ string) *metav1.Condition {
	return meta.FindStatusCondition(j.Status.Conditions, typ)
}

// nodes returns the cluster's node names, sorted.
func nodes(t *testing.T) []string {
	t.Helper()
	var list corev1.NodeList
	if err := framework.Client().List(bg(), &list); err != nil {
		t.Fatalf("list nodes: %v", err)
	}
	var out []string
	for _, n := range list.Items {
		if n.DeletionTimestamp == nil {
			out = append(out, n.Name)
		}
	}
	sort.Strings(out)
	return out
}

// label returns a label key of the test's own and puts it (value "yes") on
// the given nodes; the label goes when the test ends. Nodes are shared by
// every test of the suite: each test selects nodes by its own label.
func label(t *testing.T, names ...string) string {
	t.Helper()
	key := "e2e.drover.dev/bcj-" + rand.String(6)
	for _, n := range names {
		setNodeLabel(t, n, key, "yes")
	}
	t.Cleanup(func() {
		for _, n := range names {
			node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}
			patch := fmt.Sprintf(`{"metadata":{"labels":{%q:null}}}`, key)
			_ = framework.Client().Patch(bg(), node, client.RawPatch(types.MergePatchType, []byte(patch)))
		}
	})
	return key
}

func setNodeLabel(t *testing.T, node, key, value string) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}
	v := "null"
	if value != "" {
		v = fmt.Sprintf("%q", value)
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, key, v)
	if err := framework.Client().Patch(bg(), n, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatalf("label node %s: %v", node, err)
	}
}

// recorder watches a namespace's pods from a consistent list onwards and
// checks an invariant on the set of pods after every event.
type recorder struct{ *framework.PodRecorder }

func record(t *testing.T, ns string, check func(map[string]*corev1.Pod) error) *recorder {
	t.Helper()
	return &recorder{framework.RecordPods(t, ns, func(_ framework.PodEvent, pods map[string]*corev1.Pod) error {
		return check(pods)
	})}
}

// assertNoViolations stops the recorder and fails the test if it saw no
// pod event or a violation.
func (r *recorder) assertNoViolations(t *testing.T) {
	t.Helper()
	r.Stop()
	if r.Events() == 0 {
		t.Fatal("the watch saw no pod event")
	}
	r.AssertNoViolations(t)
}

// atMostOnePerNode checks that no node has two pods of the set that may
// still run, and that at most limit such pods exist (limit 0: no limit).
func atMostOnePerNode(limit int) func(map[string]*corev1.Pod) error {
	return func(ps map[string]*corev1.Pod) error {
		perNode := map[string]int{}
		n := 0
		for _, p := range ps {
			if finishedPod(p) {
				continue
			}
			n++
			perNode[nodeplacement.NodeOf(p)]++
			if perNode[nodeplacement.NodeOf(p)] > 1 {
				return fmt.Errorf("node %s has %d unfinished pods", nodeplacement.NodeOf(p), perNode[nodeplacement.NodeOf(p)])
			}
		}
		if limit > 0 && n > limit {
			return fmt.Errorf("%d unfinished pods, parallelism %d", n, limit)
		}
		return nil
	}
}
