package rollout

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

// metrics are the Rollout controller's Prometheus series, served on the
// manager's /metrics.
type metrics struct {
	phase         *prometheus.GaugeVec
	step          *prometheus.GaugeVec
	weight        *prometheus.GaugeVec
	verified      *prometheus.GaugeVec
	release       *prometheus.HistogramVec
	notifications *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "drover_rollout_phase",
			Help: "1 for the Rollout's current phase (Healthy, Progressing, Paused, Degraded), 0 for the others."},
			[]string{"namespace", "name", "phase"}),
		step: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "drover_rollout_step",
			Help: "Index of the step the Rollout's release is at (-1 when no release is under way)."},
			[]string{"namespace", "name"}),
		weight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "drover_rollout_canary_weight",
			Help: "Traffic percentage the current step sends to the canary."}, []string{"namespace", "name"}),
		verified: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "drover_rollout_canary_weight_verified",
			Help: "Traffic percentage last verified at the canary (by the router, or by ready pods without one)."}, []string{"namespace", "name"}),
		release: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "drover_rollout_release_duration_seconds",
			Help:    "Time from a release's start to its promotion or abort.",
			Buckets: prometheus.ExponentialBuckets(10, 2, 12)}, []string{"namespace", "outcome"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_rollout_notifications_total",
			Help: "Notification messages by outcome: delivered, or failed (given up after three attempts, or not sent)."},
			[]string{"namespace", "name", "notification", "result"}),
	}
	for _, c := range []prometheus.Collector{m.phase, m.step, m.weight, m.verified, m.release, m.notifications} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return nil, fmt.Errorf("registering rollout metrics: %w", err)
			}
		}
	}
	return m, nil
}

// record publishes a Rollout's status, and the duration of a release that
// ended in this decision.
func (m *metrics) record(ro *rolloutsv1alpha1.Rollout, d *decision, now func() float64) {
	if m == nil {
		return
	}
	st := &d.status
	for _, p := range []rolloutsv1alpha1.RolloutPhase{rolloutsv1alpha1.RolloutPhaseHealthy, rolloutsv1alpha1.RolloutPhaseProgressing,
		rolloutsv1alpha1.RolloutPhasePaused, rolloutsv1alpha1.RolloutPhaseDegraded} {
		v := 0.0
		if st.Phase == p {
			v = 1
		}
		m.phase.WithLabelValues(ro.Namespace, ro.Name, string(p)).Set(v)
	}
	step := -1.0
	if st.CurrentStepIndex != nil {
		step = float64(*st.CurrentStepIndex)
	}
	m.step.WithLabelValues(ro.Namespace, ro.Name).Set(step)
	m.weight.WithLabelValues(ro.Namespace, ro.Name).Set(float64(st.DesiredWeight))
	if st.VerifiedWeight != nil {
		m.verified.WithLabelValues(ro.Namespace, ro.Name).Set(float64(*st.VerifiedWeight))
	}
	if started := ro.Status.ReleaseStartedAt; started != nil {
		for _, e := range d.events {
			if e.reason == "Promoted" && st.CanaryRevision == "" || e.reason == "Aborted" {
				outcome := "promoted"
				if e.reason == "Aborted" {
					outcome = "aborted"
				}
				m.release.WithLabelValues(ro.Namespace, outcome).Observe(now() - float64(started.Unix()))
			}
		}
	}
}

// forget drops a deleted Rollout's series.
func (m *metrics) forget(ro *rolloutsv1alpha1.Rollout) {
	if m == nil {
		return
	}
	for _, v := range []*prometheus.GaugeVec{m.phase, m.step, m.weight, m.verified} {
		v.DeletePartialMatch(prometheus.Labels{"namespace": ro.Namespace, "name": ro.Name})
	}
	m.notifications.DeletePartialMatch(prometheus.Labels{"namespace": ro.Namespace, "name": ro.Name})
}

// notified counts a notification message's outcome.
func (m *metrics) notified(ro *rolloutsv1alpha1.Rollout, notification string, delivered bool) {
	if m == nil {
		return
	}
	result := "failed"
	if delivered {
		result = "delivered"
	}
	m.notifications.WithLabelValues(ro.Namespace, ro.Name, notification, result).Inc()
}
