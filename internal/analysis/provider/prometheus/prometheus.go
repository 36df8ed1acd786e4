// Package prometheus measures a metric with an instant PromQL query
// (POST /api/v1/query, or GET where the server refuses POST, through
// client_golang's API client).
//
// The result becomes the measured value: a scalar or a one-element vector
// is a number, a vector of several elements a list of numbers. An empty
// result is an error ("query returned no data"), and so is NaN: a ratio
// over no requests is no evidence, and an error never counts as success
// (the metric's consecutiveErrorLimit decides how long it may last).
package prometheus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/analysis"
)

// DefaultTimeout bounds a query without a timeout.
const DefaultTimeout = 10 * time.Second

// ErrNoData is a query that matched nothing.
var ErrNoData = errors.New("query returned no data")

// Provider queries Prometheus.
type Provider struct{}

// Measure runs the metric's query.
func (Provider) Measure(ctx context.Context, m *rolloutsv1alpha1.Metric, env *analysis.Env) (any, error) {
	p := m.Provider.Prometheus
	if p == nil {
		return nil, errors.New("metric has no prometheus provider")
	}
	return Query(ctx, env, p)
}

// Query runs p's query (templated with env) at env.Now.
func Query(ctx context.Context, env *analysis.Env, p *rolloutsv1alpha1.PrometheusMetric) (any, error) {
	query, err := env.Render(ctx, p.Query)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	address, err := env.Render(ctx, p.Address)
	if err != nil {
		return nil, fmt.Errorf("address: %w", err)
	}
	hc, err := env.HTTPClient(ctx, p.Authentication, p.Headers)
	if err != nil {
		return nil, err
	}
	c, err := api.NewClient(api.Config{Address: address, Client: hc})
	if err != nil {
		return nil, fmt.Errorf("prometheus address %q: %w", address, err)
	}
	timeout := DefaultTimeout
	if p.Timeout != nil && p.Timeout.Duration > 0 {
		timeout = p.Timeout.Duration
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, _, _, err := promv1.NewAPI(c).Query(ctx, query, env.Now, promv1.WithTimeout(timeout))
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: %w", address, err)
	}
	return Value(v)
}

// Value turns a query's result into a measured value.
func Value(v model.Value) (any, error) {
	switch r := v.(type) {
	case *model.Scalar:
		return number(float64(r.Value))
	case model.Vector:
		switch len(r) {
		case 0:
			return nil, ErrNoData
		case 1:
			return number(float64(r[0].Value))
		}
		out := make([]float64, len(r))
		for i, s := range r {
			f, err := number(float64(s.Value))
			if err != nil {
				return nil, fmt.Errorf("element %s: %w", s.Metric, err)
			}
			out[i] = f.(float64)
		}
		return out, nil
	case model.Matrix:
		if len(r) == 0 {
			return nil, ErrNoData
		}
		return nil, errors.New("query returned a range vector: use an instant vector (e.g. wrap it in a function such as rate or last_over_time)")
	case *model.String:
		return r.Value, nil
	case nil:
		return nil, ErrNoData
	}
	return nil, fmt.Errorf("unsupported result type %s", v.Type())
}

func number(f float64) (any, error) {
	if math.IsNaN(f) {
		return nil, errors.New("query returned NaN (nothing to divide: no requests in the window?)")
	}
	return f, nil
}
