package podorder

import (
	"cmp"
	"slices"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

// maxScatterTerms is how many scatter terms fit in a signature. The API
// allows 16; extra terms are ignored.
const maxScatterTerms = 64

// scatterPlace is the scratch state of one pod while its group is
// scattered.
type scatterPlace struct {
	position  int // position in the group before scattering
	classRank int // rank of the pod within its class
	classSize int // number of pods in its class
	classHead int // position of the first pod of its class
}

func scatterTerms(s appsv1alpha1.UpdateScatterStrategy) appsv1alpha1.UpdateScatterStrategy {
	if len(s) > maxScatterTerms {
		return s[:maxScatterTerms]
	}
	return s
}

// scatterSignature returns the set of terms the labels match, as a bitmask.
// A term matches when the pod has the label with exactly that value.
func scatterSignature(podLabels map[string]string, terms appsv1alpha1.UpdateScatterStrategy) uint64 {
	var sig uint64
	for i := range terms {
		if v, ok := podLabels[terms[i].Key]; ok && v == terms[i].Value {
			sig |= 1 << i
		}
	}
	return sig
}

// scatterGroups scatters, in place, each run of keys of equal priority.
func scatterGroups(keys []*updateKey) {
	for lo := 0; lo < len(keys); {
		hi := lo + 1
		for hi < len(keys) && comparePriority(keys[lo], keys[hi]) == 0 {
			hi++
		}
		scatter(keys[lo:hi])
		lo = hi
	}
}

// scatter spreads, in place, the pods of one priority group so that the
// pods matching a scatter term are not updated one after another. The
// group must be in priority/default order.
//
// The pods that match exactly the same set of terms form a class (the pods
// matching no term form one too). A class of size m in a group of n pods
// is laid at the evenly spaced targets j·n/m, j = 0..m-1, its pods keeping
// their order (so the default order still holds within a class). The group
// is then the merge of all classes by target; equal targets go to the class
// whose first pod came first before scattering. Targets are compared
// exactly, as fractions.
//
// With a single term, consecutive matching pods are then at most ⌈n/m⌉
// positions apart, and at most ⌈n/m⌉-1 pods follow the last one. With k
// classes, consecutive pods of a class of size m are at most ⌈n/m⌉+k-2
// positions apart. The cost is O(n log n) and no allocation.
func scatter(group []*updateKey) {
	if len(group) < 3 || !hasTwoClasses(group) {
		return
	}
	for i := range group {
		group[i].position = i
	}
	slices.SortFunc(group, func(a, b *updateKey) int {
		if c := cmp.Compare(a.signature, b.signature); c != 0 {
			return c
		}
		return cmp.Compare(a.position, b.position)
	})
	rankWithinClasses(group)
	slices.SortFunc(group, func(a, b *updateKey) int {
		return compareTargets(&a.scatterPlace, &b.scatterPlace)
	})
}

func hasTwoClasses(group []*updateKey) bool {
	for i := 1; i < len(group); i++ {
		if group[i].signature != group[0].signature {
			return true
		}
	}
	return false
}

// rankWithinClasses fills the scatter places of a group sorted by
// (signature, position).
func rankWithinClasses(group []*updateKey) {
	for lo := 0; lo < len(group); {
		hi := lo + 1
		for hi < len(group) && group[hi].signature == group[lo].signature {
			hi++
		}
		for i := lo; i < hi; i++ {
			group[i].classRank = i - lo
			group[i].classSize = hi - lo
			group[i].classHead = group[lo].position
		}
		lo = hi
	}
}

// compareTargets compares the targets rank/size of two pods (the group
// size cancels out) by cross-multiplication, then their classes.
func compareTargets(a, b *scatterPlace) int {
	if c := cmp.Compare(a.classRank*b.classSize, b.classRank*a.classSize); c != 0 {
		return c
	}
	if c := cmp.Compare(a.classHead, b.classHead); c != 0 {
		return c
	}
	return cmp.Compare(a.classRank, b.classRank)
}
