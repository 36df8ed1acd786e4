// Package builtin provides Drover's ready-made metrics: the canary's
// request success rate and 99th-percentile latency, as PromQL templates
// for each traffic source, evaluated by the prometheus provider. A metric
// that sets no condition gets a default one: success rate >= 0.99, p99 <=
// 0.5 seconds. The window is the metric's interval ({{interval}}, 5m
// without one).
package builtin

import (
	"context"
	"errors"
	"fmt"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/analysis"
	"github.com/drover-dev/drover/internal/analysis/provider/prometheus"
)

// Builtin metric names and sources.
const (
	SuccessRate = "request-success-rate"
	DurationP99 = "request-duration-p99"

	SourceGatewayAPI = "gatewayapi"
	SourceIstio      = "istio"
	SourceNginx      = "nginx"
	SourceHTTP       = "http"
)

// Default conditions of the builtin metrics.
const (
	DefaultSuccessCondition  = "result >= 0.99"
	DefaultDurationCondition = "result <= 0.5"
)

// The canary's requests, per source. Each selector is a PromQL matcher
// list without braces.
const (
	// Traefik (the Gateway API implementation Drover is tested with) names
	// a backend of an HTTPRoute <router>-svc-<namespace>-<service>-<index>
	// with the provider suffix @kubernetesgateway; its metrics need
	// metrics.prometheus.addServicesLabels.
	gatewaySelector = `service=~".*-svc-{{rollout.namespace}}-{{rollout.canaryService}}-[0-9]+@kubernetesgateway"`
	// Istio's destination-side telemetry of requests to the canary
	// Service's host.
	istioSelector = `reporter="destination",destination_service_namespace="{{rollout.namespace}}",destination_service_name="{{rollout.canaryService}}"`
	// ingress-nginx labels a request the canary Ingress sent to the canary
	// with canary="<namespace>-<service>-<port>".
	nginxSelector = `namespace="{{rollout.namespace}}",canary=~"{{rollout.namespace}}-{{rollout.canaryService}}-.+"`
)

// templates maps source and metric to its PromQL template (a new map
// each call: no package state).
func templates() map[string]map[string]string {
	return map[string]map[string]string{
		SourceGatewayAPI: {
			SuccessRate: `sum(rate(traefik_service_requests_total{` + gatewaySelector + `,code!~"5.."}[{{interval}}])) / sum(rate(traefik_service_requests_total{` + gatewaySelector + `}[{{interval}}]))`,
			DurationP99: `histogram_quantile(0.99, sum by (le) (rate(traefik_service_request_duration_seconds_bucket{` + gatewaySelector + `}[{{interval}}])))`,
		},
		SourceIstio: {
			SuccessRate: `sum(rate(istio_requests_total{` + istioSelector + `,response_code!~"5.."}[{{interval}}])) / sum(rate(istio_requests_total{` + istioSelector + `}[{{interval}}]))`,
			DurationP99: `histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{` + istioSelector + `}[{{interval}}]))) / 1000`,
		},
		SourceNginx: {
			SuccessRate: `sum(rate(nginx_ingress_controller_requests{` + nginxSelector + `,status!~"5.."}[{{interval}}])) / sum(rate(nginx_ingress_controller_requests{` + nginxSelector + `}[{{interval}}]))`,
			DurationP99: `histogram_quantile(0.99, sum by (le) (rate(nginx_ingress_controller_request_duration_seconds_bucket{` + nginxSelector + `}[{{interval}}])))`,
		},
		// The application's own metrics, labelled with the pod's revision:
		// either a revision label, or controller_revision_hash as Prometheus'
		// Kubernetes discovery (labelmap of the pod labels) and the drover
		// demo's service discovery name the pod label controller-revision-hash.
		// "or" joins identical series once.
		SourceHTTP: {
			SuccessRate: `sum(rate(http_requests_total{namespace="{{rollout.namespace}}",revision="{{revision}}",code!~"5.."}[{{interval}}]) or rate(http_requests_total{namespace="{{rollout.namespace}}",controller_revision_hash="{{revision}}",code!~"5.."}[{{interval}}])) / sum(rate(http_requests_total{namespace="{{rollout.namespace}}",revision="{{revision}}"}[{{interval}}]) or rate(http_requests_total{namespace="{{rollout.namespace}}",controller_revision_hash="{{revision}}"}[{{interval}}]))`,
			DurationP99: `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{namespace="{{rollout.namespace}}",revision="{{revision}}"}[{{interval}}]) or rate(http_request_duration_seconds_bucket{namespace="{{rollout.namespace}}",controller_revision_hash="{{revision}}"}[{{interval}}])))`,
		},
	}
}

// Query returns the PromQL template of a builtin metric ("" source: http).
func Query(name, source string) (string, error) {
	if source == "" {
		source = SourceHTTP
	}
	bySource, ok := templates()[source]
	if !ok {
		return "", fmt.Errorf("builtin: unknown source %q (gatewayapi, istio, nginx, http)", source)
	}
	q, ok := bySource[name]
	if !ok {
		return "", fmt.Errorf("builtin: unknown metric %q (%s, %s)", name, SuccessRate, DurationP99)
	}
	return q, nil
}

// Provider measures builtin metrics through Prometheus.
type Provider struct{}

// DefaultConditions: success rate >= 0.99, p99 <= 0.5 s.
func (Provider) DefaultConditions(m *rolloutsv1alpha1.Metric) analysis.Conditions {
	if b := m.Provider.Builtin; b != nil && b.Name == DurationP99 {
		return analysis.Conditions{Success: DefaultDurationCondition}
	}
	return analysis.Conditions{Success: DefaultSuccessCondition}
}

// Measure runs the builtin metric's query.
func (Provider) Measure(ctx context.Context, m *rolloutsv1alpha1.Metric, env *analysis.Env) (any, error) {
	b := m.Provider.Builtin
	if b == nil {
		return nil, errors.New("metric has no builtin provider")
	}
	q, err := Query(b.Name, b.Source)
	if err != nil {
		return nil, err
	}
	return prometheus.Query(ctx, env, &rolloutsv1alpha1.PrometheusMetric{Address: b.Address, Query: q})
}
