package main

import (
	"os"
	"runtime/debug"
)

// defaultGCPercent is the garbage collector's target heap growth when the
// user does not set GOGC. The manager's live heap is mostly the informer
// cache, which a large fleet makes big and stable, so Go's default of 100
// (let the heap double between collections) would cost as much memory
// again as the cache itself; 50 trades a little CPU for a third less heap.
const defaultGCPercent = 50

// tuneGC applies defaultGCPercent unless GOGC is set. GOMEMLIMIT, when set
// (the Helm chart sets it from the container's memory limit), applies
// either way.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
}
