package podorder

import (
	"cmp"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

// ScaleDownOptions tunes RankForScaleDown.
type ScaleDownOptions struct {
	// PodsToDelete holds the names from scaleStrategy.podsToDelete.
	PodsToDelete sets.Set[string]
	// UpdateRevision is the workload's update revision: pods whose
	// controller-revision-hash label differs are old. Empty disables the
	// revision rule.
	UpdateRevision string
	// Now is the reference time for the logarithmic comparison of ready and
	// creation times. A zero Now compares those times exactly.
	Now time.Time
}

// Ranked is a pod in scale-down order with the rule that placed it before
// the next pod.
type Ranked struct {
	Pod *corev1.Pod
	// Reason is one of the Reason* constants: the first rule that tells this
	// pod from the next one. It is ReasonNone for the last pod.
	Reason string
}

// Reasons reported by RankForScaleDownExplained, in the order the rules
// apply.
const (
	ReasonTerminating     = "Terminating"     // being deleted already
	ReasonSpecifiedDelete = "SpecifiedDelete" // podsToDelete or specified-delete annotation
	ReasonUnscheduled     = "Unscheduled"     // no node yet
	ReasonPhase           = "Phase"           // Pending < Unknown < Running
	ReasonNotReady        = "NotReady"        // not Ready < Ready
	ReasonDeletionCost    = "DeletionCost"    // lower pod-deletion-cost
	ReasonOldRevision     = "OldRevision"     // not at the update revision
	ReasonNodeSpread      = "NodeSpread"      // more active pods of the set on its node
	ReasonReadyTime       = "ReadyTime"       // Ready more recently
	ReasonRestarts        = "Restarts"        // more container restarts
	ReasonCreationTime    = "CreationTime"    // created more recently
	ReasonName            = "Name"            // name, namespace, UID, input position
	ReasonNone            = ""                // last pod
)

// RankForScaleDown returns the pods ordered so that the first ones are the
// best to delete. It does not modify the input slice. See
// RankForScaleDownExplained for the rules.
func RankForScaleDown(pods []*corev1.Pod, opts ScaleDownOptions) []*corev1.Pod {
	keys := sortedScaleDownKeys(pods, opts)
	out := make([]*corev1.Pod, len(keys))
	for i := range keys {
		out[i] = keys[i].pod
	}
	return out
}

// RankForScaleDownExplained returns the pods ordered so that the first ones
// are the best to delete, each with the rule that put it before the next.
// It does not modify the input slice. The pods must not be nil.
//
// Each rule breaks the ties of the previous ones:
//
//  0. pods being deleted (deletionTimestamp set); callers normally filter
//     them out;
//  1. pods named in PodsToDelete or annotated AnnotationSpecifiedDelete;
//  2. unscheduled pods, then by phase Pending < Unknown < Running (other
//     phases count as Pending), then not Ready before Ready;
//  3. lower controller.kubernetes.io/pod-deletion-cost (missing or
//     invalid = 0);
//  4. pods not at UpdateRevision;
//  5. pods whose node hosts more active pods of the input (not terminal, not
//     being deleted), so that doubled-up nodes lose pods first;
//  6. for Ready pods, Ready more recently;
//  7. more restarts of a regular container, then of a sidecar;
//  8. created more recently;
//  9. name, then namespace, UID and input position, for a stable order.
//
// Rules 2, 3 and 5 to 8 mirror ActivePodsWithRanks.Less in Kubernetes'
// pkg/controller/controller_utils.go (rule 4 is Drover's), with rule 5's
// rank computed as the ReplicaSet controller does, but from the pods given
// here, and times in rules 6 and 8 compared on a log2 scale relative to Now
// (see ScaleDownOptions.Now). Where Kubernetes breaks a log2-bucket tie by
// UID, the next rule decides here.
func RankForScaleDownExplained(pods []*corev1.Pod, opts ScaleDownOptions) []Ranked {
	keys := sortedScaleDownKeys(pods, opts)
	out := make([]Ranked, len(keys))
	for i := range keys {
		out[i].Pod = keys[i].pod
		if i+1 < len(keys) {
			_, out[i].Reason = compareScaleDown(keys[i], keys[i+1])
		}
	}
	return out
}

// scaleDownKey holds everything the scale-down rules compare, computed once
// per pod.
type scaleDownKey struct {
	pod             *corev1.Pod
	index           int
	readyRank       int64 // recencyRank of the Ready time; 0 if not Ready
	createdRank     int64 // recencyRank of the creation time
	colocated       int32 // active input pods on the same node
	cost            int32
	restarts        int32
	sidecarRestarts int32
	phase           int8
	terminating     bool
	specified       bool
	scheduled       bool
	ready           bool
	old             bool
}

// sortedScaleDownKeys returns the pods' keys in scale-down order. It sorts
// pointers rather than the (large) keys themselves, which is faster.
func sortedScaleDownKeys(pods []*corev1.Pod, opts ScaleDownOptions) []*scaleDownKey {
	perNode := activePodsPerNode(pods)
	keys := make([]scaleDownKey, len(pods))
	sorted := make([]*scaleDownKey, len(pods))
	for i, pod := range pods {
		keys[i] = newScaleDownKey(pod, i, opts)
		keys[i].colocated = perNode[pod.Spec.NodeName]
		sorted[i] = &keys[i]
	}
	slices.SortFunc(sorted, func(a, b *scaleDownKey) int {
		c, _ := compareScaleDown(a, b)
		return c
	})
	return sorted
}

// activePodsPerNode counts the active pods on each node, as the ReplicaSet
// controller's getPodsRankedByRelatedPodsOnSameNode does.
func activePodsPerNode(pods []*corev1.Pod) map[string]int32 {
	perNode := make(map[string]int32)
	for _, pod := range pods {
		if isActive(pod) {
			perNode[pod.Spec.NodeName]++
		}
	}
	return perNode
}

func newScaleDownKey(pod *corev1.Pod, index int, opts ScaleDownOptions) scaleDownKey {
	ready, since := readySince(pod)
	regular, sidecar := maxRestarts(pod)
	k := scaleDownKey{
		pod:             pod,
		index:           index,
		createdRank:     recencyRank(pod.CreationTimestamp.Time, opts.Now),
		cost:            deletionCost(pod.Annotations, appsv1alpha1.AnnotationPodDeletionCost),
		restarts:        regular,
		sidecarRestarts: sidecar,
		phase:           phaseOrdinal(pod.Status.Phase),
		terminating:     pod.DeletionTimestamp != nil,
		specified:       isSpecifiedDelete(pod, opts.PodsToDelete),
		scheduled:       pod.Spec.NodeName != "",
		ready:           ready,
		old:             opts.UpdateRevision != "" && pod.Labels[appsv1.ControllerRevisionHashLabelKey] != opts.UpdateRevision,
	}
	if ready {
		k.readyRank = recencyRank(since, opts.Now)
	}
	return k
}

func isSpecifiedDelete(pod *corev1.Pod, podsToDelete sets.Set[string]) bool {
	if _, ok := pod.Annotations[appsv1alpha1.AnnotationSpecifiedDelete]; ok {
		return true
	}
	return podsToDelete.Has(pod.Name)
}

// compareScaleDown returns a negative number when a should be deleted
// before b, and the rule that decided.
func compareScaleDown(a, b *scaleDownKey) (int, string) {
	switch {
	case a.terminating != b.terminating:
		return trueFirst(a.terminating), ReasonTerminating
	case a.specified != b.specified:
		return trueFirst(a.specified), ReasonSpecifiedDelete
	case a.scheduled != b.scheduled:
		return trueFirst(!a.scheduled), ReasonUnscheduled
	case a.phase != b.phase:
		return cmp.Compare(a.phase, b.phase), ReasonPhase
	case a.ready != b.ready:
		return trueFirst(!a.ready), ReasonNotReady
	case a.cost != b.cost:
		return cmp.Compare(a.cost, b.cost), ReasonDeletionCost
	case a.old != b.old:
		return trueFirst(a.old), ReasonOldRevision
	case a.colocated != b.colocated:
		return cmp.Compare(b.colocated, a.colocated), ReasonNodeSpread
	case a.readyRank != b.readyRank:
		return cmp.Compare(a.readyRank, b.readyRank), ReasonReadyTime
	case a.restarts != b.restarts:
		return cmp.Compare(b.restarts, a.restarts), ReasonRestarts
	case a.sidecarRestarts != b.sidecarRestarts:
		return cmp.Compare(b.sidecarRestarts, a.sidecarRestarts), ReasonRestarts
	case a.createdRank != b.createdRank:
		return cmp.Compare(a.createdRank, b.createdRank), ReasonCreationTime
	}
	if c := compareIdentity(a.pod, b.pod, a.index, b.index); c != 0 {
		return c, ReasonName
	}
	return 0, ReasonNone
}

// compareIdentity orders pods by name, namespace, UID, then input position.
func compareIdentity(a, b *corev1.Pod, ai, bi int) int {
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	if c := strings.Compare(string(a.UID), string(b.UID)); c != 0 {
		return c
	}
	return cmp.Compare(ai, bi)
}

// trueFirst orders two different booleans so that the true one comes first.
func trueFirst(aIsTrue bool) int {
	if aIsTrue {
		return -1
	}
	return 1
}
