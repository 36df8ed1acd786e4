package podorder

import (
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

// updatePod is a Running pod created the given number of hours before
// refTime, Ready unless notReady is set.
func updatePod(name string, hoursAgo int, notReady bool, mods ...podModifier) *corev1.Pod {
	now := refTime()
	created := now.Add(-time.Duration(hoursAgo) * time.Hour)
	base := []podModifier{withRunningReady("n1", created), withCreated(created)}
	if notReady {
		base = append(base, withNotReady())
	}
	return newPod(name, append(base, mods...)...)
}

func assertOrder(t *testing.T, got []*corev1.Pod, want ...string) {
	t.Helper()
	if names := podNames(got); !slices.Equal(names, want) {
		t.Errorf("got %v, want %v", names, want)
	}
}

func TestSortForUpdateDefault(t *testing.T) {
	cases := []struct {
		name string
		pods []*corev1.Pod
		want []string
	}{
		{
			name: "not ready first",
			pods: []*corev1.Pod{updatePod("a", 5, false), updatePod("b", 1, true)},
			want: []string{"b", "a"},
		},
		{
			name: "older first",
			pods: []*corev1.Pod{updatePod("a", 1, false), updatePod("b", 5, false)},
			want: []string{"b", "a"},
		},
		{
			name: "name last",
			pods: []*corev1.Pod{updatePod("b", 1, false), updatePod("a", 1, false)},
			want: []string{"a", "b"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assertOrder(t, SortForUpdate(tc.pods, UpdateOptions{}), tc.want...)
			reversed := slices.Clone(tc.pods)
			slices.Reverse(reversed)
			assertOrder(t, SortForUpdate(reversed, UpdateOptions{}), tc.want...)
		})
	}
}

func weightTerm(weight int32, sel metav1.LabelSelector) appsv1alpha1.UpdatePriorityWeightTerm {
	return appsv1alpha1.UpdatePriorityWeightTerm{Weight: weight, MatchSelector: sel}
}

func TestSortForUpdateWeightPriority(t *testing.T) {
	priority := &appsv1alpha1.UpdatePriorityStrategy{WeightPriority: []appsv1alpha1.UpdatePriorityWeightTerm{
		weightTerm(10, metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}),
		weightTerm(5, metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "zone", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}},
		}}),
		// Invalid: the whole term is ignored, so zone-c gets no weight.
		weightTerm(100, metav1.LabelSelector{
			MatchLabels: map[string]string{"zone": "c"},
			MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "app", Operator: "Bogus", Values: []string{"web"}},
			},
		}),
	}}
	pods := []*corev1.Pod{
		updatePod("none", 9, true),                                                         // 0, not ready
		updatePod("zone-a", 1, false, withLabel("zone", "a")),                              // 5
		updatePod("web", 1, false, withLabel("app", "web")),                                // 10
		updatePod("web-zone-b", 1, false, withLabel("app", "web"), withLabel("zone", "b")), // 15
		updatePod("zone-b-old", 3, false, withLabel("zone", "b")),                          // 5, older
		updatePod("zone-c", 1, true, withLabel("zone", "c")),                               // 0, newer
	}
	got := SortForUpdate(pods, UpdateOptions{Priority: priority})
	assertOrder(t, got, "web-zone-b", "web", "zone-b-old", "zone-a", "none", "zone-c")
}

func TestSortForUpdateOrderPriority(t *testing.T) {
	priority := &appsv1alpha1.UpdatePriorityStrategy{OrderPriority: []appsv1alpha1.UpdatePriorityOrderTerm{
		{OrderedKey: "tier"}, {OrderedKey: "shard"},
	}}
	pods := []*corev1.Pod{
		updatePod("missing", 9, true),
		updatePod("no-digits", 9, true, withLabel("tier", "gold")),
		updatePod("tier-0", 1, false, withLabel("tier", "tier-0")),
		updatePod("tier-3", 1, false, withLabel("tier", "tier-3")),
		updatePod("plain-10", 1, false, withLabel("tier", "10")),
		updatePod("huge", 1, false, withLabel("tier", "v123456789012345678901234567890")),
		updatePod("zeros-7-shard-2", 1, false, withLabel("tier", "007"), withLabel("shard", "s2")),
		updatePod("seven-shard-9", 1, false, withLabel("tier", "7"), withLabel("shard", "s9")),
		updatePod("seven-no-shard-old", 5, false, withLabel("tier", "7")),
		updatePod("seven-no-shard-new", 2, false, withLabel("tier", "7")),
	}
	got := SortForUpdate(pods, UpdateOptions{Priority: priority})
	assertOrder(t, got,
		"huge", "plain-10", "seven-shard-9", "zeros-7-shard-2",
		"seven-no-shard-old", "seven-no-shard-new", "tier-3", "tier-0",
		"missing", "no-digits") // both lowest: default order (older, then name)
}

func TestSortForUpdateWeightBeforeOrder(t *testing.T) {
	priority := &appsv1alpha1.UpdatePriorityStrategy{
		WeightPriority: []appsv1alpha1.UpdatePriorityWeightTerm{
			weightTerm(1, metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}),
		},
		OrderPriority: []appsv1alpha1.UpdatePriorityOrderTerm{{OrderedKey: "tier"}},
	}
	pods := []*corev1.Pod{
		updatePod("tier-9", 1, false, withLabel("tier", "9")),
		updatePod("web-tier-1", 1, false, withLabel("app", "web"), withLabel("tier", "1")),
		updatePod("web-tier-2", 1, false, withLabel("app", "web"), withLabel("tier", "2")),
	}
	assertOrder(t, SortForUpdate(pods, UpdateOptions{Priority: priority}), "web-tier-2", "web-tier-1", "tier-9")
}

func TestParseOrderValue(t *testing.T) {
	cases := map[string]orderValue{
		"3":                          {digits: "3", ok: true},
		"tier-3":                     {digits: "3", ok: true},
		"a1b22":                      {digits: "22", ok: true},
		"000":                        {digits: "", ok: true},
		"x-0042":                     {digits: "42", ok: true},
		"tier":                       {},
		"3-tier":                     {},
		"":                           {},
		"-5":                         {digits: "5", ok: true},
		"1.5":                        {digits: "5", ok: true},
		"99999999999999999999999999": {digits: "99999999999999999999999999", ok: true},
	}
	for value, want := range cases {
		if got := parseOrderValue(map[string]string{"k": value}, "k"); got != want {
			t.Errorf("parseOrderValue(%q) = %+v, want %+v", value, got, want)
		}
	}
	if got := parseOrderValue(nil, "k"); got != (orderValue{}) {
		t.Errorf("parseOrderValue(missing) = %+v, want none", got)
	}
}

func TestSortForUpdateKeepInputOrderOnTies(t *testing.T) {
	priority := &appsv1alpha1.UpdatePriorityStrategy{WeightPriority: []appsv1alpha1.UpdatePriorityWeightTerm{
		weightTerm(10, metav1.LabelSelector{MatchLabels: map[string]string{"zone": "a"}}),
	}}
	// Input highest ordinal first, as a StatefulSet passes it; the default
	// order would put the not-ready and the oldest pods first.
	pods := []*corev1.Pod{
		updatePod("db-3", 1, false),
		updatePod("db-2", 2, false, withLabel("zone", "a")),
		updatePod("db-1", 3, true),
		updatePod("db-0", 4, false, withLabel("zone", "a")),
	}
	assertOrder(t, SortForUpdate(pods, UpdateOptions{Priority: priority, KeepInputOrder: true}), "db-2", "db-0", "db-3", "db-1")
	assertOrder(t, SortForUpdate(pods, UpdateOptions{Priority: priority}), "db-0", "db-2", "db-1", "db-3")
}
