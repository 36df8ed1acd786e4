package cloneset

import (
	"cmp"
	"slices"

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
	// returning: an in-place update toward the stable revision of a
	// rollout (planInput.stable) has begun.
	returning bool
	// deleting: chosen for deletion earlier and waiting in its preDelete hook.
	deleting bool
	// inFlight: an in-place update (toward any revision) has not finished.
	inFlight bool
	// state is the pod's parsed in-place state (when hasState).
	state    inplace.State
	hasState bool
}

// planInput is everything the planner needs, already resolved to numbers
// (control's limits are resolved by limits).
type planInput struct {
	replicas       int32
	partition      int32 // pods to keep on old revisions, <= replicas
	maxUnavailable int32
	maxSurge       int32
	// control is the rollout control driving the CloneSet (nil when none
	// or unusable). Its maxUnavailable and maxSurge, where set, replace
	// the two above (see limits).
	control *appsv1alpha1.RolloutControl
	// scaleMaxUnavailable bounds not-ready pods during scale-up; <0 = unbounded.
	scaleMaxUnavailable int32
	strategy            appsv1alpha1.CloneSetUpdateStrategyType
	paused              bool
	// update is the update revision. stable, when set, is the revision
	// that pods kept off the update revision must run (a Rollout's stable
	// revision, see appsv1alpha1.RolloutControl): surplus pods of the
	// update revision and pods of any third revision move back to it.
	// "" leaves such pods where they are (a plain partition).
	update, stable string
	// inPlace says whether a pod can move from one revision to another in
	// place.
	inPlace func(from, to string) bool
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
	deleteReturn    deleteReason = "recreate-return"
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
	// returns are pods to move in place to the stable revision.
	returns []*podView
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
	in.maxUnavailable, in.maxSurge = in.limits()
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
			if !v.updated && !v.updating && !in.inPlace(v.revision, in.update) {
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
	b := newBudget(in, rest)
	if updating {
		planUpdate(in, &p, rest, o-t.old, b)
	}
	if in.stable != "" && in.strategy != appsv1alpha1.OnDeleteCloneSetUpdateStrategyType {
		planReturn(in, &p, rest, u-t.updated, b)
	}
	return p
}

// limits returns the maxUnavailable and maxSurge a plan moves pods
// within: the CloneSet's own, or the rollout control's where it sets
// them, resolved against replicas as sync.go resolves the CloneSet's
// (maxUnavailable rounded down, maxSurge up, never both 0).
func (in *planInput) limits() (maxUnavailable, maxSurge int32) {
	maxUnavailable, maxSurge = in.maxUnavailable, in.maxSurge
	c := in.control
	if c == nil || (c.MaxUnavailable == nil && c.MaxSurge == nil) {
		return maxUnavailable, maxSurge
	}
	// ParseRolloutControl refused malformed values; scaled keeps the
	// CloneSet's own for any that slipped through.
	maxUnavailable = scaled(c.MaxUnavailable, in.replicas, false, maxUnavailable)
	maxSurge = scaled(c.MaxSurge, in.replicas, true, maxSurge)
	if maxUnavailable == 0 && maxSurge == 0 {
		maxUnavailable = 1
	}
	return maxUnavailable, maxSurge
}

// budget is how many available pods may still stop serving this
// reconcile: available pods may stop only while at least
// replicas-maxUnavailable stay available; unavailable pods are free.
type budget struct{ left int32 }

func newBudget(in planInput, pods []*podView) *budget {
	var available int32
	for _, v := range pods {
		if v.available {
			available++
		}
	}
	return &budget{left: available - (in.replicas - in.maxUnavailable)}
}

// take reports whether v may stop serving now, and charges the budget.
func (b *budget) take(v *podView) bool {
	if !v.available {
		return true
	}
	if b.left <= 0 {
		return false
	}
	b.left--
	return true
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

// planUpdate moves need old pods to the update revision within the
// unavailability budget. Pods of a third revision go first when a stable
// revision is set: they must move anyway.
func planUpdate(in planInput, p *plan, pods []*podView, need int32, b *budget) {
	for _, v := range pods {
		if !v.updated && v.updating {
			need-- // already moving, counted as unavailable
		}
	}
	if need <= 0 {
		return
	}
	// The order is computed over every pod, updated ones included, so that
	// priority and scatter positions stay stable from one reconcile to the
	// next; pods that need no update are skipped.
	order := in.sortForUpdate(pods)
	if in.stable != "" {
		slices.SortStableFunc(order, func(a, b *podView) int {
			return cmp.Compare(boolRank(a.revision == in.stable), boolRank(b.revision == in.stable))
		})
	}
	for _, v := range order {
		if need == 0 {
			break
		}
		if v.updated || v.updating || v.returning || !b.take(v) {
			continue
		}
		need--
		if in.strategy != appsv1alpha1.ReCreateCloneSetUpdateStrategyType && in.inPlace(v.revision, in.update) {
			p.inPlace = append(p.inPlace, v)
		} else {
			p.deletes = append(p.deletes, podDelete{view: v, reason: deleteRecreate})
		}
	}
}

// planReturn moves pods back to the stable revision, within what is left
// of the budget: surplus pods of the update revision (the last in update
// order first) and pods of any third revision that planUpdate did not
// take. A change that cannot be made in place recreates the pod (created
// again at the stable revision) unless the strategy is InPlaceOnly, which
// blocks instead.
func planReturn(in planInput, p *plan, pods []*podView, surplus int32, b *budget) {
	taken := make(map[*podView]bool, len(p.inPlace)+len(p.deletes))
	for _, v := range p.inPlace {
		taken[v] = true
	}
	for _, d := range p.deletes {
		taken[d.view] = true
	}
	for _, v := range pods {
		if v.updated && v.returning {
			surplus--
		}
	}
	order := in.sortForUpdate(pods)
	slices.Reverse(order)
	for _, v := range order {
		switch {
		// A pod whose update to the canary is written but has not
		// finished (its new container may never become ready) is sent
		// back too: the engine retargets an update in flight.
		case taken[v] || v.returning || (v.updating && !v.updated) || v.revision == in.stable:
			continue
		case v.updated && surplus <= 0:
			continue
		}
		inPlace := in.strategy != appsv1alpha1.ReCreateCloneSetUpdateStrategyType && in.inPlace(v.revision, in.stable)
		if !inPlace && in.strategy == appsv1alpha1.InPlaceOnlyCloneSetUpdateStrategyType {
			p.blocked = true
			continue
		}
		if !b.take(v) {
			continue
		}
		if v.updated {
			surplus--
		}
		if inPlace {
			p.returns = append(p.returns, v)
		} else {
			p.deletes = append(p.deletes, podDelete{view: v, reason: deleteReturn})
		}
	}
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}
