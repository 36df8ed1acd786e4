package daemonset

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Backoff bounds for recreating a daemon pod on a node whose pod failed (a
// kubelet refusing it: out of resources, a host port taken...), as the
// native controller does: without it a pod that fails at once would be
// recreated in a tight loop.
const (
	initialFailureBackoff = time.Second
	maxFailureBackoff     = 5 * time.Minute
)

// failureBackoff remembers, per DaemonSet and node, when a failed pod may
// be replaced. It is the controller's own memory, lost on restart (then
// the first replacement goes at once).
type failureBackoff struct {
	mu    sync.Mutex
	nodes map[string]map[string]*backoffEntry // owner key -> node -> entry
}

type backoffEntry struct {
	delay time.Duration
	until time.Time
	// seen is the failed pods already counted (a failed pod stays in the
	// cache for a few reconciles until its deletion shows).
	seen map[types.UID]bool
}

func newFailureBackoff() *failureBackoff {
	return &failureBackoff{nodes: map[string]map[string]*backoffEntry{}}
}

// failed records a failed pod on node; a pod already recorded is ignored.
// Each new failure doubles the delay.
func (b *failureBackoff) failed(owner, node string, pod types.UID, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.nodes[owner]
	if m == nil {
		m = map[string]*backoffEntry{}
		b.nodes[owner] = m
	}
	e := m[node]
	if e == nil {
		e = &backoffEntry{seen: map[types.UID]bool{}}
		m[node] = e
	}
	if e.seen[pod] {
		return
	}
	e.seen[pod] = true
	switch {
	case e.delay == 0:
		e.delay = initialFailureBackoff
	default:
		e.delay = min(2*e.delay, maxFailureBackoff)
	}
	e.until = now.Add(e.delay)
}

// wait returns how long a new pod on node must wait (0: it may go now).
func (b *failureBackoff) wait(owner, node string, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.nodes[owner][node]
	if e == nil || !now.Before(e.until) {
		return 0
	}
	return e.until.Sub(now)
}

// ok forgets node's failures: a pod runs there again.
func (b *failureBackoff) ok(owner, node string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.nodes[owner], node)
}

func (b *failureBackoff) forget(owner string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.nodes, owner)
}
