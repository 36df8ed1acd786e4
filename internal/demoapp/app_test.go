package demoapp

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestErrorRateFailsExactly(t *testing.T) {
	for _, tc := range []struct {
		rate  string
		n     uint64
		fails int
	}{
		{"0.2", 1000, 200},
		{"0.2", 7, 1},
		{"0.29", 1000, 290},
		{"0.1", 30, 3},
		{"0.7", 10, 7},
		{"0.333333", 1_000_000, 333_333},
		{"1", 50, 50},
		{"1.5", 50, 50},
		{"0", 50, 0},
		{"-1", 50, 0},
		{"nonsense", 50, 0},
		{"", 50, 0},
	} {
		r := parseErrorRate(tc.rate)
		got := 0
		for n := uint64(1); n <= tc.n; n++ {
			if r.fails(n) {
				got++
			}
		}
		if got != tc.fails {
			t.Errorf("ERROR_RATE=%q: %d of %d requests failed, want %d", tc.rate, got, tc.n, tc.fails)
		}
	}
}

func TestErrorRateAnyWindow(t *testing.T) {
	// Whatever came before, 1,000 consecutive requests at 0.2 hold exactly
	// 200 failures: an e2e test need not know the pod's earlier requests.
	r := parseErrorRate("0.2")
	for start := uint64(1); start <= 13; start++ {
		got := 0
		for n := start; n < start+1000; n++ {
			if r.fails(n) {
				got++
			}
		}
		if got != 200 {
			t.Errorf("requests %d..%d: %d failures, want 200", start, start+999, got)
		}
	}
}

func TestImageVersion(t *testing.T) {
	for image, want := range map[string]string{
		"example.com/web:v2":             "v2",
		"web:1.27":                       "1.27",
		"nginx":                          "nginx",
		"registry:5000/team/web":         "registry:5000/team/web",
		"registry:5000/team/web:v3":      "v3",
		"web:v4@sha256:0123456789abcdef": "v4",
		"web@sha256:0123456789abcdef":    "web@sha256:0123456789abcdef",
		"":                               "",
		"localhost:5000/a/b/c:2024-01-01_release": "2024-01-01_release",
	} {
		if got := imageVersion(image); got != want {
			t.Errorf("imageVersion(%q) = %q, want %q", image, got, want)
		}
	}
}

func demoPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-0", UID: "uid-1", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name:  "app",
			Image: "example.com/web:v1",
			Env:   []corev1.EnvVar{{Name: EnvErrorRate, Value: "0.5"}},
		}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.1.0.5"},
	}
}

func TestAppConfigPrefersRunningImage(t *testing.T) {
	p := demoPod()
	if got := appConfigOf(p); got.version != "v1" || got.image != "example.com/web:v1" || got.errors != ppm/2 {
		t.Fatalf("before status: %+v", got)
	}
	// The spec changed in place; the container still runs v1 until restarted.
	p.Spec.Containers[0].Image = "example.com/web:v2"
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Image: "example.com/web:v1"}}
	if got := appConfigOf(p).version; got != "v1" {
		t.Errorf("before restart: version %q, want v1", got)
	}
	p.Status.ContainerStatuses[0].Image = "example.com/web:v2"
	if got := appConfigOf(p).version; got != "v2" {
		t.Errorf("after restart: version %q, want v2", got)
	}
	p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, corev1.EnvVar{Name: EnvLatencyMS, Value: "250"})
	if got := appConfigOf(p).latency; got != 250*time.Millisecond {
		t.Errorf("latency %s, want 250ms", got)
	}
}

func newTestApp(t *testing.T, pod func() *corev1.Pod, clk *clocktesting.FakeClock) *app {
	t.Helper()
	m, err := newPodMetrics()
	if err != nil {
		t.Fatal(err)
	}
	return &app{pod: pod, metrics: m, clock: clk}
}

func TestAppAnswersAndCounts(t *testing.T) {
	var mu sync.Mutex
	pod := demoPod()
	current := func() *corev1.Pod { mu.Lock(); defer mu.Unlock(); return pod }
	a := newTestApp(t, current, clocktesting.NewFakeClock(time.Now()))

	codes := map[int]int{}
	for range 10 {
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/anything", nil))
		codes[rec.Code]++
		var body Response
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("body %q: %v", rec.Body.String(), err)
		}
		if body != (Response{Pod: "web-0", Version: "v1", Image: "example.com/web:v1"}) {
			t.Errorf("body %+v", body)
		}
		if rec.Header().Get(HeaderPod) != "web-0" || rec.Header().Get(HeaderVersion) != "v1" {
			t.Errorf("headers %v", rec.Header())
		}
	}
	if codes[200] != 5 || codes[500] != 5 {
		t.Errorf("codes %v, want 5 of each at ERROR_RATE=0.5", codes)
	}

	// The pod changes in place: the next answer shows it.
	mu.Lock()
	next := pod.DeepCopy()
	next.Spec.Containers[0].Image = "example.com/web:v2"
	next.Spec.Containers[0].Env = nil
	pod = next
	mu.Unlock()
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader("x")))
	if rec.Code != 200 || rec.Header().Get(HeaderVersion) != "v2" {
		t.Errorf("after the change: %d %v", rec.Code, rec.Header())
	}

	for range 2 { // scraping is not counted
		families := scrape(t, a)
		if got := counter(families, map[string]string{"code": "200", "method": "GET", "version": "v1"}); got != 5 {
			t.Errorf("GET 200 v1: %v, want 5", got)
		}
		if got := counter(families, map[string]string{"code": "500", "method": "GET", "version": "v1"}); got != 5 {
			t.Errorf("GET 500 v1: %v, want 5", got)
		}
		if got := counter(families, map[string]string{"code": "200", "method": "POST", "version": "v2"}); got != 1 {
			t.Errorf("POST 200 v2: %v, want 1", got)
		}
		var observed uint64
		for _, m := range families["http_request_duration_seconds"].GetMetric() {
			observed += m.GetHistogram().GetSampleCount()
		}
		if observed != 11 {
			t.Errorf("histogram holds %d observations, want 11", observed)
		}
	}
}

func TestAppLatency(t *testing.T) {
	pod := demoPod()
	pod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: EnvLatencyMS, Value: "1500"}}
	clk := clocktesting.NewFakeClock(time.Now())
	a := newTestApp(t, func() *corev1.Pod { return pod }, clk)

	done := make(chan *httptest.ResponseRecorder)
	go func() {
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		done <- rec
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !clk.HasWaiters() {
		if time.Now().After(deadline) {
			t.Fatal("the request never waited on the clock")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case <-done:
		t.Fatal("answered before LATENCY_MS passed")
	default:
	}
	clk.Step(1500 * time.Millisecond)
	rec := <-done
	if rec.Code != 200 {
		t.Fatalf("code %d", rec.Code)
	}
	families := scrape(t, a)
	h := families["http_request_duration_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 1 || h.GetSampleSum() != 1.5 {
		t.Errorf("histogram count %d sum %v, want 1 and 1.5", h.GetSampleCount(), h.GetSampleSum())
	}
}

func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body.String())
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

func counter(families map[string]*dto.MetricFamily, want map[string]string) float64 {
	total := 0.0
next:
	for _, m := range families["http_requests_total"].GetMetric() {
		for _, lp := range m.GetLabel() {
			if v, ok := want[lp.GetName()]; ok && v != lp.GetValue() {
				continue next
			}
		}
		total += m.GetCounter().GetValue()
	}
	return total
}
