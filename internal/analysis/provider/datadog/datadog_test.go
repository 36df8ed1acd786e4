package datadog_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/analysis/analysistest"
	"github.com/drover-dev/drover/internal/analysis/provider/datadog"
)

// Payloads in the shape Datadog's API documents.
const (
	v1Answer = `{"status":"ok","res_type":"time_series","resp_version":1,"query":"avg:trace.http.request.errors{service:web-canary}.as_rate()",
"message":"","from_date":1772600467000,"to_date":1772600767000,"group_by":[],
"series":[{"metric":"trace.http.request.errors","display_name":"trace.http.request.errors","unit":null,"pointlist":[[1772600460000.0,0.002],[1772600520000.0,0.004],[1772600580000.0,null]],
"expression":"avg:trace.http.request.errors{service:web-canary}.as_rate()","scope":"service:web-canary","interval":60,"length":3,"start":1772600460000,"end":1772600639000,"aggr":"avg","attributes":{},"tag_set":[],"query_index":0}]}`
	v2Answer  = `{"data":{"type":"scalar_response","attributes":{"columns":[{"name":"query1","values":[0.9934],"type":"number","meta":{"unit":[{"family":"percentage","scale_factor":1.0,"name":"percent","short_name":"%","plural":"percent","id":17},null]}}]}}}`
	v2Groups  = `{"data":{"type":"scalar_response","attributes":{"columns":[{"name":"env","values":[["prod"],["staging"]],"type":"group"},{"name":"query1","values":[0.5,0.7],"type":"number","meta":{"unit":null}}]}}}`
	v2Empty   = `{"data":{"type":"scalar_response","attributes":{"columns":[{"name":"query1","values":[],"type":"number","meta":{"unit":null}}]}}}`
	forbidden = `{"errors":["Forbidden"]}`
)

type recorded struct {
	method, path string
	query        map[string][]string
	header       http.Header
	body         []byte
}

func server(t *testing.T, status int, answer string, got *recorded) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*got = recorded{method: r.Method, path: r.URL.Path, query: r.URL.Query(), header: r.Header, body: b}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(answer))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func metric(version string) *rolloutsv1alpha1.Metric {
	return &rolloutsv1alpha1.Metric{Name: "errors", Interval: &metav1.Duration{Duration: 5 * time.Minute},
		Provider: rolloutsv1alpha1.MetricProvider{Datadog: &rolloutsv1alpha1.DatadogMetric{
			Query:      "avg:trace.http.request.errors{service:{{rollout.canaryService}}}.as_rate()",
			APIVersion: version, SecretRef: corev1.LocalObjectReference{Name: "datadog"}}}}
}

func measure(t *testing.T, address, version string) (any, error) {
	t.Helper()
	m := metric(version)
	secrets := analysistest.Secrets{"datadog": {"address": address, "api-key": "dd-api-123", "app-key": "dd-app-456"}}
	return datadog.Provider{}.Measure(context.Background(), m, analysistest.Env(m, secrets))
}

func TestV1(t *testing.T) {
	var got recorded
	srv := server(t, http.StatusOK, v1Answer, &got)
	v, err := measure(t, srv.URL, "v1")
	if err != nil || v != 0.004 {
		t.Fatalf("got %v, %v (want the last non-null point)", v, err)
	}
	now := analysistest.Now()
	want := map[string][]string{
		"query": {"avg:trace.http.request.errors{service:web-canary}.as_rate()"},
		"from":  {strconv.FormatInt(now.Add(-5*time.Minute).Unix(), 10)},
		"to":    {strconv.FormatInt(now.Unix(), 10)},
	}
	if got.method != http.MethodGet || got.path != "/api/v1/query" || !reflect.DeepEqual(got.query, want) {
		t.Errorf("request %s %s %v, want GET /api/v1/query %v", got.method, got.path, got.query, want)
	}
	if got.header.Get("DD-API-KEY") != "dd-api-123" || got.header.Get("DD-APPLICATION-KEY") != "dd-app-456" || len(got.body) != 0 {
		t.Errorf("headers %v body %q", got.header, got.body)
	}
}

func TestV2(t *testing.T) {
	var got recorded
	srv := server(t, http.StatusOK, v2Answer, &got)
	v, err := measure(t, srv.URL+"/", "")
	if err != nil || v != 0.9934 {
		t.Fatalf("got %v, %v", v, err)
	}
	if got.method != http.MethodPost || got.path != "/api/v2/query/scalar" || got.header.Get("Content-Type") != "application/json" {
		t.Errorf("request %s %s %q", got.method, got.path, got.header.Get("Content-Type"))
	}
	if got.header.Get("DD-API-KEY") != "dd-api-123" || got.header.Get("DD-APPLICATION-KEY") != "dd-app-456" {
		t.Errorf("headers %v", got.header)
	}
	now := analysistest.Now()
	var body, want any
	if err := json.Unmarshal(got.body, &body); err != nil {
		t.Fatal(err)
	}
	wantJSON := `{"data":{"type":"scalar_request","attributes":{"from":` + strconv.FormatInt(now.Add(-5*time.Minute).UnixMilli(), 10) +
		`,"to":` + strconv.FormatInt(now.UnixMilli(), 10) +
		`,"queries":[{"data_source":"metrics","query":"avg:trace.http.request.errors{service:web-canary}.as_rate()","name":"query1","aggregator":"last"}],` +
		`"formulas":[{"formula":"query1"}]}}}`
	_ = json.Unmarshal([]byte(wantJSON), &want)
	if !reflect.DeepEqual(body, want) {
		t.Errorf("body\n%s\nwant\n%s", got.body, wantJSON)
	}
}

func TestV2Groups(t *testing.T) {
	var got recorded
	srv := server(t, http.StatusOK, v2Groups, &got)
	v, err := measure(t, srv.URL, "v2")
	if err != nil || !reflect.DeepEqual(v, []float64{0.5, 0.7}) {
		t.Fatalf("got %v, %v", v, err)
	}
}

func TestErrors(t *testing.T) {
	var got recorded
	for _, tt := range []struct {
		name, version, answer, want string
		status                      int
	}{
		{"forbidden v2", "v2", forbidden, "HTTP 403: Forbidden", http.StatusForbidden},
		{"forbidden v1", "v1", forbidden, "HTTP 403: Forbidden", http.StatusForbidden},
		{"no data v2", "v2", v2Empty, "query returned no data", http.StatusOK},
		{"no series v1", "v1", `{"status":"ok","series":[]}`, "query returned no data", http.StatusOK},
		{"v1 error", "v1", `{"status":"error","error":"Error parsing query: unable to parse avg:: Rule 'scope_expr' didn't match"}`, "Error parsing query", http.StatusOK},
		{"v2 partial errors", "v2", `{"data":{"type":"scalar_response","attributes":{"columns":[]}},"errors":"query1: metric not found"}`, "metric not found", http.StatusOK},
	} {
		srv := server(t, tt.status, tt.answer, &got)
		if _, err := measure(t, srv.URL, tt.version); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: want %q, got %v", tt.name, tt.want, err)
		}
	}
	m := metric("v2")
	_, err := datadog.Provider{}.Measure(context.Background(), m, analysistest.Env(m, analysistest.Secrets{"datadog": {"api-key": "x"}}))
	if err == nil || !strings.Contains(err.Error(), `no key "app-key"`) {
		t.Errorf("missing app-key: %v", err)
	}
}
