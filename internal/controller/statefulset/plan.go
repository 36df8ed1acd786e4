package statefulset

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"

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
	// inFlight: an in-place update (toward any revision) has not finished.
	inFlight bool
	// deleting: chosen for deletion earlier, waiting in its preDelete hook.
	deleting bool
	// preparing: chosen for an in-place update earlier, waiting in its
	// inPlaceUpdate hook (PreparingUpdate) before the engine starts.
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
	// current revision. 0 unless RollingUpdate.
	partition int32
	// maxUnavailable >= 1.
	maxUnavailable int32
	// onDelete: updateStrategy.type OnDelete.
	onDelete bool
	// paused: rollingUpdate.paused.
	paused bool
	policy appsv1alpha1.StatefulSetPodUpdatePolicy
	// inPlace says, per old revision, whether moving to the update revision
	// can be done in place.
	inPlace func(revision string) bool
	// pods are the controlled pods named <set>-<ordinal>, terminating ones
	// included.
	pods []*podView
	// sortForUpdate orders pods by unorderedUpdate.priorityStrategy; pods
	// of equal priority keep their order (highest ordinal first). nil:
	// highest ordinal first.
	sortForUpdate func(pods []*podView) []*podView
}

// podCreate is a pod to create: its ordinal and whether it gets the current
// revision (below the partition) rather than the update revision.
type podCreate struct {
	ordinal int32
	current bool
}

type deleteReason string

const (
	deleteCondemned deleteReason = "condemned"
	deleteFinished  deleteReason = "finished"
	deleteRecreate  deleteReason = "recreate-update"
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
	// blocked: an InPlaceOnly update found a pod that cannot be updated in
	// place; no pod was touched by the update.
	blocked bool
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
// rather than going back.
func (in *planInput) keepsCurrent(i int) bool {
	return !in.onDelete && int32(i) < in.partition
}

// computePlan decides the creates, deletes and in-place updates of one
// reconcile.
func computePlan(in planInput) plan {
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
		_, wanted := position[v.ordinal]
		switch {
		case v.deleting && (!wanted || v.finished || in.updating()):
			p.deletes = append(p.deletes, podDelete{view: v, reason: deleteHeld})
			planned[v] = true
		case v.preparing && wanted && in.updating():
			p.inPlace = append(p.inPlace, v)
			planned[v] = true
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

	// 3. Update pods at positions >= partition.
	if !in.updating() {
		return p
	}
	planUpdate(in, &p, byOrdinal, planned)
	return p
}

// planUpdate moves pods at positions >= partition to the update revision
// while at most maxUnavailable of the set's positions are busy (missing,
// not available, or on their way to an update or deletion). Busy pods are
// free to update: it costs no availability.
func planUpdate(in planInput, p *plan, byOrdinal map[int32]*podView, planned map[*podView]bool) {
	var busy int32
	var targets []*podView
	for i, o := range in.ordinals {
		v := byOrdinal[o]
		if v == nil || v.busy() || planned[v] {
			busy++
		}
		if v != nil && int32(i) >= in.partition {
			targets = append(targets, v)
		}
	}
	// Highest ordinal first; a priority strategy reorders, keeping this
	// order among equals.
	slices.Reverse(targets)
	if in.sortForUpdate != nil {
		targets = in.sortForUpdate(targets)
	}
	var need []*podView
	for _, v := range targets {
		if !v.updated && !v.updating && !v.terminating && !v.deleting && !v.finished && !planned[v] {
			need = append(need, v)
		}
	}
	if in.policy == appsv1alpha1.InPlaceOnlyStatefulSetPodUpdatePolicy {
		for _, v := range need {
			if !in.inPlace(v.revision) {
				p.blocked = true
				return
			}
		}
	}
	budget := in.maxUnavailable - busy
	for _, v := range need {
		if !v.busy() {
			if budget <= 0 {
				continue
			}
			budget--
		}
		if in.policy != appsv1alpha1.ReCreateStatefulSetPodUpdatePolicy && in.inPlace(v.revision) {
			p.inPlace = append(p.inPlace, v)
		} else {
			p.deletes = append(p.deletes, podDelete{view: v, reason: deleteRecreate})
		}
		planned[v] = true
	}
}
