package podorder

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

// scatterPods returns pods p0..p(n-1) whose default update order is their
// index (all Ready, p0 oldest), with labels from labelOf.
func scatterPods(n int, labelOf func(i int) map[string]string) []*corev1.Pod {
	pods := make([]*corev1.Pod, n)
	for i := range pods {
		pods[i] = updatePod(fmt.Sprintf("p%d", i), n-i, false)
		pods[i].Labels = labelOf(i)
	}
	return pods
}

func zoneOf(zones ...string) func(int) map[string]string {
	return func(i int) map[string]string {
		if zones[i] == "" {
			return nil
		}
		return map[string]string{"zone": zones[i]}
	}
}

func zoneTerms(values ...string) appsv1alpha1.UpdateScatterStrategy {
	terms := make(appsv1alpha1.UpdateScatterStrategy, len(values))
	for i, v := range values {
		terms[i] = appsv1alpha1.UpdateScatterTerm{Key: "zone", Value: v}
	}
	return terms
}

func TestSortForUpdateScatterExact(t *testing.T) {
	cases := []struct {
		name  string
		zones []string
		terms appsv1alpha1.UpdateScatterStrategy
		want  []string
	}{
		{
			// Matching targets 0, 1/2; others 0, 1/4, 1/2, 3/4. Ties go
			// to the class whose first pod came first (p0's).
			name:  "matching first",
			zones: []string{"a", "a", "", "", "", ""},
			terms: zoneTerms("a"),
			want:  []string{"p0", "p2", "p3", "p1", "p4", "p5"},
		},
		{
			name:  "matching last",
			zones: []string{"", "", "", "", "a", "a"},
			terms: zoneTerms("a"),
			want:  []string{"p0", "p4", "p1", "p2", "p5", "p3"},
		},
		{
			// Classes a (3 pods, targets 0, 1/3, 2/3), b (3 pods, same)
			// and the rest (3 pods, same): a round robin.
			name:  "three classes",
			zones: []string{"a", "a", "a", "b", "b", "b", "", "", ""},
			terms: zoneTerms("a", "b"),
			want:  []string{"p0", "p3", "p6", "p1", "p4", "p7", "p2", "p5", "p8"},
		},
		{
			name:  "label must be present",
			zones: []string{"x", "", "x", "x", "", "x"},
			terms: zoneTerms(""),
			want:  []string{"p0", "p1", "p2", "p3", "p4", "p5"},
		},
		{
			name:  "single class",
			zones: []string{"a", "a", "a", "a"},
			terms: zoneTerms("a"),
			want:  []string{"p0", "p1", "p2", "p3"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pods := scatterPods(len(tc.zones), zoneOf(tc.zones...))
			rand.New(rand.NewPCG(1, 2)).Shuffle(len(pods), func(i, j int) { pods[i], pods[j] = pods[j], pods[i] })
			assertOrder(t, SortForUpdate(pods, UpdateOptions{Scatter: tc.terms}), tc.want...)
		})
	}
}

// TestSortForUpdateScatterWithinPriority checks that scattering never moves
// a pod across priorities.
func TestSortForUpdateScatterWithinPriority(t *testing.T) {
	// p0..p3 have weight 1, p4..p7 weight 0; zone a: p0, p1, p4, p5.
	pods := scatterPods(8, func(i int) map[string]string {
		l := map[string]string{"zone": "b"}
		if i%4 < 2 {
			l["zone"] = "a"
		}
		if i < 4 {
			l["hot"] = "yes"
		}
		return l
	})
	priority := &appsv1alpha1.UpdatePriorityStrategy{WeightPriority: []appsv1alpha1.UpdatePriorityWeightTerm{
		weightTerm(1, metav1.LabelSelector{MatchLabels: map[string]string{"hot": "yes"}}),
	}}
	got := SortForUpdate(pods, UpdateOptions{Priority: priority, Scatter: zoneTerms("a")})
	assertOrder(t, got, "p0", "p2", "p1", "p3", "p4", "p6", "p5", "p7")
}

// positionsMatching returns the positions of the pods with label zone=v.
func positionsMatching(pods []*corev1.Pod, v string) []int {
	var pos []int
	for i, p := range pods {
		if p.Labels["zone"] == v {
			pos = append(pos, i)
		}
	}
	return pos
}

// maxGap returns the largest distance between consecutive positions, also
// counting the stretch after the last one (as distance to n).
func maxGap(pos []int, n int) int {
	gap := n - pos[len(pos)-1]
	for i := 1; i < len(pos); i++ {
		gap = max(gap, pos[i]-pos[i-1])
	}
	return gap
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// TestSortForUpdateScatterSingleTermInvariant checks on random cases that
// n pods of which m match are spread with gaps of at most ⌈n/m⌉, and that
// matching pods keep their relative default order.
func TestSortForUpdateScatterSingleTermInvariant(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for iter := 0; iter < 500; iter++ {
		n := 2 + rng.IntN(200)
		m := 1 + rng.IntN(n)
		zones := make([]string, n)
		for _, i := range rng.Perm(n)[:m] {
			zones[i] = "a"
		}
		pods := scatterPods(n, zoneOf(zones...))
		got := SortForUpdate(pods, UpdateOptions{Scatter: zoneTerms("a")})
		pos := positionsMatching(got, "a")
		if g := maxGap(pos, n); g > ceilDiv(n, m) {
			t.Fatalf("n=%d m=%d: max gap %d > %d; zones %v", n, m, g, ceilDiv(n, m), zones)
		}
		if pos[0] > 1 {
			t.Fatalf("n=%d m=%d: first matching pod at %d", n, m, pos[0])
		}
		assertKeepsClassOrder(t, pods, got)
	}
}

// TestSortForUpdateScatterDisjointTermsInvariant checks on random cases
// with k classes (values of one key, plus the unlabelled pods) that each
// term's pods are spread with gaps of at most ⌈n/m⌉+k-2.
func TestSortForUpdateScatterDisjointTermsInvariant(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	values := []string{"a", "b", "c", "d"}
	worstExcess := 0
	for iter := 0; iter < 500; iter++ {
		n := 4 + rng.IntN(200)
		used := 1 + rng.IntN(len(values))
		zones := make([]string, n)
		for i := range zones {
			if v := rng.IntN(used + 1); v < used { // index used: unlabelled
				zones[i] = values[v]
			}
		}
		pods := scatterPods(n, zoneOf(zones...))
		got := SortForUpdate(pods, UpdateOptions{Scatter: zoneTerms(values[:used]...)})
		k := len(slices.Compact(slices.Sorted(slices.Values(zones))))
		for _, v := range values[:used] {
			pos := positionsMatching(got, v)
			if len(pos) == 0 {
				continue
			}
			bound := ceilDiv(n, len(pos))
			g := maxGap(pos, n)
			worstExcess = max(worstExcess, g-bound)
			if g > bound+k-2 {
				t.Fatalf("n=%d zone %s (m=%d, k=%d): max gap %d > %d", n, v, len(pos), k, g, bound+k-2)
			}
		}
		assertKeepsClassOrder(t, pods, got)
	}
	t.Logf("worst gap above ⌈n/m⌉: %d", worstExcess)
}

// TestSortForUpdateScatterOverlappingTerms checks that terms on different
// keys, which a pod can match together, still give a permutation that keeps
// the order within each class and spreads each term.
func TestSortForUpdateScatterOverlappingTerms(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 17))
	n := 120
	pods := scatterPods(n, func(int) map[string]string {
		return map[string]string{
			"zone": []string{"a", "b", "c"}[rng.IntN(3)],
			"arch": []string{"amd64", "arm64"}[rng.IntN(2)],
		}
	})
	terms := appsv1alpha1.UpdateScatterStrategy{{Key: "zone", Value: "a"}, {Key: "arch", Value: "arm64"}}
	got := SortForUpdate(pods, UpdateOptions{Scatter: terms})
	if len(got) != n || len(positionsMatching(got, "a")) != len(positionsMatching(pods, "a")) {
		t.Fatal("not a permutation")
	}
	assertKeepsClassOrder(t, pods, got)
	pos := positionsMatching(got, "a")
	// Four classes: the union of two of them is spread within ⌈n/m⌉+2.
	if g, bound := maxGap(pos, n), ceilDiv(n, len(pos))+2; g > bound {
		t.Errorf("zone a: max gap %d > %d", g, bound)
	}
}

// assertKeepsClassOrder checks that got is a permutation of pods (given in
// default order) in which pods with the same labels keep their order.
func assertKeepsClassOrder(t *testing.T, pods, got []*corev1.Pod) {
	t.Helper()
	if len(got) != len(pods) {
		t.Fatalf("got %d pods, want %d", len(got), len(pods))
	}
	index := make(map[*corev1.Pod]int, len(pods))
	for i, p := range pods {
		index[p] = i
	}
	last := map[string]int{}
	for _, p := range got {
		i, ok := index[p]
		if !ok {
			t.Fatalf("unexpected pod %s", p.Name)
		}
		delete(index, p)
		class := fmt.Sprint(p.Labels)
		if prev, seen := last[class]; seen && prev > i {
			t.Fatalf("class %s: %s moved before an earlier pod", class, p.Name)
		}
		last[class] = i
	}
}
