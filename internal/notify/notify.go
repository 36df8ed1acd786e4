// Package notify tells people about a release: it formats a moment of a
// Rollout (a Message) for a receiver (Slack incoming webhook, Microsoft
// Teams workflow webhook, or Drover's own JSON to any HTTP endpoint) and
// delivers the messages in the background, in order per receiver, with
// retries. A message that cannot be delivered is reported to the caller
// and dropped: notifications never hold a release.
package notify

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/gate"
)

// Attempts is how many times a message is tried before it is given up.
const Attempts = 3

// DefaultBackoff is the pause between two attempts.
const DefaultBackoff = time.Second

// MaxQueue bounds the messages waiting for one receiver; beyond it the
// oldest are dropped (and reported).
const MaxQueue = 64

// DrainTimeout bounds how long a stopping manager waits for the queued
// messages (Start).
const DrainTimeout = 15 * time.Second

// Message is one moment of a release.
type Message struct {
	Trigger rolloutsv1alpha1.NotificationTrigger
	// Reason and Text are those of the Rollout's event.
	Reason, Text string
	// Warning: the event is a Warning (abort, failed analysis).
	Warning bool
	// Rollout and Namespace name the Rollout.
	Rollout, Namespace string
	// Phase of the Rollout once the moment was recorded.
	Phase string
	// Revision being released (or, when none is, the stable one) and the
	// stable revision.
	Revision, StableRevision string
	// Step is the current step index; Steps the number of steps (0 for
	// blue-green).
	Step  *int32
	Steps int32
	// Weight is the canary's traffic weight, when routed.
	Weight *int32
	Time   time.Time
}

// Receiver is a notification's receiver with its URL and headers resolved.
type Receiver struct {
	Name     string
	Type     rolloutsv1alpha1.NotificationType
	URL      string
	Channel  string
	Headers  []gate.Header
	Timeout  time.Duration
	Metadata map[string]string
}

// Report is told of each message's outcome: delivered, or given up with
// why (secret values and the URL, which may carry a token, redacted).
type Report func(m Message, delivered bool, reason string)

type item struct {
	receiver Receiver
	message  Message
	report   Report
}

type queue struct {
	items []item
}

// Sender delivers messages. Each key (a Rollout's receiver) has its own
// queue drained by one goroutine while it has messages, so the messages
// of a receiver arrive in the order they were sent and a slow receiver
// holds up no other.
type Sender struct {
	caller   *gate.Caller
	attempts int
	mu       sync.Mutex
	queues   map[string]*queue
	// idle is closed, and replaced, each time the last queue empties.
	idle chan struct{}
}

// NewSender returns a Sender whose attempts are backoff apart (0:
// DefaultBackoff).
func NewSender(backoff time.Duration) *Sender {
	c := gate.New()
	c.Backoff = backoff
	if backoff == 0 {
		c.Backoff = DefaultBackoff
	}
	return &Sender{caller: c, attempts: Attempts, queues: map[string]*queue{}, idle: make(chan struct{})}
}

// Start waits for ctx to end, then up to DrainTimeout for the messages
// still queued to be delivered, so a release's last notifications are not
// lost when the manager stops (manager.Runnable; every replica runs it,
// leader or not).
func (s *Sender) Start(ctx context.Context) error {
	<-ctx.Done()
	wait, cancel := context.WithTimeout(context.WithoutCancel(ctx), DrainTimeout)
	defer cancel()
	if err := s.Flush(wait); err != nil {
		return fmt.Errorf("notifications not delivered at shutdown: %w", err)
	}
	return nil
}

// NeedLeaderElection: a replica that loses its lease still delivers what
// it queued.
func (s *Sender) NeedLeaderElection() bool { return false }

// Flush waits until no message is queued or in delivery, or ctx ends.
func (s *Sender) Flush(ctx context.Context) error {
	for {
		s.mu.Lock()
		n, idle := len(s.queues), s.idle
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("%d receivers still have messages: %w", n, ctx.Err())
		}
	}
}

// Send queues the messages for the receiver under key and returns at once;
// report (if not nil) is told of each outcome. ctx bounds the deliveries
// (it should outlive the caller's request).
func (s *Sender) Send(ctx context.Context, key string, r Receiver, msgs []Message, report Report) {
	if len(msgs) == 0 {
		return
	}
	s.mu.Lock()
	q, running := s.queues[key]
	if !running {
		q = &queue{}
		s.queues[key] = q
	}
	for _, m := range msgs {
		q.items = append(q.items, item{receiver: r, message: m, report: report})
	}
	var dropped []item
	if n := len(q.items) - MaxQueue; n > 0 {
		dropped = q.items[:n:n]
		q.items = q.items[n:]
	}
	s.mu.Unlock()
	for _, it := range dropped {
		it.fail(fmt.Sprintf("dropped: more than %d messages waiting for the receiver", MaxQueue))
	}
	if !running {
		go s.drain(ctx, key)
	}
}

func (s *Sender) drain(ctx context.Context, key string) {
	for {
		s.mu.Lock()
		q := s.queues[key]
		if len(q.items) == 0 {
			delete(s.queues, key)
			if len(s.queues) == 0 {
				close(s.idle)
				s.idle = make(chan struct{})
			}
			s.mu.Unlock()
			return
		}
		it := q.items[0]
		q.items = q.items[1:]
		s.mu.Unlock()
		s.deliver(ctx, it)
	}
}

func (s *Sender) deliver(ctx context.Context, it item) {
	body, err := Body(it.receiver, it.message)
	if err != nil {
		it.fail("formatting the message: " + err.Error())
		return
	}
	res := s.caller.Call(ctx, gate.Request{URL: it.receiver.URL, Headers: it.receiver.Headers,
		Timeout: it.receiver.Timeout, Retries: s.attempts - 1, Body: body})
	if !res.OK {
		it.fail(res.Message)
		return
	}
	if it.report != nil {
		it.report(it.message, true, "")
	}
}

func (it item) fail(reason string) {
	if it.report == nil {
		return
	}
	if u := it.receiver.URL; u != "" {
		reason = strings.ReplaceAll(reason, u, gate.Redacted)
	}
	it.report(it.message, false, reason)
}
