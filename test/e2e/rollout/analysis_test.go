package rollout_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/revision"
	"github.com/drover-dev/drover/internal/target"
	"github.com/drover-dev/drover/test/e2e/framework"
)

// The analysis stories of docs/rollout.md (Analysis) and docs/analysis.md
// with the manager's real AnalysisRun controller: a `web` metric queries
// a small HTTP server the test runs on 127.0.0.1 (the manager runs on the
// same machine) and judges its JSON answer with CEL. A canary step waits
// on the run: a good answer lets the release go on without anyone
// promoting it, a bad one (or a provider that stops answering) aborts it
// and sends pods and traffic back to stable.

// analysisInterval is the interval of the stories' metrics.
const analysisInterval = time.Second

// metricServer is the metrics provider of a story: it answers every
// request with the JSON document it is given, and records when each
// request came.
type metricServer struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	body      string
	requests  []time.Time
	stopAfter int  // close the server once it answered that many (0: never)
	stopped   bool // the server was closed by stopAfter
}

// newMetricServer starts a server answering body (JSON) until the test
// ends.
func newMetricServer(t *testing.T, body string) *metricServer {
	t.Helper()
	m := &metricServer{t: t, body: body}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.srv.Close)
	t.Logf("metric server on %s answers %s", m.srv.URL, body)
	return m
}

func (m *metricServer) serve(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	m.requests = append(m.requests, time.Now())
	body, n := m.body, len(m.requests)
	stop := m.stopAfter > 0 && n == m.stopAfter && !m.stopped
	if stop {
		m.stopped = true
	}
	m.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprint(w, body)
	if stop {
		// Close waits for this answer to be sent; the next measurement
		// finds no server (connection refused).
		go func() {
			m.srv.Close()
			m.t.Logf("%s metric server on %s stopped after %d request(s)", time.Now().Format("15:04:05.000"), m.srv.URL, n)
		}()
	}
}

// url is the server's address.
func (m *metricServer) url() string { return m.srv.URL }

// stopAfterRequests makes the server stop once it answered n requests.
func (m *metricServer) stopAfterRequests(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopAfter = n
}

// received returns when the requests so far came.
func (m *metricServer) received() []time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.requests)
}

// webMetric is a metric named name measured every analysisInterval, count
// times, with a GET of url, the value selected by jsonPath and judged by
// successCondition.
func webMetric(name, url, jsonPath, successCondition string, count int32) rolloutsv1alpha1.Metric {
	return rolloutsv1alpha1.Metric{
		Name:             name,
		Interval:         &metav1.Duration{Duration: analysisInterval},
		Count:            ptr.To(count),
		SuccessCondition: successCondition,
		Provider: rolloutsv1alpha1.MetricProvider{Web: &rolloutsv1alpha1.WebMetric{
			URL: url, JSONPath: jsonPath, Timeout: &metav1.Duration{Duration: 2 * time.Second},
		}},
	}
}

// createTemplate creates the AnalysisTemplate name of the story's
// namespace with the metrics.
func (e *env) createTemplate(name string, metrics ...rolloutsv1alpha1.Metric) {
	e.t.Helper()
	framework.Create(e.t, &rolloutsv1alpha1.AnalysisTemplate{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec:       rolloutsv1alpha1.AnalysisTemplateSpec{Metrics: metrics},
	})
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.dumpRuns()
		}
	})
}

// analysisStep is a canary step that waits on a run of the template.
func analysisStep(template string) rolloutsv1alpha1.CanaryStep {
	return rolloutsv1alpha1.CanaryStep{Analysis: analysisOf(template)}
}

func analysisOf(template string) *rolloutsv1alpha1.RolloutAnalysis {
	return &rolloutsv1alpha1.RolloutAnalysis{Templates: []rolloutsv1alpha1.AnalysisTemplateRef{{TemplateName: template}}}
}

// analysisRuns lists the Rollout's AnalysisRuns.
func (e *env) analysisRuns() []rolloutsv1alpha1.AnalysisRun {
	e.t.Helper()
	var list rolloutsv1alpha1.AnalysisRunList
	if err := framework.Client().List(e.ctx, &list, client.InNamespace(e.ns),
		client.MatchingLabels{rolloutsv1alpha1.LabelRollout: e.name}); err != nil {
		e.t.Fatalf("list analysis runs: %v", err)
	}
	return list.Items
}

// waitRun waits until the Rollout has exactly one AnalysisRun, of kind
// for revision rev, that ok accepts, and returns it.
func (e *env) waitRun(kind rolloutsv1alpha1.AnalysisKind, rev, what string, ok func(*rolloutsv1alpha1.AnalysisRun) error) *rolloutsv1alpha1.AnalysisRun {
	e.t.Helper()
	var run *rolloutsv1alpha1.AnalysisRun
	err := framework.Poll(e.ctx, rolloutTimeout, func() error {
		runs := e.analysisRuns()
		if len(runs) != 1 {
			return fmt.Errorf("want one analysis run, got %d: %s", len(runs), describeRuns(runs))
		}
		run = &runs[0]
		if k, r := run.Labels[rolloutsv1alpha1.LabelAnalysisKind], run.Labels[rolloutsv1alpha1.LabelAnalysisRevision]; k != string(kind) || r != rev {
			return fmt.Errorf("want a %s run of %s: %s", kind, rev, describeRuns(runs))
		}
		return ok(run)
	})
	if err != nil {
		e.t.Fatalf("waiting for the %s analysis run to be %s: %v", kind, what, err)
	}
	return run
}

// runPhase says why run is not in phase p with one metric result.
func runPhase(run *rolloutsv1alpha1.AnalysisRun, p rolloutsv1alpha1.AnalysisPhase) error {
	if run.Status.Phase != p || len(run.Status.MetricResults) != 1 {
		return fmt.Errorf("want phase %s with one metric result: %s", p, describeRuns([]rolloutsv1alpha1.AnalysisRun{*run}))
	}
	return nil
}

func describeRuns(runs []rolloutsv1alpha1.AnalysisRun) string {
	var b strings.Builder
	for _, r := range runs {
		fmt.Fprintf(&b, "\n  run %s (%s of %s, created %s, terminate %t): phase %q message %q",
			r.Name, r.Labels[rolloutsv1alpha1.LabelAnalysisKind], r.Labels[rolloutsv1alpha1.LabelAnalysisRevision],
			r.CreationTimestamp.Format("15:04:05"), r.Spec.Terminate, r.Status.Phase, r.Status.Message)
		for _, m := range r.Status.MetricResults {
			fmt.Fprintf(&b, "\n    metric %s: phase %s count %d successful %d failed %d error %d consecutiveError %d, %d measurement(s)",
				m.Name, m.Phase, m.Count, m.Successful, m.Failed, m.Error, m.ConsecutiveError, len(m.Measurements))
			for _, ms := range m.Measurements {
				fmt.Fprintf(&b, "\n      %s %s value %q: %s", ms.StartedAt.Format("15:04:05"), ms.Phase, ms.Value, ms.Message)
			}
		}
	}
	return b.String()
}

// dumpRuns logs the Rollout's AnalysisRuns and the analysis controller's
// log lines about the namespace.
func (e *env) dumpRuns() {
	var list rolloutsv1alpha1.AnalysisRunList
	if err := framework.Client().List(e.ctx, &list, client.InNamespace(e.ns)); err == nil {
		e.t.Logf("dump: analysis runs:%s", describeRuns(list.Items))
	}
	var events corev1.EventList
	if err := framework.Client().List(e.ctx, &events, client.InNamespace(e.ns)); err == nil {
		for _, ev := range events.Items {
			if ev.InvolvedObject.Kind == "AnalysisRun" {
				e.t.Logf("dump: event %s %s %s %s: %s", eventTime(&ev).Format("15:04:05.000"), ev.InvolvedObject.Name, ev.Type, ev.Reason, ev.Message)
			}
		}
	}
}

// waitSeen waits (the watch may lag behind a read) until the history has
// a status satisfying f, and returns when it was first seen.
func (h *rolloutHistory) waitSeen(t *testing.T, what string, f func(*rolloutsv1alpha1.RolloutStatus) bool) time.Time {
	t.Helper()
	var at time.Time
	err := framework.Poll(context.Background(), 10*time.Second, func() error {
		if at = h.firstSeen(f); at.IsZero() {
			return fmt.Errorf("the Rollout's watch saw no status with %s: %s", what, h.steps())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// analysisSteps: 25% of the traffic to one canary pod of four, a step
// that waits on a run of the template, 50%, a pause of 2s, promotion.
func analysisSteps(template string) []rolloutsv1alpha1.CanaryStep {
	return []rolloutsv1alpha1.CanaryStep{setWeight(25), analysisStep(template), setWeight(50), pauseFor(2 * time.Second)}
}

// TestAnalysisStepPromotesOnEvidence: the analysis step's run measures
// 0.999 twice against `result >= 0.99` and the release goes on by itself
// to Healthy on v2, no user action: the run is Successful with both
// measurements in its status, and the step after it started only once
// the second measurement was taken. No request fails and every pod moves
// in place.
func TestAnalysisStepPromotesOnEvidence(t *testing.T) {
	t.Parallel()
	srv := newMetricServer(t, `{"rate": 0.999}`)
	s := newStory(t, "judged", kindCloneSet, 4, analysisSteps("success-rate"))
	s.createTemplate("success-rate", webMetric("success-rate", srv.url(), "{$.rate}", "result >= 0.99", 2))
	stableRev := s.rollout().Status.StableRevision
	uids := s.podUIDs()
	history := s.recordRollout()
	pods := s.recordPods(stableRev)

	bg := s.startBackground()
	start := time.Now()
	canaryRev := s.setImage(imageV2)
	s.healthyOn(canaryRev, imageV2)
	s.logf("Healthy on %s %s after the new revision, with no user action", canaryRev, time.Since(start).Round(100*time.Millisecond))
	s.assertNoErrors(bg, "the release")
	pods.Stop()
	pods.AssertNoViolations(t)
	s.assertSamePods(uids, "after the release")

	run := s.waitRun(rolloutsv1alpha1.AnalysisKindStep, canaryRev, "Successful", func(run *rolloutsv1alpha1.AnalysisRun) error {
		return runPhase(run, rolloutsv1alpha1.AnalysisPhaseSuccessful)
	})
	s.logf("analysis run:%s", describeRuns([]rolloutsv1alpha1.AnalysisRun{*run}))
	m := run.Status.MetricResults[0]
	if m.Name != "success-rate" || m.Phase != rolloutsv1alpha1.AnalysisPhaseSuccessful || m.Count != 2 || m.Successful != 2 ||
		m.Failed != 0 || m.Error != 0 || len(m.Measurements) != 2 {
		t.Errorf("metric result %+v, want success-rate Successful with 2 measurements, both successful", m)
	}
	for i, ms := range m.Measurements {
		if ms.Phase != rolloutsv1alpha1.AnalysisPhaseSuccessful || ms.Value != "0.999" {
			t.Errorf("measurement %d: %s %q (%s), want Successful 0.999", i, ms.Phase, ms.Value, ms.Message)
		}
	}
	if got := s.rollout().Status.AnalysisRuns; len(got) != 1 || got[0].Name != run.Name || got[0].Phase != rolloutsv1alpha1.AnalysisPhaseSuccessful ||
		got[0].Kind != rolloutsv1alpha1.AnalysisKindStep || ptr.Deref(got[0].Step, -1) != 1 {
		t.Errorf("status.analysisRuns %+v, want the Successful step-1 run %s", got, run.Name)
	}

	// The step waited on the evidence: the metric server answered exactly
	// the two measurements, and step 2 began after the second.
	reqs := srv.received()
	if len(reqs) != 2 {
		t.Fatalf("the metric server got %d requests, want the 2 measurements: %v", len(reqs), reqs)
	}
	if gap := reqs[1].Sub(reqs[0]); gap < analysisInterval-100*time.Millisecond {
		t.Errorf("the two measurements came %s apart, want about the interval (%s)", gap, analysisInterval)
	}
	step2 := history.waitSeen(t, "step 2", func(st *rolloutsv1alpha1.RolloutStatus) bool {
		return st.CanaryRevision == canaryRev && ptr.Deref(st.CurrentStepIndex, -1) >= 2
	})
	if !step2.After(reqs[1]) {
		t.Errorf("step 2 began at %s, before the second measurement at %s: the analysis step did not wait (%s)",
			step2.Format("15:04:05.000"), reqs[1].Format("15:04:05.000"), history.steps())
	}
	s.logf("measurements at %s and %s; step 2 seen at %s", reqs[0].Format("15:04:05.000"), reqs[1].Format("15:04:05.000"), step2.Format("15:04:05.000"))
	for _, reason := range []string{"StepSkipped", "PromotedFull", "AnalysisFailed"} {
		if n := s.countEvents(reason); n != 0 {
			t.Errorf("%d %s event(s): the release went on by itself", n, reason)
		}
	}
	s.waitEvent("AnalysisSuccessful", run.Name)
	s.waitSplit(100, "v1", "v2")
	s.expectAll(s.web, 200, "v2", "promoted")
}

// abortedOn waits until the Rollout aborted rev: Degraded, with every pod
// back on stable, ready, and weight 0 verified.
func (s *story) abortedOn(stable, rev string) *rolloutsv1alpha1.Rollout {
	s.t.Helper()
	return s.wait("Degraded with every pod back on "+stable, func(ro *rolloutsv1alpha1.Rollout, _ *target.Workload) error {
		st := ro.Status
		if st.ObservedGeneration != ro.Generation || st.Phase != rolloutsv1alpha1.RolloutPhaseDegraded || st.StableRevision != stable ||
			st.AbortedRevision != rev || ptr.Deref(st.VerifiedWeight, -1) != 0 || st.StableReadyReplicas != int32(s.n) {
			return fmt.Errorf("want Degraded, %s aborted, weight 0 verified, %d stable pods ready; %s", rev, s.n, summary(ro))
		}
		return s.podsOn(stable, imageV1, s.n)
	})
}

// TestAnalysisStepFailureRollsBack: the run measures 0.80 against
// `result >= 0.99`, failureLimit 0: it fails at its first measurement and
// the release is Degraded within interval × (failureLimit+1) + one
// interval (+ slack) of the run's start, status.abortMessage carrying the
// value. The canary pod goes back to v1 in place, no stable pod is
// touched, no request fails, and afterwards v1 answers everything.
func TestAnalysisStepFailureRollsBack(t *testing.T) {
	t.Parallel()
	const failureLimit = 0
	srv := newMetricServer(t, `{"rate": 0.80}`)
	s := newStory(t, "rejected", kindCloneSet, 4, analysisSteps("success-rate"))
	metric := webMetric("success-rate", srv.url(), "{$.rate}", "result >= 0.99", 2)
	metric.FailureLimit = ptr.To[int32](failureLimit)
	s.createTemplate("success-rate", metric)
	stableRev := s.rollout().Status.StableRevision
	before, err := s.pods()
	if err != nil {
		t.Fatal(err)
	}
	uids := framework.UIDs(before)
	history := s.recordRollout()
	var mu sync.Mutex
	moved := map[string]bool{} // pods seen on a revision other than stable
	pods := s.recordPods(stableRev)
	onCanary := framework.RecordPods(t, s.ns, nil, func(ev framework.PodEvent) {
		if ev.Pod.Labels["app"] == s.name && ev.Pod.Labels[revision.LabelRevisionHash] != stableRev {
			mu.Lock()
			moved[ev.Pod.Name] = true
			mu.Unlock()
		}
	})

	bg := s.startBackground()
	canaryRev := s.setImage(imageV2)
	ro := s.wait("Degraded", func(ro *rolloutsv1alpha1.Rollout, _ *target.Workload) error {
		if ro.Status.Phase != rolloutsv1alpha1.RolloutPhaseDegraded || ro.Status.AbortedRevision != canaryRev {
			return fmt.Errorf("want Degraded with %s aborted; %s", canaryRev, summary(ro))
		}
		return nil
	})
	started := history.waitSeen(s.t, "the run in status", func(st *rolloutsv1alpha1.RolloutStatus) bool {
		return st.CanaryRevision == canaryRev && len(st.AnalysisRuns) > 0
	})
	degraded := history.waitSeen(s.t, "Degraded", func(st *rolloutsv1alpha1.RolloutStatus) bool {
		return st.Phase == rolloutsv1alpha1.RolloutPhaseDegraded
	})
	const slack = 3 * time.Second
	bound := analysisInterval*(failureLimit+1) + analysisInterval + slack
	took := degraded.Sub(started)
	s.logf("Degraded %s after the run started (bound %s): %s", took.Round(10*time.Millisecond), bound, ro.Status.AbortMessage)
	if took > bound {
		t.Errorf("Degraded %s after the analysis run started, want within %s", took, bound)
	}

	run := s.waitRun(rolloutsv1alpha1.AnalysisKindStep, canaryRev, "Failed", func(run *rolloutsv1alpha1.AnalysisRun) error {
		return runPhase(run, rolloutsv1alpha1.AnalysisPhaseFailed)
	})
	s.logf("analysis run:%s", describeRuns([]rolloutsv1alpha1.AnalysisRun{*run}))
	if m := run.Status.MetricResults[0]; m.Failed != failureLimit+1 || m.Successful != 0 || len(m.Measurements) != failureLimit+1 || m.Measurements[0].Value != "0.8" {
		t.Errorf("metric result %+v, want %d failed measurement(s) of 0.8", m, failureLimit+1)
	}
	msg := ro.Status.AbortMessage
	if !strings.Contains(msg, "0.8") || !strings.Contains(msg, run.Name) || !strings.Contains(msg, "success-rate") {
		t.Errorf("status.abortMessage %q, want the run %s, the metric success-rate and its value 0.8", msg, run.Name)
	}
	if history.any(func(st *rolloutsv1alpha1.RolloutStatus) bool {
		return st.CanaryRevision == canaryRev && ptr.Deref(st.CurrentStepIndex, -1) >= 2
	}) {
		t.Errorf("the release went past the analysis step: %s", history.steps())
	}
	s.waitEvent(rolloutsv1alpha1.ReasonAnalysisFailed, run.Name)

	s.abortedOn(stableRev, canaryRev)
	s.assertNoErrors(bg, "the release and its rollback")
	pods.Stop()
	pods.AssertNoViolations(t)
	onCanary.Stop()
	s.assertSamePods(uids, "after the rollback")
	after, err := s.pods()
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(moved) != 1 {
		t.Errorf("pods seen off the stable revision: %v, want the one canary pod of 25%% of 4", moved)
	}
	restarts := map[string]int32{}
	for _, p := range before {
		restarts[p.Name] = framework.ContainerStatus(&p, "app").RestartCount
	}
	for _, p := range after {
		if moved[p.Name] {
			continue
		}
		if got := framework.ContainerStatus(&p, "app").RestartCount; got != restarts[p.Name] {
			t.Errorf("stable pod %s restarted: %d restarts, %d before the release", p.Name, got, restarts[p.Name])
		}
	}
	s.waitSplit(0, "v1", "v2")
	s.measureSplit(0, 0, "v1", "v2")
}

// TestAnalysisProviderDownIsAnError: the metric server answers the first
// measurement (a good value) and is gone for the next ones. With
// consecutiveErrorLimit 2 the third error in a row ends the run in Error
// and the release aborts: it never goes past the analysis step, v2 never
// becomes stable, and pods and traffic are back on v1.
func TestAnalysisProviderDownIsAnError(t *testing.T) {
	t.Parallel()
	const errorLimit = 2
	srv := newMetricServer(t, `{"rate": 0.999}`)
	srv.stopAfterRequests(1)
	s := newStory(t, "blind", kindCloneSet, 4, analysisSteps("success-rate"))
	metric := webMetric("success-rate", srv.url(), "{$.rate}", "result >= 0.99", 3)
	metric.ConsecutiveErrorLimit = ptr.To[int32](errorLimit)
	s.createTemplate("success-rate", metric)
	stableRev := s.rollout().Status.StableRevision
	uids := s.podUIDs()
	history := s.recordRollout()
	pods := s.recordPods(stableRev)

	bg := s.startBackground()
	canaryRev := s.setImage(imageV2)
	ro := s.wait("Degraded", func(ro *rolloutsv1alpha1.Rollout, _ *target.Workload) error {
		if ro.Status.Phase != rolloutsv1alpha1.RolloutPhaseDegraded || ro.Status.AbortedRevision != canaryRev {
			return fmt.Errorf("want Degraded with %s aborted; %s", canaryRev, summary(ro))
		}
		return nil
	})
	run := s.waitRun(rolloutsv1alpha1.AnalysisKindStep, canaryRev, "Error", func(run *rolloutsv1alpha1.AnalysisRun) error {
		return runPhase(run, rolloutsv1alpha1.AnalysisPhaseError)
	})
	s.logf("Degraded: %s; analysis run:%s", ro.Status.AbortMessage, describeRuns([]rolloutsv1alpha1.AnalysisRun{*run}))
	if got := srv.received(); len(got) != 1 {
		t.Errorf("the metric server answered %d requests, want 1 before it stopped", len(got))
	}
	if m := run.Status.MetricResults[0]; m.Phase != rolloutsv1alpha1.AnalysisPhaseError || m.Successful != 1 || m.Count != 1 ||
		m.Error != errorLimit+1 || m.ConsecutiveError != errorLimit+1 {
		t.Errorf("metric result %+v, want Error after 1 successful measurement and %d errors in a row", m, errorLimit+1)
	}
	if msg := ro.Status.AbortMessage; !strings.Contains(msg, run.Name) || !strings.Contains(msg, string(rolloutsv1alpha1.AnalysisPhaseError)) ||
		!strings.Contains(msg, "success-rate") {
		t.Errorf("status.abortMessage %q, want the run %s in Error and the metric success-rate", msg, run.Name)
	}

	s.abortedOn(stableRev, canaryRev)
	s.assertNoErrors(bg, "the release and its rollback")
	// Nothing more happens: the run stays in Error, the release aborted.
	time.Sleep(3 * analysisInterval)
	if ro := s.rollout(); ro.Status.Phase != rolloutsv1alpha1.RolloutPhaseDegraded || ro.Status.StableRevision != stableRev {
		t.Errorf("after the abort: %s", summary(ro))
	}
	if history.any(func(st *rolloutsv1alpha1.RolloutStatus) bool {
		return st.StableRevision == canaryRev || (st.CanaryRevision == canaryRev && ptr.Deref(st.CurrentStepIndex, -1) >= 2)
	}) {
		t.Errorf("the release went past the analysis step: %s", history.steps())
	}
	if n := s.countEvents("Promoted"); n != 0 {
		t.Errorf("%d Promoted event(s)", n)
	}
	pods.Stop()
	pods.AssertNoViolations(t)
	s.assertSamePods(uids, "after the rollback")
	s.waitSplit(0, "v1", "v2")
	s.expectAll(s.web, 200, "v1", "after the rollback")
}
