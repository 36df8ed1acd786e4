package rollout

import (
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

func hook(name string, typ rolloutsv1alpha1.WebhookType) rolloutsv1alpha1.RolloutWebhook {
	return rolloutsv1alpha1.RolloutWebhook{Name: name, Type: typ, URL: "http://hooks/" + name}
}

func withHooks(spec *rolloutsv1alpha1.RolloutSpec, hooks ...rolloutsv1alpha1.RolloutWebhook) *rolloutsv1alpha1.RolloutSpec {
	spec.Webhooks = hooks
	return spec
}

// answer makes the named webhooks answer ok (others fail).
func answer(ok map[string]bool) func(wantGate) gateResult {
	return func(w wantGate) gateResult {
		if ok[w.key.name] {
			return gateResult{ok: true, message: "answered 200 OK"}
		}
		return gateResult{message: "answered 403 Forbidden: not yet"}
	}
}

// callsOf returns the checks made of a webhook.
func (r *run) callsOf(name string) []wantGate {
	var out []wantGate
	for _, w := range r.calls {
		if w.key.name == name {
			out = append(out, w)
		}
	}
	return out
}

func gateOf(st rolloutsv1alpha1.RolloutStatus, name string) *rolloutsv1alpha1.RolloutGateStatus {
	for i := range st.Gates {
		if st.Gates[i].Name == name {
			return &st.Gates[i]
		}
	}
	return nil
}

func hasPause(st rolloutsv1alpha1.RolloutStatus, reason rolloutsv1alpha1.PauseReason) bool {
	return slices.ContainsFunc(st.PauseConditions, func(pc rolloutsv1alpha1.PauseCondition) bool { return pc.Reason == reason })
}

// confirm-promotion holds the last step's shape, paused, asking again
// every gateInterval, until the webhook answers 2xx.
func TestConfirmPromotionHoldsUntilOpen(t *testing.T) {
	open := map[string]bool{}
	r := &run{t: t, spec: withHooks(canarySpec(weightStep(50)), hook("approve", rolloutsv1alpha1.WebhookConfirmPromotion)),
		sim: newSim(4), now: t0, hooks: answer(open)}
	r.step("")
	if len(r.calls) != 0 {
		t.Fatalf("no release, yet webhooks were called: %+v", r.calls)
	}
	r.sim.update = revCanary
	r.until(30, "held by the gate", func(d decision) bool { return d.paused })
	d := r.last
	if !hasPause(r.status, rolloutsv1alpha1.PauseReasonWebhookGate) || d.activity != rolloutsv1alpha1.ReasonWaitingForGate ||
		!strings.Contains(d.message, "confirm-promotion webhook approve: answered 403 Forbidden: not yet") || !d.gateHeld {
		t.Fatalf("hold: pauses %+v activity %s message %q", r.status.PauseConditions, d.activity, d.message)
	}
	if g := gateOf(r.status, "approve"); g == nil || g.Open || g.LastCheck == nil || g.Type != rolloutsv1alpha1.WebhookConfirmPromotion {
		t.Fatalf("gate status %+v", g)
	}
	w := r.calls[0]
	if w.revision != revCanary || ptr.Deref(w.step, -1) != 1 || w.typ != rolloutsv1alpha1.WebhookConfirmPromotion {
		t.Fatalf("check %+v", w)
	}
	if d.requeueAfter <= 0 || d.requeueAfter > gateInterval {
		t.Fatalf("a closed gate requeues after %s", d.requeueAfter)
	}
	before := len(r.calls)
	for range 20 { // 20 s at one reconcile a second
		if d := r.step(""); !d.paused || r.sim.canary != 2 || r.sim.stableRev != revStable {
			t.Fatalf("promoted past a closed gate: paused %v canary pods %d stable %s", d.paused, r.sim.canary, r.sim.stableRev)
		}
	}
	if n := len(r.calls) - before; n < 3 || n > 5 {
		t.Fatalf("%d checks in 20 s, want one every %s", n, gateInterval)
	}
	open["approve"] = true
	r.now = r.now.Add(gateInterval)
	r.until(30, "promoted", func(d decision) bool { return d.done })
	if r.sim.stableRev != revCanary || len(r.status.Gates) != 0 || len(r.status.PauseConditions) != 0 {
		t.Fatalf("after promotion: sim %+v status %+v", r.sim, r.status)
	}
	if !slices.Contains(r.events, "WebhookPassed") || !slices.Contains(r.events, "WebhookGateClosed") {
		t.Fatalf("events %v", r.events)
	}
}

// confirm-traffic-increase holds the previous step's weight and pods.
func TestConfirmTrafficIncreaseHoldsTheWeight(t *testing.T) {
	allowed := int32(0) // steps whose increase is confirmed
	r := &run{t: t, spec: withHooks(canarySpec(weightStep(20), weightStep(50), pauseStep(0)), hook("more", rolloutsv1alpha1.WebhookConfirmTrafficIncrease)),
		sim: newSim(10), now: t0, routed: true,
		hooks: func(w wantGate) gateResult {
			if *w.step <= allowed {
				return gateResult{ok: true, message: "answered 200 OK"}
			}
			return gateResult{message: "answered 409 Conflict"}
		}}
	r.step("")
	r.sim.update = revCanary
	r.until(60, "held at step 1", func(d decision) bool { return d.paused })
	if ptr.Deref(r.status.CurrentStepIndex, -1) != 1 || r.sim.routerWeight != 20 || r.sim.canary != 2 || !hasPause(r.status, rolloutsv1alpha1.PauseReasonWebhookGate) {
		t.Fatalf("hold: step %v weight %d canary %d pauses %+v", r.status.CurrentStepIndex, r.sim.routerWeight, r.sim.canary, r.status.PauseConditions)
	}
	if !strings.Contains(r.last.message, "step 1: waiting for confirm-traffic-increase webhook more") {
		t.Fatalf("message %q", r.last.message)
	}
	for range 12 {
		if d := r.step(""); d.weight != 20 || d.control.CanaryReplicas != 2 {
			t.Fatalf("the weight moved past a closed gate: weight %d canary %d", d.weight, d.control.CanaryReplicas)
		}
	}
	// spec.paused keeps the held shape and calls nothing.
	r.spec.Paused = true
	n := len(r.calls)
	for range 10 {
		if d := r.step(""); d.weight != 20 || d.control.CanaryReplicas != 2 {
			t.Fatalf("paused: weight %d canary %d", d.weight, d.control.CanaryReplicas)
		}
	}
	if len(r.calls) != n {
		t.Fatalf("webhooks called while spec.paused: %+v", r.calls[n:])
	}
	r.spec.Paused = false
	allowed = 1
	r.now = r.now.Add(gateInterval)
	r.until(60, "pause step", func(d decision) bool {
		return d.paused && hasPause(r.status, rolloutsv1alpha1.PauseReasonCanaryPauseStep)
	})
	if r.sim.routerWeight != 50 || r.sim.canary != 5 || hasPause(r.status, rolloutsv1alpha1.PauseReasonWebhookGate) || len(r.status.Gates) != 0 {
		t.Fatalf("after the gate: weight %d canary %d status %+v", r.sim.routerWeight, r.sim.canary, r.status)
	}
	// Each increasing step was asked; the pause step was not.
	for _, w := range r.callsOf("more") {
		if *w.step > 1 {
			t.Fatalf("asked at step %d", *w.step)
		}
	}
}

// A rollback webhook is polled while the release is under way (every
// gateInterval, even at an indefinite pause); 2xx aborts.
func TestRollbackWebhookAborts(t *testing.T) {
	open := map[string]bool{}
	r := &run{t: t, spec: withHooks(canarySpec(weightStep(50), pauseStep(0)), hook("alerts", rolloutsv1alpha1.WebhookRollback)),
		sim: newSim(4), now: t0, hooks: answer(open)}
	r.step("")
	r.sim.update = revCanary
	r.until(30, "pause step", func(d decision) bool { return d.paused })
	if d := r.last; d.requeueAfter <= 0 || d.requeueAfter > gateInterval {
		t.Fatalf("an indefinite pause with a rollback webhook requeues after %s", d.requeueAfter)
	}
	before := len(r.calls)
	for range 20 {
		r.step("")
	}
	if n := len(r.calls) - before; n < 3 || n > 5 {
		t.Fatalf("%d polls in 20 s, want one every %s", n, gateInterval)
	}
	if g := gateOf(r.status, "alerts"); g == nil || !g.Open {
		t.Fatalf("rollback gate %+v", g)
	}
	open["alerts"] = true
	r.until(10, "aborted", func(d decision) bool { return d.aborted })
	if r.status.AbortMessage != "rollback webhook alerts answered 2xx" || r.status.AbortedRevision != revCanary {
		t.Fatalf("abort: %+v", r.status)
	}
	r.until(30, "back on stable", func(decision) bool { return r.sim.canary == 0 && r.sim.moving == 0 })
	n := len(r.calls)
	for range 10 {
		r.step("")
	}
	if len(r.calls) != n {
		t.Fatalf("an aborted release is still polled: %+v", r.calls[n:])
	}
}

// pre-rollout runs once the first step's canary pods are ready, before
// the canary gets traffic; failures hold it there, are asked again every
// gateInterval and count: one more than the threshold aborts.
func TestPreRolloutFailuresAbort(t *testing.T) {
	spec := withHooks(canarySpec(weightStep(50), pauseStep(0)), hook("smoke", rolloutsv1alpha1.WebhookPreRollout))
	spec.WebhookFailureThreshold = ptr.To[int32](2)
	r := &run{t: t, spec: spec, sim: newSim(4), now: t0, hooks: answer(nil)}
	r.step("")
	r.sim.update = revCanary
	waited := false
	for range 20 {
		d := r.step("")
		if d.aborted {
			break
		}
		if d.control.CanaryReplicas != 2 || d.weight != 0 || d.paused {
			t.Fatalf("pre-rollout failing: control %+v weight %d paused %v", d.control, d.weight, d.paused)
		}
		if d.activity != rolloutsv1alpha1.ReasonWaitingForGate {
			// Not called before the canary's pods are ready.
			if len(r.callsOf("smoke")) != 0 || d.activity != rolloutsv1alpha1.ReasonStepRunning {
				t.Fatalf("before the canary is ready: activity %s, checks %+v", d.activity, r.calls)
			}
			continue
		}
		waited = true
		if r.sim.canary != 2 || r.sim.moving != 0 || !strings.Contains(d.message, "pre-rollout webhook smoke") {
			t.Fatalf("waiting for pre-rollout: sim %+v message %q", r.sim, d.message)
		}
	}
	if !waited {
		t.Fatal("never waited for the pre-rollout webhook")
	}
	if !r.last.aborted || len(r.callsOf("smoke")) != 3 || r.status.WebhookFailures != 3 {
		t.Fatalf("aborted %v after %d checks, %d failures", r.last.aborted, len(r.callsOf("smoke")), r.status.WebhookFailures)
	}
	if m := r.status.AbortMessage; !strings.Contains(m, "pre-rollout webhook smoke failed 3 checks") || !strings.Contains(m, "answered 403 Forbidden: not yet") {
		t.Fatalf("abort message %q", m)
	}
	if got := slices.DeleteFunc(slices.Clone(r.events), func(e string) bool { return e != "WebhookCheckFailed" }); len(got) != 3 {
		t.Fatalf("events %v", r.events)
	}
	// A retry starts the count again.
	r.hooks = answer(map[string]bool{"smoke": true})
	r.step(rolloutsv1alpha1.ActionRetry)
	r.until(30, "pause step after retry", func(d decision) bool { return d.paused })
	if r.status.WebhookFailures != 0 || len(r.callsOf("smoke")) != 4 {
		t.Fatalf("after retry: failures %d, %d checks", r.status.WebhookFailures, len(r.callsOf("smoke")))
	}
	if g := gateOf(r.status, "smoke"); g == nil || !g.Open {
		t.Fatalf("pre-rollout gate %+v", g)
	}
}

// pre-rollout that passes is called once per release.
func TestPreRolloutCalledOnce(t *testing.T) {
	r := &run{t: t, spec: withHooks(canarySpec(weightStep(25), weightStep(50), pauseStep(0)), hook("smoke", rolloutsv1alpha1.WebhookPreRollout)),
		sim: newSim(4), now: t0, hooks: answer(map[string]bool{"smoke": true})}
	r.step("")
	r.sim.update = revCanary
	r.until(40, "pause step", func(d decision) bool { return d.paused })
	calls := r.callsOf("smoke")
	if len(calls) != 1 || calls[0].revision != revCanary || ptr.Deref(calls[0].step, -1) != 0 {
		t.Fatalf("pre-rollout checks %+v", calls)
	}
}

// rollout webhooks are asked before each step completes; failures hold
// the step and count.
func TestRolloutWebhookFailuresCounted(t *testing.T) {
	fails := 2
	r := &run{t: t, spec: withHooks(canarySpec(weightStep(25), weightStep(50), pauseStep(0)), hook("check", rolloutsv1alpha1.WebhookRollout)),
		sim: newSim(4), now: t0,
		hooks: func(w wantGate) gateResult {
			if *w.step == 0 && fails > 0 {
				fails--
				return gateResult{message: "answered 500 Internal Server Error"}
			}
			return gateResult{ok: true, message: "answered 200 OK"}
		}}
	r.step("")
	r.sim.update = revCanary
	r.until(40, "pause step", func(d decision) bool { return d.paused })
	if r.status.WebhookFailures != 2 || *r.status.CurrentStepIndex != 2 {
		t.Fatalf("failures %d step %d", r.status.WebhookFailures, *r.status.CurrentStepIndex)
	}
	var steps []int32
	for _, w := range r.callsOf("check") {
		steps = append(steps, *w.step)
	}
	if !slices.Equal(steps, []int32{0, 0, 0, 1}) {
		t.Fatalf("rollout checks at steps %v, want 0 0 0 1", steps)
	}
	// The failing step held: step 1 (50%) only after step 0 passed.
	if !slices.Contains(r.events, "WebhookCheckFailed") {
		t.Fatalf("events %v", r.events)
	}
}

// post-rollout is called once when the release is promoted, and once when
// one is aborted.
func TestPostRolloutCalledOnce(t *testing.T) {
	r := &run{t: t, spec: withHooks(canarySpec(weightStep(50)), hook("notify", rolloutsv1alpha1.WebhookPostRollout)),
		sim: newSim(4), now: t0, hooks: answer(map[string]bool{"notify": true})}
	r.step("")
	r.sim.update = revCanary
	r.until(40, "promoted", func(d decision) bool { return d.done && r.sim.stableRev == revCanary })
	for range 10 {
		r.step("")
	}
	calls := r.callsOf("notify")
	if len(calls) != 1 || calls[0].revision != revCanary || calls[0].typ != rolloutsv1alpha1.WebhookPostRollout {
		t.Fatalf("post-rollout calls after a promotion: %+v", calls)
	}
	if !slices.Contains(r.events, "PostRolloutWebhook") {
		t.Fatalf("events %v", r.events)
	}

	r.sim.update = revNext
	r.step("")
	r.step(rolloutsv1alpha1.ActionAbort)
	for range 10 {
		r.step("")
	}
	calls = r.callsOf("notify")
	if len(calls) != 2 || calls[1].revision != revNext {
		t.Fatalf("post-rollout calls after an abort: %+v", calls)
	}
}

// confirm-rollout holds a release before any pod moves.
func TestConfirmRolloutHoldsBeforeAnyPod(t *testing.T) {
	open := map[string]bool{}
	r := &run{t: t, spec: withHooks(canarySpec(weightStep(50), pauseStep(0)), hook("window", rolloutsv1alpha1.WebhookConfirmRollout)),
		sim: newSim(4), now: t0, hooks: answer(open)}
	r.step("")
	r.sim.update = revCanary
	for range 10 {
		d := r.step("")
		if !d.paused || r.sim.canary != 0 || d.control.CanaryReplicas != 0 || !hasPause(r.status, rolloutsv1alpha1.PauseReasonWebhookGate) {
			t.Fatalf("confirm-rollout closed: paused %v canary %d control %+v", d.paused, r.sim.canary, d.control)
		}
	}
	if w := r.calls[0]; w.typ != rolloutsv1alpha1.WebhookConfirmRollout || ptr.Deref(w.step, -1) != 0 || w.revision != revCanary {
		t.Fatalf("check %+v", w)
	}
	open["window"] = true
	r.now = r.now.Add(gateInterval)
	r.until(30, "pause step", func(d decision) bool {
		return d.paused && hasPause(r.status, rolloutsv1alpha1.PauseReasonCanaryPauseStep)
	})
	if r.sim.canary != 2 || hasPause(r.status, rolloutsv1alpha1.PauseReasonWebhookGate) {
		t.Fatalf("after confirm: canary %d pauses %+v", r.sim.canary, r.status.PauseConditions)
	}
}

// Blue-green: confirm-rollout holds the preview, confirm-promotion the
// switch.
func TestBlueGreenGates(t *testing.T) {
	open := map[string]bool{}
	spec := withHooks(blueGreenSpec(true, 0), hook("start", rolloutsv1alpha1.WebhookConfirmRollout), hook("switch", rolloutsv1alpha1.WebhookConfirmPromotion))
	r := &run{t: t, spec: spec, sim: newSim(3), now: t0, hooks: answer(open)}
	r.step("")
	r.sim.update = revCanary
	for range 5 {
		if d := r.step(""); r.sim.canary != 0 || !d.paused {
			t.Fatalf("preview before confirm-rollout: %d pods, paused %v", r.sim.canary, d.paused)
		}
	}
	open["start"] = true
	r.now = r.now.Add(gateInterval)
	r.until(30, "preview ready, held at the switch", func(d decision) bool { return d.paused && r.sim.canary == 3 })
	for range 10 {
		if d := r.step(""); d.stableSelects != revStable || d.status.ScaleDownRevision != "" {
			t.Fatalf("switched past a closed confirm-promotion: %+v", d.status)
		}
	}
	if !strings.Contains(r.last.message, "confirm-promotion webhook switch") {
		t.Fatalf("message %q", r.last.message)
	}
	if w := r.callsOf("switch"); len(w) == 0 || w[0].step != nil {
		t.Fatalf("blue-green checks carry no step: %+v", w)
	}
	open["switch"] = true
	r.now = r.now.Add(gateInterval)
	r.until(5, "switch", func(d decision) bool { return d.status.ScaleDownRevision == revStable })
}

// A gate's rate limit: no check is due within gateInterval of the last.
func TestGateDue(t *testing.T) {
	g := &rolloutsv1alpha1.RolloutGateStatus{Type: rolloutsv1alpha1.WebhookConfirmPromotion}
	if !gateDue(g, t0) {
		t.Fatal("a gate never checked is due")
	}
	g.LastCheck = &metav1.Time{Time: t0}
	if gateDue(g, t0.Add(gateInterval-time.Millisecond)) || !gateDue(g, t0.Add(gateInterval)) {
		t.Fatal("a closed gate is due every gateInterval")
	}
	g.Open = true
	if gateDue(g, t0.Add(time.Hour)) {
		t.Fatal("an open confirm gate is not asked again")
	}
	g.Type = rolloutsv1alpha1.WebhookRollback
	if !gateDue(g, t0.Add(gateInterval)) {
		t.Fatal("a rollback webhook is polled")
	}
}

// With a traffic router the canary gets no traffic until pre-rollout
// passes: its pods come up at weight 0, then the step's weight follows.
func TestPreRolloutRoutedNoTraffic(t *testing.T) {
	open := map[string]bool{}
	spec := withHooks(canarySpec(weightStep(20), pauseStep(0)), hook("smoke", rolloutsv1alpha1.WebhookPreRollout))
	r := &run{t: t, spec: spec, sim: newSim(10), now: t0, routed: true, hooks: answer(open)}
	r.step("")
	r.sim.update = revCanary
	r.until(30, "waiting for pre-rollout", func(d decision) bool { return d.activity == rolloutsv1alpha1.ReasonWaitingForGate })
	for range 5 {
		r.step("")
		if r.sim.canary != 2 || r.sim.routerWeight != 0 || r.last.weight != 0 {
			t.Fatalf("pre-rollout closed: canary pods %d, router weight %d", r.sim.canary, r.sim.routerWeight)
		}
	}
	open["smoke"] = true
	r.now = r.now.Add(gateInterval)
	r.until(30, "pause step at 20%", func(d decision) bool { return d.paused })
	if r.sim.routerWeight != 20 || len(r.callsOf("smoke")) < 2 {
		t.Fatalf("after pre-rollout: weight %d, checks %d", r.sim.routerWeight, len(r.callsOf("smoke")))
	}
}

// Steps that give the canary no pod: pre-rollout runs before promotion.
func TestPreRolloutBeforePromotion(t *testing.T) {
	r := &run{t: t, spec: withHooks(canarySpec(weightStep(0)), hook("smoke", rolloutsv1alpha1.WebhookPreRollout)),
		sim: newSim(4), now: t0, hooks: answer(nil)}
	r.step("")
	r.sim.update = revCanary
	r.until(10, "waiting for pre-rollout", func(d decision) bool { return d.activity == rolloutsv1alpha1.ReasonWaitingForGate })
	calls := r.callsOf("smoke")
	if len(calls) != 1 || ptr.Deref(calls[0].step, -1) != 1 || r.sim.canary != 0 || !strings.Contains(r.last.message, "before promotion") {
		t.Fatalf("checks %+v canary %d message %q", calls, r.sim.canary, r.last.message)
	}
	r.hooks = answer(map[string]bool{"smoke": true})
	r.now = r.now.Add(gateInterval)
	r.until(30, "promoted", func(d decision) bool { return d.done && r.status.StableRevision == revCanary })
}

// Blue-green: pre-rollout runs once the preview is ready, before the
// switch; failures past the threshold abort and scale the preview down.
func TestBlueGreenPreRollout(t *testing.T) {
	spec := withHooks(blueGreenSpec(true, 0), hook("smoke", rolloutsv1alpha1.WebhookPreRollout))
	spec.WebhookFailureThreshold = ptr.To[int32](1)
	r := &run{t: t, spec: spec, sim: newSim(3), now: t0, hooks: answer(nil)}
	r.step("")
	r.sim.update = revCanary
	r.until(30, "preview ready, pre-rollout asked", func(decision) bool { return len(r.callsOf("smoke")) == 1 })
	if r.sim.canary != 3 || r.last.stableSelects != revStable || r.last.activity != rolloutsv1alpha1.ReasonWaitingForGate {
		t.Fatalf("at the first check: preview %d, active selects %s, activity %s", r.sim.canary, r.last.stableSelects, r.last.activity)
	}
	for range 3 {
		r.now = r.now.Add(gateInterval)
		if d := r.step(""); d.aborted {
			break
		}
	}
	if !r.last.aborted || r.status.StableRevision != revStable || !strings.Contains(r.status.AbortMessage, "pre-rollout webhook smoke") {
		t.Fatalf("aborted %v status %+v", r.last.aborted, r.status)
	}
}
