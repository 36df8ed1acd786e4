package podcontrol

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Parallel runs fn for every item with at most limit in flight and returns
// the errors joined.
func Parallel[T any](ctx context.Context, limit int, items []T, fn func(context.Context, T) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, max(1, limit))
	)
	for _, it := range items {
		sem <- struct{}{}
		wg.Add(1)
		go func(it T) {
			defer func() { <-sem; wg.Done() }()
			if err := fn(ctx, it); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}(it)
	}
	wg.Wait()
	return errors.Join(errs...)
}

// MinWait keeps the shortest positive duration observed by parallel
// workers: the soonest a reconcile must come back.
type MinWait struct {
	mu sync.Mutex
	d  time.Duration
}

// Observe records d (ignored when not positive).
func (m *MinWait) Observe(d time.Duration) {
	if d <= 0 {
		return
	}
	m.mu.Lock()
	if m.d == 0 || d < m.d {
		m.d = d
	}
	m.mu.Unlock()
}

// Get returns the shortest duration observed (0: none).
func (m *MinWait) Get() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.d
}

// MinPositive returns the smaller of two requeue delays, ignoring zeros.
func MinPositive(a, b time.Duration) time.Duration {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	default:
		return min(a, b)
	}
}
