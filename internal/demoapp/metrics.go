package demoapp

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// podMetrics are one pod's metrics, in a registry of its own.
type podMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	handler  http.Handler
}

var metricLabels = []string{"code", "method", "version"}

func newPodMetrics() (*podMetrics, error) {
	m := &podMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests answered, by status code, method and the version that answered (requests to /metrics excluded).",
		}, metricLabels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by status code, method and the version that answered.",
			Buckets: prometheus.DefBuckets,
		}, metricLabels),
	}
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("demoapp: register metrics: %w", err)
		}
	}
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return m, nil
}

func (m *podMetrics) observe(code int, method, version string, d time.Duration) {
	c, meth := strconv.Itoa(code), normalizeMethod(method)
	m.requests.WithLabelValues(c, meth, version).Inc()
	m.duration.WithLabelValues(c, meth, version).Observe(d.Seconds())
}

// normalizeMethod bounds the method label's values.
func normalizeMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}
