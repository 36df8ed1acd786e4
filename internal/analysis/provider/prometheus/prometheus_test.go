package prometheus_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/analysis"
	"github.com/drover-dev/drover/internal/analysis/analysistest"
	"github.com/drover-dev/drover/internal/analysis/provider/prometheus"
)

// promServer answers /api/v1/query with data (the "data" object of
// Prometheus' answer) and records the requests.
type promServer struct {
	mu       sync.Mutex
	requests []*http.Request
	forms    []map[string]string
	data     string
	status   int
	body     string
	delay    time.Duration
	noPost   bool
}

func (p *promServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.noPost && r.Method == http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	_ = r.ParseForm()
	p.mu.Lock()
	p.requests = append(p.requests, r)
	p.forms = append(p.forms, map[string]string{"query": r.Form.Get("query"), "time": r.Form.Get("time"), "timeout": r.Form.Get("timeout")})
	p.mu.Unlock()
	if p.delay > 0 {
		time.Sleep(p.delay)
	}
	w.Header().Set("Content-Type", "application/json")
	if p.status != 0 {
		w.WriteHeader(p.status)
		_, _ = w.Write([]byte(p.body))
		return
	}
	_, _ = fmt.Fprintf(w, `{"status":"success","data":%s}`, p.data)
}

func (p *promServer) last(t *testing.T) (*http.Request, map[string]string) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.requests) == 0 {
		t.Fatal("the server received no request")
	}
	return p.requests[len(p.requests)-1], p.forms[len(p.forms)-1]
}

func vector(values ...string) string {
	var parts []string
	for i, v := range values {
		parts = append(parts, fmt.Sprintf(`{"metric":{"pod":"web-%d"},"value":[1772600767,%q]}`, i, v))
	}
	return `{"resultType":"vector","result":[` + strings.Join(parts, ",") + `]}`
}

func metric(address, query string) *rolloutsv1alpha1.Metric {
	return &rolloutsv1alpha1.Metric{Name: "success-rate", Provider: rolloutsv1alpha1.MetricProvider{
		Prometheus: &rolloutsv1alpha1.PrometheusMetric{Address: address, Query: query}}}
}

func measure(t *testing.T, m *rolloutsv1alpha1.Metric, secrets analysistest.Secrets, args ...rolloutsv1alpha1.Argument) (any, error) {
	t.Helper()
	return prometheus.Provider{}.Measure(context.Background(), m, analysistest.Env(m, secrets, args...))
}

func TestValues(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		want    any
		wantErr string
	}{
		{name: "one-element vector", data: vector("0.995"), want: 0.995},
		{name: "scalar", data: `{"resultType":"scalar","result":[1772600767,"0.62"]}`, want: 0.62},
		{name: "vector of several", data: vector("0.1", "0.2", "0.3"), want: []float64{0.1, 0.2, 0.3}},
		{name: "empty vector: no data, an error", data: `{"resultType":"vector","result":[]}`, wantErr: "query returned no data"},
		{name: "NaN: an error", data: vector("NaN"), wantErr: "query returned NaN"},
		{name: "NaN inside a vector", data: vector("1", "NaN"), wantErr: "query returned NaN"},
		{name: "+Inf is a number", data: vector("+Inf"), want: "+Inf"},
		{name: "range vector", data: `{"resultType":"matrix","result":[{"metric":{},"values":[[1772600767,"1"]]}]}`, wantErr: "range vector"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(&promServer{data: tt.data})
			defer srv.Close()
			got, err := measure(t, metric(srv.URL, "up"), nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want error %q, got %v, %v", tt.wantErr, got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s, ok := tt.want.(string); ok && s == "+Inf" {
				got = analysis.FormatValue(got)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || fmt.Sprintf("%T", got) != fmt.Sprintf("%T", tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestRequest(t *testing.T) {
	ps := &promServer{data: vector("1")}
	srv := httptest.NewServer(ps)
	defer srv.Close()
	m := metric(srv.URL+"/prom", `sum(rate(http_requests_total{namespace="{{rollout.namespace}}",service="{{args.service}}"}[{{interval}}]))`)
	m.Interval = &metav1.Duration{Duration: 2 * time.Minute}
	m.Provider.Prometheus.Timeout = &metav1.Duration{Duration: 3 * time.Second}
	m.Provider.Prometheus.Headers = []rolloutsv1alpha1.HTTPHeader{
		{Name: "X-Scope-OrgID", Value: ptr.To("tenant-{{rollout.namespace}}")},
		{Name: "X-From-Secret", ValueFrom: &rolloutsv1alpha1.SecretValue{SecretKeyRef: secretKey("hdr", "value")}},
	}
	if _, err := measure(t, m, analysistest.Secrets{"hdr": {"value": "from-secret"}},
		rolloutsv1alpha1.Argument{Name: "service", Value: ptr.To("web-canary")}); err != nil {
		t.Fatal(err)
	}
	r, form := ps.last(t)
	if r.URL.Path != "/prom/api/v1/query" {
		t.Errorf("path %s", r.URL.Path)
	}
	if want := `sum(rate(http_requests_total{namespace="team-a",service="web-canary"}[2m]))`; form["query"] != want {
		t.Errorf("query %q, want %q", form["query"], want)
	}
	if want := strconv.FormatInt(analysistest.Now().Unix(), 10); form["time"] != want {
		t.Errorf("time %q, want %q (the injected now)", form["time"], want)
	}
	if form["timeout"] != "3s" {
		t.Errorf("timeout %q", form["timeout"])
	}
	if r.Header.Get("X-Scope-OrgID") != "tenant-team-a" || r.Header.Get("X-From-Secret") != "from-secret" {
		t.Errorf("headers %v", r.Header)
	}
}

func TestGETFallback(t *testing.T) {
	ps := &promServer{data: vector("0.5"), noPost: true}
	srv := httptest.NewServer(ps)
	defer srv.Close()
	got, err := measure(t, metric(srv.URL, "up"), nil)
	if err != nil || got != 0.5 {
		t.Fatalf("got %v, %v", got, err)
	}
	r, form := ps.last(t)
	if r.Method != http.MethodGet || form["query"] != "up" {
		t.Errorf("%s %v", r.Method, form)
	}
}

func TestErrors(t *testing.T) {
	ps := &promServer{status: http.StatusBadRequest,
		body: `{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}`}
	srv := httptest.NewServer(ps)
	_, err := measure(t, metric(srv.URL, "sum("), nil)
	if err == nil || !strings.Contains(err.Error(), "parse error") {
		t.Errorf("bad query: %v", err)
	}
	srv.Close()
	if _, err := measure(t, metric(srv.URL, "up"), nil); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("server down: %v", err)
	}

	slow := httptest.NewServer(&promServer{data: vector("1"), delay: 600 * time.Millisecond})
	defer slow.Close()
	m := metric(slow.URL, "up")
	m.Provider.Prometheus.Timeout = &metav1.Duration{Duration: 100 * time.Millisecond}
	start := time.Now()
	if _, err := measure(t, m, nil); err == nil || !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "deadline") {
		t.Errorf("timeout: %v", err)
	}
	if time.Since(start) > 500*time.Millisecond {
		t.Errorf("the timeout was not applied: %v", time.Since(start))
	}

	if _, err := measure(t, metric("http://127.0.0.1:1", "{{args.nope}}"), nil); err == nil || !strings.Contains(err.Error(), "query:") {
		t.Errorf("unknown variable: %v", err)
	}
}

// A secret used in the query or a header never appears in a failing
// measurement's message.
func TestSecretNotInErrors(t *testing.T) {
	ps := &promServer{status: http.StatusInternalServerError, body: "internal error"}
	srv := httptest.NewServer(ps)
	m := metric(srv.URL, `up{token="{{args.token}}"}`)
	m.Provider.Prometheus.Headers = []rolloutsv1alpha1.HTTPHeader{{Name: "Authorization", Value: ptr.To("Bearer {{args.token}}")}}
	secrets := analysistest.Secrets{"creds": {"token": "tok-SUPERSECRET-42"}}
	arg := analysistest.SecretArg("token", "creds", "token")
	ev, err := analysis.NewEvaluator()
	if err != nil {
		t.Fatal(err)
	}
	take := func() rolloutsv1alpha1.Measurement {
		env := analysistest.Env(m, secrets, arg)
		return analysis.Take(context.Background(), prometheus.Provider{}, ev, analysis.Conditions{Success: "result > 0"}, env, env.Now, time.Now)
	}
	ms := take()
	r, form := ps.last(t)
	if r.Header.Get("Authorization") != "Bearer tok-SUPERSECRET-42" || !strings.Contains(form["query"], "tok-SUPERSECRET-42") {
		t.Fatalf("the secret did not reach the server: %v %v", r.Header, form)
	}
	srv.Close()
	for _, ms := range []rolloutsv1alpha1.Measurement{ms, take()} {
		if ms.Phase != rolloutsv1alpha1.AnalysisPhaseError || ms.Message == "" {
			t.Fatalf("want an error measurement, got %+v", ms)
		}
		if strings.Contains(ms.Message, "SUPERSECRET") || strings.Contains(ms.Value, "SUPERSECRET") {
			t.Errorf("secret leaked: %q", ms.Message)
		}
	}
}

func secretKey(name, key string) corev1.SecretKeySelector {
	return corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}
}

func TestAuthentication(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		_, _ = fmt.Fprintf(w, `{"status":"success","data":%s}`, vector("1"))
	}))
	defer srv.Close()
	secrets := analysistest.Secrets{"bearer": {"token": "bearer-tok"}, "basic": {"username": "alice", "password": "p@ss"}}

	m := metric(srv.URL, "up")
	m.Provider.Prometheus.Authentication = &rolloutsv1alpha1.HTTPAuthentication{Bearer: &rolloutsv1alpha1.SecretValue{SecretKeyRef: secretKey("bearer", "token")}}
	if _, err := measure(t, m, secrets); err != nil {
		t.Fatal(err)
	}
	if got.Header.Get("Authorization") != "Bearer bearer-tok" {
		t.Errorf("bearer: %q", got.Header.Get("Authorization"))
	}

	m.Provider.Prometheus.Authentication = &rolloutsv1alpha1.HTTPAuthentication{Basic: &rolloutsv1alpha1.BasicAuth{SecretName: "basic"}}
	if _, err := measure(t, m, secrets); err != nil {
		t.Fatal(err)
	}
	if u, p, ok := got.BasicAuth(); !ok || u != "alice" || p != "p@ss" {
		t.Errorf("basic: %q %q %v", u, p, ok)
	}

	m.Provider.Prometheus.Authentication = &rolloutsv1alpha1.HTTPAuthentication{Basic: &rolloutsv1alpha1.BasicAuth{SecretName: "missing"}}
	if _, err := measure(t, m, secrets); err == nil || !strings.Contains(err.Error(), "authentication.basic") {
		t.Errorf("missing secret: %v", err)
	}
}

func TestTLS(t *testing.T) {
	clientCert, clientKey, clientPool := selfSigned(t, "drover-analysis")
	var sawClientCert bool
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawClientCert = r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && r.TLS.PeerCertificates[0].Subject.CommonName == "drover-analysis"
		_, _ = fmt.Fprintf(w, `{"status":"success","data":%s}`, vector("1"))
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: clientPool, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))

	m := metric(srv.URL, "up")
	if _, err := measure(t, m, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("an unknown CA must be refused: %v", err)
	}
	m.Provider.Prometheus.Authentication = &rolloutsv1alpha1.HTTPAuthentication{TLS: &rolloutsv1alpha1.TLSConfig{InsecureSkipVerify: true}}
	if _, err := measure(t, m, nil); err != nil {
		t.Fatalf("insecureSkipVerify: %v", err)
	}
	m.Provider.Prometheus.Authentication = &rolloutsv1alpha1.HTTPAuthentication{TLS: &rolloutsv1alpha1.TLSConfig{CASecretName: "tls"}}
	if _, err := measure(t, m, analysistest.Secrets{"tls": {"ca.crt": ca}}); err != nil {
		t.Fatalf("CA from the secret: %v", err)
	}
	if sawClientCert {
		t.Error("no client certificate was configured")
	}
	if _, err := measure(t, m, analysistest.Secrets{"tls": {"ca.crt": ca, "tls.crt": clientCert, "tls.key": clientKey}}); err != nil {
		t.Fatalf("client certificate: %v", err)
	}
	if !sawClientCert {
		t.Error("the server saw no client certificate")
	}
	if _, err := measure(t, m, analysistest.Secrets{"tls": {"ca.crt": "junk"}}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("bad CA: %v", err)
	}
	_, err := measure(t, m, analysistest.Secrets{"tls": {"ca.crt": ca, "tls.crt": clientCert, "tls.key": "not a key"}})
	if err == nil || strings.Contains(err.Error(), "not a key") {
		t.Errorf("bad key: the error must not quote it: %v", err)
	}
}

// selfSigned returns a client certificate and key (PEM) and a pool
// trusting it.
func selfSigned(t *testing.T, cn string) (string, string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})), pool
}
