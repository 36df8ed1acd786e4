package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// tracer samples, once a second during a Drover row, the manager's
// reconcile counters and work queue and the pods' progress, to show where
// the time of a row goes (-trace).
type tracer struct {
	b      *bench
	pods   *podTracker
	image  string // the target image of the row ("" for scale rows)
	start  time.Time
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	lines  []string
	prev   managerStats
	hasPrv bool
}

func (b *bench) startTrace(ctx context.Context, pods *podTracker, image string) *tracer {
	if !b.o.trace || pods == nil {
		return nil
	}
	t := &tracer{b: b, pods: pods, image: image, start: time.Now(), stop: make(chan struct{})}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			t.sample(ctx)
			select {
			case <-t.stop:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return t
}

func (t *tracer) sample(ctx context.Context) {
	sc, err := scrapeHTTP(ctx, t.b.mgr.metricsAddr)
	if err != nil {
		return
	}
	cur := managerStatsFrom(sc)
	ready, total := t.pods.count(func(p podInfo) bool { return p.ready })
	closed, _ := t.pods.count(func(p podInfo) bool { return p.gate == corev1.ConditionFalse })
	line := fmt.Sprintf("t=%5.1fs pods %d ready %d gate-closed %d", time.Since(t.start).Seconds(), total, ready, closed)
	if t.image != "" {
		onNew, _ := t.pods.count(func(p podInfo) bool { return p.image == t.image })
		cready, _ := t.pods.count(func(p podInfo) bool { return p.image == t.image && p.cready })
		line += fmt.Sprintf(" restarted %d container-ready %d", onNew, cready)
	}
	if t.hasPrv {
		d := cur.minus(t.prev)
		line += fmt.Sprintf(" | reconciles +%.0f, in reconcile %.2f s, queue depth %.0f, writes +%.0f", d.Reconciles, d.ReconcileSecs, cur.QueueDepth, d.Writes)
	}
	t.prev, t.hasPrv = cur, true
	t.mu.Lock()
	t.lines = append(t.lines, line)
	t.mu.Unlock()
}

// finish stops sampling and attaches the timeline to the row's notes.
func (t *tracer) finish(r *row) {
	if t == nil {
		return
	}
	close(t.stop)
	t.wg.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	r.notes = append(r.notes, "timeline (-trace), one line a second:\n\n    "+strings.Join(t.lines, "\n    ")+"\n")
}
