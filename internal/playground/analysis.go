package playground

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/examples"
	"github.com/drover-dev/drover/internal/demoapp"
	"github.com/drover-dev/drover/internal/promserver"
)

// The analysis demo (step 7): a real Prometheus scraping every demo pod's
// /metrics (listed by the demo app's http_sd endpoint, with the pods'
// labels) and Traefik's metrics; examples/analysis.yaml (the Rollout
// AnalysisName, whose analysis steps query that Prometheus) behind the
// Gateway for the host AnalysisHost; steady traffic to it; and, once the
// playground is ready, two releases played live: a healthy demo:v2
// promoted by analysis alone, then demo:v3 answering 20% of its requests
// with 500, aborted and rolled back.
const (
	AnalysisName = "shop"
	AnalysisHost = "shop.local"

	// Lines of the live demo the tests look for.
	AnalysisPromotedLine = "promoted by analysis alone"
	AnalysisAbortedLine  = "aborted by analysis"
	AnalysisDoneLine     = "[analysis demo] done"

	analysisPace       = 20 * time.Millisecond // about 50 requests a second
	analysisPoll       = 500 * time.Millisecond
	analysisStoryLimit = 4 * time.Minute
	badErrorRate       = "0.2"
)

// prometheusBinaries are what the analysis demo needs besides Traefik.
func prometheusBinaries() []string { return []string{"prometheus"} }

// startAnalysisDemo starts Prometheus, applies examples/analysis.yaml with
// its address and waits until the Rollout is Healthy and the gateway
// serves its host; then it starts the traffic. A missing prometheus binary
// is an errCanarySkipped.
func (s *session) startAnalysisDemo(ctx context.Context, c client.Client, gatewayURL string) (*promserver.Server, error) {
	if m := missing(s.binDir, prometheusBinaries()); len(m) > 0 {
		return nil, skipCanary("%s missing in %s (make tools installs Debian's prometheus)", strings.Join(m, ", "), s.binDir)
	}
	metrics := strings.TrimSuffix(strings.TrimPrefix(s.traefik.MetricsURL(), "http://"), "/metrics")
	prom, err := promserver.Start(ctx, promserver.Options{
		Binary: filepath.Join(s.binDir, "prometheus"), WorkDir: filepath.Join(s.env.Dir, "prometheus"), Log: s.promLog,
		SD: []string{"http://" + s.demo.SDAddr() + "/sd"}, Static: map[string]string{"traefik": metrics},
	})
	if err != nil {
		return nil, fmt.Errorf("playground: starting Prometheus (log: %s): %w", s.promLog.path, err)
	}
	s.prom = prom
	raw := bytes.ReplaceAll(examples.Analysis(), []byte(examples.PrometheusPlaceholder), []byte(prom.URL()))
	if err := applyManifest(ctx, c, "examples/analysis.yaml", raw, CanaryNamespace); err != nil {
		return nil, err
	}
	if _, err := waitRolloutHealthy(ctx, c, AnalysisName, s.o.ReadyTimeout, s.mgrDone); err != nil {
		return nil, fmt.Errorf("%w (manager log: %s)", err, s.env.ManagerLog)
	}
	if err := waitGatewayServes(ctx, gatewayURL, AnalysisHost); err != nil {
		return nil, fmt.Errorf("%w (Traefik's log: %s)", err, s.traefikLog.path)
	}
	s.analysisTraffic = newTraffic(gatewayURL, AnalysisHost)
	s.goBackground(func(ctx context.Context) { s.analysisTraffic.run(ctx) })
	return prom, nil
}

// goBackground runs f until cleanup, which cancels its context and waits.
func (s *session) goBackground(f func(context.Context)) {
	if s.bgCancel == nil {
		s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		f(s.bgCtx)
	}()
}

// stopBackground ends what goBackground started.
func (s *session) stopBackground() {
	if s.bgCancel != nil {
		s.bgCancel()
		s.bg.Wait()
		s.bgCancel = nil
	}
}

// playAnalysisStories releases the two versions of the analysis demo and
// prints what happens, live.
func (s *session) playAnalysisStories(ctx context.Context, c client.Client) {
	ctx, cancel := context.WithTimeout(ctx, analysisStoryLimit)
	defer cancel()
	p := s.p
	err := s.playStory(ctx, c, "(1) a healthy version", "demo:v2", nil, rolloutsv1alpha1.RolloutPhaseHealthy)
	if err == nil {
		err = s.playStory(ctx, c, "(2) a version answering 20% of its requests with 500", "demo:v3",
			[]corev1.EnvVar{{Name: demoapp.EnvErrorRate, Value: badErrorRate}}, rolloutsv1alpha1.RolloutPhaseDegraded)
	}
	switch {
	case err == nil:
		p.printf("%s: try your own release of %s, e.g. %s set image cloneset/%s app=demo:v4\n\n", AnalysisDoneLine, AnalysisName, s.o.CLI, AnalysisName)
	case ctx.Err() != nil && s.bgCtx.Err() != nil:
		// The playground is stopping.
	default:
		p.printf("[analysis demo] stopped: %v\n\n", err)
	}
}

// playStory changes the image (and environment) of the analysis demo's
// CloneSet and prints the Rollout's progress until it reaches end.
func (s *session) playStory(ctx context.Context, c client.Client, title, image string, env []corev1.EnvVar, end rolloutsv1alpha1.RolloutPhase) error {
	p := s.p
	key := client.ObjectKey{Namespace: CanaryNamespace, Name: AnalysisName}
	cs := &appsv1alpha1.CloneSet{}
	if err := c.Get(ctx, key, cs); err != nil {
		return err
	}
	stable := cs.Spec.Template.Spec.Containers[0].Image
	patched := cs.DeepCopy()
	patched.Spec.Template.Spec.Containers[0].Image = image
	patched.Spec.Template.Spec.Containers[0].Env = env
	if err := c.Patch(ctx, patched, client.MergeFrom(cs)); err != nil {
		return fmt.Errorf("releasing %s: %w", image, err)
	}
	what := image
	if len(env) > 0 {
		what += " with " + env[0].Name + "=" + env[0].Value
	}
	p.printf("\n[analysis demo] %s: %s of cloneset/%s\n", title, what, AnalysisName)
	start, last := time.Now(), ""
	var analysisStarted time.Time
	for {
		ro := &rolloutsv1alpha1.Rollout{}
		if err := c.Get(ctx, key, ro); err != nil {
			return err
		}
		runs := &rolloutsv1alpha1.AnalysisRunList{}
		if err := c.List(ctx, runs, client.InNamespace(CanaryNamespace), client.MatchingLabels{rolloutsv1alpha1.LabelRollout: AnalysisName}); err != nil {
			return err
		}
		st := ro.Status
		released := st.CanaryRevision != "" || st.AbortedRevision != "" || st.StableRevision != cs.Status.UpdateRevision
		if line := progressLine(ro, runs.Items); line != last && released {
			p.printf("  %5.1fs  %s\n", time.Since(start).Seconds(), line)
			last = line
		}
		if analysisStarted.IsZero() && len(st.AnalysisRuns) > 0 {
			analysisStarted = time.Now()
		}
		if released && st.ObservedGeneration == ro.Generation && reached(ro, end, ptr.Deref(cs.Spec.Replicas, 1)) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %s)", title, ctx.Err(), last)
		case <-time.After(analysisPoll):
		}
	}
	answered := s.analysisTraffic.sample(ctx, 100)
	if end == rolloutsv1alpha1.RolloutPhaseHealthy {
		p.printf("  %s in %s: %s\n", AnalysisPromotedLine, since(start), answered)
		return nil
	}
	ro := &rolloutsv1alpha1.Rollout{}
	if err := c.Get(ctx, key, ro); err != nil {
		return err
	}
	p.printf("  %s %s after its first analysis started: %s\n", AnalysisAbortedLine, since(analysisStarted), ro.Status.AbortMessage)
	p.printf("  traffic back on %s: %s\n", stable, answered)
	return nil
}

// reached says whether the release is over: Healthy with the new version
// stable, or Degraded with traffic and every pod back on the stable one.
func reached(ro *rolloutsv1alpha1.Rollout, end rolloutsv1alpha1.RolloutPhase, replicas int32) bool {
	st := ro.Status
	if st.Phase != end || ptr.Deref(st.VerifiedWeight, -1) != 0 || st.StableReadyReplicas != replicas {
		return false
	}
	if end == rolloutsv1alpha1.RolloutPhaseDegraded {
		return st.AbortedRevision != ""
	}
	return st.CanaryRevision == ""
}

// progressLine is one line on the Rollout: its phase, step, weight and
// the latest measurement of each metric of its newest analysis run.
func progressLine(ro *rolloutsv1alpha1.Rollout, runs []rolloutsv1alpha1.AnalysisRun) string {
	st := ro.Status
	var b strings.Builder
	fmt.Fprintf(&b, "%s", st.Phase)
	if st.CurrentStepIndex != nil && ro.Spec.Strategy.Canary != nil && st.CanaryRevision != "" {
		if i, n := int(*st.CurrentStepIndex), len(ro.Spec.Strategy.Canary.Steps); i < n {
			fmt.Fprintf(&b, ", step %d/%d", i+1, n)
		} else {
			b.WriteString(", every step done: promoting")
		}
	}
	fmt.Fprintf(&b, ", canary weight %d%%", ptr.Deref(st.VerifiedWeight, 0))
	var newest *rolloutsv1alpha1.AnalysisRun
	for i := range runs {
		if runs[i].Labels[rolloutsv1alpha1.LabelAnalysisRevision] == st.CanaryRevision || st.CanaryRevision == "" {
			if newest == nil || runs[i].CreationTimestamp.After(newest.CreationTimestamp.Time) {
				newest = &runs[i]
			}
		}
	}
	if newest != nil && (st.CanaryRevision != "" || newest.Labels[rolloutsv1alpha1.LabelAnalysisRevision] == st.AbortedRevision) {
		fmt.Fprintf(&b, "; analysis %s", orDash(string(newest.Status.Phase)))
		for _, m := range newest.Status.MetricResults {
			if n := len(m.Measurements); n > 0 {
				last := m.Measurements[n-1]
				v := last.Value
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					v = strconv.FormatFloat(f, 'f', 3, 64)
				} else if v == "" {
					v = last.Message
				}
				fmt.Fprintf(&b, ", %s %s (%s)", m.Name, v, last.Phase)
			}
		}
	}
	if st.Phase == rolloutsv1alpha1.RolloutPhaseHealthy && st.CanaryRevision == "" {
		fmt.Fprintf(&b, "; stable %s", st.StableRevision)
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// traffic sends steady requests to a host through the gateway.
type traffic struct {
	url, host string
	hc        *http.Client
}

func newTraffic(url, host string) *traffic {
	return &traffic{url: url, host: host, hc: &http.Client{Timeout: 2 * time.Second}}
}

func (t *traffic) run(ctx context.Context) {
	defer t.hc.CloseIdleConnections()
	for ctx.Err() == nil {
		_, _ = t.get(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(analysisPace):
		}
	}
}

// get sends one request and returns the version that answered.
func (t *traffic) get(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return "", err
	}
	req.Host = t.host
	resp, err := t.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	var r demoapp.Response
	if jerr := json.Unmarshal(body, &r); jerr != nil {
		return "", fmt.Errorf("%s: %q", resp.Status, body)
	}
	if resp.StatusCode != http.StatusOK {
		return r.Version, errors.New(resp.Status)
	}
	return r.Version, nil
}

// sample sends n requests and says which versions answered.
func (t *traffic) sample(ctx context.Context, n int) string {
	versions, failed := map[string]int{}, 0
	for range n {
		v, err := t.get(ctx)
		if err != nil {
			failed++
			continue
		}
		versions[v]++
	}
	var parts []string
	for _, v := range sortedKeys(versions) {
		parts = append(parts, fmt.Sprintf("%d answered by %s", versions[v], v))
	}
	if failed > 0 {
		parts = append(parts, fmt.Sprintf("%d failed", failed))
	}
	return fmt.Sprintf("of %d requests, %s", n, strings.Join(parts, ", "))
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
