package podcontrol

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/drover-dev/drover/internal/inplace"
)

// StateCache keeps, per workload, the in-place states parsed in the last
// reconcile, so that an unchanged annotation is not decoded again: during
// a large update every reconcile reads every pod's state. A workload's
// states are updated in place, so a reconcile allocates only its answer.
type StateCache struct {
	annotation string
	mu         sync.Mutex
	byOwner    map[string]*ownerStates
}

// ownerStates are one workload's states; gen counts its reconciles, to
// drop the states of pods a reconcile no longer saw.
type ownerStates struct {
	gen   uint64
	byUID map[types.UID]ParsedState
}

// ParsedState is a pod's in-place state annotation, decoded.
type ParsedState struct {
	Raw   string
	State inplace.State
	// OK is false when the pod has no (valid) state annotation.
	OK bool
	// gen is the reconcile that last saw it.
	gen uint64
}

// NewStateCache returns an empty cache of the workload track's states.
func NewStateCache() *StateCache {
	return NewTrackStateCache(inplace.WorkloadTrack)
}

// NewTrackStateCache returns an empty cache of one track's states (a
// SidecarSet's sidecar upgrades keep theirs on the sidecar track).
func NewTrackStateCache(t inplace.Track) *StateCache {
	return &StateCache{annotation: t.Annotation(), byOwner: map[string]*ownerStates{}}
}

// States returns the parsed state of each pod (by index) and keeps them
// for the owner's next reconcile. Reconciles of one owner never overlap.
func (c *StateCache) States(owner string, pods []*corev1.Pod) []ParsedState {
	c.mu.Lock()
	s := c.byOwner[owner]
	if s == nil {
		s = &ownerStates{byUID: make(map[types.UID]ParsedState, len(pods))}
		c.byOwner[owner] = s
	}
	c.mu.Unlock()
	s.gen++
	out := make([]ParsedState, len(pods))
	seen := 0
	for i, p := range pods {
		raw, has := p.Annotations[c.annotation]
		if !has {
			continue
		}
		e, ok := s.byUID[p.UID]
		if !ok || e.Raw != raw {
			e = ParsedState{Raw: raw}
			e.State, e.OK = inplace.ParseState(raw)
		}
		e.gen = s.gen
		s.byUID[p.UID] = e
		out[i] = e
		seen++
	}
	if len(s.byUID) > seen {
		for uid, e := range s.byUID {
			if e.gen != s.gen {
				delete(s.byUID, uid)
			}
		}
	}
	return out
}

// Forget drops an owner's states (the workload was deleted).
func (c *StateCache) Forget(owner string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.byOwner, owner)
}
