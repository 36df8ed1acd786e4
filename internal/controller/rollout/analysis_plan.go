package rollout

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"time"

	"k8s.io/utils/ptr"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

// Analysis in the release state machine (pure, like plan.go): a step, the
// background analysis or a blue-green promotion asks for an AnalysisRun by
// a name derived from the release, and reads the phase the run last
// reported (planInput.runs). The reconcile creates the runs the decision
// wants and terminates the running ones it no longer wants.

// observedRun is what the reconcile knows of an AnalysisRun.
type observedRun struct {
	phase   rolloutsv1alpha1.AnalysisPhase
	message string
}

// wantRun is an AnalysisRun the decision needs; one without spec is only
// kept (not created).
type wantRun struct {
	name     string
	kind     rolloutsv1alpha1.AnalysisKind
	step     *int32
	revision string
	spec     *rolloutsv1alpha1.RolloutAnalysis
}

// verdict is what a run means for the release.
type verdict int

const (
	// verdictRunning: wait.
	verdictRunning verdict = iota
	// verdictPassed: Successful, or Inconclusive and accepted by a user.
	verdictPassed
	// verdictFailed: Failed or Error: the release aborts.
	verdictFailed
	// verdictInconclusive: a human decides (promote accepts, abort aborts).
	verdictInconclusive
)

// maxNameLength is the longest object name.
const maxNameLength = 253

// runName names the run of one analysis of one release attempt: the
// release's start time tells a retried release from the first try.
func runName(rollout, revision string, started time.Time, kind rolloutsv1alpha1.AnalysisKind, step *int32) string {
	suffix := map[rolloutsv1alpha1.AnalysisKind]string{
		rolloutsv1alpha1.AnalysisKindBackground:    "background",
		rolloutsv1alpha1.AnalysisKindPrePromotion:  "pre",
		rolloutsv1alpha1.AnalysisKindPostPromotion: "post",
	}[kind]
	if kind == rolloutsv1alpha1.AnalysisKindStep {
		suffix = "step-" + strconv.Itoa(int(*step))
	}
	name := fmt.Sprintf("%s-%s-%s-%s", rollout, revision, strconv.FormatInt(started.Unix(), 36), suffix)
	if len(name) <= maxNameLength {
		return name
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	tail := fmt.Sprintf("-%08x-%s", h.Sum32(), suffix)
	return name[:maxNameLength-len(tail)] + tail
}

// analysis asks for the run of an analysis and says what it means. A
// promote action accepts an inconclusive run (and is consumed: promoted
// reports it).
func (d *decision) analysis(in planInput, kind rolloutsv1alpha1.AnalysisKind, step *int32, revision string, spec *rolloutsv1alpha1.RolloutAnalysis) (v verdict, run rolloutsv1alpha1.RolloutAnalysisRunStatus, promoted bool) {
	st := &d.status
	started := in.now
	if st.ReleaseStartedAt != nil {
		started = st.ReleaseStartedAt.Time
	}
	name := runName(in.name, revision, started, kind, step)
	if !slices.ContainsFunc(d.wantRuns, func(w wantRun) bool { return w.name == name }) {
		d.wantRuns = append(d.wantRuns, wantRun{name: name, kind: kind, step: step, revision: revision, spec: spec})
	}

	idx := -1
	for i := range st.AnalysisRuns {
		if st.AnalysisRuns[i].Name == name {
			idx = i
		}
	}
	if idx < 0 {
		st.AnalysisRuns = append(st.AnalysisRuns, rolloutsv1alpha1.RolloutAnalysisRunStatus{Name: name, Kind: kind, Step: step, Revision: revision})
		idx = len(st.AnalysisRuns) - 1
		d.note(false, "AnalysisStarted", "%s analysis %s started for %s", kind, name, revision)
		d.progressed = true
	}
	run = st.AnalysisRuns[idx]
	obs, ok := in.runs[name]
	if !ok {
		obs = observedRun{phase: rolloutsv1alpha1.AnalysisPhasePending}
	}
	if run.Phase != obs.phase && obs.phase.Completed() {
		d.note(obs.phase != rolloutsv1alpha1.AnalysisPhaseSuccessful, "Analysis"+string(obs.phase), "%s analysis %s: %s %s", kind, name, obs.phase, obs.message)
		d.progressed = true
	}
	run.Phase, run.Message = obs.phase, obs.message
	if run.Phase == rolloutsv1alpha1.AnalysisPhaseInconclusive && !run.Accepted && in.action == rolloutsv1alpha1.ActionPromote {
		run.Accepted, promoted = true, true
		d.note(false, "AnalysisAccepted", "inconclusive %s analysis %s accepted by a user", kind, name)
	}
	st.AnalysisRuns[idx] = run

	switch run.Phase {
	case rolloutsv1alpha1.AnalysisPhaseSuccessful:
		return verdictPassed, run, promoted
	case rolloutsv1alpha1.AnalysisPhaseFailed, rolloutsv1alpha1.AnalysisPhaseError:
		return verdictFailed, run, promoted
	case rolloutsv1alpha1.AnalysisPhaseInconclusive:
		if run.Accepted {
			return verdictPassed, run, promoted
		}
		return verdictInconclusive, run, promoted
	}
	return verdictRunning, run, promoted
}

// failRelease aborts the release because an analysis failed.
func (d *decision) failRelease(in planInput, run rolloutsv1alpha1.RolloutAnalysisRunStatus) decision {
	st := &d.status
	st.AbortedRevision = st.CanaryRevision
	st.AbortMessage = fmt.Sprintf("%s analysis %s %s: %s", run.Kind, run.Name, run.Phase, run.Message)
	d.wantRuns = nil // every run of the release ends
	d.note(true, rolloutsv1alpha1.ReasonAnalysisFailed, "release of %s aborted: %s", st.CanaryRevision, st.AbortMessage).trigger = rolloutsv1alpha1.TriggerAborted
	return d.abort(in)
}

// holdInconclusive pauses the release for a human.
func (d *decision) holdInconclusive(in planInput, run rolloutsv1alpha1.RolloutAnalysisRunStatus) {
	d.pause(in.now, rolloutsv1alpha1.PauseReasonInconclusiveAnalysis, nil)
	d.activity = rolloutsv1alpha1.ReasonPausedInconclusive
	d.message = fmt.Sprintf("%s analysis %s inconclusive (%s): promote to go on, abort to roll back", run.Kind, run.Name, run.Message)
}

// waitAnalysis records a running analysis as the activity.
func (d *decision) waitAnalysis(run rolloutsv1alpha1.RolloutAnalysisRunStatus) {
	d.activity = rolloutsv1alpha1.ReasonAnalysisRunning
	d.message = fmt.Sprintf("%s analysis %s %s", run.Kind, run.Name, run.Phase)
}

// background runs the canary's background analysis when the release has
// reached its starting step. It returns a decision to use instead of the
// steps' (abort or hold) and ok false when the analysis decides.
func (d *decision) background(in planInput, i int32) (out decision, ok bool, promoted bool) {
	bg, steps := in.spec.Strategy.Canary.Analysis, in.spec.Strategy.Canary.Steps
	if bg == nil || i < ptr.Deref(bg.StartingStep, 0) || int(i) >= len(steps) {
		// Not started yet, or promoting: a run no longer wanted is
		// terminated.
		return *d, true, false
	}
	v, run, promoted := d.analysis(in, rolloutsv1alpha1.AnalysisKindBackground, nil, d.status.CanaryRevision, &bg.RolloutAnalysis)
	switch v {
	case verdictFailed:
		return d.failRelease(in, run), false, promoted
	case verdictInconclusive:
		// Hold the current step's shape.
		d.shapeTo(in, stepShape(in, int(i)))
		d.routesTo(in, int(i))
		d.holdInconclusive(in, run)
		return *d, false, promoted
	}
	if promoted {
		d.unpause(rolloutsv1alpha1.PauseReasonInconclusiveAnalysis)
	}
	return *d, true, promoted
}

// inconclusiveBackground reports whether the release waits on an
// inconclusive background analysis (a promote accepts it rather than
// skipping a step).
func (d *decision) inconclusiveBackground() bool {
	for _, r := range d.status.AnalysisRuns {
		if r.Kind == rolloutsv1alpha1.AnalysisKindBackground && r.Phase == rolloutsv1alpha1.AnalysisPhaseInconclusive && !r.Accepted {
			return true
		}
	}
	return false
}

// keepRuns keeps the release's unfinished runs while it holds (paused):
// a run terminated now would end Successful without its evidence.
func (d *decision) keepRuns() {
	for _, r := range d.status.AnalysisRuns {
		if !r.Phase.Completed() && !slices.ContainsFunc(d.wantRuns, func(w wantRun) bool { return w.name == r.Name }) {
			d.wantRuns = append(d.wantRuns, wantRun{name: r.Name, kind: r.Kind, step: r.Step, revision: r.Revision})
		}
	}
}

// startBackground starts the background analysis in the reconcile that
// reaches its starting step (background judged it at the step the
// reconcile began with).
func (d *decision) startBackground(in planInput) {
	bg, steps := in.spec.Strategy.Canary.Analysis, in.spec.Strategy.Canary.Steps
	i := ptr.Deref(d.status.CurrentStepIndex, 0)
	if bg == nil || d.aborted || d.status.CanaryRevision == "" || i < ptr.Deref(bg.StartingStep, 0) || int(i) >= len(steps) {
		return
	}
	d.analysis(in, rolloutsv1alpha1.AnalysisKindBackground, nil, d.status.CanaryRevision, &bg.RolloutAnalysis)
}
