package analysisrun_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/controller/analysisrun"
	"github.com/drover-dev/drover/internal/testenv"
)

// These integration tests run the AnalysisRun controller against a real
// API server (envtest) and a local HTTP server standing in for
// Prometheus. Intervals are 1s on the real clock.

var k8s client.Client

func TestMain(m *testing.M) {
	os.Exit(testenv.MainWithManager(m, func(mgr ctrl.Manager) error {
		return analysisrun.SetupWithManager(mgr, analysisrun.Options{MaxConcurrentReconciles: 2})
	}, func(c client.Client) { k8s = c }))
}

// prometheus answers instant queries with value (or fails with status)
// and counts them.
type prometheus struct {
	mu       sync.Mutex
	value    string
	status   int
	body     string
	auth     []string
	queries  []string
	requests int
}

func (p *prometheus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	p.auth = append(p.auth, r.Header.Get("Authorization"))
	p.queries = append(p.queries, r.Form.Get("query"))
	w.Header().Set("Content-Type", "application/json")
	if p.status != 0 {
		w.WriteHeader(p.status)
		_, _ = w.Write([]byte(p.body))
		return
	}
	_, _ = fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[%d,%q]}]}}`, time.Now().Unix(), p.value)
}

func (p *prometheus) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}

func promMetric(name, address string) rolloutsv1alpha1.Metric {
	return rolloutsv1alpha1.Metric{
		Name:             name,
		Interval:         &metav1.Duration{Duration: time.Second},
		Count:            ptr.To[int32](3),
		SuccessCondition: "result >= 0.99",
		Provider: rolloutsv1alpha1.MetricProvider{Prometheus: &rolloutsv1alpha1.PrometheusMetric{
			Address: address, Query: `sum(rate(http_requests_total{namespace="{{rollout.namespace}}",code!~"5.."}[{{interval}}]))`}},
	}
}

func newRun(t *testing.T, ns string, mutate func(*rolloutsv1alpha1.AnalysisRun), metrics ...rolloutsv1alpha1.Metric) *rolloutsv1alpha1.AnalysisRun {
	t.Helper()
	run := &rolloutsv1alpha1.AnalysisRun{
		ObjectMeta: metav1.ObjectMeta{Name: "web-7f9c-step-1", Namespace: ns, Labels: map[string]string{
			rolloutsv1alpha1.LabelRollout: "web", rolloutsv1alpha1.LabelAnalysisRevision: "web-7f9c"}},
		Spec: rolloutsv1alpha1.AnalysisRunSpec{AnalysisTemplateSpec: rolloutsv1alpha1.AnalysisTemplateSpec{Metrics: metrics}},
	}
	if mutate != nil {
		mutate(run)
	}
	if err := k8s.Create(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	return run
}

func get(t *testing.T, run *rolloutsv1alpha1.AnalysisRun) {
	t.Helper()
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(run), run); err != nil {
		t.Fatal(err)
	}
}

// waitPhase waits for the run's phase; never, when given, is a phase the
// run must not pass through.
func waitPhase(t *testing.T, run *rolloutsv1alpha1.AnalysisRun, want rolloutsv1alpha1.AnalysisPhase, never ...rolloutsv1alpha1.AnalysisPhase) {
	t.Helper()
	testenv.Eventually(t, "run phase "+string(want), func() (bool, string) {
		get(t, run)
		for _, n := range never {
			if run.Status.Phase == n {
				t.Fatalf("the run became %s: %s", n, run.Status.Message)
			}
		}
		return run.Status.Phase == want, fmt.Sprintf("phase %q: %s", run.Status.Phase, run.Status.Message)
	})
}

func statusJSON(t *testing.T, run *rolloutsv1alpha1.AnalysisRun) string {
	t.Helper()
	b, err := json.Marshal(run.Status)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSuccessful(t *testing.T) {
	t.Parallel()
	prom := &prometheus{value: "0.995"}
	srv := httptest.NewServer(prom)
	defer srv.Close()
	ns := testenv.Namespace(t, k8s, "ar-")
	run := newRun(t, ns, nil, promMetric("success-rate", srv.URL))
	start := time.Now()
	waitPhase(t, run, rolloutsv1alpha1.AnalysisPhaseSuccessful, rolloutsv1alpha1.AnalysisPhaseFailed, rolloutsv1alpha1.AnalysisPhaseError)
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("3 measurements 1s apart took %v", took)
	}
	r := run.Status.MetricResults[0]
	if r.Phase != rolloutsv1alpha1.AnalysisPhaseSuccessful || r.Count != 3 || r.Successful != 3 || len(r.Measurements) != 3 {
		t.Fatalf("metric result %+v", r)
	}
	for _, m := range r.Measurements {
		if m.Phase != rolloutsv1alpha1.AnalysisPhaseSuccessful || m.Value != "0.995" || m.FinishedAt == nil {
			t.Errorf("measurement %+v", m)
		}
	}
	if run.Status.StartedAt == nil || run.Status.Message != "1 of 1 metrics successful" {
		t.Errorf("status %s", statusJSON(t, run))
	}
	for _, c := range run.Status.Conditions {
		if c.Type == rolloutsv1alpha1.ConditionReady && c.Status != metav1.ConditionTrue {
			t.Errorf("Ready %+v", c)
		}
	}
	if q := prom.queries[0]; q != fmt.Sprintf(`sum(rate(http_requests_total{namespace=%q,code!~"5.."}[1s]))`, ns) {
		t.Errorf("query %s", q)
	}
	// A completed run is never measured again.
	n := prom.count()
	time.Sleep(2500 * time.Millisecond)
	if prom.count() != n || n != 3 {
		t.Errorf("%d queries after completion, then %d", n, prom.count())
	}
	waitEvent(t, ns, "AnalysisRunSuccessful")
}

func TestFailed(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(&prometheus{value: "0.62"})
	defer srv.Close()
	ns := testenv.Namespace(t, k8s, "ar-")
	run := newRun(t, ns, nil, promMetric("success-rate", srv.URL))
	waitPhase(t, run, rolloutsv1alpha1.AnalysisPhaseFailed, rolloutsv1alpha1.AnalysisPhaseSuccessful)
	if want := "metric success-rate: 0.62 (failed: result >= 0.99)"; run.Status.Message != want {
		t.Errorf("message %q, want %q", run.Status.Message, want)
	}
	if r := run.Status.MetricResults[0]; r.Failed != 1 || r.Count != 1 {
		t.Errorf("the first failure fails the metric (failureLimit 0): %+v", r)
	}
	waitEvent(t, ns, "AnalysisRunFailed")
}

func TestProviderDownIsErrorNeverSuccess(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(&prometheus{value: "1"})
	srv.Close()
	ns := testenv.Namespace(t, k8s, "ar-")
	m := promMetric("success-rate", srv.URL)
	m.ConsecutiveErrorLimit = ptr.To[int32](2)
	run := newRun(t, ns, nil, m)
	waitPhase(t, run, rolloutsv1alpha1.AnalysisPhaseError, rolloutsv1alpha1.AnalysisPhaseSuccessful)
	r := run.Status.MetricResults[0]
	if r.Error != 3 || r.ConsecutiveError != 3 || r.Successful != 0 || r.Count != 0 {
		t.Errorf("want Error after consecutiveErrorLimit+1 = 3 errors: %+v", r)
	}
	if !strings.Contains(run.Status.Message, "metric success-rate: error:") || !strings.Contains(run.Status.Message, "connection refused") {
		t.Errorf("message %q", run.Status.Message)
	}
}

func TestTerminate(t *testing.T) {
	t.Parallel()
	prom := &prometheus{value: "0.999"}
	srv := httptest.NewServer(prom)
	defer srv.Close()
	ns := testenv.Namespace(t, k8s, "ar-")
	m := promMetric("background", srv.URL)
	m.Count = nil // until the run ends
	run := newRun(t, ns, nil, m)
	testenv.Eventually(t, "two measurements", func() (bool, string) {
		get(t, run)
		return len(run.Status.MetricResults) == 1 && run.Status.MetricResults[0].Count >= 2, statusJSON(t, run)
	})
	if run.Status.Phase != rolloutsv1alpha1.AnalysisPhaseRunning {
		t.Fatalf("an unlimited metric keeps the run running: %s", run.Status.Phase)
	}
	testenv.Update(t, k8s, run, func(r *rolloutsv1alpha1.AnalysisRun) { r.Spec.Terminate = true })
	waitPhase(t, run, rolloutsv1alpha1.AnalysisPhaseSuccessful)
	n := prom.count()
	time.Sleep(2 * time.Second)
	if prom.count() != n {
		t.Errorf("a terminated run was measured again")
	}
}

func TestJob(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t, k8s, "ar-")
	m := rolloutsv1alpha1.Metric{Name: "smoke", Provider: rolloutsv1alpha1.MetricProvider{Job: &rolloutsv1alpha1.JobMetric{
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "smoke", Image: "curlimages/curl", Args: []string{"http://web-canary/health"}}}}}},
	}}}
	run := newRun(t, ns, nil, m)
	var job batchv1.Job
	testenv.Eventually(t, "the measurement's Job", func() (bool, string) {
		err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: run.Name + "-smoke-1"}, &job)
		return err == nil, fmt.Sprint(err)
	})
	get(t, run)
	if !metav1.IsControlledBy(&job, run) {
		t.Errorf("the Job is not owned by the run: %+v", job.OwnerReferences)
	}
	testenv.Eventually(t, "a measurement in progress", func() (bool, string) {
		get(t, run)
		rs := run.Status.MetricResults
		return len(rs) == 1 && len(rs[0].Measurements) == 1 && rs[0].Measurements[0].Phase == rolloutsv1alpha1.AnalysisPhaseRunning &&
			run.Status.Phase == rolloutsv1alpha1.AnalysisPhaseRunning, statusJSON(t, run)
	})
	// envtest runs no Job controller: the test reports the Job succeeded.
	now := metav1.Now()
	job.Status.StartTime = &now
	job.Status.CompletionTime = &now
	job.Status.Succeeded = 1
	job.Status.Conditions = []batchv1.JobCondition{
		{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	if err := k8s.Status().Update(context.Background(), &job); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, run, rolloutsv1alpha1.AnalysisPhaseSuccessful)
	ms := run.Status.MetricResults[0].Measurements
	if len(ms) != 1 || ms[0].Value != "1" || ms[0].Phase != rolloutsv1alpha1.AnalysisPhaseSuccessful || ms[0].FinishedAt == nil {
		t.Errorf("measurements %+v", ms)
	}
}

func TestSecretArgument(t *testing.T) {
	t.Parallel()
	const token = "tok-VERY-SECRET-9f8e7d"
	prom := &prometheus{value: "0.999"}
	srv := httptest.NewServer(prom)
	defer srv.Close()
	ns := testenv.Namespace(t, k8s, "ar-")
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "prom-creds", Namespace: ns}, StringData: map[string]string{"token": token}}
	if err := k8s.Create(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	withToken := func(r *rolloutsv1alpha1.AnalysisRun) {
		r.Spec.Args = []rolloutsv1alpha1.Argument{{Name: "token", ValueFrom: &rolloutsv1alpha1.ArgumentValueFrom{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "prom-creds"}, Key: "token"}}}}
	}
	m := promMetric("success-rate", srv.URL)
	m.Count = ptr.To[int32](1)
	m.Provider.Prometheus.Headers = []rolloutsv1alpha1.HTTPHeader{{Name: "Authorization", Value: ptr.To("Bearer {{args.token}}")}}
	run := newRun(t, ns, withToken, m)
	waitPhase(t, run, rolloutsv1alpha1.AnalysisPhaseSuccessful)
	prom.mu.Lock()
	auth := prom.auth[0]
	prom.mu.Unlock()
	if auth != "Bearer "+token {
		t.Errorf("the server saw Authorization %q", auth)
	}
	if strings.Contains(statusJSON(t, run), token) {
		t.Errorf("the secret is in the status: %s", statusJSON(t, run))
	}

	// A failing query whose error quotes the secret: not in status or events.
	bad := &prometheus{status: http.StatusBadRequest, body: `{"status":"error","errorType":"bad_data","error":"invalid token ` + token + `"}`}
	badSrv := httptest.NewServer(bad)
	defer badSrv.Close()
	m2 := promMetric("leaky", badSrv.URL)
	m2.ConsecutiveErrorLimit = ptr.To[int32](0)
	m2.Provider.Prometheus.Query = `up{token="{{args.token}}"}`
	run2 := newRun(t, ns, func(r *rolloutsv1alpha1.AnalysisRun) { withToken(r); r.Name = "leaky" }, m2)
	waitPhase(t, run2, rolloutsv1alpha1.AnalysisPhaseError)
	if s := statusJSON(t, run2); strings.Contains(s, token) || !strings.Contains(s, "invalid token ***") {
		t.Errorf("status %s", s)
	}
	waitEvent(t, ns, "AnalysisRunError")
	var events eventsv1.EventList
	if err := k8s.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if strings.Contains(e.Note, token) {
			t.Errorf("event %s leaks the secret: %s", e.Reason, e.Note)
		}
	}
}

func TestMissingSecretIsAnError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(&prometheus{value: "1"})
	defer srv.Close()
	ns := testenv.Namespace(t, k8s, "ar-")
	m := promMetric("success-rate", srv.URL)
	m.ConsecutiveErrorLimit = ptr.To[int32](0)
	m.Provider.Prometheus.Authentication = &rolloutsv1alpha1.HTTPAuthentication{Basic: &rolloutsv1alpha1.BasicAuth{SecretName: "nope"}}
	run := newRun(t, ns, nil, m)
	waitPhase(t, run, rolloutsv1alpha1.AnalysisPhaseError, rolloutsv1alpha1.AnalysisPhaseSuccessful)
	if !strings.Contains(run.Status.Message, "reading secret nope: not found") {
		t.Errorf("message %q", run.Status.Message)
	}
}

func waitEvent(t *testing.T, ns, reason string) {
	t.Helper()
	testenv.Eventually(t, "event "+reason, func() (bool, string) {
		var events eventsv1.EventList
		if err := k8s.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range events.Items {
			if e.Reason == reason {
				return true, ""
			}
			seen = append(seen, e.Reason)
		}
		return false, fmt.Sprint(seen)
	})
}

// Two metrics measured side by side; a failing dry-run metric is reported
// but does not fail the run.
func TestDryRun(t *testing.T) {
	t.Parallel()
	good := httptest.NewServer(&prometheus{value: "0.999"})
	defer good.Close()
	bad := httptest.NewServer(&prometheus{value: "0.5"})
	defer bad.Close()
	ns := testenv.Namespace(t, k8s, "ar-")
	a, b := promMetric("success-rate", good.URL), promMetric("experimental", bad.URL)
	a.Count, b.Count = ptr.To[int32](2), ptr.To[int32](2)
	run := newRun(t, ns, func(r *rolloutsv1alpha1.AnalysisRun) {
		r.Spec.DryRun = []rolloutsv1alpha1.MetricSelector{{MetricName: "experimental"}}
		r.Spec.MeasurementRetention = []rolloutsv1alpha1.MeasurementRetention{{MetricName: "*", Limit: 1}}
	}, a, b)
	waitPhase(t, run, rolloutsv1alpha1.AnalysisPhaseSuccessful, rolloutsv1alpha1.AnalysisPhaseFailed)
	if want := "1 of 2 metrics successful (dry-run metric experimental: failed)"; run.Status.Message != want {
		t.Errorf("message %q, want %q", run.Status.Message, want)
	}
	for _, r := range run.Status.MetricResults {
		if len(r.Measurements) != 1 {
			t.Errorf("%s kept %d measurements, retention 1", r.Name, len(r.Measurements))
		}
		if r.Name == "experimental" && (!r.DryRun || r.Phase != rolloutsv1alpha1.AnalysisPhaseFailed) {
			t.Errorf("dry-run metric %+v", r)
		}
	}
}
