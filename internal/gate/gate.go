// Package gate calls a Rollout's webhooks: a POST of a JSON payload that
// describes the release, with the webhook's headers, a timeout per attempt
// and a number of extra attempts. An answer in 2xx is success; anything
// else, or no answer, is failure.
//
// The caller resolves headers (Secret-backed values are read by the
// reconcile) and marks the secret ones: their values are sent but never
// appear in a Result, so a result can go to status, events and logs.
package gate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/drover-dev/drover/internal/version"
)

// DefaultTimeout bounds an attempt whose Request has no timeout.
const DefaultTimeout = 10 * time.Second

// DefaultBackoff is the pause between two attempts of one check.
const DefaultBackoff = 200 * time.Millisecond

// maxBody is how much of an answer's body is read; snippet how much of it
// a failure's message quotes.
const (
	maxBody = 4096
	snippet = 200
)

// Redacted replaces a secret value in a result's message.
const Redacted = "***"

// Payload is the JSON body a webhook receives.
type Payload struct {
	// Name and Namespace of the Rollout.
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Phase of the Rollout when the webhook is called (Healthy,
	// Progressing, Paused, Degraded).
	Phase string `json:"phase"`
	// Revision being released (for post-rollout: the one promoted or
	// aborted).
	Revision string `json:"revision"`
	// Step is the current step index (none for blue-green).
	Step *int32 `json:"step,omitempty"`
	// Type of the webhook.
	Type string `json:"type"`
	// Metadata of the webhook, as given.
	Metadata map[string]string `json:"metadata,omitempty"`
	// Event is set for an event webhook.
	Event *Event `json:"event,omitempty"`
}

// Event is an event the Rollout recorded.
type Event struct {
	// Type is Normal or Warning.
	Type    string `json:"type"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// Header is a header sent with a call. Secret marks a value read from a
// Secret: it is redacted from the result.
type Header struct {
	Name, Value string
	Secret      bool
}

// Request is one check of a webhook.
type Request struct {
	URL     string
	Headers []Header
	// Timeout of one attempt (0: DefaultTimeout).
	Timeout time.Duration
	// Retries is the number of extra attempts after a failed one.
	Retries int
	Payload Payload
	// Body, when set, is sent instead of Payload (already JSON).
	Body []byte
}

// Result is what a check found.
type Result struct {
	// OK: an attempt answered 2xx.
	OK bool
	// StatusCode of the last answer (0: none).
	StatusCode int
	// Attempts made.
	Attempts int
	// Message says what the last attempt got: the status, or the error
	// (secret header values redacted).
	Message string
}

// Caller calls webhooks. The zero value uses http.DefaultTransport and
// DefaultBackoff.
type Caller struct {
	// Client sends the requests (nil: a client on a clone of
	// http.DefaultTransport).
	Client *http.Client
	// Backoff between attempts (0: DefaultBackoff; negative: none).
	Backoff time.Duration
}

// New returns a Caller with its own transport.
func New() *Caller {
	return &Caller{Client: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}}
}

// Call checks a webhook: up to 1 + Retries attempts, each bounded by the
// timeout, until one answers 2xx or ctx ends.
func (c *Caller) Call(ctx context.Context, req Request) Result {
	body := req.Body
	if body == nil {
		var err error
		if body, err = json.Marshal(req.Payload); err != nil {
			return Result{Message: "encoding the payload: " + err.Error()}
		}
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	backoff := c.Backoff
	if backoff == 0 {
		backoff = DefaultBackoff
	}
	var res Result
	for attempt := 0; attempt <= max(0, req.Retries); attempt++ {
		if attempt > 0 && backoff > 0 {
			select {
			case <-ctx.Done():
				res.Message = redact(fmt.Sprintf("after %d attempts: %s", res.Attempts, res.Message), req.Headers)
				return res
			case <-time.After(backoff):
			}
		}
		res.Attempts++
		res.OK, res.StatusCode, res.Message = c.attempt(ctx, req, body, timeout)
		if res.OK || ctx.Err() != nil {
			break
		}
	}
	if !res.OK && res.Attempts > 1 {
		res.Message = fmt.Sprintf("after %d attempts: %s", res.Attempts, res.Message)
	}
	res.Message = redact(res.Message, req.Headers)
	return res
}

func (c *Caller) attempt(ctx context.Context, req Request, body []byte, timeout time.Duration) (ok bool, code int, msg string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, req.URL, bytes.NewReader(body))
	if err != nil {
		return false, 0, err.Error()
	}
	for _, h := range req.Headers {
		hr.Header.Add(h.Name, h.Value)
	}
	hr.Header.Set("Content-Type", "application/json")
	if hr.Header.Get("User-Agent") == "" {
		hr.Header.Set("User-Agent", "drover/"+version.Get())
	}
	client := c.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(hr)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return false, 0, fmt.Sprintf("no answer within %s", timeout)
		}
		// The URL is left out: it is in the spec, and some carry a token.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			return false, 0, uerr.Err.Error()
		}
		return false, 0, err.Error()
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	msg = "answered " + resp.Status
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return true, resp.StatusCode, msg
	}
	// The body may echo a header: redacted before it is cut, so no part
	// of a secret survives at the cut.
	if s := oneLine([]byte(redact(string(raw), req.Headers))); s != "" {
		msg += ": " + s
	}
	return false, resp.StatusCode, msg
}

// oneLine is the start of a body, on one line, valid UTF-8.
func oneLine(raw []byte) string {
	s := strings.ToValidUTF8(string(raw), "")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > snippet {
		cut := snippet
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// redact replaces the secret header values in s.
func redact(s string, headers []Header) string {
	for _, h := range headers {
		if h.Secret && h.Value != "" {
			s = strings.ReplaceAll(s, h.Value, Redacted)
		}
	}
	return s
}
