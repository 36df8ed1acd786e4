package analysis

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

const (
	pending      = rolloutsv1alpha1.AnalysisPhasePending
	running      = rolloutsv1alpha1.AnalysisPhaseRunning
	successful   = rolloutsv1alpha1.AnalysisPhaseSuccessful
	failed       = rolloutsv1alpha1.AnalysisPhaseFailed
	errored      = rolloutsv1alpha1.AnalysisPhaseError
	inconclusive = rolloutsv1alpha1.AnalysisPhaseInconclusive
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func at(d time.Duration) metav1.Time { return metav1.Time{Time: t0.Add(d)} }

func ms(phase rolloutsv1alpha1.AnalysisPhase, started time.Duration, value, msg string) rolloutsv1alpha1.Measurement {
	m := rolloutsv1alpha1.Measurement{Phase: phase, StartedAt: at(started), Value: value, Message: msg}
	if phase != running {
		f := at(started)
		m.FinishedAt = &f
	}
	return m
}

// result builds a metric result by recording measurements.
func result(name string, measurements ...rolloutsv1alpha1.Measurement) *rolloutsv1alpha1.MetricResult {
	r := &rolloutsv1alpha1.MetricResult{Name: name}
	for _, m := range measurements {
		Record(r, m)
	}
	return r
}

func TestEffectiveCount(t *testing.T) {
	for _, tt := range []struct {
		m    rolloutsv1alpha1.Metric
		want int32
	}{
		{rolloutsv1alpha1.Metric{}, 1},
		{rolloutsv1alpha1.Metric{Count: ptr.To[int32](3)}, 3},
		{rolloutsv1alpha1.Metric{Interval: dur(time.Minute)}, 0},
		{rolloutsv1alpha1.Metric{Interval: dur(time.Minute), Count: ptr.To[int32](5)}, 5},
	} {
		if got := EffectiveCount(&tt.m); got != tt.want {
			t.Errorf("EffectiveCount(%+v) = %d, want %d", tt.m, got, tt.want)
		}
	}
}

func TestNextMeasurement(t *testing.T) {
	every := rolloutsv1alpha1.Metric{Name: "m", Interval: dur(time.Minute), Count: ptr.To[int32](3)}
	tests := []struct {
		name   string
		m      rolloutsv1alpha1.Metric
		r      *rolloutsv1alpha1.MetricResult
		want   time.Duration
		wantOK bool
	}{
		{name: "first, no delay", m: every, r: nil, want: 0, wantOK: true},
		{name: "first, initial delay", m: rolloutsv1alpha1.Metric{InitialDelay: dur(30 * time.Second)}, r: nil, want: 30 * time.Second, wantOK: true},
		{name: "first, empty result", m: every, r: result("m"), want: 0, wantOK: true},
		{name: "after a measurement: the interval", m: every, r: result("m", ms(successful, 10*time.Second, "1", "")), want: 70 * time.Second, wantOK: true},
		{name: "count reached", m: every, r: result("m", ms(successful, 0, "1", ""), ms(successful, time.Minute, "1", ""), ms(successful, 2*time.Minute, "1", "")), wantOK: false},
		{name: "no interval: one measurement", m: rolloutsv1alpha1.Metric{}, r: result("m", ms(successful, 0, "1", "")), wantOK: false},
		{name: "no interval, count 2: back to back", m: rolloutsv1alpha1.Metric{Count: ptr.To[int32](2)}, r: result("m", ms(successful, 5*time.Second, "1", "")), want: 5 * time.Second, wantOK: true},
		{name: "error: retried at the interval when shorter", m: rolloutsv1alpha1.Metric{Interval: dur(time.Second)}, r: result("m", ms(errored, 0, "", "boom")), want: time.Second, wantOK: true},
		{name: "error: retried after ErrorRetryInterval when the interval is longer", m: every, r: result("m", ms(errored, 0, "", "boom")), want: ErrorRetryInterval, wantOK: true},
		{name: "error without interval: retried", m: rolloutsv1alpha1.Metric{}, r: result("m", ms(errored, 0, "", "boom")), want: ErrorRetryInterval, wantOK: true},
		{name: "errors do not count towards count", m: rolloutsv1alpha1.Metric{}, r: result("m", ms(errored, 0, "", "a"), ms(errored, 10*time.Second, "", "b")), want: 20 * time.Second, wantOK: true},
		{name: "in progress: due at once", m: every, r: result("m", ms(running, 40*time.Second, "", "job running")), want: 40 * time.Second, wantOK: true},
		{name: "completed metric", m: every, r: &rolloutsv1alpha1.MetricResult{Phase: failed}, wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := NextMeasurement(&tt.m, tt.r, t0)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v (at %v)", ok, tt.wantOK, got)
			}
			if ok && !got.Equal(t0.Add(tt.want)) {
				t.Errorf("next at +%v, want +%v", got.Sub(t0), tt.want)
			}
		})
	}
}

func TestRecord(t *testing.T) {
	r := result("m",
		ms(successful, 0, "1", ""), ms(successful, 1, "1", ""),
		ms(errored, 2, "", "x"),
		ms(failed, 3, "0", ""), ms(inconclusive, 4, "0.5", ""),
		ms(errored, 5, "", "y"), ms(errored, 6, "", "z"))
	want := rolloutsv1alpha1.MetricResult{Name: "m", Count: 4, Successful: 2, Failed: 1, Inconclusive: 1, Error: 3, ConsecutiveError: 2}
	got := *r
	got.Measurements = nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("counts %+v, want %+v", got, want)
	}
	if Index(r) != 8 {
		t.Errorf("next index %d, want 8", Index(r))
	}
	// A measurement in progress is replaced by its outcome, not appended.
	r = result("m", ms(running, 0, "", "job running"))
	if r.Count != 0 || Index(r) != 1 || InProgress(r) == nil {
		t.Fatalf("in progress: %+v", r)
	}
	Record(r, ms(successful, 0, "1", ""))
	if len(r.Measurements) != 1 || r.Count != 1 || r.ConsecutiveSuccess != 1 || InProgress(r) != nil {
		t.Fatalf("finished: %+v", r)
	}
	// An error breaks a run of successes.
	r = result("m", ms(successful, 0, "1", ""), ms(errored, 1, "", "x"), ms(successful, 2, "1", ""))
	if r.ConsecutiveSuccess != 1 || r.ConsecutiveError != 0 {
		t.Fatalf("consecutive: %+v", r)
	}
}

func TestMetricPhase(t *testing.T) {
	ok := ms(successful, 0, "1", "result >= 0.99")
	bad := ms(failed, 0, "0.62", "result >= 0.99")
	inc := ms(inconclusive, 0, "0.95", "neither")
	boom := ms(errored, 0, "", "connection refused")
	once := rolloutsv1alpha1.Metric{}
	three := rolloutsv1alpha1.Metric{Interval: dur(time.Second), Count: ptr.To[int32](3)}
	forever := rolloutsv1alpha1.Metric{Interval: dur(time.Second)}
	tests := []struct {
		name      string
		m         rolloutsv1alpha1.Metric
		r         *rolloutsv1alpha1.MetricResult
		terminate bool
		want      rolloutsv1alpha1.AnalysisPhase
		msg       string
	}{
		{name: "nothing yet", m: once, r: result("m"), want: pending},
		{name: "in progress", m: once, r: result("m", ms(running, 0, "", "")), want: running},
		{name: "one success", m: once, r: result("m", ok), want: successful, msg: "1 of 1 measurements successful"},
		{name: "one failure fails (failureLimit 0)", m: once, r: result("m", bad), want: failed,
			msg: "1 failed measurements, failureLimit 0; last: 0.62 (failed: result >= 0.99)"},
		{name: "failure tolerated by failureLimit", m: rolloutsv1alpha1.Metric{Interval: dur(time.Second), Count: ptr.To[int32](3), FailureLimit: ptr.To[int32](1)},
			r: result("m", bad, ok), want: running},
		{name: "count reached with a tolerated failure", m: rolloutsv1alpha1.Metric{Interval: dur(time.Second), Count: ptr.To[int32](3), FailureLimit: ptr.To[int32](1)},
			r: result("m", bad, ok, ok), want: successful},
		{name: "failureLimit exceeded", m: rolloutsv1alpha1.Metric{Interval: dur(time.Second), FailureLimit: ptr.To[int32](1)},
			r: result("m", bad, ok, bad), want: failed},
		{name: "inconclusive (limit 0)", m: three, r: result("m", inc), want: inconclusive},
		{name: "inconclusive tolerated", m: rolloutsv1alpha1.Metric{Interval: dur(time.Second), Count: ptr.To[int32](3), InconclusiveLimit: ptr.To[int32](1)},
			r: result("m", inc, ok), want: running},
		{name: "4 errors in a row: still running (limit 4)", m: three, r: result("m", boom, boom, boom, boom), want: running},
		{name: "5 errors in a row: Error, never success", m: three, r: result("m", boom, boom, boom, boom, boom), want: errored,
			msg: "5 consecutive errors, consecutiveErrorLimit 4; last: error: connection refused"},
		{name: "errors not in a row", m: three, r: result("m", boom, boom, ok, boom, boom, boom), want: running},
		{name: "consecutiveErrorLimit 0", m: rolloutsv1alpha1.Metric{ConsecutiveErrorLimit: ptr.To[int32](0)}, r: result("m", boom), want: errored},
		{name: "errors do not complete a count", m: once, r: result("m", boom), want: running},
		{name: "consecutiveSuccessLimit", m: rolloutsv1alpha1.Metric{Interval: dur(time.Second), ConsecutiveSuccessLimit: ptr.To[int32](2)},
			r: result("m", bad, ok, ok), want: failed},
		{name: "consecutiveSuccessLimit reached", m: rolloutsv1alpha1.Metric{Interval: dur(time.Second), FailureLimit: ptr.To[int32](5), ConsecutiveSuccessLimit: ptr.To[int32](2)},
			r: result("m", bad, ok, ok), want: successful, msg: "2 consecutive successful measurements"},
		{name: "unlimited: runs until the run ends", m: forever, r: result("m", ok, ok, ok, ok), want: running},
		{name: "terminated: successful", m: forever, r: result("m", ok, ok), terminate: true, want: successful},
		{name: "terminated before any measurement: successful", m: forever, r: result("m"), terminate: true, want: successful},
		{name: "terminated after a failure: failed", m: forever, r: result("m", bad), terminate: true, want: failed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, msg := MetricPhase(&tt.m, tt.r, tt.terminate)
			if got != tt.want {
				t.Fatalf("phase %s (%s), want %s", got, msg, tt.want)
			}
			if tt.msg != "" && msg != tt.msg {
				t.Errorf("message %q, want %q", msg, tt.msg)
			}
		})
	}
}

func spec(metrics ...rolloutsv1alpha1.Metric) *rolloutsv1alpha1.AnalysisRunSpec {
	return &rolloutsv1alpha1.AnalysisRunSpec{AnalysisTemplateSpec: rolloutsv1alpha1.AnalysisTemplateSpec{Metrics: metrics}}
}

func status(results ...*rolloutsv1alpha1.MetricResult) *rolloutsv1alpha1.AnalysisRunStatus {
	st := &rolloutsv1alpha1.AnalysisRunStatus{StartedAt: &metav1.Time{Time: t0}}
	for _, r := range results {
		st.MetricResults = append(st.MetricResults, *r)
	}
	return st
}

func TestAssess(t *testing.T) {
	ok := ms(successful, 0, "0.995", "result >= 0.99")
	bad := ms(failed, 0, "0.62", "result >= 0.99")
	inc := ms(inconclusive, 0, "0.95", "neither result >= 0.99 nor failureCondition result < 0.9")
	boom := ms(errored, 0, "", "connection refused")
	once := func(name string) rolloutsv1alpha1.Metric { return rolloutsv1alpha1.Metric{Name: name} }
	tests := []struct {
		name      string
		spec      *rolloutsv1alpha1.AnalysisRunSpec
		st        *rolloutsv1alpha1.AnalysisRunStatus
		want      rolloutsv1alpha1.AnalysisPhase
		msg       string
		wantPhase map[string]rolloutsv1alpha1.AnalysisPhase
	}{
		{name: "nothing measured", spec: spec(once("a"), once("b")), st: status(), want: running, msg: "measuring a, b",
			wantPhase: map[string]rolloutsv1alpha1.AnalysisPhase{"a": pending, "b": pending}},
		{name: "all successful", spec: spec(once("a"), once("b")), st: status(result("a", ok), result("b", ok)), want: successful, msg: "2 of 2 metrics successful"},
		{name: "one still running", spec: spec(once("a"), once("b")), st: status(result("a", ok)), want: running, msg: "measuring b"},
		{name: "failed names the metric and value", spec: spec(once("success-rate"), once("b")), st: status(result("success-rate", bad)),
			want: failed, msg: "metric success-rate: 0.62 (failed: result >= 0.99)"},
		{name: "failed wins over error", spec: spec(once("a"), rolloutsv1alpha1.Metric{Name: "b", ConsecutiveErrorLimit: ptr.To[int32](0)}),
			st: status(result("b", boom), result("a", bad)), want: failed, msg: "metric a: 0.62 (failed: result >= 0.99)"},
		{name: "error", spec: spec(rolloutsv1alpha1.Metric{Name: "a", ConsecutiveErrorLimit: ptr.To[int32](1)}), st: status(result("a", boom, boom)),
			want: errored, msg: "metric a: error: connection refused (2 consecutive errors)"},
		{name: "inconclusive", spec: spec(once("a"), once("b")), st: status(result("a", inc), result("b", ok)), want: inconclusive,
			msg: "metric a: 0.95 (inconclusive: neither result >= 0.99 nor failureCondition result < 0.9)"},
		{name: "dry run by name never fails the run", spec: withDryRun(spec(once("a"), once("b")), "a"), st: status(result("a", bad), result("b", ok)),
			want: successful, msg: "1 of 2 metrics successful (dry-run metric a: failed)"},
		{name: "dry run *", spec: withDryRun(spec(once("a"), once("b")), All), st: status(result("a", bad), result("b", inc)),
			want: successful},
		{name: "dry-run metric still running: run running", spec: withDryRun(spec(once("a"), once("b")), "a"), st: status(result("b", ok)), want: running},
		{name: "terminate ends running metrics: successful", spec: terminated(spec(rolloutsv1alpha1.Metric{Name: "a", Interval: dur(time.Second)})),
			st: status(result("a", ok, ok)), want: successful, wantPhase: map[string]rolloutsv1alpha1.AnalysisPhase{"a": successful}},
		{name: "terminate after a failure: failed", spec: terminated(spec(once("a"), rolloutsv1alpha1.Metric{Name: "b", Interval: dur(time.Second)})),
			st: status(result("a", bad), result("b", ok)), want: failed},
		{name: "results of metrics no longer in the spec are dropped", spec: spec(once("a")), st: status(result("gone", bad), result("a", ok)),
			want: successful},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			Assess(tt.spec, tt.st, t0)
			if tt.st.Phase != tt.want {
				t.Fatalf("phase %s (%s), want %s", tt.st.Phase, tt.st.Message, tt.want)
			}
			if tt.msg != "" && tt.st.Message != tt.msg {
				t.Errorf("message %q, want %q", tt.st.Message, tt.msg)
			}
			for name, p := range tt.wantPhase {
				if r := Result(tt.st, name); r == nil || r.Phase != p {
					t.Errorf("metric %s: %+v, want phase %s", name, r, p)
				}
			}
			if len(tt.st.MetricResults) != len(tt.spec.Metrics) {
				t.Errorf("%d results for %d metrics", len(tt.st.MetricResults), len(tt.spec.Metrics))
			}
		})
	}
}

func withDryRun(s *rolloutsv1alpha1.AnalysisRunSpec, names ...string) *rolloutsv1alpha1.AnalysisRunSpec {
	for _, n := range names {
		s.DryRun = append(s.DryRun, rolloutsv1alpha1.MetricSelector{MetricName: n})
	}
	return s
}

func terminated(s *rolloutsv1alpha1.AnalysisRunSpec) *rolloutsv1alpha1.AnalysisRunSpec {
	s.Terminate = true
	return s
}

func TestAssessStopsMeasurementsInProgressWhenTheRunEnds(t *testing.T) {
	s := spec(rolloutsv1alpha1.Metric{Name: "a"}, rolloutsv1alpha1.Metric{Name: "job"})
	st := status(result("a", ms(failed, 0, "0", "result == 1")), result("job", ms(running, 0, "", "job running")))
	Assess(s, st, t0.Add(time.Minute))
	job := Result(st, "job")
	if st.Phase != failed || InProgress(job) != nil {
		t.Fatalf("run %s, job %+v", st.Phase, job)
	}
	last := job.Measurements[0]
	if last.Phase != inconclusive || last.FinishedAt == nil || !last.FinishedAt.Equal(&metav1.Time{Time: t0.Add(time.Minute)}) {
		t.Errorf("stopped measurement %+v", last)
	}
	if job.Phase.Completed() || job.Message != "stopped: the run ended" || job.Count != 0 {
		t.Errorf("job metric %+v", job)
	}
}

func TestRetention(t *testing.T) {
	var many []rolloutsv1alpha1.Measurement
	for i := range 15 {
		many = append(many, ms(successful, time.Duration(i)*time.Second, fmt.Sprint(i), ""))
	}
	forever := func(n string) rolloutsv1alpha1.Metric {
		return rolloutsv1alpha1.Metric{Name: n, Interval: dur(time.Second)}
	}
	s := spec(forever("a"), forever("b"), forever("c"))
	st := status(result("a", many...), result("b", many...), result("c", many...))
	Assess(s, st, t0)
	if n := len(Result(st, "a").Measurements); n != DefaultMeasurementRetention {
		t.Errorf("default retention kept %d", n)
	}
	if r := Result(st, "a"); r.Count != 15 || r.Measurements[len(r.Measurements)-1].Value != "14" {
		t.Errorf("retention must keep the counts and the most recent: %+v", r)
	}
	s.MeasurementRetention = []rolloutsv1alpha1.MeasurementRetention{{MetricName: "b", Limit: 2}, {MetricName: All, Limit: 4}}
	st = status(result("a", many...), result("b", many...), result("c", many...))
	Assess(s, st, t0)
	for name, want := range map[string]int{"a": 4, "b": 2, "c": 4} {
		if n := len(Result(st, name).Measurements); n != want {
			t.Errorf("%s kept %d, want %d", name, n, want)
		}
	}
}

func TestPlanRunAndWait(t *testing.T) {
	s := spec(
		rolloutsv1alpha1.Metric{Name: "now"},
		rolloutsv1alpha1.Metric{Name: "delayed", InitialDelay: dur(30 * time.Second)},
		rolloutsv1alpha1.Metric{Name: "every", Interval: dur(10 * time.Second), Count: ptr.To[int32](2)},
	)
	st := status()
	if p := PlanRun(s, st, t0); fmt.Sprint(p.Due) != "[now every]" {
		t.Fatalf("due %v", p.Due)
	}
	// After measuring now and every once:
	st = status(result("now", ms(successful, 0, "1", "")), result("every", ms(successful, 0, "1", "")))
	Assess(s, st, t0)
	if p := PlanRun(s, st, t0); len(p.Due) != 0 {
		t.Fatalf("due %v", p.Due)
	}
	if w := Wait(s, st, t0); w != 10*time.Second {
		t.Errorf("wait %v, want 10s (every)", w)
	}
	if p := PlanRun(s, st, t0.Add(10*time.Second)); fmt.Sprint(p.Due) != "[every]" {
		t.Errorf("due at +10s: %v", p.Due)
	}
	if p := PlanRun(s, st, t0.Add(30*time.Second)); fmt.Sprint(p.Due) != "[delayed every]" {
		t.Errorf("due at +30s: %v", p.Due)
	}
	// A measurement in progress is looked at again, at most every poll.
	st = status(result("now", ms(running, 0, "", "job running")))
	if p := PlanRun(s, st, t0.Add(time.Second)); len(p.Due) == 0 || p.Due[0] != "now" {
		t.Errorf("in progress not due: %v", p.Due)
	}
	if w := Wait(s, st, t0.Add(time.Second)); w != MinWait {
		t.Errorf("wait %v, want %v (every is due)", w, MinWait)
	}
	// Terminated, completed or not started: nothing.
	for _, c := range []struct {
		s  *rolloutsv1alpha1.AnalysisRunSpec
		st *rolloutsv1alpha1.AnalysisRunStatus
	}{
		{terminated(spec(rolloutsv1alpha1.Metric{Name: "a"})), status()},
		{spec(rolloutsv1alpha1.Metric{Name: "a"}), &rolloutsv1alpha1.AnalysisRunStatus{StartedAt: &metav1.Time{Time: t0}, Phase: failed}},
		{spec(rolloutsv1alpha1.Metric{Name: "a"}), &rolloutsv1alpha1.AnalysisRunStatus{}},
	} {
		if p := PlanRun(c.s, c.st, t0); len(p.Due) != 0 || Wait(c.s, c.st, t0) != 0 {
			t.Errorf("%+v: due %v", c, p.Due)
		}
	}
}

func TestWaitInProgressPolls(t *testing.T) {
	s := spec(rolloutsv1alpha1.Metric{Name: "job"})
	st := status(result("job", ms(running, 0, "", "job running")))
	if w := Wait(s, st, t0); w != InProgressPollInterval {
		t.Errorf("wait %v, want %v", w, InProgressPollInterval)
	}
}
