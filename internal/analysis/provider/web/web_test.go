package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/analysis/analysistest"
	"github.com/drover-dev/drover/internal/analysis/provider/web"
)

const doc = `{"data":{"ok":true,"rate":0.995,"status":"green","latencies":[0.1,0.2],"detail":{"errors":3}},"items":[{"v":1},{"v":2}]}`

func metric(url, path string) *rolloutsv1alpha1.Metric {
	return &rolloutsv1alpha1.Metric{Name: "health", Provider: rolloutsv1alpha1.MetricProvider{
		Web: &rolloutsv1alpha1.WebMetric{URL: url, JSONPath: path}}}
}

func measure(t *testing.T, m *rolloutsv1alpha1.Metric, secrets analysistest.Secrets, args ...rolloutsv1alpha1.Argument) (any, error) {
	t.Helper()
	return web.Provider{}.Measure(context.Background(), m, analysistest.Env(m, secrets, args...))
}

func TestValues(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(doc))
	}))
	defer srv.Close()
	tests := []struct {
		path, want, wantErr string
	}{
		{path: "{$.data.rate}", want: "float64 0.995"},
		{path: "$.data.rate", want: "float64 0.995"},
		{path: "{.data.ok}", want: "bool true"},
		{path: "{.data.status}", want: "string green"},
		{path: "{.data.latencies}", want: "[]interface {} [0.1 0.2]"},
		{path: "{.data.detail}", want: "map[string]interface {} map[errors:3]"},
		{path: "{.items[*].v}", want: "[]interface {} [1 2]"},
		{path: "", want: "map[string]interface {}"},
		{path: "{.data.missing}", wantErr: "missing is not found"},
		{path: "{.data[", wantErr: "jsonPath"},
	}
	for _, tt := range tests {
		got, err := measure(t, metric(srv.URL, tt.path), nil)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: want error %q, got %v, %v", tt.path, tt.wantErr, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.path, err)
			continue
		}
		if s := fmt.Sprintf("%T %v", got, got); !strings.HasPrefix(s, tt.want) {
			t.Errorf("%q: got %s, want %s", tt.path, s, tt.want)
		}
	}
}

func TestRequest(t *testing.T) {
	var method, path, body, ctype string
	var header http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		method, path, body, header, ctype = r.Method, r.URL.RequestURI(), string(b), r.Header, r.Header.Get("Content-Type")
		_, _ = w.Write([]byte(`{"ok":1}`))
	}))
	defer srv.Close()
	m := metric(srv.URL+"/check?svc={{rollout.canaryService}}&rev={{revision}}", "{.ok}")
	m.Provider.Web.Method = http.MethodPost
	m.Provider.Web.Body = `{"service":"{{args.service}}"}`
	m.Provider.Web.Headers = []rolloutsv1alpha1.HTTPHeader{
		{Name: "X-Team", Value: ptr.To("{{rollout.namespace}}")},
		{Name: "X-Key", ValueFrom: &rolloutsv1alpha1.SecretValue{SecretKeyRef: corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "api"}, Key: "key"}}},
	}
	m.Provider.Web.Authentication = &rolloutsv1alpha1.HTTPAuthentication{Basic: &rolloutsv1alpha1.BasicAuth{SecretName: "basic"}}
	got, err := measure(t, m, analysistest.Secrets{"api": {"key": "k-123"}, "basic": {"username": "u", "password": "p"}},
		rolloutsv1alpha1.Argument{Name: "service", Value: ptr.To("web")})
	if err != nil || got != 1.0 {
		t.Fatalf("got %v, %v", got, err)
	}
	if method != http.MethodPost || path != "/check?svc=web-canary&rev=web-7f9c" || body != `{"service":"web"}` || ctype != "application/json" {
		t.Errorf("request %s %s %q %q", method, path, body, ctype)
	}
	if header.Get("X-Team") != "team-a" || header.Get("X-Key") != "k-123" || !strings.HasPrefix(header.Get("Authorization"), "Basic ") {
		t.Errorf("headers %v", header)
	}
}

func TestErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/html" {
			_, _ = w.Write([]byte("<html>hello</html>"))
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"down for maintenance"}`))
	}))
	if _, err := measure(t, metric(srv.URL+"/x", ""), nil); err == nil || !strings.Contains(err.Error(), "HTTP 503") || !strings.Contains(err.Error(), "maintenance") {
		t.Errorf("503: %v", err)
	}
	if _, err := measure(t, metric(srv.URL+"/html", ""), nil); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Errorf("not JSON: %v", err)
	}
	srv.Close()
	if _, err := measure(t, metric(srv.URL, ""), nil); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("down: %v", err)
	}
}
