package rollout_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/analysis/provider/builtin"
	"github.com/drover-dev/drover/internal/demoapp"
	"github.com/drover-dev/drover/internal/promserver"
	"github.com/drover-dev/drover/internal/revision"
	"github.com/drover-dev/drover/internal/target"
	"github.com/drover-dev/drover/test/e2e/framework"
)

// The stories of issue 5 on real data: a real Prometheus (Debian's, see
// internal/promserver) scrapes, every second, each demo pod's /metrics
// (listed by the demoapp's http_sd endpoint with the pod's labels, so
// its series carry controller_revision_hash) and Traefik's metrics. The
// Rollout's analysis uses Drover's builtin request-success-rate metric
// twice: from the application's own http_requests_total (source http)
// and from the gateway's traefik_service_requests_total for the canary
// Service (source gatewayapi). Nothing is stubbed: the numbers are the
// requests the test's clients send through Traefik.

// promInterval is the interval of the stories' metrics.
const promInterval = 5 * time.Second

// startPrometheus runs a Prometheus for the story until the test ends,
// scraping its pods and its Traefik.
func (e *env) startPrometheus() *promserver.Server {
	t := e.t
	t.Helper()
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := os.Getenv("DROVER_PROMETHEUS")
	if bin == "" {
		bin = filepath.Join(root, "bin", "prometheus")
	}
	dir := filepath.Join(framework.WorkDir(), "prometheus-"+e.ns)
	logFile, err := os.Create(filepath.Join(framework.WorkDir(), "prometheus-"+e.ns+".log"))
	if err != nil {
		t.Fatal(err)
	}
	metrics := strings.TrimSuffix(strings.TrimPrefix(e.tr.MetricsURL(), "http://"), "/metrics")
	prom, err := promserver.Start(e.ctx, promserver.Options{
		Binary: bin, WorkDir: dir, Log: logFile,
		SD:     []string{"http://" + e.demo.SDAddr() + "/sd"},
		Static: map[string]string{"traefik": metrics},
	})
	if err != nil {
		_ = logFile.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := prom.Stop(); err != nil {
			t.Errorf("stop prometheus: %v", err)
		}
		_ = logFile.Close()
		_ = os.RemoveAll(dir)
	})
	e.logf("Prometheus on %s scraping the pods (http_sd %s) and Traefik (%s)", prom.URL(), e.demo.SDAddr(), metrics)
	return prom
}

// successRates are the builtin request-success-rate metrics of the
// application (http) and of the gateway (gatewayapi), every promInterval,
// count times, failing the run at failureLimit+1 failed measurements.
func successRates(prom string, count, failureLimit int32) []rolloutsv1alpha1.Metric {
	var out []rolloutsv1alpha1.Metric
	for _, source := range []string{builtin.SourceHTTP, builtin.SourceGatewayAPI} {
		out = append(out, rolloutsv1alpha1.Metric{
			Name:         source + "-success-rate",
			Interval:     &metav1.Duration{Duration: promInterval},
			Count:        ptr.To(count),
			FailureLimit: ptr.To(failureLimit),
			Provider: rolloutsv1alpha1.MetricProvider{Builtin: &rolloutsv1alpha1.BuiltinMetric{
				Name: builtin.SuccessRate, Source: source, Address: prom,
			}},
		})
	}
	return out
}

// twoJudgedSteps: 20% of the traffic, judged; 60%, judged; promotion.
func twoJudgedSteps(template string) []rolloutsv1alpha1.CanaryStep {
	return []rolloutsv1alpha1.CanaryStep{setWeight(20), analysisStep(template), setWeight(60), analysisStep(template)}
}

// measuredValues are the values of a metric's successful measurements.
func measuredValues(m rolloutsv1alpha1.MetricResult) []float64 {
	var out []float64
	for _, ms := range m.Measurements {
		if v, err := strconv.ParseFloat(ms.Value, 64); err == nil && ms.Phase == rolloutsv1alpha1.AnalysisPhaseSuccessful {
			out = append(out, v)
		}
	}
	return out
}

// TestPrometheusHealthyVersionPromoted (story 1): a healthy v2 goes
// through 20% and 60%, each judged by two success rates measured twice
// in Prometheus, and is promoted with no user action. Both runs are
// Successful on real measurements (the application and the gateway saw
// 100% of the canary's requests succeed), every pod moved in place and
// no request failed.
func TestPrometheusHealthyVersionPromoted(t *testing.T) {
	t.Parallel()
	s := newStory(t, "prom-healthy", kindCloneSet, 5, twoJudgedSteps("success-rate"))
	prom := s.startPrometheus()
	s.createTemplate("success-rate", successRates(prom.URL(), 2, 0)...)
	uids := s.podUIDs()
	bg := s.startBackground()

	start := time.Now()
	canaryRev := s.setImage(imageV2)
	s.healthyOn(canaryRev, imageV2)
	s.logf("promoted by analysis alone %s after the new revision", time.Since(start).Round(100*time.Millisecond))
	s.assertNoErrors(bg, "the release")
	s.assertSamePods(uids, "after the release")
	for _, reason := range []string{"StepSkipped", "PromotedFull", "AnalysisFailed", "AnalysisError"} {
		if n := s.countEvents(reason); n != 0 {
			t.Errorf("%d %s event(s): the release was not promoted by analysis alone", n, reason)
		}
	}

	runs := s.analysisRuns()
	s.logf("analysis runs:%s", describeRuns(runs))
	if len(runs) != 2 {
		t.Fatalf("%d analysis runs, want one for each analysis step", len(runs))
	}
	for _, run := range runs {
		if run.Status.Phase != rolloutsv1alpha1.AnalysisPhaseSuccessful || len(run.Status.MetricResults) != 2 {
			t.Errorf("run %s: phase %s with %d metric results, want Successful with 2", run.Name, run.Status.Phase, len(run.Status.MetricResults))
			continue
		}
		for _, m := range run.Status.MetricResults {
			values := measuredValues(m)
			if m.Phase != rolloutsv1alpha1.AnalysisPhaseSuccessful || m.Successful < 1 || len(values) == 0 {
				t.Errorf("run %s metric %s: %s with %d successful measurements (%v), want Successful on real data", run.Name, m.Name, m.Phase, m.Successful, values)
			}
			for _, v := range values {
				if v != 1 {
					t.Errorf("run %s metric %s measured %v, want 1 (no request of the canary failed)", run.Name, m.Name, v)
				}
			}
		}
	}
	s.expectAll(s.web, 200, "v2", "promoted")
}

// TestPrometheusFailingVersionRolledBack (story 2): v2 answers 20% of its
// requests with 500. At 20% of the traffic both success rates measure
// about 0.8 in Prometheus; with failureLimit 1 the run fails at its
// second failed measurement and the release is aborted within
// interval × (failureLimit+1) + one interval of the run's start. Traffic
// goes back to 100% stable (weight 0 verified, every request answered by
// v1) and no pod that stayed stable was ever restarted or replaced.
func TestPrometheusFailingVersionRolledBack(t *testing.T) {
	t.Parallel()
	const failureLimit = 1
	s := newStory(t, "prom-failing", kindCloneSet, 5, twoJudgedSteps("success-rate"))
	prom := s.startPrometheus()
	s.createTemplate("success-rate", successRates(prom.URL(), 10, failureLimit)...)
	stableRev := s.rollout().Status.StableRevision
	before, err := s.pods()
	if err != nil {
		t.Fatal(err)
	}
	history := s.recordRollout()
	var mu sync.Mutex
	touched := map[string]bool{} // pods seen off the stable revision
	onCanary := framework.RecordPods(t, s.ns, nil, func(ev framework.PodEvent) {
		if ev.Pod.Labels["app"] == s.name && ev.Pod.Labels[revision.LabelRevisionHash] != stableRev {
			mu.Lock()
			touched[ev.Pod.Name] = true
			mu.Unlock()
		}
	})
	bg := s.startBackground()

	canaryRev := s.setTemplate("image v2 with 20% errors", func(t *corev1.PodTemplateSpec) {
		t.Spec.Containers[0].Image = imageV2
		t.Spec.Containers[0].Env = []corev1.EnvVar{{Name: demoapp.EnvErrorRate, Value: "0.2"}}
	})
	ro := s.wait("Degraded", func(ro *rolloutsv1alpha1.Rollout, _ *target.Workload) error {
		if ro.Status.Phase != rolloutsv1alpha1.RolloutPhaseDegraded || ro.Status.AbortedRevision != canaryRev {
			return fmt.Errorf("want Degraded with %s aborted; %s", canaryRev, summary(ro))
		}
		return nil
	})
	run := s.waitRun(rolloutsv1alpha1.AnalysisKindStep, canaryRev, "Failed", func(run *rolloutsv1alpha1.AnalysisRun) error {
		if run.Status.Phase != rolloutsv1alpha1.AnalysisPhaseFailed {
			return fmt.Errorf("phase %s", run.Status.Phase)
		}
		return nil
	})
	s.logf("analysis run:%s", describeRuns([]rolloutsv1alpha1.AnalysisRun{*run}))
	degraded := history.waitSeen(t, "Degraded", func(st *rolloutsv1alpha1.RolloutStatus) bool {
		return st.Phase == rolloutsv1alpha1.RolloutPhaseDegraded
	})
	rolledBack := s.abortedOn(stableRev, canaryRev)
	back := time.Now()
	bound := promInterval*(failureLimit+1) + promInterval
	took := degraded.Sub(run.CreationTimestamp.Time)
	s.logf("aborted %s after the run started (bound %s), traffic and pods back on stable by %s: %s",
		took.Round(10*time.Millisecond), bound, back.Sub(run.CreationTimestamp.Time).Round(100*time.Millisecond), rolledBack.Status.AbortMessage)
	if took > bound {
		t.Errorf("aborted %s after the analysis run started, want within interval × (failureLimit+1) + interval = %s", took, bound)
	}

	// The run failed on measured error rates, not on missing data.
	failed := 0
	for _, m := range run.Status.MetricResults {
		for _, ms := range m.Measurements {
			if ms.Phase != rolloutsv1alpha1.AnalysisPhaseFailed {
				continue
			}
			failed++
			if v, err := strconv.ParseFloat(ms.Value, 64); err != nil || v < 0.6 || v > 0.95 {
				t.Errorf("metric %s failed with %q, want a success rate near 0.8", m.Name, ms.Value)
			}
		}
	}
	if failed < failureLimit+1 {
		t.Errorf("%d failed measurements, want at least %d", failed, failureLimit+1)
	}
	if msg := ro.Status.AbortMessage; !strings.Contains(msg, run.Name) || !strings.Contains(msg, "success-rate") {
		t.Errorf("status.abortMessage %q, want the run %s and the failing metric", msg, run.Name)
	}
	if history.any(func(st *rolloutsv1alpha1.RolloutStatus) bool {
		return st.CanaryRevision == canaryRev && ptr.Deref(st.CurrentStepIndex, -1) >= 2
	}) {
		t.Errorf("the release went past the first analysis step: %s", history.steps())
	}

	seen := bg.stop()
	bg.reported = true
	s.logf("background traffic across the release and its rollback: %s", seen)
	s.expectAll(s.web, 200, "v1", "after the rollback")

	onCanary.Stop()
	after, err := s.pods()
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(touched) == 0 {
		t.Error("no pod was seen on the canary revision")
	}
	restarts := map[string]int32{}
	for _, p := range before {
		restarts[string(p.UID)] = framework.ContainerStatus(&p, "app").RestartCount
	}
	// v2 changes an environment variable: its pods are recreated, not
	// updated in place, so the rollback replaces each canary pod with a
	// new stable one. Every other pod is the one there before.
	stayed, replaced := 0, 0
	for _, p := range after {
		if touched[p.Name] {
			t.Errorf("pod %s is still there after being on the canary revision", p.Name)
			continue
		}
		was, ok := restarts[string(p.UID)]
		if !ok {
			replaced++
			continue
		}
		stayed++
		if got := framework.ContainerStatus(&p, "app").RestartCount; got != was {
			t.Errorf("stable pod %s restarted: %d restarts, %d before the release", p.Name, got, was)
		}
	}
	if replaced != len(touched) || stayed != s.n-len(touched) {
		t.Errorf("%d pods stayed, %d are new; want %d new ones replacing the canary's %v", stayed, replaced, len(touched), touched)
	}
	s.logf("%d pods stayed stable throughout, never restarted; %d canary pod(s) replaced by new stable ones: %v", stayed, replaced, touched)
}

// TestPrometheusDownAborts (story 3): Prometheus is stopped while the
// analysis step measures. Every later measurement is an error (connection
// refused), never a success; past consecutiveErrorLimit the run ends in
// Error and the release is aborted, never promoted.
func TestPrometheusDownAborts(t *testing.T) {
	t.Parallel()
	const errorLimit = 2
	s := newStory(t, "prom-down", kindCloneSet, 4, []rolloutsv1alpha1.CanaryStep{setWeight(25), analysisStep("success-rate"), setWeight(50)})
	prom := s.startPrometheus()
	metric := successRates(prom.URL(), 30, 0)[0]
	metric.Interval.Duration = 2 * time.Second
	metric.ConsecutiveErrorLimit = ptr.To[int32](errorLimit)
	s.createTemplate("success-rate", metric)
	stableRev := s.rollout().Status.StableRevision
	history := s.recordRollout()
	bg := s.startBackground()

	canaryRev := s.setImage(imageV2)
	s.waitRun(rolloutsv1alpha1.AnalysisKindStep, canaryRev, "measured once on real data", func(run *rolloutsv1alpha1.AnalysisRun) error {
		if len(run.Status.MetricResults) != 1 || run.Status.MetricResults[0].Successful < 1 {
			return fmt.Errorf("no successful measurement yet")
		}
		return nil
	})
	if err := prom.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	s.logf("Prometheus stopped")

	run := s.waitRun(rolloutsv1alpha1.AnalysisKindStep, canaryRev, "Error", func(run *rolloutsv1alpha1.AnalysisRun) error {
		return runPhase(run, rolloutsv1alpha1.AnalysisPhaseError)
	})
	s.logf("analysis run:%s", describeRuns([]rolloutsv1alpha1.AnalysisRun{*run}))
	m := run.Status.MetricResults[0]
	if m.ConsecutiveError != errorLimit+1 {
		t.Errorf("the run ended after %d consecutive errors, want consecutiveErrorLimit+1 = %d", m.ConsecutiveError, errorLimit+1)
	}
	for _, ms := range m.Measurements {
		if ms.StartedAt.After(stopped) && ms.Phase != rolloutsv1alpha1.AnalysisPhaseError {
			t.Errorf("a measurement at %s, with Prometheus stopped, is %s (%q), want Error", ms.StartedAt.Format("15:04:05"), ms.Phase, ms.Message)
		}
	}
	ro := s.abortedOn(stableRev, canaryRev)
	s.logf("aborted %s after Prometheus stopped: %s", time.Since(stopped).Round(100*time.Millisecond), ro.Status.AbortMessage)
	if history.any(func(st *rolloutsv1alpha1.RolloutStatus) bool { return st.StableRevision == canaryRev }) {
		t.Errorf("the release was promoted without evidence: %s", history.steps())
	}
	s.assertNoErrors(bg, "the release and its rollback")
	s.expectAll(s.web, 200, "v1", "after the rollback")
}

// gateServer is a confirm-promotion webhook that answers 403 until it is
// opened, recording every payload.
type gateServer struct {
	srv *httptest.Server

	mu       sync.Mutex
	open     bool
	payloads []map[string]any
}

func newGateServer(t *testing.T) *gateServer {
	g := &gateServer{}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p map[string]any
		_ = json.Unmarshal(body, &p)
		g.mu.Lock()
		g.payloads = append(g.payloads, p)
		open := g.open
		g.mu.Unlock()
		if !open {
			http.Error(w, "not yet", http.StatusForbidden)
		}
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gateServer) setOpen() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = true
}

func (g *gateServer) calls() []map[string]any {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]map[string]any(nil), g.payloads...)
}

// TestConfirmPromotionGateHolds (story 4): after its last step the
// release waits on a confirm-promotion webhook that answers 403: it stays
// at 50% with the canary unpromoted, the gate closed in status, and asks
// again every few seconds; once the hook answers 200 the release is
// promoted with no other action.
func TestConfirmPromotionGateHolds(t *testing.T) {
	t.Parallel()
	gate := newGateServer(t)
	s := newStory(t, "gated", kindCloneSet, 4, []rolloutsv1alpha1.CanaryStep{setWeight(50)}, func(ro *rolloutsv1alpha1.Rollout) {
		ro.Spec.Webhooks = []rolloutsv1alpha1.RolloutWebhook{{
			Name: "approve", Type: rolloutsv1alpha1.WebhookConfirmPromotion, URL: gate.srv.URL,
			Metadata: map[string]string{"team": "payments"},
		}}
	})
	stableRev := s.rollout().Status.StableRevision
	history := s.recordRollout()
	bg := s.startBackground()

	canaryRev := s.setImage(imageV2)
	closed := func(ro *rolloutsv1alpha1.Rollout) error {
		st := ro.Status
		if st.CanaryRevision != canaryRev || st.StableRevision != stableRev || ptr.Deref(st.VerifiedWeight, -1) != 50 {
			return fmt.Errorf("want %s at 50%% verified, %s still stable; %s", canaryRev, stableRev, summary(ro))
		}
		if len(st.Gates) != 1 || st.Gates[0].Name != "approve" || st.Gates[0].Open {
			return fmt.Errorf("want the approve gate closed in status, got %+v", st.Gates)
		}
		return nil
	}
	s.wait("held at the confirm-promotion gate", func(ro *rolloutsv1alpha1.Rollout, _ *target.Workload) error { return closed(ro) })
	held := time.Now()
	// Held across more than one re-check of the gate.
	time.Sleep(12 * time.Second)
	if err := closed(s.rollout()); err != nil {
		t.Fatalf("12s later the release is no longer held: %v", err)
	}
	asked := len(gate.calls())
	if asked < 2 {
		t.Errorf("the gate was asked %d time(s) in 12s, want it asked again while closed", asked)
	}
	s.measureSplit(50, splitTolerance, "v1", "v2")

	gate.setOpen()
	opened := time.Now()
	s.healthyOn(canaryRev, imageV2)
	s.logf("held %s (asked %d times), promoted %s after the gate opened",
		opened.Sub(held).Round(100*time.Millisecond), asked, time.Since(opened).Round(100*time.Millisecond))
	promoted := history.waitSeen(t, "the promotion", func(st *rolloutsv1alpha1.RolloutStatus) bool { return st.StableRevision == canaryRev })
	if promoted.Before(opened) {
		t.Errorf("promoted at %s, before the gate opened at %s", promoted.Format("15:04:05.000"), opened.Format("15:04:05.000"))
	}
	s.assertNoErrors(bg, "the release")
	p := gate.calls()[0]
	if p["name"] != s.name || p["namespace"] != s.ns || p["type"] != string(rolloutsv1alpha1.WebhookConfirmPromotion) || p["revision"] != canaryRev {
		t.Errorf("gate payload %v, want name %s, namespace %s, type confirm-promotion, revision %s", p, s.name, s.ns, canaryRev)
	}
	if md, _ := p["metadata"].(map[string]any); md["team"] != "payments" {
		t.Errorf("gate payload metadata %v, want team=payments", p["metadata"])
	}
	s.expectAll(s.web, 200, "v2", "promoted")
}
