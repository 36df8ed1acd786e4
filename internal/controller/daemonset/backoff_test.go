package daemonset

import (
	"fmt"

	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestFailureBackoff(t *testing.T) {
	b := newFailureBackoff()
	now := testEpoch
	if w := b.wait("ns/ds", "n1", now); w != 0 {
		t.Fatalf("no failure yet: wait %s", w)
	}
	b.failed("ns/ds", "n1", "p1", now)
	b.failed("ns/ds", "n1", "p1", now) // the same pod seen again: no doubling
	if w := b.wait("ns/ds", "n1", now); w != time.Second {
		t.Fatalf("after one failure: wait %s, want 1s", w)
	}
	if w := b.wait("ns/ds", "n2", now); w != 0 {
		t.Fatalf("another node waits %s", w)
	}
	if w := b.wait("ns/other", "n1", now); w != 0 {
		t.Fatalf("another DaemonSet waits %s", w)
	}
	now = now.Add(time.Second)
	if w := b.wait("ns/ds", "n1", now); w != 0 {
		t.Fatalf("after the delay: wait %s", w)
	}
	b.failed("ns/ds", "n1", "p2", now)
	if w := b.wait("ns/ds", "n1", now); w != 2*time.Second {
		t.Fatalf("after a second failure: wait %s, want 2s", w)
	}
	for i := range 20 {
		b.failed("ns/ds", "n1", types.UID(fmt.Sprint("q", i)), now)
	}
	if w := b.wait("ns/ds", "n1", now); w != maxFailureBackoff {
		t.Fatalf("capped: wait %s, want %s", w, maxFailureBackoff)
	}
	b.ok("ns/ds", "n1")
	if w := b.wait("ns/ds", "n1", now); w != 0 {
		t.Fatalf("after a pod ran: wait %s", w)
	}
	b.failed("ns/ds", "n1", "p3", now)
	if w := b.wait("ns/ds", "n1", now); w != time.Second {
		t.Fatalf("a failure after a reset starts again at 1s, got %s", w)
	}
	b.forget("ns/ds")
	if w := b.wait("ns/ds", "n1", now); w != 0 {
		t.Fatalf("forgotten: wait %s", w)
	}
}
