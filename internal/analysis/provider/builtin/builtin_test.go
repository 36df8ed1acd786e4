package builtin_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/analysis"
	"github.com/drover-dev/drover/internal/analysis/analysistest"
	"github.com/drover-dev/drover/internal/analysis/provider/builtin"
)

func metric(name, source, address string) *rolloutsv1alpha1.Metric {
	return &rolloutsv1alpha1.Metric{Name: name, Interval: &metav1.Duration{Duration: time.Minute},
		Provider: rolloutsv1alpha1.MetricProvider{Builtin: &rolloutsv1alpha1.BuiltinMetric{Name: name, Source: source, Address: address}}}
}

// The exact queries docs/analysis.md documents, rendered for the Rollout
// web in team-a (canary Service web-canary, revision web-7f9c), 1m
// interval.
func TestQueries(t *testing.T) {
	want := map[string]string{
		"gatewayapi/request-success-rate": `sum(rate(traefik_service_requests_total{service=~".*-svc-team-a-web-canary-[0-9]+@kubernetesgateway",code!~"5.."}[1m])) / sum(rate(traefik_service_requests_total{service=~".*-svc-team-a-web-canary-[0-9]+@kubernetesgateway"}[1m]))`,
		"gatewayapi/request-duration-p99": `histogram_quantile(0.99, sum by (le) (rate(traefik_service_request_duration_seconds_bucket{service=~".*-svc-team-a-web-canary-[0-9]+@kubernetesgateway"}[1m])))`,
		"istio/request-success-rate":      `sum(rate(istio_requests_total{reporter="destination",destination_service_namespace="team-a",destination_service_name="web-canary",response_code!~"5.."}[1m])) / sum(rate(istio_requests_total{reporter="destination",destination_service_namespace="team-a",destination_service_name="web-canary"}[1m]))`,
		"istio/request-duration-p99":      `histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_service_namespace="team-a",destination_service_name="web-canary"}[1m]))) / 1000`,
		"nginx/request-success-rate":      `sum(rate(nginx_ingress_controller_requests{namespace="team-a",canary=~"team-a-web-canary-.+",status!~"5.."}[1m])) / sum(rate(nginx_ingress_controller_requests{namespace="team-a",canary=~"team-a-web-canary-.+"}[1m]))`,
		"nginx/request-duration-p99":      `histogram_quantile(0.99, sum by (le) (rate(nginx_ingress_controller_request_duration_seconds_bucket{namespace="team-a",canary=~"team-a-web-canary-.+"}[1m])))`,
		"http/request-success-rate":       `sum(rate(http_requests_total{namespace="team-a",revision="web-7f9c",code!~"5.."}[1m]) or rate(http_requests_total{namespace="team-a",controller_revision_hash="web-7f9c",code!~"5.."}[1m])) / sum(rate(http_requests_total{namespace="team-a",revision="web-7f9c"}[1m]) or rate(http_requests_total{namespace="team-a",controller_revision_hash="web-7f9c"}[1m]))`,
		"http/request-duration-p99":       `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{namespace="team-a",revision="web-7f9c"}[1m]) or rate(http_request_duration_seconds_bucket{namespace="team-a",controller_revision_hash="web-7f9c"}[1m])))`,
	}
	for key, q := range want {
		source, name, _ := strings.Cut(key, "/")
		var got string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			got = r.Form.Get("query")
			_, _ = fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1772600767,"0.999"]}]}}`)
		}))
		m := metric(name, source, srv.URL)
		v, err := builtin.Provider{}.Measure(context.Background(), m, analysistest.Env(m, nil))
		srv.Close()
		if err != nil || v != 0.999 {
			t.Errorf("%s: %v, %v", key, v, err)
		}
		if got != q {
			t.Errorf("%s:\n got %s\nwant %s", key, got, q)
		}
	}
	if _, err := builtin.Query(builtin.SuccessRate, ""); err != nil {
		t.Errorf("the default source is http: %v", err)
	}
	if _, err := builtin.Query(builtin.SuccessRate, "linkerd"); err == nil {
		t.Error("unknown source accepted")
	}
}

// The selectors match the label values the sources really write.
func TestSelectorsMatchRealLabels(t *testing.T) {
	for _, tt := range []struct{ pattern, value string }{
		// Traefik v3.7 kubernetesgateway: <router>-svc-<namespace>-<backend>-<index>@kubernetesgateway.
		{`.*-svc-team-a-web-canary-[0-9]+@kubernetesgateway`, "httproute-team-a-web-gw-team-a-gateway-ep-web-0-8c1d7f3a2b-svc-team-a-web-canary-1@kubernetesgateway"},
		// ingress-nginx: the canary upstream <namespace>-<service>-<port>.
		{`team-a-web-canary-.+`, "team-a-web-canary-80"},
	} {
		if !regexp.MustCompile(`^(?:` + tt.pattern + `)$`).MatchString(tt.value) {
			t.Errorf("%s does not match %s", tt.pattern, tt.value)
		}
	}
	if regexp.MustCompile(`^(?:.*-svc-team-a-web-canary-[0-9]+@kubernetesgateway)$`).MatchString("httproute-x-svc-team-a-web-stable-0@kubernetesgateway") {
		t.Error("the stable backend matched")
	}
}

func TestDefaultConditions(t *testing.T) {
	ev, err := analysis.NewEvaluator()
	if err != nil {
		t.Fatal(err)
	}
	p := builtin.Provider{}
	for _, tt := range []struct {
		name  string
		value float64
		want  rolloutsv1alpha1.AnalysisPhase
	}{
		{builtin.SuccessRate, 0.995, rolloutsv1alpha1.AnalysisPhaseSuccessful},
		{builtin.SuccessRate, 0.62, rolloutsv1alpha1.AnalysisPhaseFailed},
		{builtin.DurationP99, 0.3, rolloutsv1alpha1.AnalysisPhaseSuccessful},
		{builtin.DurationP99, 0.8, rolloutsv1alpha1.AnalysisPhaseFailed},
	} {
		v, err := ev.Judge(p.DefaultConditions(metric(tt.name, "", "")), tt.value)
		if err != nil || v.Phase != tt.want {
			t.Errorf("%s %v: %+v %v", tt.name, tt.value, v, err)
		}
	}
}

// A run whose Rollout is unknown cannot name the canary Service: an error,
// never a success.
func TestNoRollout(t *testing.T) {
	m := metric(builtin.SuccessRate, builtin.SourceIstio, "http://127.0.0.1:1")
	env := analysistest.Env(m, nil)
	env.Vars = analysis.NewVars(analysistest.Namespace, map[string]string{analysis.VarRolloutNamespace: analysistest.Namespace}, nil, nil)
	if _, err := (builtin.Provider{}).Measure(context.Background(), m, env); err == nil || !strings.Contains(err.Error(), "rollout.canaryService") {
		t.Errorf("got %v", err)
	}
}
