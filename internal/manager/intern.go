package manager

import (
	"strings"
	"sync"
)

// defaultInternerSize is how many distinct strings an interner keeps
// before it starts a new generation: far more than the namespaces, nodes,
// images, workloads, revisions and label keys a cluster's pods share.
const defaultInternerSize = 8192

// interner deduplicates strings: the informers decode every string of
// every object into its own allocation, so 10,000 pods hold 10,000 copies
// of their namespace, node names, images, label keys and values, owner
// and condition types. The manager creates one and its pod transforms
// share it.
//
// It is bounded: strings unique to one pod (a per-pod label value) pass
// through it too, so when the current generation holds max strings it
// becomes the previous one and a new one starts; a string found in the
// previous generation moves to the current one, so the strings pods share
// stay while unique ones age out. Pods cached before keep their copies
// either way: interning only decides which copy a new pod shares.
type interner struct {
	mu       sync.Mutex
	max      int
	cur, old map[string]string
}

func newInterner(max int) *interner {
	return &interner{max: max, cur: make(map[string]string)}
}

// intern returns the interned copy of s. in.mu must be held.
func (in *interner) intern(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := in.cur[s]; ok {
		return v
	}
	v, ok := in.old[s]
	if !ok {
		// Not a slice of a larger buffer the cache would keep alive.
		v = strings.Clone(s)
	}
	if len(in.cur) >= in.max {
		in.old, in.cur = in.cur, make(map[string]string, in.max/4)
	}
	in.cur[v] = v
	return v
}
