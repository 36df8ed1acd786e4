package cloneset

import (
	"sync"
	"time"
)

// syncMin keeps the shortest positive duration observed by parallel workers.
type syncMin struct {
	mu sync.Mutex
	d  time.Duration
}

func (m *syncMin) observe(d time.Duration) {
	if d <= 0 {
		return
	}
	m.mu.Lock()
	if m.d == 0 || d < m.d {
		m.d = d
	}
	m.mu.Unlock()
}

func (m *syncMin) get() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.d
}
