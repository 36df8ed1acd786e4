package podorder

import (
	"cmp"
	"math"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

// UpdateOptions tunes SortForUpdate.
type UpdateOptions struct {
	// Priority is the update strategy's priorityStrategy, if any.
	Priority *appsv1alpha1.UpdatePriorityStrategy
	// Scatter is the update strategy's scatterStrategy, if any.
	Scatter appsv1alpha1.UpdateScatterStrategy
	// KeepInputOrder orders pods of equal priority as the input does,
	// instead of the default order (a StatefulSet passes its pods highest
	// ordinal first).
	KeepInputOrder bool
}

// SortForUpdate returns the pods in the order they should be updated (first
// = first updated). It does not modify the input slice. The pods must not be
// nil.
//
// Pods are sorted by priority, highest first:
//   - weightPriority: a pod's priority is the sum of the weights of the
//     terms whose matchSelector matches its labels. A term whose selector
//     does not parse is ignored.
//   - orderPriority: the orderedKeys are compared in turn; for each, the
//     pod's priority is the integer formed by the digits that end its label
//     value ("3" and "tier-3" both give 3, of any length). A missing label or
//     a value not ending in a digit ranks below every integer.
//
// If both lists are set (the API forbids it), weights decide first. Pods of
// equal priority, and all pods when there is no priority strategy, are in
// the default order: not Ready first (updating them costs no availability),
// then oldest creationTimestamp first, then name.
//
// Finally the scatter strategy, if any, spreads the pods matching its terms
// (label key=value present on the pod) across each group of equal priority;
// pods never move across priorities. Within a group of n pods, the pods
// that match exactly the same set of terms form a class (the pods matching
// none form one too). A class of m pods is laid at the evenly spaced
// targets j·n/m, j = 0..m-1, keeping its pods in the order above, and the
// group becomes the merge of all classes by target (compared exactly, as
// fractions); on equal targets the class whose first pod came first goes
// first. With one term, consecutive matching pods end up at most ⌈n/m⌉
// positions apart; with k classes, at most ⌈n/m⌉+k-2.
func SortForUpdate(pods []*corev1.Pod, opts UpdateOptions) []*corev1.Pod {
	p := newPrioritizer(opts.Priority)
	terms := scatterTerms(opts.Scatter)
	keys := make([]updateKey, len(pods))
	sorted := make([]*updateKey, len(pods)) // sorting pointers is faster
	orderVals := make([]orderValue, len(pods)*len(p.orderKeys))
	for i, pod := range pods {
		vals := orderVals[i*len(p.orderKeys) : (i+1)*len(p.orderKeys)]
		keys[i] = newUpdateKey(pod, i, p, vals, terms)
		sorted[i] = &keys[i]
	}
	slices.SortFunc(sorted, func(a, b *updateKey) int {
		if c := comparePriority(a, b); c != 0 {
			return c
		}
		if opts.KeepInputOrder {
			return cmp.Compare(a.index, b.index)
		}
		return compareDefaultUpdate(a, b)
	})
	if len(terms) > 0 {
		scatterGroups(sorted)
	}
	out := make([]*corev1.Pod, len(sorted))
	for i, k := range sorted {
		out[i] = k.pod
	}
	return out
}

// updateKey holds everything SortForUpdate compares, computed once per pod.
type updateKey struct {
	pod       *corev1.Pod
	index     int
	created   int64 // creation time in Unix nanoseconds, MinInt64 if unset
	weight    int64
	order     []orderValue // one per orderedKey
	ready     bool
	signature uint64 // bit i: the pod matches scatter term i
	scatterPlace
}

func newUpdateKey(pod *corev1.Pod, index int, p prioritizer, vals []orderValue, terms appsv1alpha1.UpdateScatterStrategy) updateKey {
	ready, _ := readySince(pod)
	for i, key := range p.orderKeys {
		vals[i] = parseOrderValue(pod.Labels, key)
	}
	return updateKey{
		pod:       pod,
		index:     index,
		created:   unixNanoOrMin(pod.CreationTimestamp),
		weight:    p.weight(pod.Labels),
		order:     vals,
		ready:     ready,
		signature: scatterSignature(pod.Labels, terms),
	}
}

func unixNanoOrMin(t metav1.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	return t.UnixNano()
}

// comparePriority returns a negative number when a has the higher priority.
func comparePriority(a, b *updateKey) int {
	if c := cmp.Compare(b.weight, a.weight); c != 0 {
		return c
	}
	for i := range a.order {
		if c := compareOrderValues(b.order[i], a.order[i]); c != 0 {
			return c
		}
	}
	return 0
}

// compareDefaultUpdate orders pods of equal priority: not Ready first, then
// oldest first, then by name (and namespace, UID, input position).
func compareDefaultUpdate(a, b *updateKey) int {
	if a.ready != b.ready {
		return trueFirst(!a.ready)
	}
	if c := cmp.Compare(a.created, b.created); c != 0 {
		return c
	}
	return compareIdentity(a.pod, b.pod, a.index, b.index)
}

// prioritizer holds a priority strategy with its selectors parsed once.
type prioritizer struct {
	selectors []labels.Selector
	weights   []int64
	orderKeys []string
}

func newPrioritizer(s *appsv1alpha1.UpdatePriorityStrategy) prioritizer {
	var p prioritizer
	if s == nil {
		return p
	}
	for i := range s.WeightPriority {
		term := &s.WeightPriority[i]
		sel, err := metav1.LabelSelectorAsSelector(&term.MatchSelector)
		if err != nil {
			continue // the CRD validates selectors; ignore a bad one
		}
		p.selectors = append(p.selectors, sel)
		p.weights = append(p.weights, int64(term.Weight))
	}
	for _, t := range s.OrderPriority {
		p.orderKeys = append(p.orderKeys, t.OrderedKey)
	}
	return p
}

// weight sums the weights of the terms matching the labels.
func (p prioritizer) weight(podLabels map[string]string) int64 {
	var w int64
	for i, sel := range p.selectors {
		if sel.Matches(labels.Set(podLabels)) {
			w += p.weights[i]
		}
	}
	return w
}

// orderValue is the integer at the end of a label value, kept as its digits
// without leading zeros so that values of any length compare exactly.
type orderValue struct {
	digits string
	ok     bool // false: no label, or no digit at the end of its value
}

func parseOrderValue(podLabels map[string]string, key string) orderValue {
	v, ok := podLabels[key]
	if !ok {
		return orderValue{}
	}
	start := len(v)
	for start > 0 && v[start-1] >= '0' && v[start-1] <= '9' {
		start--
	}
	if start == len(v) {
		return orderValue{}
	}
	return orderValue{digits: strings.TrimLeft(v[start:], "0"), ok: true}
}

// compareOrderValues compares two values numerically; a missing value is
// the lowest.
func compareOrderValues(a, b orderValue) int {
	if a.ok != b.ok {
		return trueFirst(b.ok)
	}
	if c := cmp.Compare(len(a.digits), len(b.digits)); c != 0 {
		return c
	}
	return strings.Compare(a.digits, b.digits)
}
