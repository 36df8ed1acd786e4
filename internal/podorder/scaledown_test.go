package podorder

import (
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

func refTime() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }

// scaleDownRules lists the rules in the order they apply.
func scaleDownRules() []string {
	return []string{
		ReasonTerminating, ReasonSpecifiedDelete, ReasonUnscheduled, ReasonPhase,
		ReasonNotReady, ReasonDeletionCost, ReasonOldRevision, ReasonNodeSpread,
		ReasonReadyTime, ReasonRestarts, ReasonCreationTime, ReasonName,
	}
}

// advantage returns modifiers that make a pod built on scaleDownBase win
// the given rule against another such pod. Modifiers for later rules leave
// the outcome of earlier ones alone, so they can be stacked.
func advantage(rule string) []podModifier {
	now := refTime()
	switch rule {
	case ReasonTerminating:
		return []podModifier{withDeletionTimestamp(now)}
	case ReasonSpecifiedDelete:
		return []podModifier{withAnnotation(appsv1alpha1.AnnotationSpecifiedDelete, "true")}
	case ReasonUnscheduled:
		return []podModifier{withNode(""), withPhase(corev1.PodPending), withNotReady()}
	case ReasonPhase:
		return []podModifier{withPhase(corev1.PodPending), withNotReady()}
	case ReasonNotReady:
		return []podModifier{withNotReady()}
	case ReasonDeletionCost:
		return []podModifier{withAnnotation(appsv1alpha1.AnnotationPodDeletionCost, "-1")}
	case ReasonOldRevision:
		return []podModifier{withRevision("old")}
	case ReasonNodeSpread:
		return []podModifier{ifScheduled(withNode("crowded"))}
	case ReasonReadyTime:
		return []podModifier{ifReady(withReady(now.Add(-time.Hour)))}
	case ReasonRestarts:
		return []podModifier{withRestarts(3)}
	case ReasonCreationTime:
		return []podModifier{withCreated(now.Add(-2 * time.Hour))}
	}
	return nil // ReasonName: decided by the pod names
}

// advantagesAfter stacks the advantages of every rule after the given one.
func advantagesAfter(rule string) []podModifier {
	rules := scaleDownRules()
	var mods []podModifier
	for _, r := range rules[slices.Index(rules, rule)+1:] {
		mods = append(mods, advantage(r)...)
	}
	return mods
}

func ifScheduled(mod podModifier) podModifier {
	return func(p *corev1.Pod) {
		if p.Spec.NodeName != "" {
			mod(p)
		}
	}
}

func ifReady(mod podModifier) podModifier {
	return func(p *corev1.Pod) {
		if ready, _ := readySince(p); ready {
			mod(p)
		}
	}
}

// scaleDownBase is a Running, Ready pod at the update revision, alone on its
// node, ready for 10 days and created 30 days ago.
func scaleDownBase(node string) []podModifier {
	now := refTime()
	return []podModifier{
		withRunningReady(node, now.Add(-10*24*time.Hour)),
		withRevision("new"),
		withCreated(now.Add(-30 * 24 * time.Hour)),
	}
}

// TestRankForScaleDownRules checks each rule alone: pod "first" has the
// advantage on the rule under test, ties with "second" on every earlier
// rule, and "second" has the advantage on every later rule (including the
// name), so each case fails if its rule is broken or misplaced.
func TestRankForScaleDownRules(t *testing.T) {
	cases := []struct {
		name         string
		rule         string
		first        []podModifier // default: advantage(rule)
		secondExtra  []podModifier
		podsToDelete []string
	}{
		{name: "terminating", rule: ReasonTerminating},
		{name: "specified by annotation", rule: ReasonSpecifiedDelete},
		{name: "specified by podsToDelete", rule: ReasonSpecifiedDelete, first: []podModifier{}, podsToDelete: []string{"pod-b"}},
		{name: "unscheduled", rule: ReasonUnscheduled},
		{name: "pending before running", rule: ReasonPhase},
		{name: "pending before unknown", rule: ReasonPhase, secondExtra: []podModifier{withPhase(corev1.PodUnknown)}},
		{name: "unknown before running", rule: ReasonPhase, first: []podModifier{withPhase(corev1.PodUnknown), withNotReady()}},
		{name: "not ready", rule: ReasonNotReady},
		{name: "deletion cost", rule: ReasonDeletionCost},
		{name: "old revision", rule: ReasonOldRevision},
		{name: "node spread", rule: ReasonNodeSpread},
		{name: "ready time", rule: ReasonReadyTime},
		{name: "restarts", rule: ReasonRestarts},
		{name: "sidecar restarts", rule: ReasonRestarts, first: []podModifier{withInitRestarts(2, true)}},
		{name: "creation time", rule: ReasonCreationTime},
		{name: "name", rule: ReasonName},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			firstName, secondName := "pod-b", "pod-a"
			if tc.rule == ReasonName {
				firstName, secondName = secondName, firstName
			}
			firstMods := tc.first
			if firstMods == nil {
				firstMods = advantage(tc.rule)
			}
			first := newPod(firstName, append(scaleDownBase("node-1"), firstMods...)...)
			second := newPod(secondName, slices.Concat(scaleDownBase("node-2"), advantagesAfter(tc.rule), tc.secondExtra)...)
			// The filler makes node "crowded" doubled up; its high cost
			// ranks it last.
			filler := newPod("filler", append(scaleDownBase("crowded"),
				withAnnotation(appsv1alpha1.AnnotationPodDeletionCost, "100"))...)
			opts := ScaleDownOptions{
				PodsToDelete:   sets.New(tc.podsToDelete...),
				UpdateRevision: "new",
				Now:            refTime(),
			}
			for _, input := range [][]*corev1.Pod{{first, second, filler}, {filler, second, first}} {
				got := RankForScaleDownExplained(input, opts)
				if len(got) != 3 || got[0].Pod != first || got[1].Pod != second || got[2].Pod != filler {
					t.Fatalf("got %v, want %s, %s, filler", explained(got), first.Name, second.Name)
				}
				if got[0].Reason != tc.rule {
					t.Errorf("reason %q, want %q", got[0].Reason, tc.rule)
				}
			}
		})
	}
}

func explained(r []Ranked) []string {
	out := make([]string, len(r))
	for i := range r {
		out[i] = r[i].Pod.Name + ":" + r[i].Reason
	}
	return out
}

func TestRankForScaleDownMatchesExplained(t *testing.T) {
	pods := benchmarkPods(500)
	opts := ScaleDownOptions{UpdateRevision: "rev-2", Now: refTime()}
	ranked := RankForScaleDown(pods, opts)
	explainedRank := RankForScaleDownExplained(pods, opts)
	if len(ranked) != len(pods) || len(explainedRank) != len(pods) {
		t.Fatalf("lengths %d and %d, want %d", len(ranked), len(explainedRank), len(pods))
	}
	for i := range ranked {
		if ranked[i] != explainedRank[i].Pod {
			t.Fatalf("position %d: %s vs %s", i, ranked[i].Name, explainedRank[i].Pod.Name)
		}
		if i < len(ranked)-1 && explainedRank[i].Reason == ReasonNone {
			t.Errorf("position %d: no reason against the next pod", i)
		}
	}
	if !sets.New(ranked...).Equal(sets.New(pods...)) {
		t.Error("ranking is not a permutation of the input")
	}
}

// TestRankForScaleDownTimeBuckets checks that ready times within the same
// log2 bucket tie (so restarts decide), and that a zero Now compares them
// exactly.
func TestRankForScaleDownTimeBuckets(t *testing.T) {
	now := refTime()
	// 60 and 70 minutes ago share bucket floor(log2(d in ns)) = 41.
	recent := newPod("recent", withRunningReady("n1", now.Add(-60*time.Minute)))
	earlier := newPod("earlier", withRunningReady("n2", now.Add(-70*time.Minute)), withRestarts(1))
	input := []*corev1.Pod{recent, earlier}

	got := RankForScaleDownExplained(input, ScaleDownOptions{Now: now})
	if got[0].Pod != earlier || got[0].Reason != ReasonRestarts {
		t.Errorf("with Now: got %v, want earlier first by restarts", explained(got))
	}
	got = RankForScaleDownExplained(input, ScaleDownOptions{})
	if got[0].Pod != recent || got[0].Reason != ReasonReadyTime {
		t.Errorf("without Now: got %v, want recent first by ready time", explained(got))
	}
}

func TestRankForScaleDownZeroTimesFirst(t *testing.T) {
	now := refTime()
	unknownReady := newPod("b", withRunningReady("n1", time.Time{}))
	justReady := newPod("a", withRunningReady("n2", now.Add(-time.Second)))
	got := RankForScaleDownExplained([]*corev1.Pod{justReady, unknownReady}, ScaleDownOptions{Now: now})
	if got[0].Pod != unknownReady || got[0].Reason != ReasonReadyTime {
		t.Errorf("got %v, want the pod with no ready time first", explained(got))
	}

	noCreation := newPod("b", withRunningReady("n1", now))
	created := newPod("a", withRunningReady("n2", now), withCreated(now.Add(-time.Second)))
	got = RankForScaleDownExplained([]*corev1.Pod{created, noCreation}, ScaleDownOptions{Now: now})
	if got[0].Pod != noCreation || got[0].Reason != ReasonCreationTime {
		t.Errorf("got %v, want the pod with no creation time first", explained(got))
	}
}

// TestRankForScaleDownNodeSpreadCountsActivePods checks that, as in the
// ReplicaSet controller, every active pod (not terminal, not being deleted)
// counts towards its node, Ready or not.
func TestRankForScaleDownNodeSpreadCountsActivePods(t *testing.T) {
	now := refTime()
	a := newPod("a", withRunningReady("n1", now))
	b := newPod("b", withRunningReady("n2", now))
	others := []*corev1.Pod{
		newPod("n1-failed", withNode("n1"), withPhase(corev1.PodFailed)),
		newPod("n1-succeeded", withNode("n1"), withPhase(corev1.PodSucceeded)),
		newPod("n1-deleting", withRunningReady("n1", now), withDeletionTimestamp(now)),
		newPod("n2-starting", withNode("n2"), withPhase(corev1.PodPending), withNotReady()),
	}
	got := RankForScaleDown(append([]*corev1.Pod{a, b}, others...), ScaleDownOptions{Now: now})
	if slices.Index(got, b) > slices.Index(got, a) {
		t.Errorf("got %v, want b (2 active pods on n2) before a (1 on n1)", podNames(got))
	}
}

func TestRankForScaleDownEmptyUpdateRevision(t *testing.T) {
	now := refTime()
	a := newPod("a", withRunningReady("n1", now), withRevision("x"))
	b := newPod("b", withRunningReady("n2", now), withRevision("y"))
	got := RankForScaleDownExplained([]*corev1.Pod{b, a}, ScaleDownOptions{Now: now})
	if got[0].Pod != a || got[0].Reason != ReasonName {
		t.Errorf("got %v, want a before b by name", explained(got))
	}
}

func TestRankForScaleDownIgnoresNonSidecarInitRestarts(t *testing.T) {
	now := refTime()
	a := newPod("a", withRunningReady("n1", now))
	b := newPod("b", withRunningReady("n2", now), withInitRestarts(5, false))
	got := RankForScaleDownExplained([]*corev1.Pod{b, a}, ScaleDownOptions{Now: now})
	if got[0].Pod != a || got[0].Reason != ReasonName {
		t.Errorf("got %v, want a before b by name", explained(got))
	}
}

func TestDeletionCost(t *testing.T) {
	cases := map[string]int32{
		"-5":          -5,
		"10":          10,
		"0":           0,
		"2147483647":  2147483647,
		"-2147483648": -2147483648,
		"+10":         0,
		"007":         0,
		"1.5":         0,
		"abc":         0,
		"":            0,
		"2147483648":  0,
	}
	key := appsv1alpha1.AnnotationPodDeletionCost
	for value, want := range cases {
		if got := deletionCost(map[string]string{key: value}, key); got != want {
			t.Errorf("deletionCost(%q) = %d, want %d", value, got, want)
		}
	}
	if got := deletionCost(nil, key); got != 0 {
		t.Errorf("deletionCost(missing) = %d, want 0", got)
	}
}

func TestRankForScaleDownEmpty(t *testing.T) {
	if got := RankForScaleDown(nil, ScaleDownOptions{}); len(got) != 0 {
		t.Errorf("got %v, want empty", got)
	}
	if got := RankForScaleDownExplained(nil, ScaleDownOptions{}); len(got) != 0 {
		t.Errorf("got %v, want empty", got)
	}
}
