package v1alpha1

// AnnotationAction asks a Rollout to do something once. The controller
// carries the action out and removes the annotation; `drover promote`,
// `drover abort`, `drover retry` and `drover restart` set it, and so can
// anyone with `kubectl annotate` (or an Argo CD resource action):
//
//	kubectl annotate rollout web rollouts.drover.dev/action=promote
const AnnotationAction = "rollouts.drover.dev/action"

// Action is a value of AnnotationAction.
type Action string

const (
	// ActionPromote ends the current pause (or skips the current step).
	ActionPromote Action = "promote"
	// ActionPromoteFull skips every remaining step and promotes the canary.
	ActionPromoteFull Action = "promote-full"
	// ActionAbort sends traffic and pods back to the stable revision; the
	// rollout stays Degraded until retried or a newer revision arrives.
	ActionAbort Action = "abort"
	// ActionRetry starts an aborted release again from its first step.
	ActionRetry Action = "retry"
)

// Actions lists every action, for validation and help texts.
func Actions() []Action {
	return []Action{ActionPromote, ActionPromoteFull, ActionAbort, ActionRetry}
}

// LabelRollout is set on the Services a Rollout creates; its value is the
// Rollout's name.
const LabelRollout = "rollouts.drover.dev/rollout"

// Condition types of a Rollout. Ready, Reconciling and Stalled follow
// kstatus (Ready normal-true; Reconciling and Stalled abnormal-true), so
// `kubectl wait --for=condition=Ready`, Argo CD and Flux read its health.
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
	// ConditionProgressing is False with ReasonProgressDeadlineExceeded when
	// a step made no progress within progressDeadlineSeconds.
	ConditionProgressing = "Progressing"
	// ConditionPaused is True while the release waits at a pause step or
	// spec.paused is set.
	ConditionPaused = "Paused"
	// ConditionAborted is True while an aborted release keeps the stable
	// revision.
	ConditionAborted = "Aborted"
	// ConditionCompleted is True when the last release was promoted and
	// every pod runs it.
	ConditionCompleted = "Completed"
	// ConditionConfigsTracked (spec.trackConfigs) is True when every
	// ConfigMap and Secret the workload's template references has its
	// snapshot, False when one is missing or could not be copied.
	ConditionConfigsTracked = "ConfigsTracked"
)

// Condition reasons of a Rollout.
const (
	ReasonHealthy                  = "Healthy"
	ReasonStepRunning              = "StepRunning"
	ReasonPausedStep               = "PausedStep"
	ReasonPausedUser               = "PausedByUser"
	ReasonPromoting                = "Promoting"
	ReasonAborted                  = "Aborted"
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	ReasonTargetNotFound           = "TargetNotFound"
	ReasonInvalidSpec              = "InvalidSpec"
	ReasonApplyFailed              = "ApplyFailed"
	ReasonWaitingForWorkload       = "WaitingForWorkload"
	ReasonCompleted                = "Completed"
	ReasonAnalysisRunning          = "AnalysisRunning"
	ReasonAnalysisFailed           = "AnalysisFailed"
	ReasonPausedInconclusive       = "PausedInconclusiveAnalysis"
	ReasonConfigsSnapshotted       = "Snapshotted"
	ReasonConfigNotFound           = "ConfigNotFound"
	ReasonSnapshotFailed           = "SnapshotFailed"
)

// LabelAnalysisKind is set on the AnalysisRuns a Rollout creates (with
// LabelRollout); its value is an AnalysisKind.
const LabelAnalysisKind = "rollouts.drover.dev/analysis-kind"

// LabelAnalysisRevision is set on the AnalysisRuns a Rollout creates: the
// revision the run judges.
const LabelAnalysisRevision = "rollouts.drover.dev/revision"

// LabelSnapshotOf is set on the snapshots a Rollout makes of the ConfigMaps
// and Secrets its workload references (spec.trackConfigs), with
// LabelRollout; its value is the name of the config copied (shortened with
// a hash when longer than a label value may be; the annotation of the same
// name holds it whole). Changes to objects carrying it start no reconcile.
const LabelSnapshotOf = "rollouts.drover.dev/snapshot-of"
