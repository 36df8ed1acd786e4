package analysis

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

// Defaults of a metric's limits and of the run's retention.
const (
	DefaultFailureLimit          = 0
	DefaultInconclusiveLimit     = 0
	DefaultConsecutiveErrorLimit = 4
	DefaultMeasurementRetention  = 10
)

// ErrorRetryInterval is the longest wait before a measurement that ended
// in an error is taken again (a metric with a shorter interval retries at
// its interval).
const ErrorRetryInterval = 10 * time.Second

// InProgressPollInterval is how often a measurement in progress (a Job) is
// looked at when nothing else brings the run back.
const InProgressPollInterval = 10 * time.Second

// MinWait is the shortest wait between two reconciles of a run that has a
// measurement due at once (a metric counting several measurements without
// an interval).
const MinWait = time.Second

// All selects every metric in dryRun and measurementRetention.
const All = "*"

// interval is the metric's interval (0 without one).
func interval(m *rolloutsv1alpha1.Metric) time.Duration {
	if m.Interval == nil || m.Interval.Duration < 0 {
		return 0
	}
	return m.Interval.Duration
}

// EffectiveCount is how many judged measurements complete a metric: its
// count; 1 without count and interval; 0 (until the run ends) with an
// interval and no count.
func EffectiveCount(m *rolloutsv1alpha1.Metric) int32 {
	if m.Count != nil {
		return *m.Count
	}
	if interval(m) == 0 {
		return 1
	}
	return 0
}

// IsDryRun reports whether the spec's dryRun selects the metric.
func IsDryRun(spec *rolloutsv1alpha1.AnalysisTemplateSpec, name string) bool {
	for _, s := range spec.DryRun {
		if s.MetricName == All || s.MetricName == name {
			return true
		}
	}
	return false
}

// Retention is how many measurements of the metric the status keeps: the
// limit naming it, else the "*" limit, else DefaultMeasurementRetention.
func Retention(spec *rolloutsv1alpha1.AnalysisTemplateSpec, name string) int {
	limit := 0
	for _, r := range spec.MeasurementRetention {
		switch r.MetricName {
		case name:
			return int(r.Limit)
		case All:
			limit = int(r.Limit)
		}
	}
	if limit > 0 {
		return limit
	}
	return DefaultMeasurementRetention
}

// Result returns the metric's result in st, nil when it has none yet.
func Result(st *rolloutsv1alpha1.AnalysisRunStatus, name string) *rolloutsv1alpha1.MetricResult {
	for i := range st.MetricResults {
		if st.MetricResults[i].Name == name {
			return &st.MetricResults[i]
		}
	}
	return nil
}

// InProgress returns the metric's measurement in progress, nil when none.
func InProgress(r *rolloutsv1alpha1.MetricResult) *rolloutsv1alpha1.Measurement {
	if r == nil || len(r.Measurements) == 0 {
		return nil
	}
	last := &r.Measurements[len(r.Measurements)-1]
	if last.Phase == rolloutsv1alpha1.AnalysisPhaseRunning || last.Phase == rolloutsv1alpha1.AnalysisPhasePending {
		return last
	}
	return nil
}

// Index is the number of the metric's next (or in-progress) measurement,
// counting every measurement taken, errors included, from 1.
func Index(r *rolloutsv1alpha1.MetricResult) int32 {
	if r == nil {
		return 1
	}
	return r.Count + r.Error + 1
}

// NextMeasurement returns when the metric is next due, and false when it
// takes no more measurements (its phase is final, or its count is
// reached). started is when the run started. A measurement in progress is
// due at once: the provider is asked again.
func NextMeasurement(m *rolloutsv1alpha1.Metric, r *rolloutsv1alpha1.MetricResult, started time.Time) (time.Time, bool) {
	if r != nil && r.Phase.Completed() {
		return time.Time{}, false
	}
	if ms := InProgress(r); ms != nil {
		return ms.StartedAt.Time, true
	}
	if r == nil || len(r.Measurements) == 0 {
		if r != nil && r.Count+r.Error > 0 {
			// Measurements were trimmed away: a retention of 0 cannot be
			// set, so this is only a status written by hand.
			return started, true
		}
		delay := time.Duration(0)
		if m.InitialDelay != nil {
			delay = m.InitialDelay.Duration
		}
		return started.Add(delay), true
	}
	if c := EffectiveCount(m); c > 0 && r.Count >= c {
		return time.Time{}, false
	}
	last := r.Measurements[len(r.Measurements)-1]
	every := interval(m)
	if last.Phase == rolloutsv1alpha1.AnalysisPhaseError && (every == 0 || every > ErrorRetryInterval) {
		every = ErrorRetryInterval
	}
	return last.StartedAt.Add(every), true
}

// Plan is what a reconcile measures.
type Plan struct {
	// Due names the metrics to measure now (or whose measurement in
	// progress to look at), in spec order.
	Due []string
}

// PlanRun returns the metrics due at now. A completed or terminated run
// measures nothing. st.StartedAt must be set.
func PlanRun(spec *rolloutsv1alpha1.AnalysisRunSpec, st *rolloutsv1alpha1.AnalysisRunStatus, now time.Time) Plan {
	var p Plan
	if st.Phase.Completed() || spec.Terminate || st.StartedAt == nil {
		return p
	}
	for i := range spec.Metrics {
		m := &spec.Metrics[i]
		if at, ok := NextMeasurement(m, Result(st, m.Name), st.StartedAt.Time); ok && !at.After(now) {
			p.Due = append(p.Due, m.Name)
		}
	}
	return p
}

// Wait is how long until the run has something to do: 0 when it is
// complete (or terminated) and nothing is due again; at least MinWait; at
// most InProgressPollInterval while a measurement is in progress.
func Wait(spec *rolloutsv1alpha1.AnalysisRunSpec, st *rolloutsv1alpha1.AnalysisRunStatus, now time.Time) time.Duration {
	if st.Phase.Completed() || spec.Terminate || st.StartedAt == nil {
		return 0
	}
	var wait time.Duration
	for i := range spec.Metrics {
		m := &spec.Metrics[i]
		r := Result(st, m.Name)
		at, ok := NextMeasurement(m, r, st.StartedAt.Time)
		if !ok {
			continue
		}
		d := max(at.Sub(now), MinWait)
		if InProgress(r) != nil {
			d = InProgressPollInterval
		}
		if wait == 0 || d < wait {
			wait = d
		}
	}
	return wait
}

// Record adds a measurement to a metric's result: it replaces the
// measurement in progress, if any, else it is appended. A finished
// measurement updates the counts: an error is never counted as a judged
// measurement (count), nor as a success, and breaks a run of successes.
func Record(r *rolloutsv1alpha1.MetricResult, ms rolloutsv1alpha1.Measurement) {
	if cur := InProgress(r); cur != nil {
		*cur = ms
	} else {
		r.Measurements = append(r.Measurements, ms)
	}
	switch ms.Phase {
	case rolloutsv1alpha1.AnalysisPhaseSuccessful:
		r.Count++
		r.Successful++
		r.ConsecutiveSuccess++
		r.ConsecutiveError = 0
	case rolloutsv1alpha1.AnalysisPhaseFailed:
		r.Count++
		r.Failed++
		r.ConsecutiveSuccess, r.ConsecutiveError = 0, 0
	case rolloutsv1alpha1.AnalysisPhaseInconclusive:
		r.Count++
		r.Inconclusive++
		r.ConsecutiveSuccess, r.ConsecutiveError = 0, 0
	case rolloutsv1alpha1.AnalysisPhaseError:
		r.Error++
		r.ConsecutiveError++
		r.ConsecutiveSuccess = 0
	}
}

// MetricPhase is a metric's phase from its counts: Failed past its
// failureLimit, Inconclusive past its inconclusiveLimit, Error past its
// consecutiveErrorLimit, Successful when its consecutiveSuccessLimit or
// its count is reached (or the run is terminated), else Running (Pending
// before the first measurement). The message explains it.
func MetricPhase(m *rolloutsv1alpha1.Metric, r *rolloutsv1alpha1.MetricResult, terminate bool) (rolloutsv1alpha1.AnalysisPhase, string) {
	failureLimit := ptr.Deref(m.FailureLimit, DefaultFailureLimit)
	inconclusiveLimit := ptr.Deref(m.InconclusiveLimit, DefaultInconclusiveLimit)
	errorLimit := ptr.Deref(m.ConsecutiveErrorLimit, DefaultConsecutiveErrorLimit)
	count := EffectiveCount(m)
	switch {
	case r.Failed > failureLimit:
		return rolloutsv1alpha1.AnalysisPhaseFailed, fmt.Sprintf("%d failed measurements, failureLimit %d; last: %s",
			r.Failed, failureLimit, lastOf(r, rolloutsv1alpha1.AnalysisPhaseFailed))
	case r.Inconclusive > inconclusiveLimit:
		return rolloutsv1alpha1.AnalysisPhaseInconclusive, fmt.Sprintf("%d inconclusive measurements, inconclusiveLimit %d; last: %s",
			r.Inconclusive, inconclusiveLimit, lastOf(r, rolloutsv1alpha1.AnalysisPhaseInconclusive))
	case r.ConsecutiveError > errorLimit:
		return rolloutsv1alpha1.AnalysisPhaseError, fmt.Sprintf("%d consecutive errors, consecutiveErrorLimit %d; last: %s",
			r.ConsecutiveError, errorLimit, lastOf(r, rolloutsv1alpha1.AnalysisPhaseError))
	case m.ConsecutiveSuccessLimit != nil && r.ConsecutiveSuccess >= *m.ConsecutiveSuccessLimit:
		return rolloutsv1alpha1.AnalysisPhaseSuccessful, fmt.Sprintf("%d consecutive successful measurements", r.ConsecutiveSuccess)
	case count > 0 && r.Count >= count:
		return rolloutsv1alpha1.AnalysisPhaseSuccessful, fmt.Sprintf("%d of %d measurements successful", r.Successful, r.Count)
	case terminate:
		return rolloutsv1alpha1.AnalysisPhaseSuccessful, fmt.Sprintf("terminated after %d measurements, %d successful", r.Count, r.Successful)
	case r.Count+r.Error == 0 && InProgress(r) == nil:
		return rolloutsv1alpha1.AnalysisPhasePending, ""
	}
	return rolloutsv1alpha1.AnalysisPhaseRunning, ""
}

// lastOf describes the metric's last measurement of a phase:
// "0.62 (failed: result >= 0.99)", or for an error its message.
func lastOf(r *rolloutsv1alpha1.MetricResult, p rolloutsv1alpha1.AnalysisPhase) string {
	for i := len(r.Measurements) - 1; i >= 0; i-- {
		if ms := r.Measurements[i]; ms.Phase == p {
			return describe(ms)
		}
	}
	return "(trimmed from status)"
}

func describe(ms rolloutsv1alpha1.Measurement) string {
	if ms.Phase == rolloutsv1alpha1.AnalysisPhaseError {
		return "error: " + ms.Message
	}
	if ms.Message == "" {
		return fmt.Sprintf("%s (%s)", ms.Value, strings.ToLower(string(ms.Phase)))
	}
	return fmt.Sprintf("%s (%s: %s)", ms.Value, strings.ToLower(string(ms.Phase)), ms.Message)
}

// Assess brings the status up to date with its measurements: each
// metric's phase and message (dryRun flag, retention), then the run's
// phase and message. It keeps one result per metric of the spec, in spec
// order. A run that ends (terminated, or decided by a metric) stops the
// measurements in progress. now stamps them.
func Assess(spec *rolloutsv1alpha1.AnalysisRunSpec, st *rolloutsv1alpha1.AnalysisRunStatus, now time.Time) {
	results := make([]rolloutsv1alpha1.MetricResult, 0, len(spec.Metrics))
	for i := range spec.Metrics {
		m := &spec.Metrics[i]
		r := rolloutsv1alpha1.MetricResult{Name: m.Name}
		if cur := Result(st, m.Name); cur != nil {
			r = *cur
		}
		r.DryRun = IsDryRun(&spec.AnalysisTemplateSpec, m.Name)
		if !r.Phase.Completed() {
			r.Phase, r.Message = MetricPhase(m, &r, spec.Terminate)
		}
		results = append(results, r)
	}
	st.MetricResults = results
	st.Phase, st.Message = runPhase(st.MetricResults)
	if st.Phase.Completed() {
		for i := range st.MetricResults {
			r := &st.MetricResults[i]
			if ms := InProgress(r); ms != nil {
				ms.Phase = rolloutsv1alpha1.AnalysisPhaseInconclusive
				ms.Message = "stopped: the run ended before the measurement finished"
				ms.FinishedAt = &metav1.Time{Time: now}
			}
			if !r.Phase.Completed() {
				r.Message = "stopped: the run ended"
			}
		}
	}
	for i := range st.MetricResults {
		r := &st.MetricResults[i]
		if keep := Retention(&spec.AnalysisTemplateSpec, r.Name); len(r.Measurements) > keep {
			r.Measurements = append([]rolloutsv1alpha1.Measurement(nil), r.Measurements[len(r.Measurements)-keep:]...)
		}
	}
}

// runPhase: Failed, else Error, else Inconclusive when a metric that is
// not a dry run is; else Successful when every metric is complete; else
// Running. The message names the deciding metric and its last value.
func runPhase(results []rolloutsv1alpha1.MetricResult) (rolloutsv1alpha1.AnalysisPhase, string) {
	var decided [3]*rolloutsv1alpha1.MetricResult // failed, error, inconclusive
	done := true
	var running, dryRunNotes []string
	for i := range results {
		r := &results[i]
		if !r.Phase.Completed() {
			done = false
			running = append(running, r.Name)
			continue
		}
		if r.DryRun {
			if r.Phase != rolloutsv1alpha1.AnalysisPhaseSuccessful {
				dryRunNotes = append(dryRunNotes, fmt.Sprintf("dry-run metric %s: %s", r.Name, strings.ToLower(string(r.Phase))))
			}
			continue
		}
		for j, p := range []rolloutsv1alpha1.AnalysisPhase{rolloutsv1alpha1.AnalysisPhaseFailed,
			rolloutsv1alpha1.AnalysisPhaseError, rolloutsv1alpha1.AnalysisPhaseInconclusive} {
			if r.Phase == p && decided[j] == nil {
				decided[j] = r
			}
		}
	}
	for j, p := range []rolloutsv1alpha1.AnalysisPhase{rolloutsv1alpha1.AnalysisPhaseFailed,
		rolloutsv1alpha1.AnalysisPhaseError, rolloutsv1alpha1.AnalysisPhaseInconclusive} {
		if r := decided[j]; r != nil {
			return p, runMessage(r)
		}
	}
	if !done {
		return rolloutsv1alpha1.AnalysisPhaseRunning, "measuring " + strings.Join(running, ", ")
	}
	msg := fmt.Sprintf("%d of %d metrics successful", len(results)-len(dryRunNotes), len(results))
	if len(dryRunNotes) > 0 {
		msg += " (" + strings.Join(dryRunNotes, "; ") + ")"
	}
	return rolloutsv1alpha1.AnalysisPhaseSuccessful, msg
}

// runMessage: "metric success-rate: 0.62 (failed: result >= 0.99)", or for
// an error "metric success-rate: 5 consecutive errors (limit 4): ...".
func runMessage(r *rolloutsv1alpha1.MetricResult) string {
	if r.Phase == rolloutsv1alpha1.AnalysisPhaseError {
		return fmt.Sprintf("metric %s: %s (%d consecutive errors)", r.Name, lastOf(r, r.Phase), r.ConsecutiveError)
	}
	return fmt.Sprintf("metric %s: %s", r.Name, lastOf(r, r.Phase))
}
