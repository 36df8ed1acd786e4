package podorder

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

// benchmarkPods returns n varied pods of one workload on n/50 nodes.
func benchmarkPods(n int) []*corev1.Pod {
	rng := rand.New(rand.NewPCG(42, 42))
	now := refTime()
	ago := func(maxHours int) time.Time {
		return now.Add(-time.Duration(rng.IntN(maxHours*3600)) * time.Second)
	}
	pods := make([]*corev1.Pod, n)
	for i := range pods {
		created := ago(24 * 30)
		mods := []podModifier{
			withCreated(created),
			withRevision(fmt.Sprintf("rev-%d", 1+rng.IntN(2))),
			withLabel("zone", []string{"a", "b", "c"}[rng.IntN(3)]),
			withLabel("tier", fmt.Sprintf("tier-%d", rng.IntN(4))),
			withLabel("app", []string{"web", "api"}[rng.IntN(2)]),
			withRestarts(int32(rng.IntN(3))),
		}
		switch r := rng.IntN(20); {
		case r == 0:
			mods = append(mods, withPhase(corev1.PodPending))
		case r == 1:
			mods = append(mods, withNode(fmt.Sprintf("node-%d", rng.IntN(n/50+1))), withPhase(corev1.PodRunning), withNotReady())
		default:
			mods = append(mods, withRunningReady(fmt.Sprintf("node-%d", rng.IntN(n/50+1)), ago(24*30)))
		}
		if rng.IntN(10) == 0 {
			mods = append(mods, withAnnotation(appsv1alpha1.AnnotationPodDeletionCost, fmt.Sprint(rng.IntN(5)-2)))
		}
		pods[i] = newPod(fmt.Sprintf("web-%05d-%x", i, rng.Uint32()), mods...)
	}
	return pods
}

func benchmarkUpdateOptions() UpdateOptions {
	return UpdateOptions{
		Priority: &appsv1alpha1.UpdatePriorityStrategy{WeightPriority: []appsv1alpha1.UpdatePriorityWeightTerm{
			weightTerm(50, metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}),
			weightTerm(20, metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"tier-0", "tier-1"}},
			}}),
		}},
		Scatter: zoneTerms("a", "b"),
	}
}

func TestInputsNotMutated(t *testing.T) {
	pods := benchmarkPods(300)
	pods[0].DeletionTimestamp = &metav1.Time{Time: refTime()}
	want := make([]*corev1.Pod, len(pods))
	snapshot := make([]*corev1.Pod, len(pods))
	for i, p := range pods {
		want[i] = p
		snapshot[i] = p.DeepCopy()
	}
	priority := &appsv1alpha1.UpdatePriorityStrategy{OrderPriority: []appsv1alpha1.UpdatePriorityOrderTerm{{OrderedKey: "tier"}}}
	scatter := zoneTerms("a")
	podsToDelete := sets.New(pods[5].Name)

	RankForScaleDown(pods, ScaleDownOptions{PodsToDelete: podsToDelete, UpdateRevision: "rev-2", Now: refTime()})
	RankForScaleDownExplained(pods, ScaleDownOptions{UpdateRevision: "rev-2", Now: refTime()})
	SortForUpdate(pods, benchmarkUpdateOptions())
	SortForUpdate(pods, UpdateOptions{Priority: priority, Scatter: scatter})

	for i := range pods {
		if pods[i] != want[i] {
			t.Fatalf("input slice reordered at %d", i)
		}
		if !reflect.DeepEqual(pods[i], snapshot[i]) {
			t.Fatalf("pod %s modified", pods[i].Name)
		}
	}
	if !podsToDelete.Equal(sets.New(pods[5].Name)) || len(scatter) != 1 || priority.OrderPriority[0].OrderedKey != "tier" {
		t.Fatal("options modified")
	}
}

func BenchmarkRankForScaleDown10k(b *testing.B) {
	pods := benchmarkPods(10_000)
	opts := ScaleDownOptions{
		PodsToDelete:   sets.New(pods[1].Name, pods[2].Name),
		UpdateRevision: "rev-2",
		Now:            refTime(),
	}
	b.Run("ranked", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			RankForScaleDown(pods, opts)
		}
	})
	b.Run("explained", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			RankForScaleDownExplained(pods, opts)
		}
	})
}

func BenchmarkSortForUpdate10k(b *testing.B) {
	pods := benchmarkPods(10_000)
	cases := []struct {
		name string
		opts UpdateOptions
	}{
		{"default", UpdateOptions{}},
		{"weight+scatter", benchmarkUpdateOptions()},
		{"order+scatter", UpdateOptions{
			Priority: &appsv1alpha1.UpdatePriorityStrategy{OrderPriority: []appsv1alpha1.UpdatePriorityOrderTerm{{OrderedKey: "tier"}}},
			Scatter:  zoneTerms("a", "b"),
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				SortForUpdate(pods, tc.opts)
			}
		})
	}
}
