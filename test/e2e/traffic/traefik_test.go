// Package traffic_test checks, on a kwok cluster, the real Gateway API
// implementation the traffic tests use (internal/traefik): an HTTPRoute's
// backend weights and header matches decide where Traefik sends real HTTP
// requests, and a change to the route takes effect within seconds.
//
// The backends are served by this test process on the Services' ClusterIPs
// (the harness's service range is loopback), which Traefik reaches directly
// (native load balancing). DROVER_E2E_SKIP_TRAFFIC=1 skips the suite;
// otherwise a missing bin/traefik (make tools) fails it.
package traffic_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/drover-dev/drover/internal/freeport"
	"github.com/drover-dev/drover/internal/traefik"
	"github.com/drover-dev/drover/test/e2e/framework"
)

const (
	skipEnv   = "DROVER_E2E_SKIP_TRAFFIC"
	binDirEnv = "DROVER_BIN_DIR"

	stable = "stable"
	canary = "canary"

	// Traefik's weighted round robin is deterministic: over n consecutive
	// requests each backend's count is within one of its exact share. The
	// requests that waited for the route to work shift the phase, so allow a
	// little more than one.
	splitTolerance = 5
	// How long a route change may take to reach Traefik's routing.
	propagation = 10 * time.Second
)

func TestMain(m *testing.M) {
	if os.Getenv(skipEnv) == "1" {
		os.Exit(m.Run()) // the tests skip themselves; no cluster needed
	}
	os.Exit(framework.Run(m, framework.Options{Nodes: 1, NoManager: true}))
}

func TestTraefikWeightsAndHeaders(t *testing.T) {
	if os.Getenv(skipEnv) == "1" {
		t.Skipf("%s=1", skipEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := framework.Client()

	if err := traefik.InstallGatewayAPI(ctx, c); err != nil {
		t.Fatal(err)
	}
	tr := startTraefik(ctx, t)
	ns := framework.Namespace(t)
	if err := traefik.CreateGateway(ctx, c, tr, ns, "gw"); err != nil {
		t.Fatal(err)
	}
	port := servicePort(t)
	for _, name := range []string{stable, canary} {
		ip := createService(ctx, t, c, ns, name, port)
		serve(t, net.JoinHostPort(ip, strconv.Itoa(port)), name)
	}

	web := newWebClient(ctx, tr)

	// 80/20.
	applyRoute(ctx, t, c, ns, port, 80, 20, false)
	web.waitFor(t, "the route to serve both backends", nil, func(counts map[string]int) bool {
		return counts[stable] > 0 && counts[canary] > 0 && counts[stable]+counts[canary] == total(counts)
	})
	counts := web.send(t, 1000, nil)
	t.Logf("weights 80/20: %v over 1000 requests", counts)
	assertNear(t, counts, map[string]int{stable: 800, canary: 200}, splitTolerance)

	// 0/100: everything to the canary, within a few seconds.
	start := time.Now()
	applyRoute(ctx, t, c, ns, port, 0, 100, false)
	web.waitFor(t, "weights 0/100 to take effect", nil, func(counts map[string]int) bool {
		return counts[canary] == total(counts)
	})
	t.Logf("weights 0/100 took effect after %s", time.Since(start).Round(10*time.Millisecond))
	counts = web.send(t, 200, nil)
	t.Logf("weights 0/100: %v over 200 requests", counts)
	assertNear(t, counts, map[string]int{canary: 200}, 0)

	// Header match: X-Canary: always goes to the canary, the rest to stable.
	always := http.Header{"X-Canary": {"always"}}
	start = time.Now()
	applyRoute(ctx, t, c, ns, port, 100, 0, true)
	web.waitFor(t, "the default rule to send everything to stable", nil, func(counts map[string]int) bool {
		return counts[stable] == total(counts)
	})
	web.waitFor(t, "the header rule to send X-Canary: always to the canary", always, func(counts map[string]int) bool {
		return counts[canary] == total(counts)
	})
	t.Logf("header rule took effect after %s", time.Since(start).Round(10*time.Millisecond))
	withHeader := web.send(t, 200, always)
	other := web.send(t, 200, http.Header{"X-Canary": {"sometimes"}})
	t.Logf("header rule: X-Canary: always %v, another value %v", withHeader, other)
	assertNear(t, withHeader, map[string]int{canary: 200}, 0)
	assertNear(t, other, map[string]int{stable: 200}, 0)

	// The metrics entry point serves Prometheus metrics of the route's services.
	metrics := web.get(t, tr.MetricsURL())
	for _, want := range []string{"traefik_entrypoint_requests_total", "traefik_router_requests_total", "traefik_service_requests_total"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("%s lacks %s", tr.MetricsURL(), want)
		}
	}
	if !strings.Contains(metrics, ns+"-"+canary) {
		t.Errorf("%s has no service series for %s/%s", tr.MetricsURL(), ns, canary)
	}
}

// total is the number of requests counted.
func total(counts map[string]int) int {
	n := 0
	for _, v := range counts {
		n += v
	}
	return n
}

func binDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv(binDirEnv); d != "" {
		return d
	}
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "bin")
}

func startTraefik(ctx context.Context, t *testing.T) *traefik.Traefik {
	t.Helper()
	dir := filepath.Join(framework.WorkDir(), "traefik")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "traefik.log"))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := traefik.Start(ctx, traefik.Options{
		BinDir:     binDir(t),
		Kubeconfig: framework.Cluster().KubeconfigPath(),
		WorkDir:    dir,
		Log:        logFile,
	})
	if err != nil {
		_ = logFile.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("end of Traefik's log (%s):\n%s", logFile.Name(), tr.LogTail())
		}
		if err := tr.Stop(); err != nil {
			t.Errorf("stop traefik: %v", err)
		}
		_ = logFile.Close()
	})
	t.Logf("traefik: web %s, metrics %s, api %s", tr.WebURL(), tr.MetricsURL(), tr.APIURL())
	return tr
}

// servicePort picks the Services' port: free on loopback, so the test can
// listen on it on every ClusterIP.
func servicePort(t *testing.T) int {
	t.Helper()
	ports, err := freeport.Loopback(1)
	if err != nil {
		t.Fatal(err)
	}
	return ports[0]
}

// createService creates a selector-less ClusterIP Service and returns its
// ClusterIP (loopback, from the harness's service range).
func createService(ctx context.Context, t *testing.T, c client.Client, ns, name string, port int) string {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP,
			Ports: []corev1.ServicePort{{
				Name: "http", Port: int32(port), TargetPort: intstr.FromInt32(int32(port)), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
	if err := c.Create(ctx, svc); err != nil {
		t.Fatalf("create service %s: %v", name, err)
	}
	if ip := net.ParseIP(svc.Spec.ClusterIP); ip == nil || !ip.IsLoopback() {
		t.Fatalf("service %s has ClusterIP %q, want a loopback address", name, svc.Spec.ClusterIP)
	}
	return svc.Spec.ClusterIP
}

// serve answers every request on addr with body.
func serve(t *testing.T, addr, body string) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s for %s: %v", addr, body, err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// applyRoute server-side applies the HTTPRoute "app" on Gateway "gw": one
// rule splitting between stable and canary by weight and, when headerRule,
// a rule sending requests with X-Canary: always to the canary.
func applyRoute(ctx context.Context, t *testing.T, c client.Client, ns string, port int, stableWeight, canaryWeight int64, headerRule bool) {
	t.Helper()
	backend := func(name string, weight int64) map[string]any {
		return map[string]any{"name": name, "port": int64(port), "weight": weight}
	}
	rules := []any{map[string]any{
		"backendRefs": []any{backend(stable, stableWeight), backend(canary, canaryWeight)},
	}}
	if headerRule {
		rules = append(rules, map[string]any{
			"matches": []any{map[string]any{
				"headers": []any{map[string]any{"type": "Exact", "name": "X-Canary", "value": "always"}},
			}},
			"backendRefs": []any{backend(canary, 1)},
		})
	}
	route := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"namespace": ns, "name": "app"},
		"spec": map[string]any{
			"parentRefs": []any{map[string]any{"name": "gw"}},
			"rules":      rules,
		},
	}}
	route.SetGroupVersionKind(traefik.GatewayGVK("HTTPRoute"))
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(route), client.FieldOwner("drover-e2e"), client.ForceOwnership); err != nil {
		t.Fatalf("apply HTTPRoute: %v", err)
	}
}

// webClient sends requests through Traefik's web entry point.
type webClient struct {
	ctx context.Context
	tr  *traefik.Traefik
	hc  *http.Client
}

func newWebClient(ctx context.Context, tr *traefik.Traefik) *webClient {
	return &webClient{ctx: ctx, tr: tr, hc: &http.Client{Timeout: 5 * time.Second}}
}

// request sends one GET through Traefik's web entry point and returns the
// answering backend.
func (c *webClient) request(header http.Header) (string, error) {
	req, err := http.NewRequestWithContext(c.ctx, http.MethodGet, c.tr.WebURL()+"/", nil)
	if err != nil {
		return "", err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %q", resp.Status, body)
	}
	return string(body), nil
}

// send sends n requests one after another and counts the answering backends;
// any failed request fails the test.
func (c *webClient) send(t *testing.T, n int, header http.Header) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		backend, err := c.request(header)
		if err != nil {
			t.Fatalf("request %d of %d: %v", i+1, n, err)
		}
		counts[backend]++
	}
	return counts
}

// waitFor sends batches of 20 requests until ok accepts a batch's counts
// (failed requests count as "error"), failing after propagation.
func (c *webClient) waitFor(t *testing.T, what string, header http.Header, ok func(counts map[string]int) bool) {
	t.Helper()
	var last map[string]int
	var lastErr error
	deadline := time.Now().Add(propagation)
	for time.Now().Before(deadline) {
		last = map[string]int{}
		lastErr = nil
		for i := 0; i < 20; i++ {
			backend, err := c.request(header)
			if err != nil {
				backend, lastErr = "error", err
			}
			last[backend]++
		}
		if ok(last) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("waiting for %s: still %v after %s (last error: %v)", what, last, propagation, lastErr)
}

func assertNear(t *testing.T, got, want map[string]int, tolerance int) {
	t.Helper()
	for k := range got {
		if _, ok := want[k]; !ok && got[k] > tolerance {
			t.Errorf("%d requests went to %q, want at most %d (counts %v)", got[k], k, tolerance, got)
		}
	}
	for k, w := range want {
		if d := got[k] - w; d > tolerance || d < -tolerance {
			t.Errorf("%q got %d requests, want %d±%d (counts %v)", k, got[k], w, tolerance, got)
		}
	}
}

func (c *webClient) get(t *testing.T, url string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(c.ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(body)
}
