package promserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/promserver"
)

func TestConfig(t *testing.T) {
	got, err := promserver.Config(promserver.Options{
		SD:     []string{"http://127.0.0.1:9/sd"},
		Static: map[string]string{"gateway": "127.0.0.1:8082", "alpha": "127.0.0.1:8083"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `global:
  evaluation_interval: 1s
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
- http_sd_configs:
  - refresh_interval: 1s
    url: http://127.0.0.1:9/sd
  job_name: sd-0
- job_name: alpha
  static_configs:
  - targets:
    - 127.0.0.1:8083
- job_name: gateway
  static_configs:
  - targets:
    - 127.0.0.1:8082
`
	if string(got) != want {
		t.Errorf("config:\n%s\nwant:\n%s", got, want)
	}
	if _, err := promserver.Config(promserver.Options{SD: []string{"127.0.0.1:9/sd"}}); err == nil || !strings.Contains(err.Error(), "SD[0]") {
		t.Errorf("SD without a scheme: err = %v, want one naming SD[0]", err)
	}
}

// TestServer starts the real Prometheus (DROVER_PROMETHEUS, set by make)
// on a target listed by an http_sd endpoint and a static one, and reads
// back through PromQL what they export, with the discovery's labels.
func TestServer(t *testing.T) {
	bin := os.Getenv("DROVER_PROMETHEUS")
	if bin == "" {
		t.Skip("DROVER_PROMETHEUS is not set (make unit sets it to bin/prometheus)")
	}
	exporter := func(metric string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "# TYPE %s counter\n%s 42\n", metric, metric)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	pod, gateway := exporter("pod_requests_total"), exporter("gateway_requests_total")
	sd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json") // Prometheus refuses anything else
		fmt.Fprintf(w, `[{"targets":[%q],"labels":{"pod":"web-abcde","controller_revision_hash":"web-7f9c"}}]`, strings.TrimPrefix(pod.URL, "http://"))
	}))
	t.Cleanup(sd.Close)

	ctx := context.Background()
	s, err := promserver.Start(ctx, promserver.Options{
		Binary: bin, WorkDir: t.TempDir(), SD: []string{sd.URL},
		Static: map[string]string{"gateway": strings.TrimPrefix(gateway.URL, "http://")},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })

	for q, want := range map[string]string{
		`pod_requests_total{job="sd-0",pod="web-abcde",controller_revision_hash="web-7f9c"}`: "42",
		`gateway_requests_total{job="gateway"}`:                                              "42",
	} {
		var got string
		deadline := time.Now().Add(30 * time.Second)
		for got != want && time.Now().Before(deadline) {
			got = instant(t, s.URL(), q)
			time.Sleep(200 * time.Millisecond)
		}
		if got != want {
			t.Errorf("%s = %q, want %q; log:\n%s", q, got, want, s.LogTail())
		}
	}

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(s.URL() + "/-/ready"); err == nil {
		t.Error("Prometheus still answers after Stop")
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// instant is the value of the first sample q returns ("" when none).
func instant(t *testing.T, base, q string) string {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Data.Result) == 0 {
		return ""
	}
	v, _ := body.Data.Result[0].Value[1].(string)
	return v
}
