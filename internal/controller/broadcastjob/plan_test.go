package broadcastjob

import (
	"fmt"
	"math/rand"
	"reflect"
	"sort"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

const (
	always   = appsv1alpha1.AlwaysBroadcastJobCompletionPolicyType
	never    = appsv1alpha1.NeverBroadcastJobCompletionPolicyType
	cont     = appsv1alpha1.ContinueBroadcastJobFailurePolicyType
	failFast = appsv1alpha1.FailFastBroadcastJobFailurePolicyType
	pause    = appsv1alpha1.PauseBroadcastJobFailurePolicyType

	phRunning   = appsv1alpha1.BroadcastJobRunning
	phPaused    = appsv1alpha1.BroadcastJobPaused
	phCompleted = appsv1alpha1.BroadcastJobCompleted
	phFailed    = appsv1alpha1.BroadcastJobFailed
)

func nodes(names ...string) []nodeInfo {
	out := make([]nodeInfo, len(names))
	for i, n := range names {
		out[i] = nodeInfo{name: n, fits: true}
	}
	return out
}

func unfit(n []nodeInfo, names ...string) []nodeInfo {
	for _, name := range names {
		for i := range n {
			if n[i].name == name {
				n[i].fits = false
			}
		}
	}
	return n
}

func pod(name, node string, phase corev1.PodPhase) podInfo {
	return podInfo{name: name, node: node, phase: phase, bound: phase != corev1.PodPending}
}

func pending(name, node string) podInfo { return pod(name, node, corev1.PodPending) }
func runningPod(name, node string) podInfo {
	return pod(name, node, corev1.PodRunning)
}
func ok(name, node string) podInfo   { return pod(name, node, corev1.PodSucceeded) }
func fail(name, node string) podInfo { return pod(name, node, corev1.PodFailed) }

func terminatingPod(p podInfo) podInfo { p.terminating = true; return p }
func restarted(p podInfo, n int32) podInfo {
	p.restarts = n
	return p
}

func intOrStr(s string) *intstr.IntOrString {
	v := intstr.Parse(s)
	return &v
}

func base(in planInput) planInput {
	if in.completion == "" {
		in.completion = always
	}
	if in.failure == "" {
		in.failure = failFast
	}
	return in
}

func TestComputePlan(t *testing.T) {
	cases := []struct {
		name string
		in   planInput
		// expectations
		create  []string
		deletes []podDelete
		phase   appsv1alpha1.BroadcastJobPhase
		// desired, active, succeeded, failed
		counts  [4]int32
		allDone bool
		check   func(t *testing.T, p plan)
	}{
		{
			name:   "new job: one pod per fitting node",
			in:     planInput{nodes: unfit(nodes("a", "b", "c", "d"), "c")},
			create: []string{"a", "b", "d"}, phase: phRunning, counts: [4]int32{3, 0, 0, 0},
		},
		{
			name:   "a node with a pod gets no second one",
			in:     planInput{nodes: nodes("a", "b"), pods: []podInfo{pending("p1", "a")}},
			create: []string{"b"}, phase: phRunning, counts: [4]int32{2, 1, 0, 0},
		},
		{
			name:   "parallelism counts running pods",
			in:     planInput{nodes: nodes("a", "b", "c", "d", "e"), parallelism: intOrStr("2"), pods: []podInfo{runningPod("p1", "a")}},
			create: []string{"b"}, phase: phRunning, counts: [4]int32{5, 1, 0, 0},
		},
		{
			name:   "parallelism percentage of desired nodes, rounded up",
			in:     planInput{nodes: nodes("a", "b", "c", "d", "e"), parallelism: intOrStr("50%")},
			create: []string{"a", "b", "c"}, phase: phRunning, counts: [4]int32{5, 0, 0, 0},
		},
		{
			name: "finished pods free their slot",
			in: planInput{nodes: nodes("a", "b", "c"), parallelism: intOrStr("1"),
				pods: []podInfo{ok("p1", "a")}},
			create: []string{"b"}, phase: phRunning, counts: [4]int32{3, 0, 1, 0},
		},
		{
			name: "a terminating pod keeps its slot and its node",
			in: planInput{nodes: nodes("a", "b"), parallelism: intOrStr("1"),
				pods: []podInfo{terminatingPod(runningPod("p1", "a"))}},
			phase: phRunning, counts: [4]int32{2, 0, 0, 0},
		},
		{
			name:  "every node succeeded: completed",
			in:    planInput{nodes: nodes("a", "b"), pods: []podInfo{ok("p1", "a"), ok("p2", "b")}},
			phase: phCompleted, counts: [4]int32{2, 0, 2, 0}, allDone: true,
		},
		{
			name:  "completionPolicy Never stays running when every node is done",
			in:    planInput{completion: never, nodes: nodes("a", "b"), pods: []podInfo{ok("p1", "a"), ok("p2", "b")}},
			phase: phRunning, counts: [4]int32{2, 0, 2, 0}, allDone: true,
		},
		{
			name: "completionPolicy Never runs on a node that joined",
			in: planInput{completion: never, nodes: nodes("a", "b", "c"),
				pods: []podInfo{ok("p1", "a"), ok("p2", "b")}},
			create: []string{"c"}, phase: phRunning, counts: [4]int32{3, 0, 2, 0},
		},
		{
			name:  "no node fits: completed",
			in:    planInput{nodes: unfit(nodes("a"), "a")},
			phase: phCompleted, counts: [4]int32{0, 0, 0, 0}, allDone: true,
		},
		{
			name:  "no node fits a young job: not completed yet (the node cache may lag a label)",
			in:    planInput{nodes: unfit(nodes("a"), "a"), young: true},
			phase: phRunning, counts: [4]int32{0, 0, 0, 0}, allDone: true,
		},
		{
			name:  "a young job that fits nodes completes as soon as they are done",
			in:    planInput{nodes: nodes("a"), pods: []podInfo{ok("p1", "a")}, young: true},
			phase: phCompleted, counts: [4]int32{1, 0, 1, 0}, allDone: true,
		},
		{
			name: "Continue: failed nodes counted, the job completes",
			in: planInput{failure: cont, nodes: nodes("a", "b", "c"),
				pods: []podInfo{fail("p1", "a"), ok("p2", "b"), ok("p3", "c")}},
			phase: phCompleted, counts: [4]int32{3, 0, 2, 1}, allDone: true,
		},
		{
			name: "Continue: others go on after a failure",
			in: planInput{failure: cont, nodes: nodes("a", "b", "c"), parallelism: intOrStr("1"),
				pods: []podInfo{fail("p1", "a")}},
			create: []string{"b"}, phase: phRunning, counts: [4]int32{3, 0, 0, 1},
		},
		{
			name: "restartLimit: a failed node is retried",
			in: planInput{failure: failFast, restartLimit: 2, nodes: nodes("a", "b"),
				pods: []podInfo{fail("p1", "a"), fail("p2", "a"), ok("p3", "b")}},
			create: []string{"a"}, phase: phRunning, counts: [4]int32{2, 0, 1, 0},
			check: func(t *testing.T, p plan) {
				if p.retries != 1 {
					t.Errorf("retries = %d, want 1", p.retries)
				}
			},
		},
		{
			name: "restartLimit: a node fails after restartLimit retries",
			in: planInput{failure: cont, restartLimit: 2, nodes: nodes("a", "b"),
				pods: []podInfo{fail("p1", "a"), fail("p2", "a"), fail("p3", "a"), ok("p4", "b")}},
			phase: phCompleted, counts: [4]int32{2, 0, 1, 1}, allDone: true,
		},
		{
			name: "nodes that never ran go before retries",
			in: planInput{failure: cont, restartLimit: 1, parallelism: intOrStr("1"), nodes: nodes("a", "b"),
				pods: []podInfo{fail("p1", "a")}},
			create: []string{"b"}, phase: phRunning, counts: [4]int32{2, 0, 0, 0},
		},
		{
			name: "OnFailure restarts count as retries; a node over the limit frees its slot",
			in: planInput{failure: cont, restartLimit: 1, parallelism: intOrStr("1"), nodes: nodes("a", "b"),
				pods: []podInfo{restarted(runningPod("p1", "a"), 2)}},
			create: []string{"b"}, phase: phRunning, counts: [4]int32{2, 0, 0, 1},
		},
		{
			name: "OnFailure pod over the limit is deleted when the job completes",
			in: planInput{failure: cont, restartLimit: 0, nodes: nodes("a", "b"),
				pods: []podInfo{restarted(runningPod("p1", "a"), 1), ok("p2", "b")}},
			deletes: []podDelete{{"p1", deleteFinished}},
			phase:   phCompleted, counts: [4]int32{2, 0, 1, 1}, allDone: true,
		},
		{
			name: "FailFast: the first failed node fails the job and stops its pods",
			in: planInput{failure: failFast, nodes: nodes("a", "b", "c"),
				pods: []podInfo{fail("p1", "a"), runningPod("p2", "b"), terminatingPod(runningPod("p3", "c"))}},
			deletes: []podDelete{{"p2", deleteFinished}},
			phase:   phFailed, counts: [4]int32{3, 1, 0, 1},
			check: func(t *testing.T, p plan) {
				if p.failedReason != appsv1alpha1.BroadcastJobReasonNodeFailed || p.firstFailedNode != "a" || p.firstFailedPod != "p1" {
					t.Errorf("failure = %q on %q/%q", p.failedReason, p.firstFailedNode, p.firstFailedPod)
				}
			},
		},
		{
			name: "Pause: a new failure pauses the job; running pods go on",
			in: planInput{failure: pause, nodes: nodes("a", "b", "c"),
				pods: []podInfo{fail("p1", "a"), runningPod("p2", "b")}},
			phase: phPaused, counts: [4]int32{3, 1, 0, 1},
			check: func(t *testing.T, p plan) {
				if !p.pausedByFailure || p.acknowledged != 0 {
					t.Errorf("pausedByFailure = %v, acknowledged = %d", p.pausedByFailure, p.acknowledged)
				}
			},
		},
		{
			name: "Pause: held until the spec changes",
			in: planInput{failure: pause, pauseHeld: true, acknowledged: 1, nodes: nodes("a", "b", "c"),
				pods: []podInfo{fail("p1", "a"), ok("p2", "b")}},
			phase: phPaused, counts: [4]int32{3, 0, 1, 1},
		},
		{
			name: "Pause: resuming acknowledges the failures and goes on",
			in: planInput{failure: pause, resumed: true, nodes: nodes("a", "b", "c"),
				pods: []podInfo{fail("p1", "a"), ok("p2", "b")}},
			create: []string{"c"}, phase: phRunning, counts: [4]int32{3, 0, 1, 1},
			check: func(t *testing.T, p plan) {
				if p.pausedByFailure || p.acknowledged != 1 {
					t.Errorf("pausedByFailure = %v, acknowledged = %d", p.pausedByFailure, p.acknowledged)
				}
			},
		},
		{
			name: "Pause: another failure after a resume pauses again",
			in: planInput{failure: pause, acknowledged: 1, nodes: nodes("a", "b", "c"),
				pods: []podInfo{fail("p1", "a"), fail("p2", "b")}},
			phase: phPaused, counts: [4]int32{3, 0, 0, 2},
		},
		{
			name: "Pause: a paused job does not complete",
			in: planInput{failure: pause, nodes: nodes("a", "b"),
				pods: []podInfo{fail("p1", "a"), ok("p2", "b")}},
			phase: phPaused, counts: [4]int32{2, 0, 1, 1}, allDone: true,
		},
		{
			name:  "acknowledged failures follow failed pods that were deleted",
			in:    planInput{failure: pause, acknowledged: 3, nodes: nodes("a", "b"), pods: []podInfo{fail("p1", "a")}},
			phase: phRunning, create: []string{"b"}, counts: [4]int32{2, 0, 0, 1},
			check: func(t *testing.T, p plan) {
				if p.acknowledged != 1 {
					t.Errorf("acknowledged = %d, want 1", p.acknowledged)
				}
			},
		},
		{
			name:  "spec.paused: nothing new starts, nothing stops",
			in:    planInput{paused: true, nodes: nodes("a", "b"), pods: []podInfo{runningPod("p1", "a")}},
			phase: phPaused, counts: [4]int32{2, 1, 0, 0},
		},
		{
			name: "deadline exceeded: failed, active pods deleted",
			in: planInput{deadlineExceeded: true, nodes: nodes("a", "b", "c"),
				pods: []podInfo{ok("p1", "a"), pending("p2", "b"), runningPod("p3", "c")}},
			deletes: []podDelete{{"p2", deleteFinished}, {"p3", deleteFinished}},
			phase:   phFailed, counts: [4]int32{3, 2, 1, 0},
			check: func(t *testing.T, p plan) {
				if p.failedReason != appsv1alpha1.BroadcastJobReasonDeadlineExceeded {
					t.Errorf("reason %q", p.failedReason)
				}
			},
		},
		{
			name: "a finished job only stops pods still running",
			in: planInput{finished: phCompleted, nodes: nodes("a", "b", "c"),
				pods: []podInfo{ok("p1", "a"), runningPod("p2", "b")}},
			deletes: []podDelete{{"p2", deleteFinished}},
			phase:   phCompleted, counts: [4]int32{3, 1, 1, 0},
		},
		{
			name: "an unscheduled pod whose node no longer fits is deleted; the node stops counting",
			in: planInput{nodes: unfit(nodes("a", "b"), "a"),
				pods: []podInfo{pending("p1", "a"), ok("p2", "b")}},
			deletes: []podDelete{{"p1", deleteUnplaceable}},
			phase:   phCompleted, counts: [4]int32{1, 0, 1, 0}, allDone: true,
		},
		{
			name: "an unscheduled pod whose node is gone is deleted",
			in: planInput{nodes: nodes("b"),
				pods: []podInfo{pending("p1", "gone"), runningPod("p2", "b")}},
			deletes: []podDelete{{"p1", deleteUnplaceable}},
			phase:   phRunning, counts: [4]int32{1, 1, 0, 0},
		},
		{
			name: "a node that ran the pod counts after its labels changed",
			in: planInput{nodes: unfit(nodes("a", "b"), "a"),
				pods: []podInfo{runningPod("p1", "a"), ok("p2", "b")}},
			phase: phRunning, counts: [4]int32{2, 1, 1, 0},
		},
		{
			name: "a node that ran the pod counts after it left the cluster",
			in: planInput{nodes: nodes("b"),
				pods: []podInfo{ok("p1", "gone"), ok("p2", "b")}},
			phase: phCompleted, counts: [4]int32{2, 0, 2, 0}, allDone: true,
		},
		{
			name: "a retry due on a node that no longer fits: the node failed",
			in: planInput{failure: cont, restartLimit: 3, nodes: unfit(nodes("a", "b"), "a"),
				pods: []podInfo{fail("p1", "a"), ok("p2", "b")}},
			phase: phCompleted, counts: [4]int32{2, 0, 1, 1}, allDone: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := computePlan(base(tc.in))
			if !reflect.DeepEqual(p.create, tc.create) {
				t.Errorf("create = %v, want %v", p.create, tc.create)
			}
			if !reflect.DeepEqual(p.deletes, tc.deletes) {
				t.Errorf("deletes = %v, want %v", p.deletes, tc.deletes)
			}
			if p.phase != tc.phase {
				t.Errorf("phase = %s, want %s", p.phase, tc.phase)
			}
			if got := [4]int32{p.desired, p.active, p.succeeded, p.failed}; got != tc.counts {
				t.Errorf("desired/active/succeeded/failed = %v, want %v", got, tc.counts)
			}
			if p.allDone != tc.allDone {
				t.Errorf("allDone = %v, want %v", p.allDone, tc.allDone)
			}
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

// TestPlanSimulation drives the planner through random worlds: pods
// start, succeed or fail at random, nodes join, leave and change labels,
// reconciles run at random moments. After every reconcile it checks that
// no node ever has two pods that may run at once, that at most parallelism
// pods may run, and that no node gets more than restartLimit+1 pods; and
// that a job with completionPolicy Always ends in a final phase whose
// counters add up.
func TestPlanSimulation(t *testing.T) {
	for seed := int64(1); seed <= 300; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { simulate(t, seed) })
	}
}

type simPod struct {
	podInfo
	// succeeds is what the pod will do once running.
	succeeds bool
	gone     bool
}

func simulate(t *testing.T, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	policies := []appsv1alpha1.BroadcastJobFailurePolicyType{cont, failFast, pause}
	in := planInput{
		completion:   always,
		failure:      policies[rng.Intn(len(policies))],
		restartLimit: int32(rng.Intn(3)),
	}
	limit := 0 // no limit
	if rng.Intn(3) > 0 {
		limit = 1 + rng.Intn(4)
		in.parallelism = ptr.To(intstr.FromInt32(int32(limit)))
	}
	failRate := rng.Float64() * 0.5
	world := map[string]bool{} // node -> fits
	for i := range 2 + rng.Intn(6) {
		world[fmt.Sprintf("n%d", i)] = rng.Intn(5) > 0
	}
	nextNode := len(world)
	var pods []*simPod
	podsPerNode := map[string]int{}
	seq := 0
	var last, final plan

	check := func(step int) {
		t.Helper()
		busy := map[string]int{}
		nBusy := 0
		for _, p := range pods {
			if p.busy() && !p.gone {
				busy[p.node]++
				nBusy++
			}
		}
		for n, c := range busy {
			if c > 1 {
				t.Fatalf("step %d: node %s has %d pods that may run", step, n, c)
			}
		}
		if limit > 0 && nBusy > limit {
			t.Fatalf("step %d: %d pods may run, parallelism %d", step, nBusy, limit)
		}
		for n, c := range podsPerNode {
			if c > int(in.restartLimit)+1 {
				t.Fatalf("step %d: node %s got %d pods, restartLimit %d", step, n, c, in.restartLimit)
			}
		}
	}

	// advance moves a pod on as a scheduler and kubelet would.
	advance := func(p *simPod) {
		switch {
		case p.terminating:
			p.gone = true
		case p.phase == corev1.PodPending && world[p.node]:
			p.phase, p.bound = corev1.PodRunning, true
		case p.phase == corev1.PodRunning && p.succeeds:
			p.phase = corev1.PodSucceeded
		case p.phase == corev1.PodRunning:
			p.phase = corev1.PodFailed
		}
	}
	// reconcile plans from the world and applies the plan.
	reconcile := func(step int) {
		in.nodes = in.nodes[:0]
		for n, fits := range world {
			in.nodes = append(in.nodes, nodeInfo{name: n, fits: fits})
		}
		in.pods = in.pods[:0]
		byName := map[string]*simPod{}
		var live []*simPod
		for _, p := range pods {
			if !p.gone {
				live = append(live, p)
				in.pods = append(in.pods, p.podInfo)
				byName[p.name] = p
			}
		}
		pods = live
		last = computePlan(in)
		in.resumed = false
		in.acknowledged = last.acknowledged
		in.pauseHeld = last.pausedByFailure
		if in.finished == "" && (last.phase == phCompleted || last.phase == phFailed) {
			in.finished, final = last.phase, last
		}
		for _, d := range last.deletes {
			p := byName[d.pod]
			if p.bound {
				p.terminating = true
			} else {
				p.gone = true
				podsPerNode[p.node]-- // it never ran
			}
		}
		for _, n := range last.create {
			seq++
			pods = append(pods, &simPod{podInfo: podInfo{name: fmt.Sprintf("p%d", seq), node: n, phase: corev1.PodPending}, succeeds: rng.Float64() >= failRate})
			podsPerNode[n]++
		}
		check(step)
	}

	for step := range 400 {
		switch r := rng.Intn(10); {
		case r < 5: // a pod moves on
			if len(pods) > 0 {
				advance(pods[rng.Intn(len(pods))])
			}
		case r < 6 && step < 200 && len(pods) > 0 && rng.Intn(3) == 0: // a user deletes a pod
			p := pods[rng.Intn(len(pods))]
			if p.busy() && !p.terminating && !p.gone {
				p.terminating = true
				podsPerNode[p.node]-- // its node runs the job again
			}
		case r < 6 && step < 200: // a node joins, leaves or changes
			switch rng.Intn(4) {
			case 3:
				if n := pick(rng, world); n != "" {
					delete(world, n)
				}
			case 0:
				world[fmt.Sprintf("n%d", nextNode)] = true
				nextNode++
			case 1:
				if n := pick(rng, world); n != "" {
					world[n] = !world[n]
				}
			case 2:
				if in.failure == pause && rng.Intn(2) == 0 {
					in.resumed = true // the user acknowledges
				}
			}
		default:
			reconcile(step)
		}
	}
	// Let everything finish: every pod moves on, reconciles follow, and a
	// user resumes a job paused by a failure.
	for step := 400; step < 600; step++ {
		for _, p := range pods {
			advance(p)
		}
		if in.pauseHeld {
			in.resumed = true
		}
		reconcile(step)
	}
	if in.finished == "" {
		t.Fatalf("job did not finish: %+v", last)
	}
	// Counters are those of the reconcile that finished the job (status
	// keeps them).
	last = final
	if last.phase == phCompleted {
		if last.succeeded+last.failed != last.desired {
			t.Fatalf("completed with %d succeeded + %d failed of %d desired", last.succeeded, last.failed, last.desired)
		}
		if in.failure == failFast && last.failed > 0 {
			t.Fatalf("FailFast completed with %d failed nodes", last.failed)
		}
	}
	if last.phase == phFailed && last.failed == 0 {
		t.Fatalf("failed without a failed node: %+v", last)
	}
}

// pick returns a random node of world ("" when empty), reproducibly.
func pick(rng *rand.Rand, world map[string]bool) string {
	if len(world) == 0 {
		return ""
	}
	names := make([]string, 0, len(world))
	for n := range world {
		names = append(names, n)
	}
	sort.Strings(names)
	return names[rng.Intn(len(names))]
}
