// Package simtest holds what the workload controllers' randomized plan
// simulations (plan_sim_test.go) share: the trace of their last steps for
// a failure report, and how a simulated pod's state is written in it.
package simtest

import (
	"fmt"
	"strings"
)

// Trace keeps the last steps of a simulation. A simulation runs its seeds
// with the trace off (Logf then costs nothing) and re-runs a failing seed
// with it on.
type Trace struct {
	on    bool
	max   int
	steps []string
}

// NewTrace returns a trace that, when on, keeps the last max steps.
func NewTrace(on bool, max int) *Trace {
	return &Trace{on: on, max: max}
}

// On reports whether steps are kept: check it before building an
// expensive step description.
func (t *Trace) On() bool { return t.on }

// Logf records a step.
func (t *Trace) Logf(format string, args ...any) {
	if !t.on {
		return
	}
	if len(t.steps) == t.max {
		t.steps = t.steps[1:]
	}
	t.steps = append(t.steps, fmt.Sprintf(format, args...))
}

// String lists the kept steps, one an indented line, for "last steps:\n%s".
func (t *Trace) String() string {
	if len(t.steps) == 0 {
		return "  (none)"
	}
	return "  " + strings.Join(t.steps, "\n  ")
}

// PodMark is how a pod's state follows its name and revision in a
// simulation's state line: "/term", "/drain" (in-place update waiting for
// its hook or gate), "/upd" (being updated in place), "/notready", or
// nothing for a ready pod.
func PodMark(terminating, draining, updating, ready bool) string {
	switch {
	case terminating:
		return "/term"
	case draining:
		return "/drain"
	case updating:
		return "/upd"
	case !ready:
		return "/notready"
	}
	return ""
}
