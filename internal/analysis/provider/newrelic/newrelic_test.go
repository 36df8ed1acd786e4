package newrelic_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/analysis/analysistest"
	"github.com/drover-dev/drover/internal/analysis/provider/newrelic"
)

// Payloads in the shape NerdGraph answers.
const (
	percentage = `{"data":{"actor":{"account":{"nrql":{"results":[{"percentage":99.42}]}}}}}`
	several    = `{"data":{"actor":{"account":{"nrql":{"results":[{"count":1200,"average.duration":0.182,"appName":"web"}]}}}}}`
	empty      = `{"data":{"actor":{"account":{"nrql":{"results":[]}}}}}`
	gqlError   = `{"data":{"actor":{"account":{"nrql":null}}},"errors":[{"locations":[{"column":36,"line":1}],"message":"NRDB:1101003 - Unknown function percntage","path":["actor","account","nrql"]}]}`
	badKey     = `{"errors":[{"extensions":{"errorClass":"UNAUTHORIZED"},"message":"Invalid API key"}]}`
)

const nrql = `SELECT percentage(count(*), WHERE httpResponseCode < 500) FROM Transaction WHERE appName = '{{args.app}}' AND tags.revision = '{{revision}}' SINCE 5 minutes ago`

func metric() *rolloutsv1alpha1.Metric {
	return &rolloutsv1alpha1.Metric{Name: "success", Provider: rolloutsv1alpha1.MetricProvider{NewRelic: &rolloutsv1alpha1.NewRelicMetric{
		Query: nrql, SecretRef: corev1.LocalObjectReference{Name: "newrelic"}}}}
}

type recorded struct {
	method, path string
	header       http.Header
	body         []byte
}

func measure(t *testing.T, status int, answer string) (any, recorded, error) {
	t.Helper()
	var got recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = recorded{method: r.Method, path: r.URL.Path, header: r.Header, body: b}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(answer))
	}))
	defer srv.Close()
	m := metric()
	secrets := analysistest.Secrets{"newrelic": {"personal-api-key": "NRAK-TEST", "account-id": "1234567", "base-url-nerdgraph": srv.URL + "/graphql"}}
	v, err := newrelic.Provider{}.Measure(context.Background(), m, analysistest.Env(m, secrets,
		rolloutsv1alpha1.Argument{Name: "app", Value: strPtr("web")}))
	return v, got, err
}

func strPtr(s string) *string { return &s }

func TestRequest(t *testing.T) {
	v, got, err := measure(t, http.StatusOK, percentage)
	if err != nil || v != 99.42 {
		t.Fatalf("got %v, %v", v, err)
	}
	if got.method != http.MethodPost || got.path != "/graphql" || got.header.Get("API-Key") != "NRAK-TEST" || got.header.Get("Content-Type") != "application/json" {
		t.Errorf("request %s %s %v", got.method, got.path, got.header)
	}
	var body map[string]any
	if err := json.Unmarshal(got.body, &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"query": "query($accountId: Int!, $nrql: Nrql!) { actor { account(id: $accountId) { nrql(query: $nrql) { results } } } }",
		"variables": map[string]any{"accountId": 1234567.0,
			"nrql": `SELECT percentage(count(*), WHERE httpResponseCode < 500) FROM Transaction WHERE appName = 'web' AND tags.revision = 'web-7f9c' SINCE 5 minutes ago`},
	}
	if !reflect.DeepEqual(body, want) {
		t.Errorf("body %s", got.body)
	}
}

func TestValues(t *testing.T) {
	v, _, err := measure(t, http.StatusOK, several)
	want := map[string]any{"count": 1200.0, "average.duration": 0.182, "appName": "web"}
	if err != nil || !reflect.DeepEqual(v, want) {
		t.Errorf("several fields: %v, %v (want the map)", v, err)
	}
	for _, tt := range []struct {
		status       int
		answer, want string
	}{
		{http.StatusOK, empty, "query returned no data"},
		{http.StatusOK, gqlError, "Unknown function percntage"},
		{http.StatusUnauthorized, badKey, "Invalid API key"},
		{http.StatusBadGateway, "<html>bad gateway</html>", "HTTP 502"},
	} {
		if _, _, err := measure(t, tt.status, tt.answer); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("want %q, got %v", tt.want, err)
		}
	}
}

func TestSecretErrors(t *testing.T) {
	m := metric()
	_, err := newrelic.Provider{}.Measure(context.Background(), m, analysistest.Env(m, analysistest.Secrets{"newrelic": {"personal-api-key": "k", "account-id": "abc"}},
		rolloutsv1alpha1.Argument{Name: "app", Value: strPtr("web")}))
	if err == nil || !strings.Contains(err.Error(), "account-id is not a number") {
		t.Errorf("bad account id: %v", err)
	}
}
