package v1alpha1

import (
	"encoding/json"
	"fmt"
)

// AnnotationRolloutControl is written on a workload by the Rollout that
// drives it (rollouts.drover.dev). Its value is a RolloutControl as JSON.
//
// The workload's template stays the single source of truth: a user (or a
// GitOps tool) changes the template, the workload computes the new update
// revision, and the annotation says how many pods of it may run. An
// annotation does not change the workload's generation and is not part of
// any manifest a GitOps tool applies, so it causes no drift.
const AnnotationRolloutControl = "apps.drover.dev/rollout-control"

// RolloutControl tells a workload which revisions its pods may run while a
// Rollout drives it. A workload that carries it:
//
//   - runs stableReplicas pods at stableRevision and canaryReplicas pods at
//     canaryRevision, moving pods between the two (in place where the
//     workload's strategy allows) within its own maxUnavailable;
//   - treats an update revision that is neither stableRevision nor
//     canaryRevision as not yet released: no pod moves to it until the
//     Rollout names it canaryRevision;
//   - moves pods of any other revision to stableRevision.
//
// The partition, the surge and the paused flag of the workload's own
// update strategy are replaced by these counts; everything else
// (maxUnavailable, priority and scatter order, lifecycle hooks, in-place
// rules) still applies.
type RolloutControl struct {
	// rollout is the name of the Rollout (same namespace) that wrote this.
	Rollout string `json:"rollout"`
	// stableRevision is the revision that serves production traffic.
	StableRevision string `json:"stableRevision"`
	// canaryRevision is the revision being released ("" when none).
	CanaryRevision string `json:"canaryRevision,omitempty"`
	// canaryReplicas is how many pods run canaryRevision.
	CanaryReplicas int32 `json:"canaryReplicas"`
	// stableReplicas is how many pods run stableRevision; nil means the
	// workload's replicas minus canaryReplicas (at least 0). Blue-green and
	// canaries with traffic routing keep the stable side at full size and
	// add the canary on top.
	StableReplicas *int32 `json:"stableReplicas,omitempty"`
}

// ParseRolloutControl reads a workload's rollout control annotation. ok is
// false when the workload carries none.
func ParseRolloutControl(annotations map[string]string) (c RolloutControl, ok bool, err error) {
	raw, ok := annotations[AnnotationRolloutControl]
	if !ok {
		return c, false, nil
	}
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return c, true, fmt.Errorf("annotation %s: %w", AnnotationRolloutControl, err)
	}
	if c.StableRevision == "" {
		return c, true, fmt.Errorf("annotation %s: stableRevision is empty", AnnotationRolloutControl)
	}
	if c.CanaryReplicas < 0 || (c.StableReplicas != nil && *c.StableReplicas < 0) {
		return c, true, fmt.Errorf("annotation %s: replica counts must not be negative", AnnotationRolloutControl)
	}
	return c, true, nil
}

// String is the annotation value.
func (c RolloutControl) String() string {
	b, _ := json.Marshal(c) // plain strings and numbers: cannot fail
	return string(b)
}

// Targets resolves the control against the workload's replicas and its
// update revision: how many pods the update revision and the stable
// revision should have. An update revision the Rollout has not released yet
// gets no pods; one equal to the stable revision gets them all.
func (c RolloutControl) Targets(replicas int32, updateRevision string) (updated, stable int32) {
	canary := c.CanaryReplicas
	switch updateRevision {
	case c.StableRevision:
		return replicas, 0
	case c.CanaryRevision:
	default:
		canary = 0
	}
	if c.StableReplicas != nil {
		return canary, *c.StableReplicas
	}
	return canary, max(0, replicas-canary)
}
