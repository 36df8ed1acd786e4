package sidecarset

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/drover-dev/drover/internal/podcontrol"
)

// podView is what the planner knows about one matched pod.
type podView struct {
	pod   *corev1.Pod
	ready bool
	// updated: the pod runs the latest revision and nothing is left to do.
	updated bool
	// upgradable: the pod was injected with a revision that differs from
	// the latest in images only.
	upgradable bool
	// inScope: updateStrategy.selector selects the pod.
	inScope bool
	// inFlight: this SidecarSet's upgrade of the pod is under way (an
	// engine run not done, or a HotUpgrade slot left to retire).
	inFlight bool
	// blocked: another in-place update of the pod (its workload's, or
	// another SidecarSet's) is under way; the pod waits for it.
	blocked bool
	// next is the step the pod needs (kind stepNone when none).
	next step
	// changing are the sidecars whose image the run under way changes
	// (in flight only), for their upgrade.maxUnavailable.
	changing []string
	// state is the pod's sidecar-track engine state.
	state podcontrol.ParsedState
}

// planInput is everything the planner needs; it holds no client.
type planInput struct {
	pods []*podView
	// partition and maxUnavailable resolved against len(pods).
	partition, maxUnavailable int
	// caps are the per-container upgrade.maxUnavailable, resolved.
	caps map[string]int
	// stopped: updateStrategy NotUpdate or paused: no upgrade starts.
	stopped bool
	// sortForUpdate orders candidates (priority, scatter, not-ready first).
	sortForUpdate func([]*podView) []*podView
}

// plan returns the pods whose upgrade starts now. Pods already in flight
// go on regardless (they already count against the budgets):
//
//   - partition: at most len(pods)-partition pods are updated or in flight;
//   - maxUnavailable: pods not ready or in flight count as unavailable;
//     starting a ready pod uses one unit of the budget, a pod that is not
//     ready none (it is unavailable already);
//   - each sidecar's upgrade.maxUnavailable caps the pods in flight whose
//     run changes that sidecar's image.
func plan(in planInput) []*podView {
	if in.stopped {
		return nil
	}
	unavailable, updatedOrFlying := 0, 0
	used := map[string]int{}
	var candidates []*podView
	for _, v := range in.pods {
		if !v.ready || v.inFlight {
			unavailable++
		}
		if v.updated || v.inFlight {
			updatedOrFlying++
		}
		if v.inFlight {
			for _, c := range v.changing {
				used[c]++
			}
		}
		if !v.updated && !v.inFlight && v.upgradable && v.inScope && !v.blocked &&
			v.next.kind != stepNone && v.pod.DeletionTimestamp == nil {
			candidates = append(candidates, v)
		}
	}
	room := len(in.pods) - in.partition - updatedOrFlying
	budget := in.maxUnavailable - unavailable
	if room <= 0 || len(candidates) == 0 {
		return nil
	}
	var out []*podView
	for _, v := range in.sortForUpdate(candidates) {
		if room == 0 {
			break
		}
		cost := 0
		if v.ready {
			cost = 1
		}
		if cost > 0 && cost > budget {
			continue
		}
		fits := true
		for _, c := range v.next.containers {
			if limit, ok := in.caps[c]; ok && used[c]+1 > limit {
				fits = false
			}
		}
		if !fits {
			continue
		}
		for _, c := range v.next.containers {
			used[c]++
		}
		budget -= cost
		room--
		out = append(out, v)
	}
	return out
}

// scaled resolves an int-or-percent against total; unset gives def.
func scaled(v *intstr.IntOrString, total int, roundUp bool, def int) int {
	if v == nil {
		return def
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(v, total, roundUp)
	if err != nil || n < 0 {
		return def
	}
	return n
}
