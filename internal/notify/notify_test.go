package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/gate"
)

var at = time.Date(2026, 12, 3, 10, 4, 12, 0, time.UTC)

func aborted() Message {
	return Message{Trigger: rolloutsv1alpha1.TriggerAborted, Reason: "AnalysisFailed", Warning: true,
		Text:    "release of web-2 aborted: step analysis web-2-1 Failed: success-rate: 0.8 (failureLimit 1)",
		Rollout: "web", Namespace: "shop", Phase: "Degraded", Revision: "web-2", StableRevision: "web-1",
		Step: ptr.To[int32](1), Steps: 4, Weight: ptr.To[int32](0), Time: at}
}

func decode(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	return m
}

func TestSlackBody(t *testing.T) {
	raw, err := Body(Receiver{Type: rolloutsv1alpha1.NotificationSlack, Channel: "#deploys",
		Metadata: map[string]string{"team": "payments", "env": "prod"}}, aborted())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"channel":"#deploys","username":"Drover","text":"shop/web: release of web-2 aborted",` +
		`"attachments":[{"fallback":"shop/web: release of web-2 aborted: release of web-2 aborted: step analysis web-2-1 Failed: success-rate: 0.8 (failureLimit 1)",` +
		`"color":"danger","title":"shop/web: release of web-2 aborted",` +
		`"text":"release of web-2 aborted: step analysis web-2-1 Failed: success-rate: 0.8 (failureLimit 1)",` +
		`"fields":[{"title":"Rollout","value":"shop/web","short":true},{"title":"Revision","value":"web-2","short":true},` +
		`{"title":"Stable","value":"web-1","short":true},{"title":"Step","value":"2/4","short":true},` +
		`{"title":"Weight","value":"0%","short":true},{"title":"Phase","value":"Degraded","short":true},` +
		`{"title":"env","value":"prod","short":true},{"title":"team","value":"payments","short":true}],` +
		`"footer":"Drover · Aborted","ts":1796292252}]}`
	if string(raw) != want {
		t.Fatalf("slack body\n got %s\nwant %s", raw, want)
	}
	// Without a channel the webhook's own channel is used: no key at all.
	raw, _ = Body(Receiver{Type: rolloutsv1alpha1.NotificationSlack}, aborted())
	if _, ok := decode(t, raw)["channel"]; ok {
		t.Fatalf("channel sent without one set: %s", raw)
	}
}

func TestTeamsBody(t *testing.T) {
	m := aborted()
	m.Trigger, m.Warning, m.Phase = rolloutsv1alpha1.TriggerPromoted, false, "Healthy"
	m.Text, m.Step = "revision web-2 is stable (was web-1)", ptr.To[int32](4)
	raw, err := Body(Receiver{Type: rolloutsv1alpha1.NotificationTeams}, m)
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, raw)
	if got["type"] != "message" || got["summary"] != "shop/web: web-2 promoted" {
		t.Fatalf("teams envelope %s", raw)
	}
	att := got["attachments"].([]any)[0].(map[string]any)
	if att["contentType"] != "application/vnd.microsoft.card.adaptive" {
		t.Fatalf("attachment %v", att)
	}
	card := att["content"].(map[string]any)
	if card["type"] != "AdaptiveCard" || card["version"] != "1.4" {
		t.Fatalf("card %v", card)
	}
	body := card["body"].([]any)
	title := body[0].(map[string]any)
	if title["text"] != "shop/web: web-2 promoted" || title["color"] != "Good" || title["weight"] != "Bolder" {
		t.Fatalf("title block %v", title)
	}
	if body[1].(map[string]any)["text"] != "revision web-2 is stable (was web-1)" {
		t.Fatalf("text block %v", body[1])
	}
	var facts []string
	for _, f := range body[2].(map[string]any)["facts"].([]any) {
		f := f.(map[string]any)
		facts = append(facts, f["title"].(string)+"="+f["value"].(string))
	}
	// Step 4 of 4 steps is past the last one: shown as the last.
	if strings.Join(facts, ",") != "Rollout=shop/web,Revision=web-2,Stable=web-1,Step=4/4,Weight=0%,Phase=Healthy" {
		t.Fatalf("facts %v", facts)
	}
	if !strings.Contains(body[3].(map[string]any)["text"].(string), "2026-12-03T10:04:12Z") {
		t.Fatalf("footer %v", body[3])
	}
}

func TestWebhookBody(t *testing.T) {
	m := aborted()
	m.Weight = nil
	raw, err := Body(Receiver{Type: rolloutsv1alpha1.NotificationWebhook, Metadata: map[string]string{"env": "prod"}}, m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"web","namespace":"shop","trigger":"Aborted","type":"Warning","reason":"AnalysisFailed",` +
		`"message":"release of web-2 aborted: step analysis web-2-1 Failed: success-rate: 0.8 (failureLimit 1)",` +
		`"title":"shop/web: release of web-2 aborted","phase":"Degraded","revision":"web-2","stableRevision":"web-1",` +
		`"step":1,"steps":4,"time":"2026-12-03T10:04:12Z","metadata":{"env":"prod"}}`
	if string(raw) != want {
		t.Fatalf("webhook body\n got %s\nwant %s", raw, want)
	}
}

func TestTitlesAndColours(t *testing.T) {
	for _, c := range []struct {
		trigger rolloutsv1alpha1.NotificationTrigger
		title   string
		colour  string
	}{
		{rolloutsv1alpha1.TriggerStepCompleted, "shop/web: step 2/4 completed", "good"},
		{rolloutsv1alpha1.TriggerPaused, "shop/web: release of web-2 paused", "warning"},
		{rolloutsv1alpha1.TriggerPromoted, "shop/web: web-2 promoted", "good"},
		{rolloutsv1alpha1.TriggerAborted, "shop/web: release of web-2 aborted", "danger"},
		{rolloutsv1alpha1.TriggerAnalysisFailed, "shop/web: analysis of web-2 failed", "danger"},
		{rolloutsv1alpha1.TriggerAnalysisInconclusive, "shop/web: analysis of web-2 inconclusive, waiting for a decision", "warning"},
	} {
		m := aborted()
		m.Trigger, m.Warning = c.trigger, false
		if got := Title(m); got != c.title {
			t.Errorf("%s: title %q, want %q", c.trigger, got, c.title)
		}
		if got := severity(m); got != c.colour {
			t.Errorf("%s: colour %q, want %q", c.trigger, got, c.colour)
		}
	}
	m := aborted()
	m.Step, m.Steps = nil, 0
	m.Trigger = rolloutsv1alpha1.TriggerStepCompleted
	if got := Title(m); got != "shop/web: step - completed" {
		t.Errorf("blue-green title %q", got)
	}
	if _, err := Body(Receiver{Type: "pager"}, m); err == nil || !strings.Contains(err.Error(), `"pager"`) {
		t.Errorf("unknown type: %v", err)
	}
}

// receiver records bodies and answers the codes in turn (the last one
// repeating); hold, when set, blocks every answer until closed.
type receiver struct {
	mu     sync.Mutex
	codes  []int
	bodies []string
	hold   chan struct{}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	if rc.hold != nil {
		<-rc.hold
	}
	rc.mu.Lock()
	code := rc.codes[min(len(rc.bodies), len(rc.codes)-1)]
	rc.bodies = append(rc.bodies, string(raw))
	rc.mu.Unlock()
	w.WriteHeader(code)
}

func (rc *receiver) got() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.bodies...)
}

// heldWebhook is a webhook receiver that answers 200 once its hold channel
// is closed, and a Sender without retry pauses that delivers to it.
func heldWebhook(t *testing.T) (*receiver, *Sender, Receiver) {
	t.Helper()
	rc := &receiver{codes: []int{200}, hold: make(chan struct{})}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rc, NewSender(-1), Receiver{Name: "hook", Type: rolloutsv1alpha1.NotificationWebhook, URL: srv.URL}
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func texts(t *testing.T, bodies []string) []string {
	var out []string
	for _, b := range bodies {
		out = append(out, decode(t, []byte(b))["message"].(string))
	}
	return out
}

func TestSenderKeepsTheOrderAndRetries(t *testing.T) {
	rc := &receiver{codes: []int{500, 200}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	s := NewSender(-1)
	r := Receiver{Name: "hook", Type: rolloutsv1alpha1.NotificationWebhook, URL: srv.URL}
	var msgs []Message
	for _, text := range []string{"one", "two", "three"} {
		m := aborted()
		m.Text = text
		msgs = append(msgs, m)
	}
	var mu sync.Mutex
	var failures []string
	var delivered int
	report := func(m Message, ok bool, reason string) {
		mu.Lock()
		defer mu.Unlock()
		if ok {
			delivered++
			return
		}
		failures = append(failures, reason)
	}
	s.Send(context.Background(), "shop/web/hook", r, msgs[:2], report)
	s.Send(context.Background(), "shop/web/hook", r, msgs[2:], report)
	eventually(t, "three messages", func() bool { return len(rc.got()) == 4 })
	// The first attempt of "one" got a 500 and was tried again.
	if got := strings.Join(texts(t, rc.got()), ","); got != "one,one,two,three" {
		t.Fatalf("received %s", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failures) != 0 || delivered != 3 {
		t.Fatalf("failures %v, %d delivered", failures, delivered)
	}
}

func TestSenderGivesUpAfterThreeAttemptsAndRedactsTheURL(t *testing.T) {
	rc := &receiver{codes: []int{503}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	s := NewSender(-1)
	url := srv.URL + "/services/T000/B000/XXXXSECRET"
	r := Receiver{Name: "slack", Type: rolloutsv1alpha1.NotificationSlack, URL: url,
		Headers: []gate.Header{{Name: "Authorization", Value: "Bearer tok", Secret: true}}}
	done := make(chan string, 1)
	s.Send(context.Background(), "k", r, []Message{aborted()}, func(m Message, ok bool, reason string) { done <- fmt.Sprint(ok, " ", reason) })
	reason := <-done
	if len(rc.got()) != Attempts || Attempts != 3 {
		t.Fatalf("%d attempts", len(rc.got()))
	}
	if reason != "false after 3 attempts: answered 503 Service Unavailable" {
		t.Fatalf("reason %q", reason)
	}
	// An unreachable receiver: the error names neither URL nor token.
	srv.Close()
	s.Send(context.Background(), "k", r, []Message{aborted()}, func(m Message, ok bool, reason string) { done <- fmt.Sprint(ok, " ", reason) })
	reason = <-done
	if strings.Contains(reason, "XXXXSECRET") || strings.Contains(reason, "tok") || !strings.HasPrefix(reason, "false after 3 attempts") {
		t.Fatalf("reason %q", reason)
	}
}

func TestSenderDropsTheOldestBeyondTheQueue(t *testing.T) {
	rc, s, r := heldWebhook(t)
	var mu sync.Mutex
	var dropped []string
	failed := func(m Message, ok bool, reason string) {
		if !ok {
			mu.Lock()
			dropped = append(dropped, m.Text+": "+reason)
			mu.Unlock()
		}
	}
	first := aborted()
	first.Text = "first"
	s.Send(context.Background(), "k", r, []Message{first}, failed)
	// "first" is being delivered (held by the receiver); MaxQueue+2 more
	// queue behind it, and the two oldest of those are dropped.
	var more []Message
	for i := range MaxQueue + 2 {
		m := aborted()
		m.Text = "m" + string(rune('0'+i%10))
		if i < 2 {
			m.Text = []string{"old0", "old1"}[i]
		}
		more = append(more, m)
	}
	eventually(t, "the first delivery to start", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.queues["k"].items) == 0
	})
	s.Send(context.Background(), "k", r, more, failed)
	close(rc.hold)
	eventually(t, "every kept message", func() bool { return len(rc.got()) == 1+MaxQueue })
	mu.Lock()
	defer mu.Unlock()
	want := []string{"old0: dropped: more than 64 messages waiting for the receiver", "old1: dropped: more than 64 messages waiting for the receiver"}
	if strings.Join(dropped, "|") != strings.Join(want, "|") {
		t.Fatalf("dropped %v", dropped)
	}
	if got := texts(t, rc.got()); got[0] != "first" || got[1] != "m2" {
		t.Fatalf("received %v", got[:2])
	}
	eventually(t, "the queue to go", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.queues) == 0
	})
}

// A stopping manager waits for the queued messages (Start), but not
// beyond its context.
func TestStartDrainsAtShutdown(t *testing.T) {
	rc, s, r := heldWebhook(t)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatalf("nothing queued: %v", err)
	}
	s.Send(context.Background(), "a", r, []Message{aborted(), aborted()}, nil)
	s.Send(context.Background(), "b", r, []Message{aborted()}, nil)
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Flush(short); err == nil || !strings.Contains(err.Error(), "2 receivers still have messages") {
		t.Fatalf("flush while the receiver holds: %v", err)
	}
	stop, shutdown := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(stop) }()
	shutdown()
	select {
	case err := <-done:
		t.Fatalf("Start returned (%v) before the queued messages were delivered", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(rc.hold)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(rc.got()); n != 3 {
		t.Fatalf("%d messages delivered before Start returned, want 3", n)
	}
	if s.NeedLeaderElection() {
		t.Fatal("a replica without the lease must still deliver what it queued")
	}
}
