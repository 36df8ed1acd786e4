package cloneset

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/drover-dev/drover/internal/inplace"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

// The plan is computed by pure functions from what the cache shows, then
// applied by sync.go and pods.go. Nothing here reads the API or a clock.

// podView is one active (not terminating, not finished) pod as the planner
// sees it.
type podView struct {
	pod      *corev1.Pod
	revision string
	// updated: the pod's revision label is the update revision.
	updated bool
	// available: ready for minReadySeconds and not held by an update or hook.
	available bool
	// updating: an in-place update toward the update revision has begun.
	updating bool
	// deleting: chosen for deletion earlier and waiting in its preDelete hook.
	deleting bool
	// inFlight: an in-place update (toward any revision) has not finished.
	inFlight bool
	// state is the pod's parsed in-place state (when hasState).
	state    inplace.State
	hasState bool
}

// planInput is everything the planner needs, already resolved to numbers.
type planInput struct {
	replicas       int32
	partition      int32 // pods to keep on old revisions, <= replicas
	maxUnavailable int32
	maxSurge       int32
	// scaleMaxUnavailable bounds not-ready pods during scale-up; <0 = unbounded.
	scaleMaxUnavailable int32
	strategy            appsv1alpha1.CloneSetUpdateStrategyType
	paused              bool
	// inPlace says, per old revision, whether moving to the update
	// revision can be done in place.
	inPlace func(revision string) bool
	// notReady counts active pods that are not ready.
	notReady int32
	pods     []*podView
	// specified are pods to delete first (podsToDelete, annotation).
	specified sets.Set[string]
	// rank orders pods for scale-down (first = deleted first) and
	// sortForUpdate orders them for update (first = updated first).
	rank          func(pods []*podView) []*podView
	sortForUpdate func(pods []*podView) []*podView
}

// action kinds.
type deleteReason string

const (
	deleteSpecified deleteReason = "specified"
	deleteScaleDown deleteReason = "scale-down"
	deleteRecreate  deleteReason = "recreate-update"
)

type podDelete struct {
	view   *podView
	reason deleteReason
}

// plan is what one reconcile should do.
type plan struct {
	// createUpdated and createCurrent are how many pods to create at the
	// update and current revisions.
	createUpdated, createCurrent int32
	deletes                      []podDelete
	inPlace                      []*podView
	// blocked: an InPlaceOnly update found a pod that cannot be updated in
	// place; no pod was touched.
	blocked bool
	// surge is the number of pods above replicas this plan allows.
	surge int32
}

// targets derives the counts the plan aims at.
type targets struct {
	updated, old int32 // pods wanted at the update revision and at old ones
}

func (in *planInput) targets() targets {
	u := in.replicas - in.partition
	if u < 0 {
		u = 0
	}
	return targets{updated: u, old: in.replicas - u}
}

// computePlan decides the creates, deletes and in-place updates of one
// reconcile. Scaling goes first: a reconcile that scales does not also
// update, so availability is always judged on pods that exist.
func computePlan(in planInput) plan {
	var p plan
	var rest []*podView
	for _, v := range in.pods {
		if in.specified.Has(v.pod.Name) || v.deleting {
			p.deletes = append(p.deletes, podDelete{view: v, reason: deleteSpecified})
			continue
		}
		rest = append(rest, v)
	}
	var u, o int32
	for _, v := range rest {
		if v.updated {
			u++
		} else {
			o++
		}
	}
	t := in.targets()
	updating := !in.paused && in.strategy != appsv1alpha1.OnDeleteCloneSetUpdateStrategyType && o > t.old
	if updating && in.strategy == appsv1alpha1.InPlaceOnlyCloneSetUpdateStrategyType {
		for _, v := range rest {
			if !v.updated && !v.updating && !in.inPlace(v.revision) {
				p.blocked, updating = true, false
				break
			}
		}
	}
	if updating {
		p.surge = min(in.maxSurge, o-t.old)
	}
	desired := in.replicas + p.surge
	n := int32(len(rest))

	switch {
	case n < desired:
		create := desired - n
		if in.scaleMaxUnavailable >= 0 {
			create = min(create, max(0, in.scaleMaxUnavailable-in.notReady))
		}
		wantUpdated := t.updated + p.surge
		p.createUpdated = min(create, max(0, wantUpdated-u))
		p.createCurrent = create - p.createUpdated
		return p
	case n > desired:
		p.deletes = append(p.deletes, scaleDown(in, rest, n-desired, u-(t.updated+p.surge), o-t.old)...)
		return p
	}
	// Pods waiting in their preDelete hook do not hold the update back;
	// a fresh deletion does (availability is judged on pods that exist).
	for _, d := range p.deletes {
		if !d.view.deleting {
			return p
		}
	}
	if !updating {
		return p
	}
	planUpdate(in, &p, rest, o-t.old)
	return p
}

// scaleDown picks excess pods, preferring those of whichever revision is
// over its target, in rank order.
func scaleDown(in planInput, pods []*podView, excess, extraUpdated, extraOld int32) []podDelete {
	// Available pods may go only while replicas-maxUnavailable stay
	// available; unavailable pods are free. A user lowering replicas has
	// the surplus in the budget already.
	var available int32
	for _, v := range pods {
		if v.available {
			available++
		}
	}
	budget := available - (in.replicas - in.maxUnavailable)
	ranked := in.rank(pods)
	chosen := make(map[*podView]bool, excess)
	var out []podDelete
	take := func(v *podView) bool {
		if v.available {
			if budget <= 0 {
				return false
			}
			budget--
		}
		chosen[v] = true
		out = append(out, podDelete{view: v, reason: deleteScaleDown})
		excess--
		return true
	}
	for _, v := range ranked {
		if excess == 0 {
			break
		}
		if v.updated && extraUpdated > 0 {
			if take(v) {
				extraUpdated--
			}
		} else if !v.updated && extraOld > 0 {
			if take(v) {
				extraOld--
			}
		}
	}
	for _, v := range ranked {
		if excess == 0 {
			break
		}
		if !chosen[v] {
			take(v)
		}
	}
	return out
}

// planUpdate moves old pods to the update revision within the
// unavailability budget: available pods may stop serving only while at
// least replicas-maxUnavailable stay available; unavailable pods are free.
func planUpdate(in planInput, p *plan, pods []*podView, need int32) {
	var available int32
	for _, v := range pods {
		if v.available {
			available++
		}
		if !v.updated && v.updating {
			need-- // already moving, counted as unavailable
		}
	}
	if need <= 0 {
		return
	}
	budget := available - (in.replicas - in.maxUnavailable)
	// The order is computed over every pod, updated ones included, so that
	// priority and scatter positions stay stable from one reconcile to the
	// next; pods that need no update are skipped.
	for _, v := range in.sortForUpdate(pods) {
		if need == 0 {
			break
		}
		if v.updated || v.updating {
			continue
		}
		if v.available {
			if budget <= 0 {
				continue
			}
			budget--
		}
		need--
		if in.strategy != appsv1alpha1.ReCreateCloneSetUpdateStrategyType && in.inPlace(v.revision) {
			p.inPlace = append(p.inPlace, v)
		} else {
			p.deletes = append(p.deletes, podDelete{view: v, reason: deleteRecreate})
		}
	}
}
