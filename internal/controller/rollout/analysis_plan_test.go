package rollout

import (
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

func analysisStep() rolloutsv1alpha1.CanaryStep {
	return rolloutsv1alpha1.CanaryStep{Analysis: &rolloutsv1alpha1.RolloutAnalysis{
		Templates: []rolloutsv1alpha1.AnalysisTemplateRef{{TemplateName: "success-rate"}}}}
}

// setRun makes the observed run of the only wanted analysis report phase.
func (r *run) setRun(kind rolloutsv1alpha1.AnalysisKind, phase rolloutsv1alpha1.AnalysisPhase, msg string) string {
	r.t.Helper()
	for _, w := range r.last.wantRuns {
		if w.kind == kind {
			if r.runs == nil {
				r.runs = map[string]observedRun{}
			}
			r.runs[w.name] = observedRun{phase: phase, message: msg}
			return w.name
		}
	}
	r.t.Fatalf("no %s run wanted; wants %+v", kind, r.last.wantRuns)
	return ""
}

func wants(d decision, kind rolloutsv1alpha1.AnalysisKind) bool {
	for _, w := range d.wantRuns {
		if w.kind == kind {
			return true
		}
	}
	return false
}

// A step analysis starts once the steps before it are in place, holds the
// release while it runs, and lets it go on when it succeeds.
func TestStepAnalysisHoldsUntilSuccessful(t *testing.T) {
	r := &run{t: t, spec: canarySpec(weightStep(25), analysisStep(), weightStep(50), pauseStep(0)), sim: newSim(4), now: t0}
	r.step("")
	r.sim.update = revCanary
	r.until(30, "analysis wanted", func(d decision) bool { return wants(d, rolloutsv1alpha1.AnalysisKindStep) })
	if r.sim.canary != 1 || ptr.Deref(r.status.CurrentStepIndex, -1) != 1 {
		t.Fatalf("the analysis must start with the 25%% canary in place: %d canary pods, step %v", r.sim.canary, r.status.CurrentStepIndex)
	}
	w := r.last.wantRuns[0]
	if w.step == nil || *w.step != 1 || w.revision != revCanary || w.name != runName("web", revCanary, r.status.ReleaseStartedAt.Time, rolloutsv1alpha1.AnalysisKindStep, ptr.To[int32](1)) {
		t.Fatalf("wanted run %+v", w)
	}
	for range 5 {
		d := r.step("")
		if ptr.Deref(d.status.CurrentStepIndex, -1) != 1 || d.activity != rolloutsv1alpha1.ReasonAnalysisRunning || d.paused {
			t.Fatalf("a pending analysis must hold step 1: step %v activity %s paused %v", d.status.CurrentStepIndex, d.activity, d.paused)
		}
	}
	if len(r.status.AnalysisRuns) != 1 || r.status.AnalysisRuns[0].Phase != rolloutsv1alpha1.AnalysisPhasePending {
		t.Fatalf("status analysisRuns %+v", r.status.AnalysisRuns)
	}
	r.setRun(rolloutsv1alpha1.AnalysisKindStep, rolloutsv1alpha1.AnalysisPhaseSuccessful, "")
	r.until(30, "paused at step 3", func(d decision) bool { return d.paused })
	if r.sim.canary != 2 || *r.status.CurrentStepIndex != 3 || r.status.AnalysisRuns[0].Phase != rolloutsv1alpha1.AnalysisPhaseSuccessful {
		t.Fatalf("after the analysis: %d canary pods, step %d, runs %+v", r.sim.canary, *r.status.CurrentStepIndex, r.status.AnalysisRuns)
	}
	if wants(r.last, rolloutsv1alpha1.AnalysisKindStep) {
		t.Fatal("a finished step analysis is still wanted")
	}
}

// A failed analysis aborts: everything back to stable, the failing run in
// the message; a retry starts a new run.
func TestStepAnalysisFailureAborts(t *testing.T) {
	r := &run{t: t, spec: canarySpec(weightStep(50), analysisStep(), pauseStep(0)), sim: newSim(4), now: t0}
	r.step("")
	r.sim.update = revCanary
	r.until(30, "analysis wanted", func(d decision) bool { return wants(d, rolloutsv1alpha1.AnalysisKindStep) })
	first := r.setRun(rolloutsv1alpha1.AnalysisKindStep, rolloutsv1alpha1.AnalysisPhaseFailed, "metric success-rate: 0.8 is not >= 0.99")
	d := r.step("")
	if !d.aborted || d.status.AbortedRevision != revCanary || !strings.Contains(d.message, "success-rate: 0.8") || !strings.Contains(d.status.AbortMessage, first) {
		t.Fatalf("failed analysis: aborted %v status %+v message %q", d.aborted, d.status, d.message)
	}
	if len(d.wantRuns) != 0 {
		t.Fatalf("an aborted release wants runs: %+v", d.wantRuns)
	}
	r.until(30, "back on stable", func(d decision) bool { return r.sim.canary == 0 && r.sim.stable == 4 })
	r.step(rolloutsv1alpha1.ActionRetry)
	r.now = r.now.Add(time.Minute)
	r.until(30, "analysis wanted again", func(d decision) bool { return wants(d, rolloutsv1alpha1.AnalysisKindStep) })
	if r.last.wantRuns[0].name == first {
		t.Fatalf("the retry reuses the failed run %s", first)
	}
	if r.status.AbortMessage != "" || len(r.status.AnalysisRuns) != 1 {
		t.Fatalf("retry kept the abort: %+v", r.status)
	}
}

// Inconclusive pauses for a human; promote goes on.
func TestInconclusiveAnalysisPausesUntilPromoted(t *testing.T) {
	r := &run{t: t, spec: canarySpec(weightStep(50), analysisStep(), weightStep(75)), sim: newSim(4), now: t0}
	r.step("")
	r.sim.update = revCanary
	r.until(30, "analysis wanted", func(d decision) bool { return wants(d, rolloutsv1alpha1.AnalysisKindStep) })
	r.setRun(rolloutsv1alpha1.AnalysisKindStep, rolloutsv1alpha1.AnalysisPhaseInconclusive, "no data")
	d := r.step("")
	if !d.paused || d.aborted || d.status.PauseConditions[0].Reason != rolloutsv1alpha1.PauseReasonInconclusiveAnalysis || !strings.Contains(d.message, "no data") {
		t.Fatalf("inconclusive: paused %v aborted %v pauses %+v message %q", d.paused, d.aborted, d.status.PauseConditions, d.message)
	}
	started := d.status.PauseConditions[0].StartTime
	if d := r.step(""); d.status.PauseConditions[0].StartTime != started {
		t.Fatal("the pause restarts on every reconcile")
	}
	r.step(rolloutsv1alpha1.ActionPromote)
	r.until(40, "promoted", func(d decision) bool { return d.done && r.sim.stableRev == revCanary })
}

// The background analysis starts at its starting step, aborts the release
// whatever step it is at when it fails, and is let go at promotion.
func TestBackgroundAnalysis(t *testing.T) {
	spec := canarySpec(weightStep(25), pauseStep(0), weightStep(50), pauseStep(0))
	spec.Strategy.Canary.Analysis = &rolloutsv1alpha1.BackgroundAnalysis{StartingStep: ptr.To[int32](1),
		RolloutAnalysis: rolloutsv1alpha1.RolloutAnalysis{Templates: []rolloutsv1alpha1.AnalysisTemplateRef{{TemplateName: "errors"}}}}
	r := &run{t: t, spec: spec, sim: newSim(4), now: t0}
	r.step("")
	r.sim.update = revCanary
	d := r.step("")
	if wants(d, rolloutsv1alpha1.AnalysisKindBackground) {
		t.Fatal("background analysis before its starting step")
	}
	r.until(30, "first pause", func(d decision) bool { return d.paused })
	if !wants(r.last, rolloutsv1alpha1.AnalysisKindBackground) {
		t.Fatalf("no background analysis at step 1: %+v", r.last.wantRuns)
	}
	r.step(rolloutsv1alpha1.ActionPromote)
	r.until(30, "second pause", func(d decision) bool { return d.paused && *d.status.CurrentStepIndex == 3 })
	if !wants(r.last, rolloutsv1alpha1.AnalysisKindBackground) || len(r.last.wantRuns) != 1 {
		t.Fatalf("the background analysis must run on, once: %+v", r.last.wantRuns)
	}
	// Promotion lets it go.
	r.step(rolloutsv1alpha1.ActionPromote)
	if wants(r.last, rolloutsv1alpha1.AnalysisKindBackground) {
		t.Fatal("background analysis still wanted during promotion")
	}

	// Another release: the background analysis fails at a pause.
	r.until(40, "promoted", func(d decision) bool { return d.done })
	r.sim.update = revNext
	r.until(30, "first pause", func(d decision) bool { return d.paused })
	r.setRun(rolloutsv1alpha1.AnalysisKindBackground, rolloutsv1alpha1.AnalysisPhaseError, "prometheus unreachable 4 times in a row")
	d = r.step("")
	if !d.aborted || !strings.Contains(d.status.AbortMessage, "unreachable") {
		t.Fatalf("background error: aborted %v status %+v", d.aborted, d.status)
	}
}

// spec.paused keeps a running analysis (a terminated run would end
// Successful without evidence).
func TestPausedKeepsTheRunningAnalysis(t *testing.T) {
	spec := canarySpec(weightStep(50), analysisStep(), pauseStep(0))
	r := &run{t: t, spec: spec, sim: newSim(2), now: t0}
	r.step("")
	r.sim.update = revCanary
	r.until(30, "analysis wanted", func(d decision) bool { return wants(d, rolloutsv1alpha1.AnalysisKindStep) })
	name := r.last.wantRuns[0].name
	spec.Paused = true
	d := r.step("")
	if !d.paused || len(d.wantRuns) != 1 || d.wantRuns[0].name != name || d.wantRuns[0].spec != nil {
		t.Fatalf("paused: wants %+v", d.wantRuns)
	}
}

func blueGreenAnalysis(pre, post bool) *rolloutsv1alpha1.RolloutSpec {
	spec := blueGreenSpec(true, 0)
	a := &rolloutsv1alpha1.RolloutAnalysis{Templates: []rolloutsv1alpha1.AnalysisTemplateRef{{TemplateName: "smoke"}}}
	if pre {
		spec.Strategy.BlueGreen.PrePromotionAnalysis = a
	}
	if post {
		spec.Strategy.BlueGreen.PostPromotionAnalysis = a
	}
	return spec
}

// Pre-promotion analysis gates the switch.
func TestBlueGreenPrePromotionAnalysis(t *testing.T) {
	r := &run{t: t, spec: blueGreenAnalysis(true, false), sim: newSim(3), now: t0}
	r.step("")
	r.sim.update = revCanary
	r.until(30, "pre-promotion analysis wanted", func(d decision) bool { return wants(d, rolloutsv1alpha1.AnalysisKindPrePromotion) })
	for range 3 {
		if d := r.step(""); d.stableSelects != revStable || d.status.ScaleDownRevision != "" {
			t.Fatalf("switched before the analysis passed: %+v", d.status)
		}
	}
	r.setRun(rolloutsv1alpha1.AnalysisKindPrePromotion, rolloutsv1alpha1.AnalysisPhaseSuccessful, "")
	if d := r.step(""); d.stableSelects != revCanary || d.status.ScaleDownRevision != revStable {
		t.Fatalf("no switch after the analysis passed: %+v", d.status)
	}
}

// Post-promotion analysis keeps the old pods until it passes, and its
// failure switches back.
func TestBlueGreenPostPromotionFailureSwitchesBack(t *testing.T) {
	r := &run{t: t, spec: blueGreenAnalysis(false, true), sim: newSim(3), now: t0}
	r.step("")
	r.sim.update = revCanary
	r.until(30, "switch", func(d decision) bool { return d.status.ScaleDownRevision != "" })
	if !wants(r.last, rolloutsv1alpha1.AnalysisKindPostPromotion) {
		t.Fatalf("no post-promotion analysis after the switch: %+v", r.last.wantRuns)
	}
	r.now = r.now.Add(time.Hour) // far past scaleDownDelaySeconds
	d := r.step("")
	if d.control.StableRevision != revStable || ptr.Deref(d.control.StableReplicas, 0) != 3 || d.status.ScaleDownRevision != revStable {
		t.Fatalf("old pods must stay while the post-promotion analysis runs: control %+v status %+v", d.control, d.status)
	}
	r.setRun(rolloutsv1alpha1.AnalysisKindPostPromotion, rolloutsv1alpha1.AnalysisPhaseFailed, "p99 1.8s > 0.5s")
	d = r.step("")
	if !d.aborted || d.stableSelects != revStable || d.status.StableRevision != revStable || d.status.AbortedRevision != revCanary ||
		!strings.Contains(d.status.AbortMessage, "p99 1.8s") {
		t.Fatalf("post-promotion failure: aborted %v active %s status %+v", d.aborted, d.stableSelects, d.status)
	}
	r.until(30, "new pods removed", func(d decision) bool { return r.sim.canary == 0 && r.sim.stable == 3 })
}

func TestBlueGreenPostPromotionSuccessScalesDown(t *testing.T) {
	r := &run{t: t, spec: blueGreenAnalysis(false, true), sim: newSim(3), now: t0}
	r.step("")
	r.sim.update = revCanary
	r.until(30, "switch", func(d decision) bool { return d.status.ScaleDownRevision != "" })
	r.setRun(rolloutsv1alpha1.AnalysisKindPostPromotion, rolloutsv1alpha1.AnalysisPhaseSuccessful, "")
	r.now = r.now.Add(time.Hour)
	r.until(30, "done", func(d decision) bool { return d.done })
	if r.sim.stable+r.sim.canary != 3 || r.status.AnalysisRuns[0].Phase != rolloutsv1alpha1.AnalysisPhaseSuccessful {
		t.Fatalf("after the post-promotion analysis: sim %+v runs %+v", r.sim, r.status.AnalysisRuns)
	}
}

func TestRunName(t *testing.T) {
	a := runName("web", revCanary, t0, rolloutsv1alpha1.AnalysisKindStep, ptr.To[int32](2))
	b := runName("web", revCanary, t0.Add(time.Minute), rolloutsv1alpha1.AnalysisKindStep, ptr.To[int32](2))
	if a == b || !strings.HasPrefix(a, "web-web-2-") || !strings.HasSuffix(a, "-step-2") {
		t.Fatalf("names %q %q", a, b)
	}
	long := runName(strings.Repeat("r", 250), revCanary, t0, rolloutsv1alpha1.AnalysisKindBackground, nil)
	if len(long) != maxNameLength || !strings.HasSuffix(long, "-background") {
		t.Fatalf("long name %d %q", len(long), long)
	}
}
