package statefulset

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

// view builds a pod view of set "db": "3" is an available pod at ordinal 3
// on the update revision; modifiers change it.
func view(ordinal int32, mods ...func(*podView)) *podView {
	v := &podView{
		pod:       &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: podName("db", ordinal), Labels: map[string]string{}}},
		ordinal:   ordinal,
		revision:  "new",
		updated:   true,
		available: true,
	}
	for _, m := range mods {
		m(v)
	}
	return v
}

func old(v *podView)         { v.revision, v.updated = "old", false }
func oldNoIP(v *podView)     { v.revision, v.updated = "old-noip", false }
func notReady(v *podView)    { v.available = false }
func terminating(v *podView) { v.terminating, v.available = true, false }
func finished(v *podView)    { v.finished, v.available = true, false }
func deleting(v *podView)    { v.deleting = true }
func preparing(v *podView)   { v.preparing = true }
func inPlaceBusy(v *podView) { v.inFlight, v.updating, v.available = true, true, false }
func withLabel(k, val string) func(*podView) {
	return func(v *podView) { v.pod.Labels[k] = val }
}

func seq(from, to int32) []int32 {
	var out []int32
	for o := from; o <= to; o++ {
		out = append(out, o)
	}
	return out
}

// summary renders a plan: "+2 +3(cur) -4(condemned) ~1 blocked wait".
func summary(p plan) string {
	var parts []string
	for _, c := range p.creates {
		s := fmt.Sprintf("+%d", c.ordinal)
		if c.current {
			s += "(cur)"
		}
		parts = append(parts, s)
	}
	for _, d := range p.deletes {
		parts = append(parts, fmt.Sprintf("-%d(%s)", d.view.ordinal, d.reason))
	}
	for _, v := range p.inPlace {
		parts = append(parts, fmt.Sprintf("~%d", v.ordinal))
	}
	if p.blocked {
		parts = append(parts, "blocked")
	}
	if p.waitingFor != "" {
		parts = append(parts, "wait")
	}
	return strings.Join(parts, " ")
}

func baseInput(ordinals []int32, pods ...*podView) planInput {
	return planInput{
		ordered:        true,
		ordinals:       ordinals,
		maxUnavailable: 1,
		policy:         appsv1alpha1.ReCreateStatefulSetPodUpdatePolicy,
		inPlace:        func(rev string) bool { return rev == "old" },
		pods:           pods,
	}
}

func TestComputePlan(t *testing.T) {
	parallel := func(in *planInput) { in.ordered = false }
	inPlace := func(in *planInput) { in.policy = appsv1alpha1.InPlaceIfPossibleStatefulSetPodUpdatePolicy }
	cases := []struct {
		name string
		in   planInput
		mods []func(*planInput)
		want string
	}{
		{"ordered: creates the lowest missing ordinal only", baseInput(seq(0, 2)), nil, "+0 wait"},
		{"ordered: waits for the previous pod to be available", baseInput(seq(0, 2), view(0, notReady)), nil, "wait"},
		{"ordered: next ordinal once the previous is available", baseInput(seq(0, 2), view(0)), nil, "+1 wait"},
		{"ordered: a terminating pod blocks", baseInput(seq(0, 2), view(0, terminating), view(1)), nil, "wait"},
		{"parallel: creates every missing ordinal", baseInput(seq(0, 3), view(1, notReady)), []func(*planInput){parallel}, "+0 +2 +3"},
		{"ordinals.start and reserved ordinals", baseInput([]int32{5, 7, 8}, view(5)), []func(*planInput){parallel}, "+7 +8"},
		{"ordered: scale down from the highest, one at a time", baseInput(seq(0, 1), view(0), view(1), view(2), view(3)), nil, "-3(condemned) wait"},
		{"ordered: scale down waits for the terminating pod", baseInput(seq(0, 1), view(0), view(1), view(2), view(3, terminating)), nil, "wait"},
		{"ordered: scale down waits for every kept pod to be available", baseInput(seq(0, 1), view(0, notReady), view(1), view(2)), nil, "wait"},
		{"parallel: scale down at once", baseInput(seq(0, 1), view(0, notReady), view(1), view(2), view(3)), []func(*planInput){parallel}, "-3(condemned) -2(condemned)"},
		{"reserving a live ordinal: next one first, then the reserved pod goes", baseInput([]int32{0, 2, 3}, view(0), view(1), view(2)), nil, "+3 wait"},
		{"reserving a live ordinal: deleted once the new one is available", baseInput([]int32{0, 2, 3}, view(0), view(1), view(2), view(3)), nil, "-1(condemned) wait"},
		{"finished pod is replaced", baseInput(seq(0, 1), view(0, finished), view(1)), nil, "-0(finished) wait"},
		{"ordered update: highest ordinal first", baseInput(seq(0, 2), view(0, old), view(1, old), view(2, old)), nil, "-2(recreate-update)"},
		{"ordered update: next one once the last is back", baseInput(seq(0, 2), view(0, old), view(1, old), view(2)), nil, "-1(recreate-update)"},
		{"ordered update: waits for the updated pod", baseInput(seq(0, 2), view(0, old), view(1, old), view(2, notReady)), nil, "wait"},
		{"recreated pod below the partition keeps the current revision", withPartition(baseInput(seq(0, 2), view(1, old), view(2)), 2), nil, "+0(cur) wait"},
		{"partition: positions below it are not updated", withPartition(baseInput(seq(0, 2), view(0, old), view(1, old), view(2)), 2), nil, ""},
		{"partition counts positions, not ordinals", withPartition(baseInput([]int32{3, 5, 6}, view(3, old), view(5, old), view(6, old)), 1), nil, "-6(recreate-update)"},
		{"paused: no update, but created pods get the update revision", withPaused(baseInput(seq(0, 2), view(0, old), view(1, old))), nil, "+2 wait"},
		{"paused: nothing moves", withPaused(baseInput(seq(0, 2), view(0, old), view(1, old), view(2))), nil, ""},
		{"onDelete: nothing is updated, new pods get the update revision", withOnDelete(baseInput(seq(0, 2), view(0, old), view(1, old))), nil, "+2 wait"},
		{"in place when possible", baseInput(seq(0, 2), view(0, old), view(1, oldNoIP), view(2, oldNoIP)), []func(*planInput){inPlace}, "-2(recreate-update)"},
		{"in place", baseInput(seq(0, 2), view(0, oldNoIP), view(1, old), view(2)), []func(*planInput){inPlace}, "~1"},
		{"parallel maxUnavailable 2: two highest at once", withMaxUnavailable(baseInput(seq(0, 3), view(0, old), view(1, old), view(2, old), view(3, old)), 2), []func(*planInput){parallel, inPlace}, "~3 ~2"},
		{"parallel: in-flight pods use the budget", withMaxUnavailable(baseInput(seq(0, 3), view(0, old), view(1, old), view(2, inPlaceBusy), view(3)), 2), []func(*planInput){parallel, inPlace}, "~1"},
		{"parallel: unavailable old pods update for free", withMaxUnavailable(baseInput(seq(0, 3), view(0, old, notReady), view(1, old), view(2, old), view(3, old)), 1), []func(*planInput){parallel, inPlace}, "~0"},
		{"parallel: an unavailable old pod is free even with no budget", withMaxUnavailable(baseInput(seq(0, 2), view(0, old, notReady), view(1, old), view(2, old)), 2), []func(*planInput){parallel, inPlace}, "~2 ~0"},
		{"parallel: missing pods use the budget", withMaxUnavailable(baseInput(seq(0, 3), view(0, old), view(1, old), view(2, old)), 2), []func(*planInput){parallel, inPlace}, "+3 ~2"},
		{"InPlaceOnly refuses a change that needs recreation, touching nothing", withPolicy(baseInput(seq(0, 2), view(0, old), view(1, oldNoIP), view(2, old)), appsv1alpha1.InPlaceOnlyStatefulSetPodUpdatePolicy), nil, "blocked"},
		{"held preDelete pod goes on", baseInput(seq(0, 1), view(0), view(1), view(2, deleting)), nil, "-2(held) wait"},
		{"held pod for recreate stays while paused", withPaused(baseInput(seq(0, 1), view(0), view(1, old, deleting))), []func(*planInput){parallel}, ""},
		{"pod held in PreparingUpdate goes on even when not available", baseInput(seq(0, 1), view(0, old), view(1, old, preparing, notReady)), []func(*planInput){inPlace}, "~1 wait"},
		{"pod held in PreparingUpdate stays while paused", withPaused(baseInput(seq(0, 1), view(0, old), view(1, old, preparing))), []func(*planInput){inPlace}, ""},
		{"pod held in PreparingUpdate uses the budget", baseInput(seq(0, 1), view(0, old), view(1, old, preparing)), []func(*planInput){inPlace}, "~1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			for _, m := range tc.mods {
				m(&in)
			}
			if got := summary(computePlan(in)); got != tc.want {
				t.Errorf("plan %q, want %q", got, tc.want)
			}
		})
	}
}

func withPartition(in planInput, n int32) planInput      { in.partition = n; return in }
func withPaused(in planInput) planInput                  { in.paused = true; return in }
func withOnDelete(in planInput) planInput                { in.onDelete = true; return in }
func withMaxUnavailable(in planInput, n int32) planInput { in.maxUnavailable = n; return in }
func withPolicy(in planInput, p appsv1alpha1.StatefulSetPodUpdatePolicy) planInput {
	in.policy = p
	return in
}

func TestPlanPriorityOrder(t *testing.T) {
	priority := &appsv1alpha1.UpdatePriorityStrategy{WeightPriority: []appsv1alpha1.UpdatePriorityWeightTerm{
		{Weight: 50, MatchSelector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "replica"}}},
	}}
	in := withMaxUnavailable(baseInput(seq(0, 4),
		view(0, old, withLabel("role", "primary")), view(1, old, withLabel("role", "replica")),
		view(2, old, withLabel("role", "primary")), view(3, old, withLabel("role", "replica")),
		view(4, old, withLabel("role", "primary"))), 3)
	in.ordered = false
	in.policy = appsv1alpha1.InPlaceIfPossibleStatefulSetPodUpdatePolicy
	in.sortForUpdate = func(v []*podView) []*podView { return sortByPriority(v, priority) }
	// Replicas first (highest ordinal first among them), then the highest primary.
	if got := summary(computePlan(in)); got != "~3 ~1 ~4" {
		t.Fatalf("plan %q, want replicas 3 and 1 then primary 4", got)
	}
}

func TestReservedOrdinals(t *testing.T) {
	cases := []struct {
		items       []string
		start, n    int32
		want        []int32
		reservedOne int32
		isReserved  bool
	}{
		{nil, 0, 3, []int32{0, 1, 2}, 1, false},
		{[]string{"1"}, 0, 3, []int32{0, 2, 3}, 1, true},
		{[]string{"3-5", "1"}, 0, 4, []int32{0, 2, 6, 7}, 4, true},
		{[]string{"2-3", "3-4", "6"}, 0, 4, []int32{0, 1, 5, 7}, 6, true},
		{[]string{"0-999999999"}, 0, 2, []int32{1000000000, 1000000001}, 5, true},
		{[]string{"11"}, 10, 3, []int32{10, 12, 13}, 12, false},
	}
	for _, tc := range cases {
		r, err := parseReserved(ints(tc.items...))
		if err != nil {
			t.Fatalf("%v: %v", tc.items, err)
		}
		if got := r.ordinals(tc.start, tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("%v start %d n %d: got %v want %v", tc.items, tc.start, tc.n, got, tc.want)
		}
		if r.has(tc.reservedOne) != tc.isReserved {
			t.Errorf("%v: has(%d) = %v", tc.items, tc.reservedOne, !tc.isReserved)
		}
	}
	for _, bad := range []string{"5-3", "a", "-1", "3-", "1-2-3"} {
		if _, err := parseReserved(ints(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestPodOrdinal(t *testing.T) {
	for name, want := range map[string]int32{"db-0": 0, "db-12": 12} {
		if got, ok := podOrdinal("db", name); !ok || got != want {
			t.Errorf("%s: %d %v", name, got, ok)
		}
	}
	for _, name := range []string{"db-", "db-01", "db-x", "dbx-1", "db-1-2", "web-1", "db--1"} {
		if _, ok := podOrdinal("db", name); ok {
			t.Errorf("%s parsed as a member", name)
		}
	}
}

func TestClaimOwners(t *testing.T) {
	const retain, del = appsv1alpha1.RetainPersistentVolumeClaimRetentionPolicyType, appsv1alpha1.DeletePersistentVolumeClaimRetentionPolicyType
	cases := []struct {
		deleted, scaled  appsv1alpha1.PersistentVolumeClaimRetentionPolicyType
		condemned        bool
		wantSet, wantPod bool
	}{
		{retain, retain, false, false, false},
		{retain, retain, true, false, false},
		{del, retain, false, true, false},
		{del, retain, true, true, false},
		{retain, del, false, false, false},
		{retain, del, true, false, true},
		{del, del, false, true, false},
		{del, del, true, false, true},
	}
	for _, tc := range cases {
		set, pod := claimOwners(appsv1alpha1.StatefulSetPersistentVolumeClaimRetentionPolicy{WhenDeleted: tc.deleted, WhenScaled: tc.scaled}, tc.condemned)
		if set != tc.wantSet || pod != tc.wantPod {
			t.Errorf("whenDeleted=%s whenScaled=%s condemned=%v: set %v pod %v", tc.deleted, tc.scaled, tc.condemned, set, pod)
		}
	}
}

// ints reads reserveOrdinals items: numbers as integers, the rest as strings.
func ints(items ...string) []intstr.IntOrString {
	out := make([]intstr.IntOrString, len(items))
	for i, s := range items {
		if n, err := strconv.Atoi(s); err == nil {
			out[i] = intstr.FromInt(n)
		} else {
			out[i] = intstr.FromString(s)
		}
	}
	return out
}

func TestResolve(t *testing.T) {
	pct := func(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }
	set := func(policy appsv1alpha1.StatefulSetPodManagementPolicy, ru *appsv1alpha1.RollingUpdateStatefulSetStrategy) *appsv1alpha1.StatefulSet {
		return &appsv1alpha1.StatefulSet{Spec: appsv1alpha1.StatefulSetSpec{
			PodManagementPolicy: policy, MinReadySeconds: 7,
			UpdateStrategy: appsv1alpha1.StatefulSetUpdateStrategy{Type: appsv1alpha1.RollingUpdateStatefulSetStrategyType, RollingUpdate: ru},
		}}
	}
	priority := &appsv1alpha1.UpdatePriorityStrategy{OrderPriority: []appsv1alpha1.UpdatePriorityOrderTerm{{OrderedKey: "k"}}}
	full := &appsv1alpha1.RollingUpdateStatefulSetStrategy{
		Partition: pct("25%"), MaxUnavailable: pct("30%"), MinReadySeconds: ptr.To[int32](3), Paused: true,
		PodUpdatePolicy: appsv1alpha1.InPlaceOnlyStatefulSetPodUpdatePolicy,
		UnorderedUpdate: &appsv1alpha1.StatefulSetUnorderedUpdateStrategy{PriorityStrategy: priority},
	}
	cases := []struct {
		name string
		set  *appsv1alpha1.StatefulSet
		want string
	}{
		{"defaults", set("", nil), "ordered=true partition=0 maxUnavailable=1 minReady=7 paused=false policy=ReCreate priority=false"},
		{"percentages of 10: partition rounds up, maxUnavailable down", set(appsv1alpha1.ParallelPodManagement, full),
			"ordered=false partition=3 maxUnavailable=3 minReady=3 paused=true policy=InPlaceOnly priority=true"},
		{"maxUnavailable rounds down to 0: at least 1", set(appsv1alpha1.ParallelPodManagement, &appsv1alpha1.RollingUpdateStatefulSetStrategy{MaxUnavailable: pct("5%")}),
			"ordered=false partition=0 maxUnavailable=1 minReady=7 paused=false policy=ReCreate priority=false"},
		{"priority needs Parallel", set(appsv1alpha1.OrderedReadyPodManagement, &appsv1alpha1.RollingUpdateStatefulSetStrategy{
			UnorderedUpdate: &appsv1alpha1.StatefulSetUnorderedUpdateStrategy{PriorityStrategy: priority}}),
			"ordered=true partition=0 maxUnavailable=1 minReady=7 paused=false policy=ReCreate priority=false"},
	}
	for _, tc := range cases {
		s := resolve(tc.set, 10)
		got := fmt.Sprintf("ordered=%v partition=%d maxUnavailable=%d minReady=%d paused=%v policy=%s priority=%v",
			s.ordered, s.partition, s.maxUnavailable, s.minReady, s.paused, s.policy, s.priority != nil)
		if got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
	onDelete := set("", full)
	onDelete.Spec.UpdateStrategy.Type = appsv1alpha1.OnDeleteStatefulSetStrategyType
	if s := resolve(onDelete, 10); !s.onDelete || s.paused || s.partition != 0 {
		t.Errorf("OnDelete ignores rollingUpdate: %+v", s)
	}
}
