package builtin_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/analysis"
	"github.com/drover-dev/drover/internal/analysis/analysistest"
	"github.com/drover-dev/drover/internal/analysis/provider/builtin"
	"github.com/drover-dev/drover/internal/promserver"
)

// TestRealPrometheus evaluates every builtin query in a real Prometheus
// (DROVER_PROMETHEUS, which make sets to bin/prometheus: Debian's
// prometheus 2.42) scraping exporters that write the series each source writes:
// the canary answers 0.5% errors in ~0.1 s, the stable revision 50%
// errors in ~2 s, so a query that mixed them up would be judged Failed.
func TestRealPrometheus(t *testing.T) {
	bin := os.Getenv("DROVER_PROMETHEUS")
	if bin == "" {
		t.Skip("DROVER_PROMETHEUS is not set (make unit sets it to bin/prometheus)")
	}
	canary, stable := exporter(t, 0.005, 0.1), exporter(t, 0.5, 2)
	proxies := proxyExporter(t)
	host := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	// The pods as the demo app's service discovery lists them.
	sd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `[{"targets":[%q],"labels":{"namespace":"team-a","pod":"web-canary-0","controller_revision_hash":"web-7f9c"}},`+
			`{"targets":[%q],"labels":{"namespace":"team-a","pod":"web-stable-0","controller_revision_hash":"web-55d1"}}]`, host(canary), host(stable))
	}))
	t.Cleanup(sd.Close)
	prom, err := promserver.Start(context.Background(), promserver.Options{
		Binary: bin, WorkDir: t.TempDir(), SD: []string{sd.URL},
		Static: map[string]string{"proxies": host(proxies)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prom.Stop() })
	addr := prom.Address()

	ev, err := analysis.NewEvaluator()
	if err != nil {
		t.Fatal(err)
	}
	for _, source := range []string{builtin.SourceHTTP, builtin.SourceGatewayAPI, builtin.SourceIstio, builtin.SourceNginx} {
		for _, name := range []string{builtin.SuccessRate, builtin.DurationP99} {
			m := metric(name, source, "http://"+addr)
			m.Interval.Duration = 5 * time.Second
			var v any
			deadline := time.Now().Add(40 * time.Second)
			for {
				env := analysistest.Env(m, nil)
				env.Now = time.Now() // the samples are real-time
				v, err = builtin.Provider{}.Measure(context.Background(), m, env)
				if err == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("%s/%s: %v\n%s", source, name, err, prom.LogTail())
			}
			verdict, err := ev.Judge(builtin.Provider{}.DefaultConditions(m), v)
			if err != nil || verdict.Phase != rolloutsv1alpha1.AnalysisPhaseSuccessful {
				t.Errorf("%s/%s = %v: %+v %v", source, name, v, verdict, err)
			}
			t.Logf("%s/%s = %v", source, name, analysis.FormatValue(v))
		}
	}
}

// exporter serves http_requests_total and http_request_duration_seconds
// of one pod, errRate of its requests answered 500 in latency seconds.
func exporter(t *testing.T, errRate, latency float64) *httptest.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total", Help: "requests"}, []string{"code", "method"})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "http_request_duration_seconds", Help: "latency", Buckets: prometheus.DefBuckets}, []string{"code", "method"})
	reg.MustRegister(reqs, dur)
	tick(t, func() {
		errs := int(200 * errRate)
		reqs.WithLabelValues("200", "GET").Add(float64(200 - errs))
		reqs.WithLabelValues("500", "GET").Add(float64(errs))
		for range 20 {
			dur.WithLabelValues("200", "GET").Observe(latency)
		}
	})
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return srv
}

// proxyExporter serves what Traefik, Istio and ingress-nginx write for
// the canary (0.5% errors, 0.1 s) and the stable Service (50%, 2 s).
func proxyExporter(t *testing.T) *httptest.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	traefik := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "traefik_service_requests_total", Help: "x"}, []string{"code", "method", "protocol", "service"})
	traefikDur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "traefik_service_request_duration_seconds", Help: "x", Buckets: []float64{0.1, 0.3, 1.2, 5}}, []string{"code", "method", "protocol", "service"})
	istio := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_requests_total", Help: "x"}, []string{"reporter", "destination_service_namespace", "destination_service_name", "response_code"})
	istioDur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "istio_request_duration_milliseconds", Help: "x", Buckets: []float64{50, 100, 250, 500, 1000, 2500, 5000}}, []string{"reporter", "destination_service_namespace", "destination_service_name", "response_code"})
	nginx := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nginx_ingress_controller_requests", Help: "x"}, []string{"namespace", "ingress", "service", "canary", "status"})
	nginxDur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "nginx_ingress_controller_request_duration_seconds", Help: "x", Buckets: prometheus.DefBuckets}, []string{"namespace", "ingress", "service", "canary", "status"})
	reg.MustRegister(traefik, traefikDur, istio, istioDur, nginx, nginxDur)
	type backend struct {
		svc, traefikSvc, nginxCanary string
		errRate, latency             float64
	}
	router := "httproute-team-a-web-gw-team-a-gateway-ep-web-0-8c1d7f3a2b"
	backends := []backend{
		{"web-canary", router + "-svc-team-a-web-canary-1@kubernetesgateway", "team-a-web-canary-80", 0.005, 0.1},
		{"web-stable", router + "-svc-team-a-web-stable-0@kubernetesgateway", "", 0.5, 2},
	}
	tick(t, func() {
		for _, b := range backends {
			errs := 200 * b.errRate
			for code, n := range map[string]float64{"200": 200 - errs, "503": errs} {
				traefik.WithLabelValues(code, "GET", "http/1.1", b.traefikSvc).Add(n)
				istio.WithLabelValues("destination", "team-a", b.svc, code).Add(n)
				istio.WithLabelValues("source", "team-a", b.svc, code).Add(n)
				nginx.WithLabelValues("team-a", "web", "web-stable", b.nginxCanary, code).Add(n)
			}
			for range 20 {
				traefikDur.WithLabelValues("200", "GET", "http/1.1", b.traefikSvc).Observe(b.latency)
				istioDur.WithLabelValues("destination", "team-a", b.svc, "200").Observe(b.latency * 1000)
				nginxDur.WithLabelValues("team-a", "web", "web-stable", b.nginxCanary, "200").Observe(b.latency)
			}
		}
	})
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return srv
}

// tick calls f every 100ms until the test ends.
func tick(t *testing.T, f func()) {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	f()
	go func() {
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				f()
			}
		}
	}()
}
