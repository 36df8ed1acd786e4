package v1alpha1

import (
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
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
//     workload's strategy allows) within its own maxUnavailable and
//     maxSurge, or the control's where it sets them;
//   - treats an update revision that is neither stableRevision nor
//     canaryRevision as not yet released: no pod moves to it until the
//     Rollout names it canaryRevision, except the previous canary's pods
//     when the template changes mid-release (Targets);
//   - moves pods of any other revision to stableRevision.
//
// The partition, the surge and the paused flag of the workload's own
// update strategy are replaced by these counts, and its maxUnavailable and
// maxSurge by the control's where set; everything else (maxUnavailable and
// maxSurge the control leaves unset, priority and scatter order, lifecycle
// hooks, in-place rules) still applies.
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
	// maxUnavailable, when set, replaces the workload's own
	// updateStrategy maxUnavailable while this control drives it: how many
	// pods may be unavailable while pods move between the revisions. An
	// int, or a percentage of the workload's replicas (canary plus stable;
	// for a DaemonSet, its eligible nodes) resolved as the workload
	// resolves its own value. Not negative.
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
	// maxSurge, when set, replaces the workload's own updateStrategy
	// maxSurge while this control drives it: how many pods (for a
	// DaemonSet, nodes running two pods) may be created above the wanted
	// count while pods move. An int or a percentage, as maxUnavailable.
	// Only the CloneSet and the DaemonSet surge: an Advanced StatefulSet
	// has no maxSurge and ignores this field. Not negative.
	MaxSurge *intstr.IntOrString `json:"maxSurge,omitempty"`
	// configs maps the ConfigMaps and Secrets the workload's template
	// references (key ConfigKey: "ConfigMap/<name>" or "Secret/<name>") to
	// immutable snapshots of their content (value: the snapshot's name),
	// when the Rollout tracks them (spec.trackConfigs). The workload computes
	// its update revision from its template with every reference the map
	// names renamed to its snapshot, so a changed config is a new revision
	// released like a template change, and each revision's pods keep the
	// content they started with. References the map does not name are left
	// as they are.
	Configs map[string]string `json:"configs,omitempty"`
}

// Kinds of the configs a RolloutControl maps (ConfigKey).
const (
	ConfigKindConfigMap = "ConfigMap"
	ConfigKindSecret    = "Secret"
)

// ConfigKey is the key of RolloutControl.Configs for a ConfigMap or
// Secret: "<kind>/<name>".
func ConfigKey(kind, name string) string { return kind + "/" + name }

// ParseConfigKey splits a key of RolloutControl.Configs. ok is false when
// the kind is neither ConfigMap nor Secret or the name is not a valid
// object name (a DNS subdomain).
func ParseConfigKey(key string) (kind, name string, ok bool) {
	kind, name, found := strings.Cut(key, "/")
	if !found || (kind != ConfigKindConfigMap && kind != ConfigKindSecret) || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return "", "", false
	}
	return kind, name, true
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
	for _, f := range []struct {
		name string
		v    *intstr.IntOrString
	}{{"maxUnavailable", c.MaxUnavailable}, {"maxSurge", c.MaxSurge}} {
		if err := checkIntOrPercent(f.v); err != nil {
			return c, true, fmt.Errorf("annotation %s: %s: %w", AnnotationRolloutControl, f.name, err)
		}
	}
	for key, snapshot := range c.Configs {
		if _, _, ok := ParseConfigKey(key); !ok {
			return c, true, fmt.Errorf("annotation %s: configs: key %q is not ConfigMap/<name> or Secret/<name>", AnnotationRolloutControl, key)
		}
		if errs := validation.IsDNS1123Subdomain(snapshot); len(errs) > 0 {
			return c, true, fmt.Errorf("annotation %s: configs[%s]: snapshot %q: %s", AnnotationRolloutControl, key, snapshot, strings.Join(errs, "; "))
		}
	}
	return c, true, nil
}

// checkIntOrPercent accepts nil, an int >= 0 or a percentage "N%" with
// N >= 0, parsed as the workloads parse theirs.
func checkIntOrPercent(v *intstr.IntOrString) error {
	if v == nil {
		return nil
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(v, 100, false)
	switch {
	case err != nil:
		return fmt.Errorf("%q is neither an int nor a percentage", v.String())
	case n < 0:
		return fmt.Errorf("%s must not be negative", v.String())
	}
	return nil
}

// String is the annotation value.
func (c RolloutControl) String() string {
	b, _ := json.Marshal(c) // plain strings and numbers (IntOrString included): cannot fail
	return string(b)
}

// Targets resolves the control against the workload's replicas and its
// update revision: how many pods the update revision and the stable
// revision should have. One equal to the stable revision gets them all.
// An update revision the Rollout has not released yet gets no pods, with
// one exception: when the template changes mid-release, the pods the
// control gave the previous canary move straight to the newest revision
// (one restart, no more pods than the canary had), as the Rollout is about
// to release it from its first step anyway.
func (c RolloutControl) Targets(replicas int32, updateRevision string) (updated, stable int32) {
	stable = max(0, replicas-c.CanaryReplicas)
	if c.StableReplicas != nil {
		stable = *c.StableReplicas
	}
	switch {
	case updateRevision == c.StableRevision:
		return replicas, 0
	case updateRevision == c.CanaryRevision || c.CanaryRevision != "":
		return c.CanaryReplicas, stable
	}
	return 0, max(stable, min(replicas, stable+c.CanaryReplicas))
}
