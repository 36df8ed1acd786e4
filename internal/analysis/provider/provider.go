// Package provider assembles the measurement providers (one package each
// below) and picks the one a metric names.
package provider

import (
	"context"
	"errors"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/analysis"
	"github.com/drover-dev/drover/internal/analysis/provider/builtin"
	"github.com/drover-dev/drover/internal/analysis/provider/datadog"
	"github.com/drover-dev/drover/internal/analysis/provider/job"
	"github.com/drover-dev/drover/internal/analysis/provider/newrelic"
	"github.com/drover-dev/drover/internal/analysis/provider/prometheus"
	"github.com/drover-dev/drover/internal/analysis/provider/web"
)

// Names of the providers, as metrics and Prometheus series name them.
const (
	Prometheus = "prometheus"
	Web        = "web"
	Job        = "job"
	Datadog    = "datadog"
	NewRelic   = "newRelic"
	Builtin    = "builtin"
)

// Set is one provider per kind. A nil provider is unavailable.
type Set struct {
	Prometheus, Web, Job, Datadog, NewRelic, Builtin analysis.Provider
}

// Stopper is a provider with measurements to stop when a run ends (Jobs).
type Stopper interface {
	Stop(ctx context.Context, run *rolloutsv1alpha1.AnalysisRun) error
}

// New returns every provider; c creates and reads the Jobs of job metrics.
func New(c client.Client) Set {
	return Set{
		Prometheus: prometheus.Provider{},
		Web:        web.Provider{},
		Job:        job.Provider{Client: c},
		Datadog:    datadog.Provider{},
		NewRelic:   newrelic.Provider{},
		Builtin:    builtin.Provider{},
	}
}

// For returns the provider a metric names, and its name.
func (s Set) For(m *rolloutsv1alpha1.Metric) (string, analysis.Provider, error) {
	mp := m.Provider
	var name string
	var p analysis.Provider
	switch {
	case mp.Prometheus != nil:
		name, p = Prometheus, s.Prometheus
	case mp.Web != nil:
		name, p = Web, s.Web
	case mp.Job != nil:
		name, p = Job, s.Job
	case mp.Datadog != nil:
		name, p = Datadog, s.Datadog
	case mp.NewRelic != nil:
		name, p = NewRelic, s.NewRelic
	case mp.Builtin != nil:
		name, p = Builtin, s.Builtin
	default:
		return "", nil, errors.New("the metric names no provider")
	}
	if p == nil {
		return name, nil, fmt.Errorf("provider %s is not available in this manager", name)
	}
	return name, p, nil
}

// Conditions are the metric's conditions, or its provider's default when
// it sets none.
func Conditions(m *rolloutsv1alpha1.Metric, p analysis.Provider) (analysis.Conditions, error) {
	c, err := analysis.ConditionsOf(m)
	if err != nil || !c.Empty() {
		return c, err
	}
	if d, ok := p.(analysis.Defaulter); ok {
		return d.DefaultConditions(m), nil
	}
	return c, nil
}

// Stop stops the measurements in progress of a run that ended.
func (s Set) Stop(ctx context.Context, run *rolloutsv1alpha1.AnalysisRun) error {
	var errs []error
	for _, p := range []analysis.Provider{s.Prometheus, s.Web, s.Job, s.Datadog, s.NewRelic, s.Builtin} {
		if st, ok := p.(Stopper); ok {
			errs = append(errs, st.Stop(ctx, run))
		}
	}
	return errors.Join(errs...)
}
