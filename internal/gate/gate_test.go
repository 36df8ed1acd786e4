package gate

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/utils/ptr"
)

// recorder is a webhook that answers status codes in turn (the last one
// repeating) and records what it received.
type recorder struct {
	mu      sync.Mutex
	codes   []int
	body    string
	calls   int
	bodies  []string
	headers []http.Header
	methods []string
	delay   time.Duration
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	i := min(rec.calls, len(rec.codes)-1)
	rec.calls++
	rec.bodies = append(rec.bodies, string(raw))
	rec.headers = append(rec.headers, r.Header.Clone())
	rec.methods = append(rec.methods, r.Method)
	code, body, delay := rec.codes[i], rec.body, rec.delay
	rec.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.calls
}

func serve(t *testing.T, rec *recorder) string {
	t.Helper()
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return srv.URL
}

func caller() *Caller {
	c := New()
	c.Backoff = -1
	return c
}

func TestPayloadAndHeaders(t *testing.T) {
	rec := &recorder{codes: []int{200}}
	url := serve(t, rec)
	res := caller().Call(context.Background(), Request{
		URL: url + "/hook",
		Headers: []Header{
			{Name: "X-Team", Value: "web"},
			{Name: "Authorization", Value: "Bearer s3cret", Secret: true},
		},
		Payload: Payload{Name: "web", Namespace: "shop", Phase: "Progressing", Revision: "web-2", Step: ptr.To[int32](2),
			Type: "confirm-promotion", Metadata: map[string]string{"env": "prod"}},
	})
	if !res.OK || res.StatusCode != 200 || res.Attempts != 1 || res.Message != "answered 200 OK" {
		t.Fatalf("result %+v", res)
	}
	want := `{"name":"web","namespace":"shop","phase":"Progressing","revision":"web-2","step":2,"type":"confirm-promotion","metadata":{"env":"prod"}}`
	if rec.bodies[0] != want {
		t.Fatalf("payload\n got %s\nwant %s", rec.bodies[0], want)
	}
	h := rec.headers[0]
	if rec.methods[0] != http.MethodPost || h.Get("Content-Type") != "application/json" || h.Get("X-Team") != "web" ||
		h.Get("Authorization") != "Bearer s3cret" || !strings.HasPrefix(h.Get("User-Agent"), "drover/") {
		t.Fatalf("method %s headers %v", rec.methods[0], h)
	}
}

func TestEventPayloadWithoutStep(t *testing.T) {
	rec := &recorder{codes: []int{204}}
	url := serve(t, rec)
	res := caller().Call(context.Background(), Request{URL: url, Payload: Payload{Name: "web", Namespace: "shop", Phase: "Healthy",
		Revision: "web-1", Type: "event", Event: &Event{Type: "Normal", Reason: "Promoted", Message: "revision web-2 is stable"}}})
	if !res.OK {
		t.Fatalf("result %+v", res)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(rec.bodies[0]), &got); err != nil {
		t.Fatal(err)
	}
	if _, ok := got["step"]; ok {
		t.Fatalf("a payload without a step carries one: %s", rec.bodies[0])
	}
	if _, ok := got["metadata"]; ok {
		t.Fatalf("a payload without metadata carries it: %s", rec.bodies[0])
	}
	ev, _ := got["event"].(map[string]any)
	if ev["type"] != "Normal" || ev["reason"] != "Promoted" || ev["message"] != "revision web-2 is stable" {
		t.Fatalf("event %s", rec.bodies[0])
	}
}

func TestNon2xxFailsAndQuotesTheBodyRedacted(t *testing.T) {
	rec := &recorder{codes: []int{http.StatusForbidden}, body: "not yet\n(token s3cret rejected)"}
	url := serve(t, rec)
	res := caller().Call(context.Background(), Request{URL: url, Headers: []Header{{Name: "X-Token", Value: "s3cret", Secret: true}}})
	if res.OK || res.StatusCode != 403 || res.Attempts != 1 {
		t.Fatalf("result %+v", res)
	}
	if res.Message != "answered 403 Forbidden: not yet (token *** rejected)" {
		t.Fatalf("message %q", res.Message)
	}
}

func TestRetriesUntil2xx(t *testing.T) {
	rec := &recorder{codes: []int{500, 503, 200}}
	url := serve(t, rec)
	res := caller().Call(context.Background(), Request{URL: url, Retries: 5})
	if !res.OK || res.Attempts != 3 || rec.count() != 3 {
		t.Fatalf("result %+v after %d calls", res, rec.count())
	}
}

func TestRetriesExhausted(t *testing.T) {
	rec := &recorder{codes: []int{500}}
	url := serve(t, rec)
	res := caller().Call(context.Background(), Request{URL: url, Retries: 2})
	if res.OK || res.Attempts != 3 || rec.count() != 3 || res.StatusCode != 500 {
		t.Fatalf("result %+v after %d calls", res, rec.count())
	}
	if !strings.HasPrefix(res.Message, "after 3 attempts: answered 500") {
		t.Fatalf("message %q", res.Message)
	}
	// No retries: one call.
	rec2 := &recorder{codes: []int{500}}
	url2 := serve(t, rec2)
	if res := caller().Call(context.Background(), Request{URL: url2}); res.Attempts != 1 || rec2.count() != 1 {
		t.Fatalf("retries 0: %+v after %d calls", res, rec2.count())
	}
}

func TestTimeout(t *testing.T) {
	rec := &recorder{codes: []int{200}, delay: 5 * time.Second}
	url := serve(t, rec)
	start := time.Now()
	res := caller().Call(context.Background(), Request{URL: url, Timeout: 100 * time.Millisecond, Retries: 1})
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the timeout did not bound the call: %s", took)
	}
	if res.OK || res.StatusCode != 0 || res.Attempts != 2 || res.Message != "after 2 attempts: no answer within 100ms" {
		t.Fatalf("result %+v", res)
	}
}

func TestConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	res := caller().Call(context.Background(), Request{URL: "http://" + addr + "/hook", Retries: 1,
		Headers: []Header{{Name: "Authorization", Value: "Bearer s3cret", Secret: true}}})
	if res.OK || res.StatusCode != 0 || res.Attempts != 2 {
		t.Fatalf("result %+v", res)
	}
	if !strings.Contains(res.Message, "connection refused") || strings.Contains(res.Message, "s3cret") || strings.Contains(res.Message, "/hook") {
		t.Fatalf("message %q", res.Message)
	}
}

func TestContextEndsTheRetries(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(500)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	c := New()
	c.Backoff = time.Second
	res := c.Call(ctx, Request{URL: srv.URL, Retries: 10})
	if res.OK || calls.Load() != 1 || !strings.Contains(res.Message, "answered 500") {
		t.Fatalf("result %+v after %d calls", res, calls.Load())
	}
}

func TestBadURL(t *testing.T) {
	res := caller().Call(context.Background(), Request{URL: "http://[::1"})
	if res.OK || res.Message == "" {
		t.Fatalf("result %+v", res)
	}
}

func TestBodyReplacesThePayload(t *testing.T) {
	rec := &recorder{codes: []int{200}}
	url := serve(t, rec)
	res := caller().Call(context.Background(), Request{URL: url, Body: []byte(`{"text":"hi"}`),
		Payload: Payload{Name: "ignored"}})
	if !res.OK || rec.bodies[0] != `{"text":"hi"}` {
		t.Fatalf("result %+v, body %s", res, rec.bodies[0])
	}
}
