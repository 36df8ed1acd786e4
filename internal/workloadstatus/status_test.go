package workloadstatus

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

type want struct {
	ready, reconciling, stalled, progressing metav1.ConditionStatus
	reason                                   string // Ready's reason
}

func check(t *testing.T, conds []metav1.Condition, w want) {
	t.Helper()
	for typ, s := range map[string]metav1.ConditionStatus{
		appsv1alpha1.ConditionReady: w.ready, appsv1alpha1.ConditionReconciling: w.reconciling,
		appsv1alpha1.ConditionStalled: w.stalled, appsv1alpha1.ConditionProgressing: w.progressing,
	} {
		c := meta.FindStatusCondition(conds, typ)
		if c == nil || c.Status != s {
			t.Errorf("%s = %+v, want %s", typ, c, s)
		}
	}
	if c := meta.FindStatusCondition(conds, appsv1alpha1.ConditionReady); c != nil && c.Reason != w.reason {
		t.Errorf("Ready reason %q, want %q", c.Reason, w.reason)
	}
}

func TestSetConditions(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	base := Progress{Generation: 3, Activity: appsv1alpha1.ReasonUpdating, Summary: "1/3 updated", Deadline: time.Minute, Now: now}
	cases := []struct {
		name string
		p    func(*Progress)
		want want
	}{
		{"done", func(p *Progress) { p.Done = true },
			want{metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionTrue, appsv1alpha1.ReasonAvailable}},
		{"rolling", func(p *Progress) { p.Progressed = true },
			want{metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionTrue, appsv1alpha1.ReasonUpdating}},
		{"paused", func(p *Progress) { p.Paused = true },
			want{metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionUnknown, appsv1alpha1.ReasonPaused}},
		{"create failed", func(p *Progress) {
			p.Progressed, p.FailureReason, p.FailureMessage = true, appsv1alpha1.ReasonCreateFailed, "quota"
		},
			want{metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionTrue, appsv1alpha1.ReasonCreateFailed}},
		{"in-place only blocked", func(p *Progress) { p.InPlaceOnlyField, p.Blocker = "updateStrategy.type", "spec.containers[0].ports" },
			want{metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionTrue, appsv1alpha1.ReasonNotInPlaceUpdatable}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := base
			c.p(&p)
			var conds []metav1.Condition
			SetConditions(&conds, p)
			check(t, conds, c.want)
			for _, cond := range conds {
				if cond.ObservedGeneration != 3 {
					t.Errorf("%s observedGeneration %d, want 3", cond.Type, cond.ObservedGeneration)
				}
			}
		})
	}
}

func TestInPlaceBlockedNamesFields(t *testing.T) {
	var conds []metav1.Condition
	SetConditions(&conds, Progress{Generation: 1, InPlaceOnlyField: "updateStrategy.rollingUpdate.podUpdatePolicy", Blocker: "spec.containers[0].ports", Now: time.Now()})
	c := meta.FindStatusCondition(conds, appsv1alpha1.ConditionInPlaceUpdateBlocked)
	if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "updateStrategy.rollingUpdate.podUpdatePolicy") || !strings.Contains(c.Message, "spec.containers[0].ports") {
		t.Fatalf("InPlaceUpdateBlocked = %+v: want True naming both fields", c)
	}
	SetConditions(&conds, Progress{Generation: 1, Now: time.Now()})
	if meta.FindStatusCondition(conds, appsv1alpha1.ConditionInPlaceUpdateBlocked) != nil {
		t.Fatal("InPlaceUpdateBlocked kept after the strategy stopped being InPlaceOnly")
	}
}

// The deadline counts from the last progress; without progress past it,
// Progressing goes False and the workload stalls.
func TestProgressDeadline(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := Progress{Generation: 1, Activity: appsv1alpha1.ReasonScaling, Deadline: time.Minute, Progressed: true, Now: start}
	var conds []metav1.Condition
	if wait := SetConditions(&conds, p); wait != time.Minute {
		t.Fatalf("wait after progress = %s, want the whole deadline", wait)
	}
	// SetStatusCondition stamps the real time; pin it to the fake clock.
	meta.FindStatusCondition(conds, appsv1alpha1.ConditionProgressing).LastTransitionTime = metav1.NewTime(start)
	p.Progressed = false
	p.Now = start.Add(40 * time.Second)
	if wait := SetConditions(&conds, p); wait != 20*time.Second {
		t.Fatalf("wait 40s in = %s, want 20s", wait)
	}
	check(t, conds, want{metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionTrue, appsv1alpha1.ReasonScaling})
	p.Now = start.Add(61 * time.Second)
	if wait := SetConditions(&conds, p); wait != 0 {
		t.Fatalf("wait past the deadline = %s, want 0", wait)
	}
	check(t, conds, want{metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, appsv1alpha1.ReasonProgressDeadlineExceeded})
	// Progress again clears the stall.
	p.Progressed = true
	SetConditions(&conds, p)
	check(t, conds, want{metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionTrue, appsv1alpha1.ReasonScaling})
}

func TestConditionsChanged(t *testing.T) {
	a := []metav1.Condition{{Type: "Ready", Status: metav1.ConditionFalse, Reason: "Updating", Message: "1/3", ObservedGeneration: 1}}
	b := []metav1.Condition{{Type: "Ready", Status: metav1.ConditionFalse, Reason: "Updating", Message: "2/3", ObservedGeneration: 1}}
	if ConditionsChanged(a, b) {
		t.Error("a message change counted as significant")
	}
	b[0].Reason = "Scaling"
	if !ConditionsChanged(a, b) {
		t.Error("a reason change not counted")
	}
	if !ConditionsChanged(a, nil) {
		t.Error("a removed condition not counted")
	}
}

func TestWriteLimiter(t *testing.T) {
	l := NewWriteLimiter(time.Second)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if l.Wait("a", now) != 0 {
		t.Fatal("first write must not wait")
	}
	l.Wrote("a", now)
	if w := l.Wait("a", now.Add(300*time.Millisecond)); w != 700*time.Millisecond {
		t.Fatalf("wait = %s, want 700ms", w)
	}
	if l.Wait("b", now) != 0 {
		t.Fatal("keys must not share a limit")
	}
	l.Forget("a")
	if l.Wait("a", now) != 0 {
		t.Fatal("forgotten key still limited")
	}
}
