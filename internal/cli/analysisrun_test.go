package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

// failedRun is a step analysis of Rollout web whose success-rate metric
// failed on its second measurement while latency (dry run) had no
// measurement yet.
func failedRun() *rolloutsv1alpha1.AnalysisRun {
	at := func(d time.Duration) metav1.Time { return metav1.NewTime(testNow.Add(d)) }
	return &rolloutsv1alpha1.AnalysisRun{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-web-2-abc-step-1", Namespace: "default", CreationTimestamp: at(-5 * time.Minute),
			Labels: map[string]string{
				rolloutsv1alpha1.LabelRollout: "web", rolloutsv1alpha1.LabelAnalysisKind: "Step", rolloutsv1alpha1.LabelAnalysisRevision: "web-2",
			},
		},
		Spec: rolloutsv1alpha1.AnalysisRunSpec{AnalysisTemplateSpec: rolloutsv1alpha1.AnalysisTemplateSpec{
			Metrics: []rolloutsv1alpha1.Metric{
				{
					Name:     "success-rate",
					Provider: rolloutsv1alpha1.MetricProvider{Prometheus: &rolloutsv1alpha1.PrometheusMetric{Address: "http://prometheus:9090", Query: "q"}},
					Interval: &metav1.Duration{Duration: 30 * time.Second}, Count: ptr.To[int32](3), FailureLimit: ptr.To[int32](0),
					SuccessCondition: "result >= 0.99",
				},
				{
					Name:           "latency",
					Provider:       rolloutsv1alpha1.MetricProvider{Builtin: &rolloutsv1alpha1.BuiltinMetric{Name: "request-duration-p99", Address: "http://prometheus:9090"}},
					ThresholdRange: &rolloutsv1alpha1.ThresholdRange{Max: ptr.To("0.5")},
				},
			},
			DryRun: []rolloutsv1alpha1.MetricSelector{{MetricName: "latency"}},
		}},
		Status: rolloutsv1alpha1.AnalysisRunStatus{
			Phase: rolloutsv1alpha1.AnalysisPhaseFailed, Message: "metric success-rate: 0.91 failed result >= 0.99",
			StartedAt: ptr.To(at(-5 * time.Minute)),
			MetricResults: []rolloutsv1alpha1.MetricResult{{
				Name: "success-rate", Phase: rolloutsv1alpha1.AnalysisPhaseFailed, Message: "failure limit 0 exceeded",
				Count: 2, Successful: 1, Failed: 1,
				Measurements: []rolloutsv1alpha1.Measurement{
					{Phase: rolloutsv1alpha1.AnalysisPhaseSuccessful, Value: "0.995", StartedAt: at(-5 * time.Minute)},
					{Phase: rolloutsv1alpha1.AnalysisPhaseFailed, Value: "0.91", Message: "below\nthreshold", StartedAt: at(-270 * time.Second)},
				},
			}},
		},
	}
}

func TestRenderAnalysisRun(t *testing.T) {
	var b bytes.Buffer
	if err := RenderAnalysisRun(&b, testNow, failedRun()); err != nil {
		t.Fatal(err)
	}
	out := normalise(b.String())
	for _, want := range []string{
		"AnalysisRun: default/web-web-2-abc-step-1",
		"Rollout: web (Step analysis, revision web-2)",
		"Phase: Failed",
		"Message: metric success-rate: 0.91 failed result >= 0.99",
		"Started: 2026-05-01T11:55:00Z (5m ago)",
		"Metrics:\nsuccess-rate: Failed\n" +
			"Message: failure limit 0 exceeded\n" +
			"Provider: prometheus http://prometheus:9090\n" +
			"Condition: success when result >= 0.99\n" +
			"Limits: every 30s, count 3, failure limit 0\n" +
			"Counts: 2 measured: 1 successful, 1 failed, 0 inconclusive, 0 error\n" +
			"Measurements:\nTIME PHASE VALUE MESSAGE\n" +
			"11:55:00 Successful 0.995 -\n" +
			"11:55:30 Failed 0.91 below threshold\n",
		"latency: Pending (dry run: does not fail the run)\n" +
			"Provider: builtin request-duration-p99 (http, http://prometheus:9090)\n" +
			"Condition: success within [-∞, 0.5]\n" +
			"Counts: 0 measured: 0 successful, 0 failed, 0 inconclusive, 0 error\n" +
			"Measurements: (none yet)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, b.String())
		}
	}
	if strings.Contains(out, "Terminated") {
		t.Errorf("not terminated:\n%s", b.String())
	}
	if err := RenderAnalysisRun(&b, testNow, nil); err == nil {
		t.Error("expected an error for no run")
	}
}

func TestRenderAnalysisRunList(t *testing.T) {
	running := failedRun()
	running.Name, running.Status = "web-web-2-abc-background", rolloutsv1alpha1.AnalysisRunStatus{}
	running.CreationTimestamp = metav1.NewTime(testNow.Add(-time.Minute))
	var b bytes.Buffer
	if err := RenderAnalysisRunList(&b, testNow, []rolloutsv1alpha1.AnalysisRun{*failedRun(), *running}); err != nil {
		t.Fatal(err)
	}
	want := "NAME PHASE AGE MESSAGE\n" +
		"web-web-2-abc-background Pending 60s -\n" +
		"web-web-2-abc-step-1 Failed 5m metric success-rate: 0.91 failed result >= 0.99\n"
	if got := normalise(b.String()); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	b.Reset()
	if err := RenderAnalysisRunList(&b, testNow, nil); err != nil || b.String() != "No AnalysisRuns found.\n" {
		t.Errorf("empty list: %q, %v", b.String(), err)
	}
}

func TestGetAnalysisRunCommand(t *testing.T) {
	f := testFactory{c: fakeClient(t, failedRun()), ns: "default"}
	for _, args := range [][]string{{"get", "analysisrun"}, {"get", "ar"}, {"get", "analysisruns"}} {
		out, _, err := runCLI(t, f, "drover", args...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(normalise(out), "NAME PHASE AGE MESSAGE\nweb-web-2-abc-step-1 Failed ") {
			t.Errorf("%v: %s", args, out)
		}
	}
	for _, args := range [][]string{{"get", "analysisrun", "web-web-2-abc-step-1"}, {"get", "ar/web-web-2-abc-step-1"}, {"get", "ar", "web-web-2-abc-step-1"}} {
		out, _, err := runCLI(t, f, "drover", args...)
		if err != nil {
			t.Fatal(err)
		}
		if n := normalise(out); !strings.Contains(n, "AnalysisRun: default/web-web-2-abc-step-1") || !strings.Contains(n, "11:55:30 Failed 0.91 below threshold") {
			t.Errorf("%v: %s", args, out)
		}
	}
	if _, _, err := runCLI(t, f, "drover", "get", "ar", "nope"); err == nil || err.Error() != `analysisrun "nope" not found in namespace "default"` {
		t.Errorf("missing run: %v", err)
	}
	if _, _, err := runCLI(t, f, "drover", "get", "job", "x"); err == nil || !strings.Contains(err.Error(), "analysisrun (ar)") {
		t.Errorf("unsupported type: %v", err)
	}
}
