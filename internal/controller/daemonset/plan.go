package daemonset

import (
	"cmp"
	"slices"

	corev1 "k8s.io/api/core/v1"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/inplace"
)

// The plan is computed by pure functions from what the cache shows, then
// applied by sync.go. Nothing here reads the API or a clock.
//
// When a Rollout drives the DaemonSet (appsv1alpha1.RolloutControl), its
// canary count replaces the partition (canary nodes run the update
// revision, the others the rollout's stable revision) and nodes are
// created at the stable revision; the update also moves nodes back to the
// stable revision: nodes running the update revision beyond the canary
// count, and nodes running any third revision (planReturn).

// podView is one pod of the DaemonSet as the planner sees it.
type podView struct {
	pod      *corev1.Pod
	node     string
	revision string
	// updated: the pod is on the update revision, or an in-place update
	// toward it has begun (and none back to a rollout's stable revision).
	updated bool
	ready   bool
	// available: ready for minReadySeconds and neither being updated nor
	// waiting in a lifecycle hook (a held pod is about to go down, so it
	// already counts against maxUnavailable).
	available bool
	// updating: an in-place update toward the update revision has begun.
	updating bool
	// returning: an in-place update toward the rollout's stable revision
	// (planInput.stable) has begun.
	returning bool
	// inFlight: an in-place update (toward any revision) has not finished.
	inFlight bool
	// deleting: chosen for deletion earlier and waiting in its preDelete hook.
	deleting bool
	// state is the pod's parsed in-place state, nil when it has none.
	state *inplace.State
}

// nodeView is one node and the DaemonSet's pods on it.
type nodeView struct {
	name string
	// exists: the node is in the cache. The pods of a node that left are
	// deleted at once: no kubelet will run their termination.
	exists bool
	// eligible: the template fits the node (nodeplacement.Fits): it
	// should run a pod.
	eligible bool
	// keep: a pod already there may stay although the node is not
	// eligible: only NoSchedule taints keep the template from fitting (a
	// node gone NotReady, a new NoSchedule taint), as with the native
	// DaemonSet; NoExecute taints and labels do not keep it.
	keep bool
	// inScope: rollingUpdate.selector matches the node (true without one).
	inScope bool
	// active pods are neither terminating nor finished; finished ones
	// (Succeeded, Failed) are not terminating yet.
	active, finished []*podView
}

// planInput is everything the planner needs, already resolved to numbers.
type planInput struct {
	// nodes are the eligible nodes and every node holding a pod of the
	// DaemonSet, sorted by name.
	nodes []*nodeView
	// updating: the strategy is RollingUpdate and not paused (pods are
	// moved to the update revision).
	updating bool
	// onDelete: the strategy is OnDelete (a replaced pod gets the update
	// revision).
	onDelete bool
	// inPlaceType: rollingUpdate.type is InPlaceIfPossible.
	inPlaceType    bool
	maxUnavailable int32
	maxSurge       int32
	// control is the rollout control driving the DaemonSet (nil when none
	// or unusable). Its maxUnavailable and maxSurge, where set, replace
	// the two above (see limits).
	control   *appsv1alpha1.RolloutControl
	partition int32
	// inPlace says, per old revision, whether moving to the update
	// revision can be done in place.
	inPlace func(revision string) bool
	// stable, when set, is the revision of the nodes kept off the update
	// revision (a Rollout's stable revision, see
	// appsv1alpha1.RolloutControl; partition is then the number of such
	// nodes): surplus nodes of the update revision and nodes of any third
	// revision move back to it. "" leaves such pods where they are.
	stable string
	// inPlaceReturn says, per revision, whether moving to stable can be
	// done in place (used only when stable is set).
	inPlaceReturn func(revision string) bool
	// haveCurrent: a current revision other than the update revision is
	// known, so a new pod may be created on it (partition, paused, nodes
	// outside rollingUpdate.selector).
	haveCurrent bool
	// sortForUpdate orders old pods for update (first = updated first).
	sortForUpdate func(pods []*podView) []*podView
	// backoff holds the nodes whose last pod failed recently: they get no
	// new pod yet.
	backoff map[string]bool
}

type deleteReason string

const (
	deleteNodeGone     deleteReason = "node-gone"
	deleteMisscheduled deleteReason = "misscheduled"
	deleteFinished     deleteReason = "finished"
	deleteDuplicate    deleteReason = "duplicate"
	deleteSurged       deleteReason = "replaced-by-surge"
	deleteRecreate     deleteReason = "recreate-update"
	deleteReturn       deleteReason = "recreate-return"
	deleteHeld         deleteReason = "held-by-hook"
)

type podDelete struct {
	view   *podView
	reason deleteReason
	// force deletes with a zero grace period and skips the preDelete hook:
	// the pod's node is gone.
	force bool
}

type podCreate struct {
	node string
	// updated: create it on the update revision (else the current one).
	updated bool
	// surge: the node keeps its old pod until this one is available.
	surge bool
}

// plan is what one reconcile should do.
type plan struct {
	creates []podCreate
	deletes []podDelete
	// inPlace are the pods whose in-place update starts now.
	inPlace []*podView
	// returns are the pods whose in-place update back to the stable
	// revision starts now.
	returns []*podView
}

// nodeState is a node's pods after duplicates are set aside: at most one
// updated pod and one old pod.
type nodeState struct {
	n        *nodeView
	upd, old *podView
	// replaced: the old pod's deletion is planned now; the node still runs
	// two pods until the cache shows it gone (or its hook lets it go).
	replaced bool
}

func (s nodeState) available() bool {
	return (s.upd != nil && s.upd.available) || (s.old != nil && s.old.available)
}

// computePlan decides the creates, deletes and in-place updates of one
// reconcile:
//   - the pods of nodes that left, of nodes the template no longer fits
//     (a node that only refuses new pods keeps one), finished pods and
//     duplicates are deleted;
//   - a node that runs a new pod beside an old one (surge) loses the old
//     one once the new one is available;
//   - an update moves old pods to the update revision node by node, at
//     most maxUnavailable eligible nodes without an available pod and at
//     most maxSurge nodes running two pods, keeping partition nodes (and
//     nodes outside rollingUpdate.selector) on their revision;
//   - every eligible node without a pod gets one.
func computePlan(in planInput) plan {
	in.maxUnavailable, in.maxSurge = in.limits()
	var p plan
	del := func(v *podView, r deleteReason, force bool) {
		p.deletes = append(p.deletes, podDelete{view: v, reason: r, force: force})
	}
	var states []nodeState
	for _, n := range in.nodes {
		if !n.exists {
			for _, v := range append(append([]*podView(nil), n.active...), n.finished...) {
				del(v, deleteNodeGone, true)
			}
			continue
		}
		for _, v := range n.finished {
			del(v, deleteFinished, false)
		}
		if !n.eligible {
			var stay []*podView
			for _, v := range n.active {
				switch {
				case !n.keep:
					del(v, deleteMisscheduled, false)
				case v.deleting:
					del(v, deleteHeld, false)
				default:
					stay = append(stay, v)
				}
			}
			// A node that only refuses new pods keeps one (a surge it
			// was in the middle of ends: the new pod may never be
			// scheduled there).
			keepBest(stay, func(v *podView) { del(v, deleteDuplicate, false) })
			continue
		}
		s := nodeState{n: n}
		var upds, olds []*podView
		for _, v := range n.active {
			if v.deleting {
				// Chosen for deletion earlier: move it on through its hook.
				del(v, deleteHeld, false)
				continue
			}
			if v.updated {
				upds = append(upds, v)
			} else {
				olds = append(olds, v)
			}
		}
		s.upd = keepBest(upds, func(v *podView) { del(v, deleteDuplicate, false) })
		s.old = keepBest(olds, func(v *podView) { del(v, deleteDuplicate, false) })
		if s.upd != nil && s.old != nil && s.upd.available {
			del(s.old, deleteSurged, false)
			s.old, s.replaced = nil, true
		}
		states = append(states, s)
	}

	target := max(0, int32(len(states))-in.partition)
	var updated int32 // nodes on (or moving to) the update revision
	for _, s := range states {
		// A node whose only pod waits in its preDelete hook is being
		// recreated: it counts as moving.
		if s.upd != nil || (s.old == nil && in.recreatingForward(s.n)) {
			updated++
		}
	}
	// Every eligible node without a pod gets one: on the update revision
	// while the update wants more updated nodes (these are mostly nodes
	// whose old pod was just deleted for the update), else on the current
	// one. They go before new candidates, so an update in progress is
	// finished rather than started again elsewhere.
	var empty []nodeState
	for _, s := range states {
		if s.upd == nil && s.old == nil && !hasDeleting(s.n) {
			empty = append(empty, s)
		}
	}
	slices.SortStableFunc(empty, func(a, b nodeState) int {
		// Nodes in scope first: they are the ones the update may move.
		return cmp.Compare(btoi(!a.n.inScope), btoi(!b.n.inScope))
	})
	for _, s := range empty {
		if in.backoff[s.n.name] {
			continue
		}
		// Paused or not: pausing stops moving pods, not what new ones run
		// (as the native controller and the StatefulSet do). Under a
		// rollout the canary count holds with OnDelete too.
		upd := (in.onDelete && in.stable == "") || !in.haveCurrent || (s.n.inScope && updated < target)
		if upd {
			updated++
		}
		p.creates = append(p.creates, podCreate{node: s.n.name, updated: upd})
	}
	if in.updating {
		b := newBudget(in, states)
		planUpdate(in, &p, states, target-updated, b)
		if in.stable != "" {
			planReturn(in, &p, states, updated-target, b)
		}
	}
	return p
}

// recreatingForward reports whether a node whose only pods wait in their
// preDelete hook counts as moving to the update revision: it does, unless
// under a rollout the pod held is of the update revision (it was deleted
// to go back to the stable revision).
func (in *planInput) recreatingForward(n *nodeView) bool {
	for _, v := range n.active {
		if v.deleting && (in.stable == "" || !v.updated) {
			return true
		}
	}
	return false
}

// limits returns the maxUnavailable and maxSurge a plan moves pods
// within: the DaemonSet's own, or the rollout control's where it sets
// them, resolved against the eligible nodes as sync.go resolves the
// DaemonSet's (rounded up, never both 0).
func (in *planInput) limits() (maxUnavailable, maxSurge int32) {
	maxUnavailable, maxSurge = in.maxUnavailable, in.maxSurge
	c := in.control
	if c == nil || (c.MaxUnavailable == nil && c.MaxSurge == nil) {
		return maxUnavailable, maxSurge
	}
	var desired int32
	for _, n := range in.nodes {
		if n.exists && n.eligible {
			desired++
		}
	}
	// ParseRolloutControl refused malformed values; scaled keeps the
	// DaemonSet's own for any that slipped through.
	maxUnavailable = scaled(c.MaxUnavailable, desired, maxUnavailable)
	maxSurge = scaled(c.MaxSurge, desired, maxSurge)
	if maxUnavailable == 0 && maxSurge == 0 {
		maxUnavailable = 1
	}
	return maxUnavailable, maxSurge
}

// budget is what one reconcile's moves may still spend: nodes that may
// stop serving (maxUnavailable) and nodes that may run a second pod
// (maxSurge); taken are the nodes a move was planned on.
type budget struct {
	unavailable, surge int32
	taken              map[string]bool
}

func newBudget(in planInput, states []nodeState) *budget {
	var unavailable, surging int32
	for _, s := range states {
		if !s.available() {
			unavailable++
		}
		if s.upd != nil && (s.old != nil || s.replaced || hasDeleting(s.n)) {
			// A replaced old pod still runs until it is gone (its
			// preDelete hook may hold it).
			surging++
		}
	}
	return &budget{unavailable: in.maxUnavailable - unavailable, surge: in.maxSurge - surging, taken: map[string]bool{}}
}

// planUpdate moves old pods of up to need nodes to the update revision.
// Under a rollout, pods of a third revision go first (they must move
// anyway) and pods on their way back to stable finish first.
func planUpdate(in planInput, p *plan, states []nodeState, need int32, b *budget) {
	if need <= 0 {
		return
	}
	var candidates []*podView
	byPod := map[*podView]nodeState{}
	for _, s := range states {
		if s.upd == nil && s.old != nil && s.n.inScope && !hasDeleting(s.n) && !s.old.returning {
			candidates = append(candidates, s.old)
			byPod[s.old] = s
		}
	}
	order := in.sortForUpdate(candidates)
	if in.stable != "" {
		slices.SortStableFunc(order, func(a, b *podView) int {
			return cmp.Compare(btoi(a.revision == in.stable), btoi(b.revision == in.stable))
		})
	}
	var started int32
	for _, v := range order {
		if started == need {
			break
		}
		inPlace := in.inPlaceType && in.inPlace(v.revision)
		switch {
		case !v.available && inPlace:
			// An unavailable pod costs no availability: update it at once.
			p.inPlace = append(p.inPlace, v)
		case !v.available:
			p.deletes = append(p.deletes, podDelete{view: v, reason: deleteRecreate})
		case inPlace && b.unavailable > 0:
			b.unavailable--
			p.inPlace = append(p.inPlace, v)
		case b.surge > 0:
			b.surge--
			p.creates = append(p.creates, podCreate{node: byPod[v].n.name, updated: true, surge: true})
		case b.unavailable > 0:
			b.unavailable--
			p.deletes = append(p.deletes, podDelete{view: v, reason: deleteRecreate})
		default:
			continue
		}
		b.taken[v.node] = true
		started++
	}
}

// planReturn moves nodes back to the rollout's stable revision within
// what is left of the unavailability budget: nodes running the update
// revision beyond the canary count (surplus of them; unavailable ones
// first, then the last in update order) and nodes running a third
// revision that planUpdate did not take. A node surging toward the update
// revision loses its new pod, which is not serving yet; otherwise the pod
// goes back in place when the rollingUpdate type allows, or is deleted
// and its node given a stable pod. There is no surge on the way back.
// Nodes outside rollingUpdate.selector are left alone.
func planReturn(in planInput, p *plan, states []nodeState, surplus int32, b *budget) {
	var candidates []*podView
	surging := map[*podView]bool{}
	for _, s := range states {
		if !s.n.inScope || hasDeleting(s.n) || b.taken[s.n.name] {
			continue
		}
		switch {
		case s.upd != nil && s.old != nil && !s.replaced && !s.upd.available:
			candidates = append(candidates, s.upd)
			surging[s.upd] = true
		case s.upd != nil && s.old == nil && !s.replaced && !s.upd.inFlight:
			candidates = append(candidates, s.upd)
		case s.upd == nil && s.old != nil && s.old.revision != in.stable && !s.old.returning:
			candidates = append(candidates, s.old)
		}
	}
	order := in.sortForUpdate(candidates)
	slices.Reverse(order)
	slices.SortStableFunc(order, func(a, b *podView) int { return cmp.Compare(btoi(a.available), btoi(b.available)) })
	for _, v := range order {
		if v.updated && surplus <= 0 {
			continue
		}
		inPlace := in.inPlaceType && in.inPlaceReturn(v.revision) && !surging[v]
		switch {
		case !v.available && inPlace:
			p.returns = append(p.returns, v)
		case !v.available:
			p.deletes = append(p.deletes, podDelete{view: v, reason: deleteReturn})
		case b.unavailable <= 0:
			continue
		case inPlace:
			b.unavailable--
			p.returns = append(p.returns, v)
		default:
			b.unavailable--
			p.deletes = append(p.deletes, podDelete{view: v, reason: deleteReturn})
		}
		if v.updated {
			surplus--
		}
	}
}

func hasDeleting(n *nodeView) bool {
	for _, v := range n.active {
		if v.deleting {
			return true
		}
	}
	return false
}

// keepBest returns the pod to keep among pods on a node (available, then
// ready, then updated, then oldest, then by name) and passes the others to
// drop.
func keepBest(pods []*podView, drop func(*podView)) *podView {
	if len(pods) == 0 {
		return nil
	}
	best := pods[0]
	for _, v := range pods[1:] {
		if better(v, best) {
			best = v
		}
	}
	for _, v := range pods {
		if v != best {
			drop(v)
		}
	}
	return best
}

func better(a, b *podView) bool {
	if a.available != b.available {
		return a.available
	}
	if a.ready != b.ready {
		return a.ready
	}
	if a.updated != b.updated {
		return a.updated
	}
	if !a.pod.CreationTimestamp.Equal(&b.pod.CreationTimestamp) {
		return a.pod.CreationTimestamp.Before(&b.pod.CreationTimestamp)
	}
	return a.pod.Name < b.pod.Name
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
