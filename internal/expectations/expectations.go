// Package expectations remembers the writes a controller made that its
// informer cache has not shown yet, so that a reconcile working from a stale
// cache never creates, deletes or updates a pod twice.
//
// Expectations are checked lazily against the cache: a controller records
// what it wrote, and before planning asks whether the cache has caught up
// (Satisfied). Nothing needs wiring into event handlers. An expectation that
// is not observed within the timeout is dropped, so a lost watch event delays
// a workload but never wedges it.
package expectations

import (
	"strconv"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// DefaultTimeout is how long an unobserved expectation is kept.
const DefaultTimeout = 5 * time.Minute

// Observed is what the cache shows of one object.
type Observed struct {
	Exists          bool
	UID             types.UID
	ResourceVersion string
	Terminating     bool
}

// Lookup returns what the cache holds under a name.
type Lookup func(name string) Observed

type kind int

const (
	create kind = iota
	remove
	update
)

type expectation struct {
	kind            kind
	uid             types.UID
	resourceVersion uint64
	at              time.Time
}

// Store holds expectations per owner key (namespace/name of a workload).
// It is safe for concurrent use.
type Store struct {
	clock   clock.PassiveClock
	timeout time.Duration

	mu     sync.Mutex
	owners map[string]map[string]expectation // owner -> object name -> expectation
}

// New returns an empty Store using clk for timeouts.
func New(clk clock.PassiveClock, timeout time.Duration) *Store {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Store{clock: clk, timeout: timeout, owners: map[string]map[string]expectation{}}
}

func (s *Store) set(owner, name string, e expectation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.owners[owner]
	if m == nil {
		m = map[string]expectation{}
		s.owners[owner] = m
	}
	e.at = s.clock.Now()
	m[name] = e
}

// ExpectCreate records that the object name was created.
func (s *Store) ExpectCreate(owner, name string) {
	s.set(owner, name, expectation{kind: create})
}

// ExpectDelete records that the object with this name and uid was deleted.
func (s *Store) ExpectDelete(owner, name string, uid types.UID) {
	s.set(owner, name, expectation{kind: remove, uid: uid})
}

// ExpectUpdate records that a write to name returned resourceVersion. A
// write to an object whose creation the cache has not shown yet keeps
// waiting for the object to appear, at that version or later.
func (s *Store) ExpectUpdate(owner, name, resourceVersion string) {
	rv, err := strconv.ParseUint(resourceVersion, 10, 64)
	if err != nil {
		return // an opaque version cannot be compared; do not wait for it
	}
	k := update
	s.mu.Lock()
	if prev, ok := s.owners[owner][name]; ok && prev.kind == create {
		k = create
	}
	s.mu.Unlock()
	s.set(owner, name, expectation{kind: k, resourceVersion: rv})
}

// Forget drops the expectation on name, after a write that failed.
func (s *Store) Forget(owner, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.owners[owner], name)
}

// DeleteOwner drops every expectation of an owner (it was deleted).
func (s *Store) DeleteOwner(owner string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.owners, owner)
}

// Satisfied drops the expectations of owner that the cache now shows, and
// reports whether none is left, with the names still pending.
func (s *Store) Satisfied(owner string, lookup Lookup) (bool, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.owners[owner]
	now := s.clock.Now()
	var pending []string
	for name, e := range m {
		if now.Sub(e.at) > s.timeout || observed(e, lookup(name)) {
			delete(m, name)
			continue
		}
		pending = append(pending, name)
	}
	if len(m) == 0 {
		delete(s.owners, owner)
	}
	return len(pending) == 0, pending
}

func observed(e expectation, o Observed) bool {
	switch e.kind {
	case create:
		return o.Exists && atLeast(o.ResourceVersion, e.resourceVersion)
	case remove:
		return !o.Exists || o.UID != e.uid || o.Terminating
	default:
		// An updated object that is gone was deleted by someone else.
		return !o.Exists || atLeast(o.ResourceVersion, e.resourceVersion)
	}
}

// atLeast reports whether resourceVersion is at least want (0: any).
func atLeast(resourceVersion string, want uint64) bool {
	if want == 0 {
		return true
	}
	rv, err := strconv.ParseUint(resourceVersion, 10, 64)
	return err != nil || rv >= want
}

// ByName returns a Lookup over objects (one owner's objects from the cache),
// found by name.
func ByName[T metav1.Object](objs []T) Lookup {
	m := make(map[string]T, len(objs))
	for _, o := range objs {
		m[o.GetName()] = o
	}
	return func(name string) Observed {
		o, ok := m[name]
		if !ok {
			return Observed{}
		}
		return Observed{Exists: true, UID: o.GetUID(), ResourceVersion: o.GetResourceVersion(), Terminating: o.GetDeletionTimestamp() != nil}
	}
}
