package rollout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/testenv"
)

// hookCall is a request a test webhook received.
type hookCall struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Phase     string            `json:"phase"`
	Revision  string            `json:"revision"`
	Step      *int32            `json:"step"`
	Type      string            `json:"type"`
	Metadata  map[string]string `json:"metadata"`
	Event     *struct {
		Type, Reason, Message string
	} `json:"event"`
	token string
}

// hookServer plays the webhooks: each path answers 200 when its switch is
// on, 403 otherwise; it records every call by path.
type hookServer struct {
	url   string
	mu    sync.Mutex
	calls map[string][]hookCall
	on    map[string]*atomic.Bool
}

func newHookServer(t *testing.T, paths ...string) *hookServer {
	t.Helper()
	s := &hookServer{calls: map[string][]hookCall{}, on: map[string]*atomic.Bool{}}
	for _, p := range paths {
		s.on[p] = &atomic.Bool{}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var c hookCall
		if err := json.Unmarshal(raw, &c); err != nil || r.Method != http.MethodPost {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		c.token = r.Header.Get("X-Token")
		s.mu.Lock()
		s.calls[r.URL.Path] = append(s.calls[r.URL.Path], c)
		s.mu.Unlock()
		if on, ok := s.on[r.URL.Path]; ok && on.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, "not now")
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *hookServer) got(path string) []hookCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls[path])
}

func webhook(name string, typ rolloutsv1alpha1.WebhookType, url string) rolloutsv1alpha1.RolloutWebhook {
	return rolloutsv1alpha1.RolloutWebhook{Name: name, Type: typ, URL: url}
}

// TestConfirmPromotionWebhook: a closed confirm-promotion gate holds the
// release at its last step (Paused, WebhookGate) until the webhook
// answers 200; the webhook gets the release in its payload, its
// Secret-backed header, and the post-rollout and event webhooks hear of
// the promotion.
func TestConfirmPromotionWebhook(t *testing.T) {
	hooks := newHookServer(t, "/promote", "/post", "/events")
	hooks.on["/post"].Store(true)
	hooks.on["/events"].Store(true)
	cs, ro := start(t, 2, setWeight(50))
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ro.Namespace, Name: "hook-token"},
		Data: map[string][]byte{"token": []byte("t0ps3cret")}}
	if err := k8s.Create(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	approve := webhook("approve", rolloutsv1alpha1.WebhookConfirmPromotion, hooks.url+"/promote")
	approve.Metadata = map[string]string{"team": "web"}
	approve.Headers = []rolloutsv1alpha1.HTTPHeader{{Name: "X-Token", ValueFrom: &rolloutsv1alpha1.SecretValue{
		SecretKeyRef: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "hook-token"}, Key: "token"}}}}
	testenv.Update(t, k8s, ro, func(r *rolloutsv1alpha1.Rollout) {
		r.Spec.Webhooks = []rolloutsv1alpha1.RolloutWebhook{approve,
			webhook("notify", rolloutsv1alpha1.WebhookPostRollout, hooks.url+"/post"),
			webhook("events", rolloutsv1alpha1.WebhookEvent, hooks.url+"/events")}
	})
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseHealthy)
	get(t, cs)
	stable := cs.Status.CurrentRevision

	setImage(t, cs, "app:2")
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhasePaused)
	get(t, cs)
	canary := cs.Status.UpdateRevision
	if !slices.ContainsFunc(ro.Status.PauseConditions, func(pc rolloutsv1alpha1.PauseCondition) bool {
		return pc.Reason == rolloutsv1alpha1.PauseReasonWebhookGate
	}) || !strings.Contains(ro.Status.Message, "confirm-promotion webhook approve") {
		t.Fatalf("held: pauses %+v message %q", ro.Status.PauseConditions, ro.Status.Message)
	}
	if c := meta.FindStatusCondition(ro.Status.Conditions, rolloutsv1alpha1.ConditionPaused); c == nil || c.Status != metav1.ConditionTrue || c.Reason != rolloutsv1alpha1.ReasonWaitingForGate {
		t.Fatalf("Paused condition %+v", c)
	}
	if len(ro.Status.Gates) != 1 || ro.Status.Gates[0].Name != "approve" || ro.Status.Gates[0].Open || ro.Status.Gates[0].LastCheck == nil {
		t.Fatalf("gates %+v", ro.Status.Gates)
	}
	if strings.Contains(fmt.Sprint(ro.Status), "t0ps3cret") {
		t.Fatal("the secret header value is in the status")
	}
	calls := hooks.got("/promote")
	if len(calls) == 0 {
		t.Fatal("the confirm-promotion webhook was not called")
	}
	c := calls[0]
	if c.Name != "web" || c.Namespace != ro.Namespace || c.Revision != canary || ptr.Deref(c.Step, -1) != 1 ||
		c.Type != "confirm-promotion" || c.Metadata["team"] != "web" || c.Phase == "" || c.token != "t0ps3cret" {
		t.Fatalf("payload %+v", c)
	}
	// The gate holds: no promotion while it answers 403.
	time.Sleep(2 * time.Second)
	get(t, ro)
	if counts, _ := revisions(t, cs); counts[canary] != 1 || counts[stable] != 1 || ro.Status.StableRevision != stable || ro.Status.Phase != rolloutsv1alpha1.RolloutPhasePaused {
		t.Fatalf("moved past a closed gate: pods %v status %+v", counts, ro.Status)
	}
	if len(hooks.got("/post")) != 0 {
		t.Fatal("post-rollout called before the release ended")
	}

	hooks.on["/promote"].Store(true)
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseHealthy)
	if counts, _ := revisions(t, cs); counts[canary] != 2 || ro.Status.StableRevision != canary {
		t.Fatalf("after the gate opened: pods %v status %+v", counts, ro.Status)
	}
	testenv.Eventually(t, "post-rollout webhook", func() (bool, string) {
		return len(hooks.got("/post")) > 0, "not called"
	})
	time.Sleep(time.Second)
	if post := hooks.got("/post"); len(post) != 1 || post[0].Revision != canary || post[0].Type != "post-rollout" {
		t.Fatalf("post-rollout calls %+v", post)
	}
	testenv.Eventually(t, "events sent to the event webhook", func() (bool, string) {
		var reasons []string
		for _, e := range hooks.got("/events") {
			if e.Event != nil && e.Type == "event" {
				reasons = append(reasons, e.Event.Reason)
			}
		}
		return slices.Contains(reasons, "ReleaseStarted") && slices.Contains(reasons, "Promoted"), fmt.Sprint(reasons)
	})
}

// TestRollbackWebhook: a rollback webhook answering 200 aborts the release.
func TestRollbackWebhook(t *testing.T) {
	hooks := newHookServer(t, "/rollback")
	cs, ro := start(t, 2, setWeight(50), pause())
	testenv.Update(t, k8s, ro, func(r *rolloutsv1alpha1.Rollout) {
		r.Spec.Webhooks = []rolloutsv1alpha1.RolloutWebhook{webhook("alerts", rolloutsv1alpha1.WebhookRollback, hooks.url+"/rollback")}
	})
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseHealthy)
	get(t, cs)
	stable := cs.Status.CurrentRevision
	setImage(t, cs, "app:2")
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhasePaused)
	if len(hooks.got("/rollback")) == 0 {
		t.Fatal("the rollback webhook was not polled")
	}
	hooks.on["/rollback"].Store(true)
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseDegraded)
	if ro.Status.AbortMessage != "rollback webhook alerts answered 2xx" {
		t.Fatalf("abort message %q", ro.Status.AbortMessage)
	}
	testenv.Eventually(t, "every pod back on the stable revision", func() (bool, string) {
		counts, _ := revisions(t, cs)
		return counts[stable] == 2, fmt.Sprint(counts)
	})
}

// TestWebhookValidation: the schema refuses a URL that is not http(s), a
// timeout out of bounds and an unknown type.
func TestWebhookValidation(t *testing.T) {
	ns := testenv.Namespace(t, k8s, "ro-")
	cases := []struct {
		name string
		hook rolloutsv1alpha1.RolloutWebhook
		want []string
	}{
		{"ftp url", webhook("a", rolloutsv1alpha1.WebhookRollout, "ftp://x"), []string{"url", "must start with http:// or https://"}},
		{"zero timeout", rolloutsv1alpha1.RolloutWebhook{Name: "a", Type: rolloutsv1alpha1.WebhookRollout, URL: "http://x", Timeout: &metav1.Duration{}},
			[]string{"timeout", "more than 0s"}},
		{"unknown type", webhook("a", "pre-flight", "http://x"), []string{"type", "Unsupported value"}},
		{"bad name", webhook("A_b", rolloutsv1alpha1.WebhookRollout, "http://x"), []string{"name"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ro := newRollout(ns, fmt.Sprintf("hook-%d", i), "web", setWeight(10))
			ro.Spec.Webhooks = []rolloutsv1alpha1.RolloutWebhook{c.hook}
			testenv.AssertInvalid(t, k8s.Create(context.Background(), ro), c.want...)
		})
	}
	ro := newRollout(ns, "hook-ok", "web", setWeight(10))
	ro.Spec.Webhooks = []rolloutsv1alpha1.RolloutWebhook{webhook("a", rolloutsv1alpha1.WebhookRollout, "https://x/check")}
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	if h := ro.Spec.Webhooks[0]; h.Timeout == nil || h.Timeout.Duration != 10*time.Second || ptr.Deref(h.Retries, -1) != 0 ||
		ptr.Deref(ro.Spec.WebhookFailureThreshold, -1) != 3 {
		t.Fatalf("defaults: %+v threshold %v", h, ro.Spec.WebhookFailureThreshold)
	}
}
