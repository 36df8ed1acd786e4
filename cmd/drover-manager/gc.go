package main

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// defaultGCPercent is the garbage collector's target heap growth when the
// user does not set GOGC. The manager's live heap is mostly the informer
// cache, which a large fleet makes big and stable, so Go's default of 100
// (let the heap double between collections) would cost as much memory
// again as the cache itself. 25 keeps a 1,000-pod in-place update's peak
// about 2.5 MiB below what 35 gave (61.5-61.8 MiB resident against
// 63.9-64.0 in the bench), for about 1 s more CPU in a 24 s update; with more pods the memory limit, not this, bounds the
// heap.
const defaultGCPercent = 25

// defaultMemoryLimit is the Go runtime's soft memory limit when none of
// --memory-limit, GOMEMLIMIT and the container's limit sets one. It bounds the memory the Go
// runtime maps (heap, stacks, its own metadata), not the binary's code,
// which adds about 33-36 MiB of resident pages: with it the manager stays
// below 100 MiB resident with 10,000 pods (93 MiB in the bench, where
// the GC headroom alone let it reach 122-138 MiB). It is soft: a fleet whose cache needs
// more is not killed, the collector runs more often (at most about half
// the CPU) and the heap grows past it; give such a fleet a higher limit.
const defaultMemoryLimit = 64 << 20

// noMemoryLimit is the runtime's value for "no limit".
const noMemoryLimit = math.MaxInt64

// tuneGC applies defaultGCPercent unless GOGC is set, and returns the
// percent in force (negative: the collector is off).
func tuneGC() int {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
		return defaultGCPercent
	}
	p := debug.SetGCPercent(100) // reads GOGC's value back
	debug.SetGCPercent(p)
	return p
}

// Sources of the memory limit, for the log.
const (
	limitFromFlag      = "--memory-limit"
	limitFromEnv       = "GOMEMLIMIT"
	limitFromContainer = containerLimitEnv
	limitFromDefault   = "default"
)

// containerLimitEnv carries the container's memory limit in bytes (the
// Helm chart sets it from resources.limits.memory through the downward
// API).
const containerLimitEnv = "DROVER_CONTAINER_MEMORY_LIMIT"

// Under a container limit the runtime's soft limit leaves room for what
// the runtime does not count: the binary's resident code and read-only
// data (33-36 MiB) and some slack. The headroom is a tenth of the limit,
// at least minContainerHeadroom, and the soft limit never less than half
// the container's.
const minContainerHeadroom = 48 << 20

// underContainerLimit is the soft limit under a container limit given in
// bytes (the value of containerLimitEnv).
func underContainerLimit(raw string) (memoryLimit, error) {
	q, err := resource.ParseQuantity(strings.TrimSpace(raw))
	if err != nil {
		return memoryLimit{}, fmt.Errorf("%s %q: %w", containerLimitEnv, raw, err)
	}
	n, ok := q.AsInt64()
	if !ok || n <= 0 {
		return memoryLimit{}, fmt.Errorf("%s %q: want a positive number of bytes", containerLimitEnv, raw)
	}
	return memoryLimit{Bytes: max(n-max(n/10, minContainerHeadroom), n/2), Source: limitFromContainer}, nil
}

// memoryLimit is the soft memory limit the manager runs with.
type memoryLimit struct {
	// Bytes is the limit (noMemoryLimit: none). Unknown (0) when Source is
	// GOMEMLIMIT: the runtime parsed and applied it at start.
	Bytes int64
	// Source is limitFromFlag, limitFromEnv or limitFromDefault.
	Source string
}

// apply sets the limit in the runtime, unless the runtime already applied
// GOMEMLIMIT. It returns the limit in force.
func (l memoryLimit) apply() int64 {
	if l.Source == limitFromEnv {
		return debug.SetMemoryLimit(-1)
	}
	debug.SetMemoryLimit(l.Bytes)
	return l.Bytes
}

// resolveMemoryLimit decides the soft memory limit. Precedence, highest
// first:
//
//  1. --memory-limit (flagValue, "" when not given): a quantity such as
//     "200Mi" or "1G"; "0" or "off" removes any limit, GOMEMLIMIT's too;
//  2. GOMEMLIMIT (env, when envSet and not empty), which the Go runtime
//     applies itself;
//  3. the container's memory limit (container, the value of
//     DROVER_CONTAINER_MEMORY_LIMIT, "" when unset) less headroom for the
//     code (underContainerLimit); the Helm chart sets it;
//  4. def.
func resolveMemoryLimit(flagValue, env string, envSet bool, container string, def int64) (memoryLimit, error) {
	switch v := strings.TrimSpace(flagValue); {
	case v == "" && envSet && env != "": // Go ignores an empty GOMEMLIMIT too
		return memoryLimit{Source: limitFromEnv}, nil
	case v == "" && strings.TrimSpace(container) != "":
		return underContainerLimit(container)
	case v == "":
		return memoryLimit{Bytes: def, Source: limitFromDefault}, nil
	case strings.EqualFold(v, "off"):
		return memoryLimit{Bytes: noMemoryLimit, Source: limitFromFlag}, nil
	default:
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return memoryLimit{}, fmt.Errorf("--memory-limit %q: %w", flagValue, err)
		}
		switch n, ok := q.AsInt64(); {
		case q.Sign() < 0:
			return memoryLimit{}, fmt.Errorf("--memory-limit %q is negative", flagValue)
		case q.Sign() == 0:
			return memoryLimit{Bytes: noMemoryLimit, Source: limitFromFlag}, nil
		case !ok:
			// Fractions of a byte round up; beyond int64, no limit.
			if q.Cmp(*resource.NewQuantity(math.MaxInt64, resource.BinarySI)) >= 0 {
				return memoryLimit{Bytes: noMemoryLimit, Source: limitFromFlag}, nil
			}
			return memoryLimit{Bytes: q.Value(), Source: limitFromFlag}, nil
		default:
			return memoryLimit{Bytes: n, Source: limitFromFlag}, nil
		}
	}
}
