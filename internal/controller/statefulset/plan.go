package statefulset

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/inplace"
)

// The plan is computed by pure functions from what the cache shows, then
// applied by sync.go. Nothing here reads the API or a clock.
//
// It follows the native StatefulSet controller: pods live at fixed
// ordinals; the set's ordinals (from ordinals.start, skipping reserved
// ones) are its positions 0..replicas-1; pods at other ordinals are
// condemned. One reconcile (1) creates missing pods and replaces finished
// ones, (2) deletes condemned pods, highest ordinal first, and (3) moves
// pods at positions >= partition to the update revision within
// maxUnavailable. With OrderedReady every step waits for all lower
// ordinals to be available and one pod changes at a time.
//
// When a Rollout drives the set (appsv1alpha1.RolloutControl), its counts
// replace replicas and the partition: the canary pods are the highest
// positions, and pods below the partition run the rollout's stable
// revision. Step (3) then also moves pods below the partition that run
// another revision back to it, in the same pass and order as updates.

// podView is one pod as the planner sees it.
type podView struct {
	pod      *corev1.Pod
	ordinal  int32
	revision string
	// updated: the pod's revision label is the update revision.
	updated bool
	// available: ready for minReadySeconds, its gate open, no in-place
	// update in flight.
	available bool
	// terminating: deletionTimestamp set.
	terminating bool
	// finished: phase Succeeded or Failed; it is replaced.
	finished bool
	// updating: an in-place update toward the update revision has begun.
	updating bool
	// returning: an in-place update toward the rollout's stable revision
	// (planInput.stable) has begun.
	returning bool
	// inFlight: an in-place update (toward any revision) has not finished.
	inFlight bool
	// deleting: chosen for deletion earlier, waiting in its preDelete hook.
	deleting bool
	// preparing: chosen for an in-place update earlier, waiting in its
	// inPlaceUpdate hook (PreparingUpdate) before the engine starts. Under
	// a rollout the hold may be for a move in either direction: the pod's
	// position says which.
	preparing bool
	// state is the pod's parsed in-place state (when hasState).
	state    inplace.State
	hasState bool
}

// busy reports whether the pod counts against maxUnavailable: it is not
// available, or already on its way to an update or a deletion.
func (v *podView) busy() bool {
	return !v.available || v.terminating || v.deleting || v.preparing || v.inFlight
}

// planInput is everything the planner needs, resolved to numbers.
type planInput struct {
	// ordered is podManagementPolicy OrderedReady.
	ordered bool
	// ordinals are the set's ordinals, ascending: position i holds ordinals[i].
	ordinals []int32
	// partition: positions below it keep (and are recreated at) the
	// current revision. 0 unless RollingUpdate (or a rollout drives the
	// set: then it is the rollout's stable count).
	partition int32
	// maxUnavailable >= 1.
	maxUnavailable int32
	// control is the rollout control driving the set (nil when none or
	// unusable). Its maxUnavailable, where set, replaces the one above,
	// resolved against the set's positions (see limit). A StatefulSet
	// does not surge: its maxSurge is ignored.
	control *appsv1alpha1.RolloutControl
	// onDelete: updateStrategy.type OnDelete.
	onDelete bool
	// paused: rollingUpdate.paused.
	paused bool
	policy appsv1alpha1.StatefulSetPodUpdatePolicy
	// inPlace says, per old revision, whether moving to the update revision
	// can be done in place.
	inPlace func(revision string) bool
	// stable, when set, is the revision pods below the partition must run
	// (a Rollout's stable revision, see appsv1alpha1.RolloutControl): pods
	// there of any other revision move back to it, and pods created there
	// get it. "" leaves such pods where they are (a plain partition).
	stable string
	// inPlaceReturn says, per revision, whether moving to stable can be
	// done in place (used only when stable is set).
	inPlaceReturn func(revision string) bool
	// pods are the controlled pods named <set>-<ordinal>, terminating ones
	// included.
	pods []*podView
	// sortForUpdate orders pods by unorderedUpdate.priorityStrategy; pods
	// of equal priority keep their order (highest ordinal first). nil:
	// highest ordinal first.
	sortForUpdate func(pods []*podView) []*podView
}

// podCreate is a pod to create: its ordinal and whether it gets the current
// revision (below the partition; the stable revision under a rollout)
// rather than the update revision.
type podCreate struct {
	ordinal int32
	current bool
}

type deleteReason string

const (
	deleteCondemned deleteReason = "condemned"
	deleteFinished  deleteReason = "finished"
	deleteRecreate  deleteReason = "recreate-update"
	// deleteReturn: recreated to go back to a rollout's stable revision.
	deleteReturn deleteReason = "recreate-return"
	// deleteHeld: chosen earlier, waiting in the preDelete hook.
	deleteHeld deleteReason = "held"
)

type podDelete struct {
	view   *podView
	reason deleteReason
}

// plan is what one reconcile should do.
type plan struct {
	creates []podCreate
	deletes []podDelete
	inPlace []*podView
	// returns are pods to move in place back to the stable revision.
	returns []*podView
	// blocked: an InPlaceOnly update found a pod that cannot be updated in
	// place; no pod was touched by the update. blockedBy is that pod and
	// blockedBack whether its move was back to the stable revision.
	blocked     bool
	blockedBy   *podView
	blockedBack bool
	// waitingFor names the pod an OrderedReady set waits for ("" when none).
	waitingFor string
}

// updating reports whether the rolling update may move pods.
func (in *planInput) updating() bool {
	return !in.onDelete && !in.paused
}

// keepsCurrent reports whether a pod created at position i gets the
// current revision: below the partition. Elsewhere a created pod gets the
// update revision, also while paused (as the native and OpenKruise
// controllers do): pausing stops running pods from moving, and a pod that
// was being recreated when the update was paused comes back updated
// rather than going back. Under a rollout the partition holds with
// OnDelete too: a lost stable pod comes back stable.
func (in *planInput) keepsCurrent(i int) bool {
	return (!in.onDelete || in.stable != "") && int32(i) < in.partition
}

// move is where a pod must go: nowhere, forward to the update revision,
// or back to a rollout's stable revision.
type move int

const (
	stay move = iota
	forward
	back
)

// needs says where the pod at position i must go: to the update revision
// at and above the partition, to the stable revision below it (under a
// rollout).
func (in *planInput) needs(v *podView, i int) move {
	switch {
	case int32(i) >= in.partition:
		if !v.updated {
			return forward
		}
	case in.stable != "" && v.revision != in.stable:
		return back
	}
	return stay
}

// settled returns whether a pod runs the revision its position wants, for
// repairs: a pod held in PreparingUpdate that needs no move is a stale
// hold. Without a rollout that is "the pod runs the update revision",
// wherever it stands.
func (in *planInput) settled() func(v *podView) bool {
	if in.stable == "" {
		return func(v *podView) bool { return v.updated }
	}
	position := make(map[int32]int, len(in.ordinals))
	for i, o := range in.ordinals {
		position[o] = i
	}
	return func(v *podView) bool {
		i, ok := position[v.ordinal]
		if !ok {
			return v.updated
		}
		return in.needs(v, i) == stay
	}
}

// canInPlace reports whether the move m of v can be made in place under
// the pod update policy.
func (in *planInput) canInPlace(v *podView, m move) bool {
	if in.policy == appsv1alpha1.ReCreateStatefulSetPodUpdatePolicy {
		return false
	}
	if m == back {
		return in.inPlaceReturn(v.revision)
	}
	return in.inPlace(v.revision)
}

// limit returns the maxUnavailable a plan moves pods within: the set's
// own, or the rollout control's when it sets one, resolved against the
// set's replicas (its positions) as the set's own is.
func (in *planInput) limit() int32 {
	if in.control == nil || in.control.MaxUnavailable == nil {
		return in.maxUnavailable
	}
	return scaledMaxUnavailable(in.control.MaxUnavailable, int32(len(in.ordinals)), in.maxUnavailable)
}

// scaledMaxUnavailable resolves a maxUnavailable against replicas:
// a percentage rounds down, and the result is at least 1. A malformed
// value gives def.
func scaledMaxUnavailable(v *intstr.IntOrString, replicas, def int32) int32 {
	n, err := intstr.GetScaledValueFromIntOrPercent(v, int(replicas), false)
	if err != nil {
		return def
	}
	return int32(max(n, 1))
}

// computePlan decides the creates, deletes and in-place updates of one
// reconcile.
func computePlan(in planInput) plan {
	in.maxUnavailable = in.limit()
	var p plan
	byOrdinal := make(map[int32]*podView, len(in.pods))
	for _, v := range in.pods {
		byOrdinal[v.ordinal] = v
	}
	position := make(map[int32]int, len(in.ordinals))
	for i, o := range in.ordinals {
		position[o] = i
	}
	planned := map[*podView]bool{}

	// Pods chosen earlier and waiting in a hook go on, whatever the order:
	// the decision was made and the pod is visibly on its way. While the
	// update is paused, pods held for an update stay where they are.
	for _, v := range in.pods {
		if v.terminating {
			continue
		}
		i, wanted := position[v.ordinal]
		switch {
		case v.deleting && (!wanted || v.finished || in.updating()):
			p.deletes = append(p.deletes, podDelete{view: v, reason: deleteHeld})
			planned[v] = true
		case v.preparing && wanted && in.updating() && in.stable == "":
			p.inPlace = append(p.inPlace, v)
			planned[v] = true
		case v.preparing && wanted && in.updating():
			// Under a rollout the position says which way the pod goes;
			// a hold that needs no move any more is repaired (sync.go),
			// and a move that cannot be made in place is left to the
			// update pass.
			switch m := in.needs(v, i); {
			case m == stay || !in.canInPlace(v, m):
			case m == back:
				p.returns = append(p.returns, v)
				planned[v] = true
			default:
				p.inPlace = append(p.inPlace, v)
				planned[v] = true
			}
		}
	}

	// 1. Create missing pods and replace finished ones, in ordinal order.
	for i, o := range in.ordinals {
		v := byOrdinal[o]
		switch {
		case v == nil:
			p.creates = append(p.creates, podCreate{ordinal: o, current: in.keepsCurrent(i)})
			if in.ordered {
				p.waitingFor = fmt.Sprintf("ordinal %d to be created and become available", o)
				return p
			}
		case v.terminating || v.deleting:
			if in.ordered {
				p.waitingFor = fmt.Sprintf("pod %s to terminate", v.pod.Name)
				return p
			}
		case v.finished:
			p.deletes = append(p.deletes, podDelete{view: v, reason: deleteFinished})
			planned[v] = true
			if in.ordered {
				p.waitingFor = fmt.Sprintf("finished pod %s to be replaced", v.pod.Name)
				return p
			}
		case in.ordered && !v.available:
			p.waitingFor = fmt.Sprintf("pod %s to become available", v.pod.Name)
			return p
		}
	}

	// 2. Delete condemned pods (scaled away or reserved), highest ordinal
	// first; OrderedReady one at a time.
	var condemned []*podView
	for _, v := range in.pods {
		if _, wanted := position[v.ordinal]; !wanted {
			condemned = append(condemned, v)
		}
	}
	slices.SortFunc(condemned, func(a, b *podView) int { return int(b.ordinal) - int(a.ordinal) })
	for _, v := range condemned {
		if v.terminating || planned[v] {
			if in.ordered {
				p.waitingFor = fmt.Sprintf("pod %s to terminate", v.pod.Name)
				return p
			}
			continue
		}
		p.deletes = append(p.deletes, podDelete{view: v, reason: deleteCondemned})
		planned[v] = true
		if in.ordered {
			p.waitingFor = fmt.Sprintf("pod %s to terminate", v.pod.Name)
			return p
		}
	}

	// 3. Update pods at positions >= partition (and, under a rollout,
	// return those below it).
	if !in.updating() {
		return p
	}
	planUpdate(in, &p, byOrdinal, position, planned)
	return p
}

// planUpdate moves pods at positions >= partition to the update revision
// (and, under a rollout, pods below it that run another revision back to
// the stable revision) while at most maxUnavailable of the set's positions
// are busy (missing, not available, or on their way to an update or
// deletion). Busy pods are free to move: it costs no availability. Moves
// in both directions share one order (highest ordinal first, or the
// priority strategy's), so OrderedReady moves one pod at a time from the
// top down whichever way it goes. A pod already moving in place finishes
// its move before it may go the other way.
func planUpdate(in planInput, p *plan, byOrdinal map[int32]*podView, position map[int32]int, planned map[*podView]bool) {
	var busy int32
	var targets []*podView
	for i, o := range in.ordinals {
		v := byOrdinal[o]
		if v == nil || v.busy() || planned[v] {
			busy++
		}
		if v != nil && (int32(i) >= in.partition || in.stable != "") {
			targets = append(targets, v)
		}
	}
	// Highest ordinal first; a priority strategy reorders, keeping this
	// order among equals.
	slices.Reverse(targets)
	if in.sortForUpdate != nil {
		targets = in.sortForUpdate(targets)
	}
	type pick struct {
		v *podView
		m move
	}
	var need []pick
	for _, v := range targets {
		m := in.needs(v, position[v.ordinal])
		if m != stay && !v.updating && !v.returning && !v.terminating && !v.deleting && !v.finished && !planned[v] {
			need = append(need, pick{v, m})
		}
	}
	if in.policy == appsv1alpha1.InPlaceOnlyStatefulSetPodUpdatePolicy {
		for _, n := range need {
			if !in.canInPlace(n.v, n.m) {
				p.blocked, p.blockedBy, p.blockedBack = true, n.v, n.m == back
				return
			}
		}
	}
	budget := in.maxUnavailable - busy
	for _, n := range need {
		v := n.v
		if !v.busy() {
			if budget <= 0 {
				continue
			}
			budget--
		}
		switch inPlace := in.canInPlace(v, n.m); {
		case n.m == back && inPlace:
			p.returns = append(p.returns, v)
		case n.m == back:
			p.deletes = append(p.deletes, podDelete{view: v, reason: deleteReturn})
		case inPlace:
			p.inPlace = append(p.inPlace, v)
		default:
			p.deletes = append(p.deletes, podDelete{view: v, reason: deleteRecreate})
		}
		planned[v] = true
	}
}
