package playground_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/cli"
	"github.com/drover-dev/drover/internal/demoapp"
	"github.com/drover-dev/drover/internal/playground"
)

const (
	// requests is the size of a measurement through the gateway.
	requests = 200
	// At weight 10 the canary's share of 200 requests must be between 5%
	// and 20% (10 to 40 requests). Traefik's weighted round robin is
	// deterministic, so the exact share (20) is expected within a request
	// or two; the band is wide on purpose: what the test checks is that
	// the split is the step's, not Traefik's arithmetic.
	canaryMinShare = 5
	canaryMaxShare = 20
	// canaryTimeout bounds each wait on the Rollout (pods move in place in
	// about a second each under the kwok stages).
	canaryTimeout = 2 * time.Minute
	// serveTimeout bounds the wait for a weight the route reports verified
	// to show in Traefik's routing.
	serveTimeout = 15 * time.Second
)

// gateway sends requests through the playground's gateway URL and reads
// the demo pods' answers.
type gateway struct {
	url string
	hc  *http.Client
}

// get sends one request and returns the answering pod and version.
func (g *gateway) get(ctx context.Context) (demoapp.Response, error) {
	var r demoapp.Response
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.url, nil)
	if err != nil {
		return r, err
	}
	resp, err := g.hc.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return r, err
	}
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("%s: %q", resp.Status, body)
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Version == "" || r.Pod == "" {
		return r, fmt.Errorf("not a demo pod's answer: %q", body)
	}
	if v := resp.Header.Get(demoapp.HeaderVersion); v != r.Version {
		return r, fmt.Errorf("header %s %q, body version %q", demoapp.HeaderVersion, v, r.Version)
	}
	return r, nil
}

// split is what n consecutive requests got: answers by version, the
// distinct pods that answered, errors.
type split struct {
	versions map[string]int
	pods     map[string]bool
	errors   int
	lastErr  error
}

func (s split) String() string {
	keys := make([]string, 0, len(s.versions))
	for k := range s.versions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %d, ", k, s.versions[k])
	}
	fmt.Fprintf(&b, "errors %d, %d pods answered", s.errors, len(s.pods))
	if s.lastErr != nil {
		fmt.Fprintf(&b, " (last error: %v)", s.lastErr)
	}
	return b.String()
}

func (g *gateway) measure(ctx context.Context, n int) split {
	s := split{versions: map[string]int{}, pods: map[string]bool{}}
	for i := 0; i < n; i++ {
		r, err := g.get(ctx)
		if err != nil {
			s.errors++
			s.lastErr = err
			continue
		}
		s.versions[r.Version]++
		s.pods[r.Pod] = true
	}
	return s
}

// waitServes sends batches of 20 requests until ok accepts one, failing
// the test after serveTimeout.
func (g *gateway) waitServes(ctx context.Context, t *testing.T, what string, ok func(split) bool) {
	t.Helper()
	deadline := time.Now().Add(serveTimeout)
	for {
		s := g.measure(ctx, 20)
		if s.errors == 0 && ok(s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for the gateway to %s: last batch of 20: %s", what, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// background sends requests through the gateway until stopped and counts
// the failures: the release must not drop any.
type background struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	all  split
}

func (g *gateway) background(ctx context.Context) *background {
	b := &background{stop: make(chan struct{}), done: make(chan struct{}), all: split{versions: map[string]int{}, pods: map[string]bool{}}}
	go func() {
		defer close(b.done)
		for {
			select {
			case <-b.stop:
				return
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
			r, err := g.get(ctx)
			b.mu.Lock()
			if err != nil {
				b.all.errors++
				b.all.lastErr = err
			} else {
				b.all.versions[r.Version]++
				b.all.pods[r.Pod] = true
			}
			b.mu.Unlock()
		}
	}()
	return b
}

func (b *background) finish() split {
	close(b.stop)
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.all
}

type canaryPod struct {
	name, ip, node, image string
	restarts              int32
	ready                 bool
}

func canaryPods(ctx context.Context, c client.Client) ([]canaryPod, error) {
	var list corev1.PodList
	if err := c.List(ctx, &list, client.InNamespace(playground.CanaryNamespace), client.MatchingLabels{"app": playground.CanaryName}); err != nil {
		return nil, err
	}
	var out []canaryPod
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		v := canaryPod{name: p.Name, ip: p.Status.PodIP, node: p.Spec.NodeName, image: p.Spec.Containers[0].Image}
		for _, s := range p.Status.ContainerStatuses {
			v.restarts += s.RestartCount
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				v.ready = c.Status == corev1.ConditionTrue
			}
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

func rolloutSummary(ro *rolloutsv1alpha1.Rollout) string {
	st := ro.Status
	return fmt.Sprintf("phase %q step %d stable %q canary %q weight desired %d verified %d, pods canary %d/%d stable %d/%d, generation %d/%d, action %q, message %q",
		st.Phase, ptr.Deref(st.CurrentStepIndex, -1), st.StableRevision, st.CanaryRevision, st.DesiredWeight, ptr.Deref(st.VerifiedWeight, -1),
		st.CanaryReadyReplicas, st.CanaryReplicas, st.StableReadyReplicas, st.StableReplicas,
		st.ObservedGeneration, ro.Generation, ro.Annotations[rolloutsv1alpha1.AnnotationAction], st.Message)
}

// waitRollout polls the Rollout and its CloneSet until ok accepts them.
func waitRollout(ctx context.Context, t *testing.T, c client.Client, what string,
	ok func(*rolloutsv1alpha1.Rollout, *appsv1alpha1.CloneSet) bool) *rolloutsv1alpha1.Rollout {
	t.Helper()
	key := client.ObjectKey{Namespace: playground.CanaryNamespace, Name: playground.CanaryName}
	deadline := time.Now().Add(canaryTimeout)
	for {
		ro := &rolloutsv1alpha1.Rollout{}
		cs := &appsv1alpha1.CloneSet{}
		if err := c.Get(ctx, key, ro); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, key, cs); err != nil {
			t.Fatal(err)
		}
		if ro.Status.ObservedGeneration == ro.Generation && cs.Status.ObservedGeneration == cs.Generation && ok(ro, cs) {
			return ro
		}
		if time.Now().After(deadline) {
			t.Fatalf("Rollout %s not %s after %s: %s", playground.CanaryName, what, canaryTimeout, rolloutSummary(ro))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func runCLI(ctx context.Context, t *testing.T, kubeconfig string, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	argv := append([]string{"kubectl-drover", "--kubeconfig", kubeconfig, "-n", playground.CanaryNamespace}, args...)
	if code := cli.Main(ctx, argv, cli.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}); code != 0 {
		t.Fatalf("drover %s exited %d: %s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	}
	return out.String()
}

// canaryRelease is the guide's canary story on the running playground:
// everything answers v1 through the gateway; `set image` to demo:v2 pauses
// the release at 10% (step 1, the 30s pause), where about a tenth of the
// requests answer v2; `promote --full` (the action promote-full) ends it
// Healthy with every request on v2; the pods were updated in place; no
// request failed meanwhile.
func canaryRelease(ctx context.Context, t *testing.T, c client.Client, env playground.Env, guide string) {
	if env.GatewayURL == "" {
		t.Fatalf("the canary demo is off (the test runs from the repository: go and bin/traefik are there):\n%s", guide)
	}
	for _, want := range []string{
		"Canary release with real traffic",
		env.GatewayURL,
		playground.SplitCommand(env.GatewayURL),
		"bin/drover set image cloneset/web app=demo:v2",
		"bin/drover get rollout web -w",
		"bin/drover promote web",
		"bin/drover abort web",
	} {
		if !strings.Contains(guide, want) {
			t.Errorf("guide lacks %q:\n%s", want, guide)
		}
	}

	before, err := canaryPods(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	ips := map[string]string{}
	for _, p := range before {
		if other, dup := ips[p.ip]; dup {
			t.Errorf("pods %s and %s have the same IP %s", other, p.name, p.ip)
		}
		ips[p.ip] = p.name
		if !p.ready || p.ip == "" || p.image != "demo:v1" {
			t.Errorf("unexpected pod before the release: %+v", p)
		}
	}
	if len(before) != 10 {
		t.Fatalf("want 10 pods of %s, got %+v", playground.CanaryName, before)
	}

	g := &gateway{url: env.GatewayURL, hc: &http.Client{Timeout: 5 * time.Second}}
	start := time.Now()
	s := g.measure(ctx, requests)
	t.Logf("before the release: %d requests through %s: %s", requests, env.GatewayURL, s)
	if s.errors != 0 || s.versions["v1"] != requests {
		t.Fatalf("want all %d requests answered by v1: %s", requests, s)
	}
	if len(s.pods) != 10 {
		t.Errorf("want the 10 pods to answer, %d did: %s", len(s.pods), s)
	}

	bg := g.background(ctx)
	out := runCLI(ctx, t, env.Kubeconfig, "set", "image", "cloneset/web", "app=demo:v2")
	if !strings.Contains(out, "app: demo:v1 -> demo:v2") {
		t.Errorf("set image output: %s", out)
	}
	released := time.Now()
	ro := waitRollout(ctx, t, c, "paused at step 1 (the 30s pause) with weight 10 verified", func(ro *rolloutsv1alpha1.Rollout, _ *appsv1alpha1.CloneSet) bool {
		st := ro.Status
		return st.Phase == rolloutsv1alpha1.RolloutPhasePaused && ptr.Deref(st.CurrentStepIndex, -1) == 1 && st.CanaryRevision != "" &&
			st.DesiredWeight == 10 && ptr.Deref(st.VerifiedWeight, -1) == 10 && st.CanaryReadyReplicas == 1 && st.StableReadyReplicas == 9
	})
	t.Logf("step 1 (pause 30s, weight 10) reached %s after set image: %s", time.Since(released).Round(100*time.Millisecond), rolloutSummary(ro))
	// The route's status (which verifies the weight) is written a moment
	// before Traefik serves the new configuration.
	g.waitServes(ctx, t, "send some requests to v2", func(s split) bool { return s.versions["v2"] > 0 })
	s = g.measure(ctx, requests)
	t.Logf("at weight 10: %d requests: %s (canary share %.1f%%, allowed %d%%..%d%%)", requests, s,
		100*float64(s.versions["v2"])/requests, canaryMinShare, canaryMaxShare)
	if s.errors != 0 || s.versions["v1"]+s.versions["v2"] != requests {
		t.Errorf("at weight 10: want v1 and v2 answers only, no errors: %s", s)
	}
	if v2 := s.versions["v2"]; v2 < requests*canaryMinShare/100 || v2 > requests*canaryMaxShare/100 {
		t.Errorf("at weight 10: %d of %d requests went to v2, want %d%%..%d%%: %s", v2, requests, canaryMinShare, canaryMaxShare, s)
	}
	if ro := waitRollout(ctx, t, c, "still at step 1", func(*rolloutsv1alpha1.Rollout, *appsv1alpha1.CloneSet) bool { return true }); ptr.Deref(ro.Status.CurrentStepIndex, -1) != 1 {
		t.Errorf("the release left step 1 during the measurement: %s", rolloutSummary(ro))
	}

	// Skip the rest of the 30s pause and the later steps.
	out = runCLI(ctx, t, env.Kubeconfig, "promote", "web", "--full")
	if !strings.Contains(out, "promote-full requested") {
		t.Errorf("promote --full output: %s", out)
	}
	promoted := time.Now()
	ro = waitRollout(ctx, t, c, "Healthy on demo:v2", func(ro *rolloutsv1alpha1.Rollout, cs *appsv1alpha1.CloneSet) bool {
		st := ro.Status
		return st.Phase == rolloutsv1alpha1.RolloutPhaseHealthy && st.CanaryRevision == "" && st.StableRevision == cs.Status.UpdateRevision &&
			cs.Status.UpdateRevision != "" && ptr.Deref(st.VerifiedWeight, -1) == 0 && st.StableReadyReplicas == 10 &&
			cs.Status.UpdatedReadyReplicas == 10
	})
	t.Logf("Healthy on v2 %s after promote --full: %s", time.Since(promoted).Round(100*time.Millisecond), rolloutSummary(ro))
	g.waitServes(ctx, t, "answer v2 only", func(s split) bool { return s.versions["v2"] == 20 })
	s = g.measure(ctx, requests)
	t.Logf("after the promotion: %d requests: %s", requests, s)
	if s.errors != 0 || s.versions["v2"] != requests {
		t.Errorf("after the promotion: want all %d requests answered by v2: %s", requests, s)
	}
	all := bg.finish()
	t.Logf("background traffic during the release: %s", all)
	if all.errors != 0 {
		t.Errorf("requests failed during the release: %s", all)
	}
	t.Logf("canary story took %s", time.Since(start).Round(100*time.Millisecond))

	after, err := canaryPods(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("pods changed: %+v -> %+v", before, after)
	}
	for i := range after {
		a, b := after[i], before[i]
		if a.name != b.name || a.ip != b.ip || a.node != b.node || a.image != "demo:v2" || a.restarts != b.restarts+1 || !a.ready {
			t.Errorf("pod not updated in place: %+v -> %+v", b, a)
		}
	}
}
