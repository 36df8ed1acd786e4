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
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/testenv"
)

// receivers plays Slack, Teams and a generic webhook: every path records
// the JSON bodies and headers it got; /broken answers 500.
type receivers struct {
	url     string
	mu      sync.Mutex
	bodies  map[string][]map[string]any
	headers map[string][]http.Header
}

func newReceivers(t *testing.T) *receivers {
	t.Helper()
	rc := &receivers{bodies: map[string][]map[string]any{}, headers: map[string][]http.Header{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		rc.bodies[r.URL.Path] = append(rc.bodies[r.URL.Path], body)
		rc.headers[r.URL.Path] = append(rc.headers[r.URL.Path], r.Header.Clone())
		rc.mu.Unlock()
		if r.URL.Path == "/broken" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	rc.url = srv.URL
	return rc
}

func (rc *receivers) got(path string) []map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.bodies[path])
}

// triggersOf is what each body of a generic webhook was sent for.
func triggersOf(bodies []map[string]any) []string {
	var out []string
	for _, b := range bodies {
		out = append(out, fmt.Sprint(b["trigger"]))
	}
	return out
}

// slackTitles is the attachment colour and title of each Slack body.
func slackTitles(bodies []map[string]any) []string {
	var out []string
	for _, b := range bodies {
		a := b["attachments"].([]any)[0].(map[string]any)
		out = append(out, fmt.Sprintf("%s %s %s", b["channel"], a["color"], a["title"]))
	}
	return out
}

// teamsTitles is the first text block of each Teams card.
func teamsTitles(bodies []map[string]any) []string {
	var out []string
	for _, b := range bodies {
		a := b["attachments"].([]any)[0].(map[string]any)
		if a["contentType"] != "application/vnd.microsoft.card.adaptive" {
			out = append(out, "not an adaptive card")
			continue
		}
		block := a["content"].(map[string]any)["body"].([]any)[0].(map[string]any)
		out = append(out, fmt.Sprint(block["text"]))
	}
	return out
}

func secretRef(name, key string) *rolloutsv1alpha1.SecretValue {
	return &rolloutsv1alpha1.SecretValue{SecretKeyRef: corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}}
}

// notificationEvents are the NotificationFailed events of the Rollout.
func notificationEvents(t *testing.T, ro *rolloutsv1alpha1.Rollout) []string {
	t.Helper()
	var list eventsv1.EventList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ro.Namespace)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Name == ro.Name && e.Reason == "NotificationFailed" && e.Type == corev1.EventTypeWarning {
			out = append(out, e.Note)
		}
	}
	slices.Sort(out)
	return out
}

// TestNotifications: a release promoted and the next one aborted by its
// analysis are told to Slack (Promoted, Aborted), Teams (Paused,
// AnalysisFailed; URL from a Secret) and a generic webhook (every
// trigger, in order, once each, with a header from a Secret). A receiver
// answering 500 is tried three times and reported by a NotificationFailed
// event, as is one whose URL Secret is missing; neither holds the
// release, and no secret value reaches an event.
func TestNotifications(t *testing.T) {
	rc := newReceivers(t)
	cs, ro := start(t, 2, setWeight(50), pause(), rolloutsv1alpha1.CanaryStep{Analysis: analysisOn("success-rate")})
	ns := ro.Namespace
	for _, o := range []client.Object{
		successRate(ns),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"},
			Data: map[string][]byte{"teams": []byte(rc.url + "/teams"), "token": []byte("t0ps3cret")}},
	} {
		if err := k8s.Create(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Update(t, k8s, ro, func(r *rolloutsv1alpha1.Rollout) {
		r.Spec.Notifications = []rolloutsv1alpha1.RolloutNotification{
			{Name: "slack", Type: rolloutsv1alpha1.NotificationSlack, URL: rc.url + "/slack", Channel: "#deploys",
				On: []rolloutsv1alpha1.NotificationTrigger{rolloutsv1alpha1.TriggerPromoted, rolloutsv1alpha1.TriggerAborted}},
			{Name: "teams", Type: rolloutsv1alpha1.NotificationTeams, URLFrom: secretRef("chat", "teams"),
				On: []rolloutsv1alpha1.NotificationTrigger{rolloutsv1alpha1.TriggerPaused, rolloutsv1alpha1.TriggerAnalysisFailed}},
			{Name: "audit", Type: rolloutsv1alpha1.NotificationWebhook, URL: rc.url + "/hook",
				Metadata: map[string]string{"team": "web"},
				Headers:  []rolloutsv1alpha1.HTTPHeader{{Name: "X-Token", ValueFrom: secretRef("chat", "token")}}},
			{Name: "broken", Type: rolloutsv1alpha1.NotificationWebhook, URL: rc.url + "/broken",
				On: []rolloutsv1alpha1.NotificationTrigger{rolloutsv1alpha1.TriggerPromoted}},
			{Name: "unread", Type: rolloutsv1alpha1.NotificationSlack, URLFrom: secretRef("nope", "url"),
				On: []rolloutsv1alpha1.NotificationTrigger{rolloutsv1alpha1.TriggerPromoted}},
		}
	})
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseHealthy)
	stable := ro.Status.StableRevision

	// Release 1: step 0, the pause (promoted by a user), the analysis
	// (successful): promoted.
	setImage(t, cs, "app:2")
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhasePaused)
	canary := ro.Status.CanaryRevision
	action(t, ro, rolloutsv1alpha1.ActionPromote)
	setRunPhase(t, waitRun(t, ro, rolloutsv1alpha1.AnalysisKindStep), rolloutsv1alpha1.AnalysisPhaseSuccessful, "")
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseHealthy)

	// Release 2: aborted by its analysis.
	setImage(t, cs, "app:3")
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhasePaused)
	bad := ro.Status.CanaryRevision
	action(t, ro, rolloutsv1alpha1.ActionPromote)
	setRunPhase(t, waitRun(t, ro, rolloutsv1alpha1.AnalysisKindStep), rolloutsv1alpha1.AnalysisPhaseFailed, "success-rate: 0.62 is not >= 0.99")
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseDegraded)

	want := []string{"StepCompleted", "Paused", "StepCompleted", "Promoted", "StepCompleted", "Paused", "AnalysisFailed", "Aborted"}
	testenv.Eventually(t, "the generic webhook hears every trigger", func() (bool, string) {
		got := triggersOf(rc.got("/hook"))
		// The user's promote of the pause step is StepSkipped (not a
		// trigger); the analysis step's completion is StepCompleted.
		return slices.Equal(got, want), fmt.Sprint(got)
	})
	hook := rc.got("/hook")
	first, promoted, aborted := hook[0], hook[3], hook[7]
	if first["name"] != "web" || first["namespace"] != ns || first["revision"] != canary || first["stableRevision"] != stable ||
		first["step"] != float64(0) || first["steps"] != float64(3) || first["type"] != "Normal" ||
		first["metadata"].(map[string]any)["team"] != "web" || !strings.HasPrefix(fmt.Sprint(first["message"]), "step 0 completed") {
		t.Fatalf("first webhook body %v", first)
	}
	if promoted["revision"] != canary || promoted["stableRevision"] != canary || promoted["phase"] != "Healthy" ||
		promoted["title"] != fmt.Sprintf("%s/web: %s promoted", ns, canary) {
		t.Fatalf("promoted body %v", promoted)
	}
	if aborted["revision"] != bad || aborted["type"] != "Warning" || aborted["phase"] != "Degraded" ||
		!strings.Contains(fmt.Sprint(aborted["message"]), "0.62") {
		t.Fatalf("aborted body %v", aborted)
	}
	rc.mu.Lock()
	for _, h := range rc.headers["/hook"] {
		if h.Get("X-Token") != "t0ps3cret" {
			t.Errorf("header X-Token %q", h.Get("X-Token"))
		}
	}
	rc.mu.Unlock()

	testenv.Eventually(t, "slack and teams", func() (bool, string) {
		return len(rc.got("/slack")) == 2 && len(rc.got("/teams")) == 3,
			fmt.Sprint(slackTitles(rc.got("/slack")), teamsTitles(rc.got("/teams")))
	})
	wantSlack := []string{
		fmt.Sprintf("#deploys good %s/web: %s promoted", ns, canary),
		fmt.Sprintf("#deploys danger %s/web: release of %s aborted", ns, bad),
	}
	if got := slackTitles(rc.got("/slack")); !slices.Equal(got, wantSlack) {
		t.Fatalf("slack got %q, want %q", got, wantSlack)
	}
	wantTeams := []string{
		fmt.Sprintf("%s/web: release of %s paused", ns, canary),
		fmt.Sprintf("%s/web: release of %s paused", ns, bad),
		fmt.Sprintf("%s/web: analysis of %s failed", ns, bad),
	}
	if got := teamsTitles(rc.got("/teams")); !slices.Equal(got, wantTeams) {
		t.Fatalf("teams got %q, want %q", got, wantTeams)
	}

	wantEvents := []string{
		"notification broken (webhook) of Promoted not delivered: after 3 attempts: answered 500 Internal Server Error",
		"notification unread (slack) of Promoted not delivered: urlFrom: reading secret nope: secrets \"nope\" not found",
	}
	testenv.Eventually(t, "NotificationFailed events", func() (bool, string) {
		got := notificationEvents(t, ro)
		return slices.Equal(got, wantEvents), fmt.Sprintf("%q (broken got %d)", got, len(rc.got("/broken")))
	})
	if n := len(rc.got("/broken")); n != 3 {
		t.Fatalf("the broken receiver got %d attempts, want 3", n)
	}
	// Nothing is sent twice, and nothing more arrives.
	time.Sleep(time.Second)
	if got := triggersOf(rc.got("/hook")); !slices.Equal(got, want) {
		t.Fatalf("later, the webhook got %v", got)
	}
	for _, c := range []struct {
		notification, result string
		want                 float64
	}{{"audit", "delivered", 8}, {"slack", "delivered", 2}, {"teams", "delivered", 3}, {"broken", "failed", 1}, {"unread", "failed", 1}, {"audit", "failed", 0}} {
		if got := notificationCount(t, ns, c.notification, c.result); got != c.want {
			t.Errorf("drover_rollout_notifications_total{notification=%q,result=%q} = %v, want %v", c.notification, c.result, got, c.want)
		}
	}
	if strings.Contains(fmt.Sprint(notificationEvents(t, ro)), "t0ps3cret") || strings.Contains(fmt.Sprint(notificationEvents(t, ro)), rc.url) {
		t.Fatal("an event names a secret or a URL")
	}
}

// notificationCount reads drover_rollout_notifications_total from the
// manager's registry (the manager runs in the test's process).
func notificationCount(t *testing.T, ns, notification, result string) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "drover_rollout_notifications_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] == ns && labels["notification"] == notification && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
