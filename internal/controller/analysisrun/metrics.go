package analysisrun

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

// metrics are the AnalysisRun controller's Prometheus series, served on
// the manager's /metrics.
type metrics struct {
	phase        *prometheus.GaugeVec
	completed    *prometheus.CounterVec
	measurements *prometheus.CounterVec
	errors       *prometheus.CounterVec
	duration     *prometheus.HistogramVec
}

func runPhases() []rolloutsv1alpha1.AnalysisPhase {
	return []rolloutsv1alpha1.AnalysisPhase{rolloutsv1alpha1.AnalysisPhasePending, rolloutsv1alpha1.AnalysisPhaseRunning,
		rolloutsv1alpha1.AnalysisPhaseSuccessful, rolloutsv1alpha1.AnalysisPhaseFailed, rolloutsv1alpha1.AnalysisPhaseError,
		rolloutsv1alpha1.AnalysisPhaseInconclusive}
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "drover_analysisrun_phase",
			Help: "1 for the AnalysisRun's current phase (Pending, Running, Successful, Failed, Error, Inconclusive), 0 for the others."},
			[]string{"namespace", "name", "phase"}),
		completed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_analysisruns_completed_total",
			Help: "AnalysisRuns completed, by final phase."}, []string{"namespace", "phase"}),
		measurements: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_analysis_measurements_total",
			Help: "Measurements taken, by provider and outcome (Running: a Job still in progress)."}, []string{"provider", "phase"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_analysis_measurement_errors_total",
			Help: "Measurements that could not be taken (provider unreachable, bad query, no data), by provider."}, []string{"provider"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "drover_analysis_measurement_duration_seconds",
			Help:    "Time to take one measurement, by provider.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 8)}, []string{"provider"}),
	}
	var err error
	if m.phase, err = register(reg, m.phase); err != nil {
		return nil, err
	}
	if m.completed, err = register(reg, m.completed); err != nil {
		return nil, err
	}
	if m.measurements, err = register(reg, m.measurements); err != nil {
		return nil, err
	}
	if m.errors, err = register(reg, m.errors); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector registered before it
// (a second controller in the same process shares the series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			if existing, ok := already.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("registering analysis run metrics: %w", err)
	}
	return c, nil
}

// record publishes a run's phase, and counts it when it just completed.
func (m *metrics) record(run *rolloutsv1alpha1.AnalysisRun, st *rolloutsv1alpha1.AnalysisRunStatus) {
	if m == nil {
		return
	}
	for _, p := range runPhases() {
		v := 0.0
		if st.Phase == p {
			v = 1
		}
		m.phase.WithLabelValues(run.Namespace, run.Name, string(p)).Set(v)
	}
	if st.Phase.Completed() && !run.Status.Phase.Completed() {
		m.completed.WithLabelValues(run.Namespace, string(st.Phase)).Inc()
	}
}

// measured counts one measurement.
func (m *metrics) measured(provider string, phase rolloutsv1alpha1.AnalysisPhase, d time.Duration) {
	if m == nil {
		return
	}
	if provider == "" {
		provider = "none"
	}
	m.measurements.WithLabelValues(provider, string(phase)).Inc()
	if phase == rolloutsv1alpha1.AnalysisPhaseError {
		m.errors.WithLabelValues(provider).Inc()
	}
	m.duration.WithLabelValues(provider).Observe(d.Seconds())
}

// forget drops a deleted run's series.
func (m *metrics) forget(namespace, name string) {
	if m == nil {
		return
	}
	m.phase.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "name": name})
}
