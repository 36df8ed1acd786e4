package framework

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/drover-dev/drover/internal/inplace"
)

// PodEvent is one step of a namespace's pod history as a PodRecorder saw
// it. Index is 0 for the pods of the initial list and counts the watch
// events from 1 on.
type PodEvent struct {
	Index int
	Type  watch.EventType
	Pod   *corev1.Pod
}

// PodCheck checks an invariant on the namespace's pods, by name, as they are
// right after a watch event; an error is a violation.
type PodCheck func(ev PodEvent, pods map[string]*corev1.Pod) error

// PodHook sees every pod of the initial list (Index 0) and every watch
// event, before the recorder's pod set is updated with it. It runs under
// the recorder's lock: per-kind bookkeeping (gate history, revision order)
// needs no lock of its own if read through PodRecorder.Locked.
type PodHook func(ev PodEvent)

// maxViolations bounds the violations a recorder keeps.
const maxViolations = 20

// PodRecorder watches a namespace's pods from a consistent list onwards,
// keeps the latest version of each pod by name and runs a check after every
// watch event: it observes every state the API server went through, not
// samples.
type PodRecorder struct {
	mu         sync.Mutex
	pods       map[string]*corev1.Pod
	events     int
	check      PodCheck
	hooks      []PodHook
	violations []string
	stop       func()
}

// RecordPods starts recording ns's pods; check (may be nil) runs after every
// watch event, hooks see every listed pod and event. The recorder stops when
// the test ends, or earlier with Stop.
func RecordPods(t testing.TB, ns string, check PodCheck, hooks ...PodHook) *PodRecorder {
	t.Helper()
	r := &PodRecorder{pods: map[string]*corev1.Pod{}, check: check, hooks: hooks}
	ctx, cancel := context.WithCancel(context.Background())
	api := Clientset().CoreV1().Pods(ns)
	list, err := api.List(ctx, metav1.ListOptions{})
	if err != nil {
		cancel()
		t.Fatalf("list pods: %v", err)
	}
	r.mu.Lock()
	for i := range list.Items {
		p := &list.Items[i]
		r.hook(PodEvent{Type: watch.Added, Pod: p})
		r.pods[p.Name] = p
	}
	r.mu.Unlock()
	w, err := api.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
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

func (r *PodRecorder) hook(ev PodEvent) {
	for _, h := range r.hooks {
		h(ev)
	}
}

func (r *PodRecorder) observe(typ watch.EventType, p *corev1.Pod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events++
	ev := PodEvent{Index: r.events, Type: typ, Pod: p}
	r.hook(ev)
	if typ == watch.Deleted {
		delete(r.pods, p.Name)
	} else {
		r.pods[p.Name] = p
	}
	if r.check == nil {
		return
	}
	if err := r.check(ev, r.pods); err != nil && len(r.violations) < maxViolations {
		r.violations = append(r.violations, fmt.Sprintf("event %d (%s %s): %v", ev.Index, typ, p.Name, err))
	}
}

// Stop stops watching and waits for the last event to be handled. It may be
// called more than once.
func (r *PodRecorder) Stop() { r.stop() }

// Events returns the number of watch events seen so far.
func (r *PodRecorder) Events() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events
}

// Violations returns the check's violations so far (at most 20).
func (r *PodRecorder) Violations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.violations...)
}

// Locked runs f under the recorder's lock, the one hooks and the check run
// under.
func (r *PodRecorder) Locked(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f()
}

// AssertNoViolations fails the test if the check reported any violation.
func (r *PodRecorder) AssertNoViolations(t testing.TB) {
	t.Helper()
	if v := r.Violations(); len(v) > 0 {
		t.Fatalf("invariant violated %d times over %d events, first: %s", len(v), r.Events(), strings.Join(v, "\n"))
	}
}

// GateHistory is a PodHook keeping, per pod, the successive statuses of the
// in-place readiness gate (consecutive repeats collapsed).
type GateHistory struct {
	gates map[string][]corev1.ConditionStatus
}

// NewGateHistory returns an empty history; pass its Observe to RecordPods.
func NewGateHistory() *GateHistory {
	return &GateHistory{gates: map[string][]corev1.ConditionStatus{}}
}

// Observe records the gate status of a listed or updated pod.
func (g *GateHistory) Observe(ev PodEvent) {
	if ev.Type == watch.Deleted {
		return
	}
	s := inplace.GateStatus(ev.Pod)
	if seq := g.gates[ev.Pod.Name]; s != "" && (len(seq) == 0 || seq[len(seq)-1] != s) {
		g.gates[ev.Pod.Name] = append(seq, s)
	}
}

// Sequence returns the gate statuses pod name went through; call it
// through PodRecorder.Locked while the recorder runs, or after Stop.
func (g *GateHistory) Sequence(name string) []corev1.ConditionStatus {
	return append([]corev1.ConditionStatus(nil), g.gates[name]...)
}

// ContainerStatus returns the status of container name of p (zero if
// none).
func ContainerStatus(p *corev1.Pod, name string) corev1.ContainerStatus {
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == name {
			return s
		}
	}
	return corev1.ContainerStatus{}
}

// UIDs returns the pods' UIDs by name.
func UIDs(pods []corev1.Pod) map[string]string {
	out := map[string]string{}
	for _, p := range pods {
		out[p.Name] = string(p.UID)
	}
	return out
}

// Kubectl runs kubectl against the suite's cluster and returns its
// combined output, failing the test on an error. It uses the kubectl
// built by `make tools` (bin/kubectl), else the machine's.
func Kubectl(t testing.TB, args ...string) string {
	t.Helper()
	bin := "kubectl"
	if root, err := RepoRoot(); err == nil {
		if p := filepath.Join(root, "bin", "kubectl"); fileExists(p) {
			bin = p
		}
	}
	out, err := exec.Command(bin, append([]string{"--kubeconfig", Cluster().KubeconfigPath()}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
