package broadcastjob

import (
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

// The planner is a pure function from (spec, nodes, pods, what status
// remembers) to what to do: which nodes get a pod, which pods go, the
// counters and the job's phase. The controller observes and applies.

// nodeInfo is one node of the cluster as the planner sees it.
type nodeInfo struct {
	name string
	// fits: the job's pod template fits the node now (nodeplacement.Fits).
	fits bool
}

// podInfo is one pod of the job as the planner sees it.
type podInfo struct {
	name string
	// node is the node the pod is meant for (nodeplacement.NodeOf).
	node string
	// bound: the scheduler bound the pod (spec.nodeName is set).
	bound       bool
	phase       corev1.PodPhase
	terminating bool
	// restarts is the sum of container restarts (restartPolicy OnFailure:
	// the kubelet retries inside the pod).
	restarts int32
}

func (p podInfo) finished() bool {
	return p.phase == corev1.PodSucceeded || p.phase == corev1.PodFailed
}

// busy: the pod may still run a container, so it takes a parallelism slot.
func (p podInfo) busy() bool { return !p.finished() }

type planInput struct {
	nodes []nodeInfo
	pods  []podInfo

	parallelism  *intstr.IntOrString
	completion   appsv1alpha1.BroadcastJobCompletionPolicyType
	failure      appsv1alpha1.BroadcastJobFailurePolicyType
	restartLimit int32
	// paused is spec.paused.
	paused bool
	// pauseHeld: failurePolicy Pause paused the job at this generation and
	// the spec has not changed since.
	pauseHeld bool
	// resumed: failurePolicy Pause had paused the job at an earlier
	// generation; the spec changed since, which acknowledges every failure
	// seen so far.
	resumed bool
	// acknowledged is status.failuresAcknowledged.
	acknowledged int32
	// deadlineExceeded: activeDeadlineSeconds passed.
	deadlineExceeded bool
	// finished is the job's final phase (Completed or Failed) once reached,
	// "" before: a finished job only deletes pods still running.
	finished appsv1alpha1.BroadcastJobPhase
	// young: the job was created less than noNodeSettle ago. A young job
	// that fits no node does not complete yet: the node cache may not show
	// a label applied just before the job was created.
	young bool
}

// noNodeSettle is how long a job that fits no node waits before it
// completes without running.
const noNodeSettle = 5 * time.Second

// deleteReason says why the plan deletes a pod.
type deleteReason string

const (
	// deleteFinished: the job completed or failed; its pods stop.
	deleteFinished deleteReason = "JobFinished"
	// deleteUnplaceable: the pod was never scheduled and its node is gone
	// or no longer fits the template; it could never run.
	deleteUnplaceable deleteReason = "NodeNotEligible"
)

type podDelete struct {
	pod    string
	reason deleteReason
}

type plan struct {
	// create lists the nodes that get a new pod, in order.
	create  []string
	deletes []podDelete

	desired, active, succeeded, failed int32
	// retries is the number of nodes whose next pod is a retry.
	retries int32
	// waiting is the number of targeted nodes that still need a pod.
	waiting int32
	// allDone: every targeted node ran the pod to the end.
	allDone bool

	phase appsv1alpha1.BroadcastJobPhase
	// failedReason is set when the job fails in this plan (or failed
	// before): DeadlineExceeded or NodeFailed.
	failedReason string
	// pausedByFailure: failurePolicy Pause holds the job.
	pausedByFailure bool
	// acknowledged is the new status.failuresAcknowledged.
	acknowledged int32
	// firstFailed names a failed node and its last failed pod, for
	// messages ("" when none).
	firstFailedNode, firstFailedPod string
}

// nodeState is what a node's pods say about it.
type nodeState struct {
	name      string
	exists    bool
	fits      bool
	pods      []podInfo
	succeeded bool
	// failures counts failed pods and container restarts.
	failures   int32
	lastFailed string
	active     int // pods pending or running, not terminating
	busy       int // pods that may still run (terminating ones included)
	// ran: a pod was bound to the node, or finished there: the job has
	// run on it, so it counts whether or not the template still fits.
	ran bool
}

// node outcomes.
type outcome int

const (
	needsPod outcome = iota
	running
	succeeded
	failed
)

func (n *nodeState) outcome(restartLimit int32) outcome {
	switch {
	case n.succeeded:
		return succeeded
	case n.failures > restartLimit:
		return failed
	case n.busy > 0:
		return running
	case !n.exists || !n.fits:
		// A retry is due but the node is gone or no longer fits: the
		// node cannot run the pod again.
		return failed
	default:
		return needsPod
	}
}

// targeted: the node counts toward desired.
func (n *nodeState) targeted() bool {
	return (n.exists && n.fits) || n.ran
}

func computePlan(in planInput) plan {
	nodes := map[string]*nodeState{}
	get := func(name string) *nodeState {
		n, ok := nodes[name]
		if !ok {
			n = &nodeState{name: name}
			nodes[name] = n
		}
		return n
	}
	for _, n := range in.nodes {
		s := get(n.name)
		s.exists, s.fits = true, n.fits
	}
	var p plan
	slotsUsed := 0
	for _, pod := range in.pods {
		if pod.node == "" {
			// Not a pod this controller made; it still takes a slot.
			if pod.busy() {
				slotsUsed++
			}
			continue
		}
		s := get(pod.node)
		s.pods = append(s.pods, pod)
		switch {
		case pod.phase == corev1.PodSucceeded:
			s.succeeded = true
			s.ran = true
		case pod.phase == corev1.PodFailed:
			s.failures++
			s.lastFailed = pod.name
			s.ran = true
		default:
			s.failures += pod.restarts
			if pod.restarts > 0 {
				s.lastFailed = pod.name
			}
			s.busy++
			if !pod.terminating {
				s.active++
			}
			if pod.bound {
				s.ran = true
			}
		}
	}

	names := make([]string, 0, len(nodes))
	for name := range nodes {
		names = append(names, name)
	}
	sort.Strings(names)

	// Pods that can never run: unscheduled, and their node is gone or no
	// longer fits. They leave; their node stops counting.
	for _, name := range names {
		s := nodes[name]
		if s.exists && s.fits {
			continue
		}
		kept := s.pods[:0:0]
		for _, pod := range s.pods {
			if !pod.bound && !pod.finished() && !pod.terminating {
				p.deletes = append(p.deletes, podDelete{pod: pod.name, reason: deleteUnplaceable})
				s.busy--
				s.active--
				continue
			}
			kept = append(kept, pod)
		}
		s.pods = kept
	}

	var candidates, retries []string
	allDone := true
	for _, name := range names {
		s := nodes[name]
		o := s.outcome(in.restartLimit)
		if o != failed {
			// A node over its restart limit with restartPolicy OnFailure
			// keeps its crash-looping pod until the job finishes; it no
			// longer takes a slot.
			slotsUsed += s.busy
		}
		if !s.targeted() {
			continue
		}
		p.desired++
		switch o {
		case succeeded:
			p.succeeded++
		case failed:
			p.failed++
			if p.firstFailedNode == "" {
				p.firstFailedNode, p.firstFailedPod = s.name, s.lastFailed
			}
		case running:
			p.active += int32(s.active)
			allDone = false
		case needsPod:
			allDone = false
			p.waiting++
			if s.failures > 0 {
				p.retries++
				retries = append(retries, name)
			} else {
				candidates = append(candidates, name)
			}
		}
	}
	p.allDone = allDone

	// Failures acknowledged by resuming a paused job; a count that went
	// down (failed pods deleted) is followed.
	p.acknowledged = min(in.acknowledged, p.failed)
	if in.resumed {
		p.acknowledged = p.failed
	}

	stopAll := func() {
		for _, name := range names {
			for _, pod := range nodes[name].pods {
				if pod.busy() && !pod.terminating {
					p.deletes = append(p.deletes, podDelete{pod: pod.name, reason: deleteFinished})
				}
			}
		}
	}

	switch {
	case in.finished != "":
		p.phase = in.finished
		stopAll()
		return p
	case in.deadlineExceeded:
		p.phase, p.failedReason = appsv1alpha1.BroadcastJobFailed, appsv1alpha1.BroadcastJobReasonDeadlineExceeded
		stopAll()
		return p
	case p.failed > 0 && in.failure == appsv1alpha1.FailFastBroadcastJobFailurePolicyType:
		p.phase, p.failedReason = appsv1alpha1.BroadcastJobFailed, appsv1alpha1.BroadcastJobReasonNodeFailed
		stopAll()
		return p
	}

	p.pausedByFailure = in.failure == appsv1alpha1.PauseBroadcastJobFailurePolicyType &&
		((in.pauseHeld && !in.resumed) || p.failed > p.acknowledged)
	if in.paused || p.pausedByFailure {
		p.phase = appsv1alpha1.BroadcastJobPaused
		return p
	}
	if allDone && in.completion != appsv1alpha1.NeverBroadcastJobCompletionPolicyType && (p.desired > 0 || !in.young) {
		p.phase = appsv1alpha1.BroadcastJobCompleted
		stopAll() // crash-looping OnFailure pods of failed nodes
		return p
	}
	p.phase = appsv1alpha1.BroadcastJobRunning

	limit := slotsUsed + len(candidates) + len(retries) // no parallelism: no limit
	if in.parallelism != nil {
		n, err := intstr.GetScaledValueFromIntOrPercent(in.parallelism, int(p.desired), true)
		if err == nil && n >= 0 {
			limit = n
		}
	}
	free := max(0, limit-slotsUsed)
	// Nodes that never ran the pod go before retries.
	for _, name := range append(candidates, retries...) {
		if free == 0 {
			break
		}
		p.create = append(p.create, name)
		free--
	}
	return p
}
