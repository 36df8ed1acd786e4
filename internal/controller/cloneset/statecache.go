package cloneset

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/inplace"
)

// stateCache keeps, per CloneSet, the in-place states parsed in the last
// reconcile, so that an unchanged annotation is not decoded again: during
// a large update every reconcile reads every pod's state.
type stateCache struct {
	mu      sync.Mutex
	byOwner map[string]map[types.UID]parsedState
}

type parsedState struct {
	raw   string
	state inplace.State
	ok    bool
}

func newStateCache() *stateCache {
	return &stateCache{byOwner: map[string]map[types.UID]parsedState{}}
}

// states returns the parsed state of each pod (by index) and keeps them
// for the owner's next reconcile. Reconciles of one owner never overlap.
func (c *stateCache) states(owner string, pods []*corev1.Pod) []parsedState {
	c.mu.Lock()
	prev := c.byOwner[owner]
	c.mu.Unlock()
	next := make(map[types.UID]parsedState, len(pods))
	out := make([]parsedState, len(pods))
	for i, p := range pods {
		raw, has := p.Annotations[appsv1alpha1.AnnotationInPlaceUpdateState]
		if !has {
			continue
		}
		e, ok := prev[p.UID]
		if !ok || e.raw != raw {
			e.raw = raw
			e.state, e.ok = inplace.ParseState(raw)
		}
		next[p.UID] = e
		out[i] = e
	}
	c.mu.Lock()
	c.byOwner[owner] = next
	c.mu.Unlock()
	return out
}

func (c *stateCache) forget(owner string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.byOwner, owner)
}
