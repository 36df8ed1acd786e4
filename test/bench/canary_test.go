package main

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestCanaryCounts(t *testing.T) {
	for _, c := range []struct {
		n    int
		want []int
	}{
		{1000, []int{200, 300, 500}},
		{100, []int{20, 30, 50}},
		// ⌈n × w / 100⌉, as the Rollout rounds: 7 × 20% = 1.4 → 2, 7 × 50% = 3.5 → 4.
		{7, []int{2, 2, 3}},
		{1, []int{1, 0, 0}},
	} {
		if got := canaryCounts(c.n, []int32{20, 50}); !reflect.DeepEqual(got, c.want) {
			t.Errorf("canaryCounts(%d) = %v, want %v", c.n, got, c.want)
		}
	}
}

func TestParseStepCompleted(t *testing.T) {
	for note, want := range map[string]int{
		"step 0 completed: 200 canary pods, weight 20%": 0,
		"step 1 completed: 500 canary pods, weight 50%": 1,
		"step 12 (pause 30s) completed":                 12,
		"step 3 (analysis web-abc-1-step-3) completed":  3,
	} {
		got, ok := parseStepCompleted(note)
		if !ok || got != want {
			t.Errorf("parseStepCompleted(%q) = %d, %v; want %d, true", note, got, ok, want)
		}
	}
	for _, note := range []string{
		"", "step completed", "step x completed", "step 1 promoted by a user", "step 2 (pause 30s", "revision a is stable (was b)",
	} {
		if i, ok := parseStepCompleted(note); ok {
			t.Errorf("parseStepCompleted(%q) = %d, true; want false", note, i)
		}
	}
}

func TestEventMilestones(t *testing.T) {
	start := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	events := []rolloutEvent{
		// An earlier release's events do not count.
		{"StepCompleted", "step 0 completed: 2 canary pods, weight 20%", at(-5000)},
		{"Promoted", "revision web-old is stable (was web-older)", at(-4000)},
		{"ReleaseStarted", "releasing revision web-new (stable web-old)", at(30)},
		{"StepCompleted", "step 0 completed: 200 canary pods, weight 20%", at(12345)},
		{"StepCompleted", "step 1 completed: 500 canary pods, weight 50%", at(30500)},
		{"Promoted", "revision web-new is stable (was web-old)", at(61000)},
	}
	got := eventMilestones(events, start, 2, "web-new")
	want := milestones{steps: []time.Duration{12345 * time.Millisecond, 30500 * time.Millisecond}, promoted: 61 * time.Second}
	if !reflect.DeepEqual(got, want) || !got.complete() {
		t.Errorf("got %+v, want %+v", got, want)
	}

	// A missing step leaves it unseen; the milestones are incomplete.
	got = eventMilestones(events[:4], start, 2, "web-new")
	if got.steps[1] != -1 || got.promoted != -1 || got.complete() {
		t.Errorf("incomplete events: got %+v", got)
	}
	// The Promoted event of another revision does not count.
	if got := eventMilestones(events, start, 2, "web-other"); got.promoted != -1 {
		t.Errorf("promoted of another revision: %v", got.promoted)
	}
}

func TestObservedMilestones(t *testing.T) {
	start := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return start.Add(time.Duration(s * float64(time.Second))) }
	samples := []rolloutSample{
		{at: at(-1), stable: "old", phase: "Healthy"},
		{at: at(0.2), step: ptr.To[int32](0), stable: "old", canary: "new", phase: "Progressing"},
		{at: at(12.4), step: ptr.To[int32](1), stable: "old", canary: "new", phase: "Progressing"},
		{at: at(30.6), step: ptr.To[int32](2), stable: "old", canary: "new", phase: "Progressing"},
		{at: at(61.1), stable: "new", phase: "Healthy"},
	}
	got := observedMilestones(samples, start, 2, "new")
	want := milestones{steps: []time.Duration{12400 * time.Millisecond, 30600 * time.Millisecond}, promoted: 61100 * time.Millisecond}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}

	// Polling missed the index of step 1 and of the promotion: the new
	// revision stable completes every step.
	got = observedMilestones([]rolloutSample{samples[1], samples[2], samples[4]}, start, 2, "new")
	want.steps[1] = 61100 * time.Millisecond
	if !reflect.DeepEqual(got, want) {
		t.Errorf("missed samples: got %+v, want %+v", got, want)
	}

	// An index of another release (canary revision not yet the new one)
	// does not complete a step.
	other := []rolloutSample{{at: at(1), step: ptr.To[int32](2), stable: "old", canary: "older"}}
	if got := observedMilestones(other, start, 2, "new"); got.steps[0] != -1 || got.promoted != -1 {
		t.Errorf("other release: got %+v", got)
	}
}

func TestEventTime(t *testing.T) {
	micro := time.Date(2026, 12, 3, 10, 0, 1, 234567000, time.UTC)
	sec := time.Date(2026, 12, 3, 10, 0, 2, 0, time.UTC)
	if got := eventTime(&corev1.Event{EventTime: metav1.NewMicroTime(micro), LastTimestamp: metav1.NewTime(sec)}); !got.Equal(micro) {
		t.Errorf("eventTime prefers eventTime: %v", got)
	}
	if got := eventTime(&corev1.Event{LastTimestamp: metav1.NewTime(sec), FirstTimestamp: metav1.NewTime(micro)}); !got.Equal(sec) {
		t.Errorf("eventTime falls back to lastTimestamp: %v", got)
	}
	if got := eventTime(&corev1.Event{FirstTimestamp: metav1.NewTime(sec)}); !got.Equal(sec) {
		t.Errorf("eventTime falls back to firstTimestamp: %v", got)
	}
}

func TestCanaryObjects(t *testing.T) {
	cs := newCanaryCloneSet(100, "20%")
	if cs.Spec.UpdateStrategy.MaxUnavailable.String() != "20%" || len(cs.Spec.Template.Spec.Containers[0].Ports) != 1 {
		t.Errorf("CloneSet: %+v", cs.Spec)
	}
	if got := newCanaryCloneSet(100, "5").Spec.UpdateStrategy.MaxUnavailable; got.IntValue() != 5 {
		t.Errorf("int maxUnavailable: %v", got)
	}
	ro := newCanaryRollout()
	steps := ro.Spec.Strategy.Canary.Steps
	if len(steps) != 2 || *steps[0].SetWeight != 20 || *steps[1].SetWeight != 50 || steps[0].Pause != nil ||
		ro.Spec.Strategy.Canary.TrafficRouting != nil || ro.Spec.TargetRef.Kind != "CloneSet" {
		t.Errorf("Rollout: %+v", ro.Spec)
	}
	if got := weightsText(canaryWeights); got != "20% → 50%" {
		t.Errorf("weightsText = %q", got)
	}
}
