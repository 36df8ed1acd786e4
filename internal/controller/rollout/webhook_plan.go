package rollout

import (
	"fmt"
	"maps"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/podcontrol"
)

// Webhooks in the release state machine (pure, like analysis_plan.go): at
// each point where a webhook type applies, the plan asks for the checks
// that are due (decision.wantGates) and reads the answers this reconcile
// got (planInput.gates); until an answer is in, a check counts as not
// passed. The reconcile calls the wanted webhooks and decides again with
// their answers (decideCalling). What the webhooks last said is kept in
// status.gates, so a passed gate is not asked again and a closed one is
// asked again only every gateInterval.
//
//   - confirm-rollout: before the release moves a pod;
//   - pre-rollout: once the canary's first pods are ready, before it gets
//     traffic (blue-green: once the preview is ready);
//   - rollback: polled while a release is under way;
//   - confirm-traffic-increase: before a step raises the canary's weight
//     or pods (status entry per step);
//   - rollout: before each step completes (status entry per step);
//   - confirm-promotion: before promotion or a blue-green switch;
//   - post-rollout: in the decision that promotes or aborts;
//   - event: the reconcile sends it every event (not here).

// gateInterval is how often a closed gate or a failing check is asked
// again, and a rollback webhook polled.
const gateInterval = 5 * time.Second

// maxGateMessage is the longest answer kept in status.gates; an event
// quotes at most maxEventAnswer of it (an Event's note is at most 1 kB).
const (
	maxGateMessage = 1024
	maxEventAnswer = 512
)

// maxGateRounds bounds the decisions of one reconcile that call webhooks:
// an answer may let the release reach the next gate in the same reconcile.
const maxGateRounds = 6

// gateKey names one check: a webhook at a step (-1: none).
type gateKey struct {
	name string
	step int32
}

func keyOf(name string, step *int32) gateKey { return gateKey{name: name, step: ptr.Deref(step, -1)} }

// gateResult is a webhook's answer in this reconcile.
type gateResult struct {
	// ok: it answered 2xx.
	ok      bool
	message string
}

// wantGate is a check the decision needs now.
type wantGate struct {
	key      gateKey
	typ      rolloutsv1alpha1.WebhookType
	revision string
	step     *int32
}

// gateCheck is what the webhooks of one type say at one point.
type gateCheck struct {
	typ rolloutsv1alpha1.WebhookType
	// open: every webhook of the type passed (or there is none).
	open bool
	// closed is the first one that did not (a copy of its status).
	closed rolloutsv1alpha1.RolloutGateStatus
	// abort is set when failed checks exceeded the threshold.
	abort string
}

// webhooksOf returns the spec's webhooks of a type.
func webhooksOf(spec *rolloutsv1alpha1.RolloutSpec, typ rolloutsv1alpha1.WebhookType) []rolloutsv1alpha1.RolloutWebhook {
	var out []rolloutsv1alpha1.RolloutWebhook
	for _, h := range spec.Webhooks {
		if h.Type == typ {
			out = append(out, h)
		}
	}
	return out
}

// blocking types are the ones status.gates records.
func blocking(typ rolloutsv1alpha1.WebhookType) bool {
	switch typ {
	case rolloutsv1alpha1.WebhookPostRollout, rolloutsv1alpha1.WebhookEvent:
		return false
	}
	return true
}

// counted types' failures count toward webhookFailureThreshold.
func counted(typ rolloutsv1alpha1.WebhookType) bool {
	return typ == rolloutsv1alpha1.WebhookPreRollout || typ == rolloutsv1alpha1.WebhookRollout
}

// stepScoped types are checked again at every step: their status entries
// go when the step advances.
func stepScoped(typ rolloutsv1alpha1.WebhookType) bool {
	return typ == rolloutsv1alpha1.WebhookRollout || typ == rolloutsv1alpha1.WebhookConfirmTrafficIncrease
}

// decideCalling decides, calls the webhooks the decision wants and has no
// answer for yet, and decides again with the answers, until no new check
// is wanted (an answer may let the release reach another gate) or
// maxGateRounds. in.gates collects the answers (the caller may decide
// again with them). call returns an answer for every check it is given.
func decideCalling(in planInput, call func(d *decision, want []wantGate) map[gateKey]gateResult) decision {
	d := decide(in)
	for range maxGateRounds {
		todo := d.uncalled(in)
		if len(todo) == 0 {
			break
		}
		maps.Copy(in.gates, call(&d, todo))
		d = decide(in)
	}
	return d
}

// uncalled are the wanted checks without an answer in in.gates.
func (d *decision) uncalled(in planInput) []wantGate {
	var out []wantGate
	for _, w := range d.wantGates {
		if _, ok := in.gates[w.key]; !ok {
			out = append(out, w)
		}
	}
	return out
}

// want asks for a check.
func (d *decision) want(h rolloutsv1alpha1.RolloutWebhook, step *int32, revision string) {
	key := keyOf(h.Name, step)
	if slices.ContainsFunc(d.wantGates, func(w wantGate) bool { return w.key == key }) {
		return
	}
	var s *int32
	if step != nil {
		s = ptr.To(*step)
	}
	d.wantGates = append(d.wantGates, wantGate{key: key, typ: h.Type, revision: revision, step: s})
}

// gateStatus is the status entry of a webhook, created when missing (a
// rollback webhook starts open: nothing asked for a rollback).
func (d *decision) gateStatus(h rolloutsv1alpha1.RolloutWebhook) *rolloutsv1alpha1.RolloutGateStatus {
	st := &d.status
	for i := range st.Gates {
		if st.Gates[i].Name == h.Name {
			if st.Gates[i].Type != h.Type {
				st.Gates[i] = rolloutsv1alpha1.RolloutGateStatus{Name: h.Name, Type: h.Type, Open: h.Type == rolloutsv1alpha1.WebhookRollback}
			}
			return &st.Gates[i]
		}
	}
	st.Gates = append(st.Gates, rolloutsv1alpha1.RolloutGateStatus{Name: h.Name, Type: h.Type, Open: h.Type == rolloutsv1alpha1.WebhookRollback})
	return &st.Gates[len(st.Gates)-1]
}

// due: a check never made, or one that did not pass (and any rollback
// poll) made gateInterval ago or more.
func gateDue(g *rolloutsv1alpha1.RolloutGateStatus, now time.Time) bool {
	if g.LastCheck == nil {
		return true
	}
	if g.Open && g.Type != rolloutsv1alpha1.WebhookRollback {
		return false
	}
	return !now.Before(g.LastCheck.Add(gateInterval))
}

// gate evaluates the webhooks of typ at a step: it asks for the checks
// that are due (only when call: spec.paused reads what is recorded) and
// records the answers this reconcile got.
func (d *decision) gate(in planInput, typ rolloutsv1alpha1.WebhookType, step *int32, call bool) gateCheck {
	c := gateCheck{typ: typ, open: true}
	var failed *rolloutsv1alpha1.RolloutGateStatus
	for _, h := range webhooksOf(in.spec, typ) {
		g := d.gateStatus(h)
		key := keyOf(h.Name, step)
		if res, ok := in.gates[key]; ok {
			d.want(h, step, d.status.CanaryRevision)
			d.recordGate(in, g, key, res)
		} else if call && gateDue(g, in.now) {
			d.want(h, step, d.status.CanaryRevision)
		}
		if !g.Open && call {
			// Asked again when due.
			wait := gateInterval
			if g.LastCheck != nil {
				wait = g.LastCheck.Add(gateInterval).Sub(in.now)
			}
			d.gateWait = podcontrol.MinPositive(d.gateWait, wait)
		}
		if !g.Open && c.open {
			c.open, c.closed = false, *g
		}
		if !g.Open && g.LastCheck != nil {
			f := *g // g points into status.gates, which may grow
			failed = &f
		}
	}
	if counted(typ) && failed != nil && d.status.WebhookFailures > failureThreshold(in.spec) {
		c.abort = fmt.Sprintf("%s webhook %s failed %d checks, more than webhookFailureThreshold %d: %s",
			typ, failed.Name, d.status.WebhookFailures, failureThreshold(in.spec), truncate(failed.Message, maxEventAnswer))
	}
	return c
}

func failureThreshold(spec *rolloutsv1alpha1.RolloutSpec) int32 {
	return ptr.Deref(spec.WebhookFailureThreshold, 3)
}

// recordGate records an answer in the webhook's status entry, once per
// decision (blue-green decides the preview twice when it grows it).
func (d *decision) recordGate(in planInput, g *rolloutsv1alpha1.RolloutGateStatus, key gateKey, res gateResult) {
	if d.gatesRecorded == nil {
		d.gatesRecorded = map[gateKey]bool{}
	}
	if d.gatesRecorded[key] {
		return
	}
	d.gatesRecorded[key] = true
	wasOpen, checked := g.Open, g.LastCheck != nil
	g.LastCheck = &metav1.Time{Time: in.now}
	g.Message = truncate(res.message, maxGateMessage)
	g.Open = res.ok
	if g.Type == rolloutsv1alpha1.WebhookRollback {
		g.Open = !res.ok
		return
	}
	said := truncate(g.Message, maxEventAnswer)
	switch {
	case !res.ok && counted(g.Type):
		d.status.WebhookFailures++
		d.note(true, "WebhookCheckFailed", "%s webhook %s failed (%d failed checks, %d tolerated): %s",
			g.Type, g.Name, d.status.WebhookFailures, failureThreshold(in.spec), said)
	case res.ok && (!wasOpen || !checked):
		d.note(false, "WebhookPassed", "%s webhook %s: %s", g.Type, g.Name, said)
		d.progressed = true
	case !res.ok && (wasOpen || !checked):
		d.note(false, "WebhookGateClosed", "%s webhook %s: %s", g.Type, g.Name, said)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 { // not cutting a UTF-8 sequence
		n--
	}
	return s[:n]
}

// gatesOpen reads from status whether every webhook of typ passed (for a
// step-scoped type: at the current step).
func (d *decision) gatesOpen(in planInput, typ rolloutsv1alpha1.WebhookType) bool {
	for _, h := range webhooksOf(in.spec, typ) {
		i := slices.IndexFunc(d.status.Gates, func(g rolloutsv1alpha1.RolloutGateStatus) bool { return g.Name == h.Name && g.Type == typ })
		if i < 0 || !d.status.Gates[i].Open {
			return false
		}
	}
	return true
}

// holdGate pauses the release on a closed confirm gate.
func (d *decision) holdGate(in planInput, c gateCheck) {
	d.pause(in.now, rolloutsv1alpha1.PauseReasonWebhookGate, nil)
	d.gateHeld = true
	d.activity = rolloutsv1alpha1.ReasonWaitingForGate
	d.message = fmt.Sprintf("waiting for %s webhook %s%s", c.typ, c.closed.Name, lastAnswer(c.closed))
}

// waitCheck: a pre-rollout or rollout check has not passed yet.
func (d *decision) waitCheck(in planInput, c gateCheck, where string) {
	d.activity = rolloutsv1alpha1.ReasonWaitingForGate
	d.message = fmt.Sprintf("%s: waiting for %s webhook %s%s (%d failed checks, %d tolerated)", where, c.typ, c.closed.Name,
		lastAnswer(c.closed), d.status.WebhookFailures, failureThreshold(in.spec))
}

func lastAnswer(g rolloutsv1alpha1.RolloutGateStatus) string {
	if g.LastCheck == nil {
		return " (not answered yet)"
	}
	return ": " + g.Message
}

// failGates aborts the release: a rollback webhook answered 2xx, or
// failed checks exceeded the threshold.
func (d *decision) failGates(in planInput, why string) decision {
	st := &d.status
	st.AbortedRevision, st.AbortMessage = st.CanaryRevision, why
	d.wantRuns, d.wantGates = nil, nil
	d.note(true, "Aborted", "release of %s aborted: %s", st.CanaryRevision, why)
	return d.abort(in)
}

// startGates runs confirm-rollout before the release moves a pod. ok
// false: out holds the release with no canary pod (hold). Once passed, its
// status entry stays open for the release; a confirm-rollout webhook
// added to a release under way holds it too.
func (d *decision) startGates(in planInput, hold shape) (out decision, ok bool) {
	call := !in.spec.Paused
	c := d.gate(in, rolloutsv1alpha1.WebhookConfirmRollout, d.status.CurrentStepIndex, call)
	if c.open {
		return *d, true
	}
	d.shapeTo(in, hold)
	d.headers, d.mirrors = nil, nil
	if in.spec.Paused {
		d.pause(in.now, rolloutsv1alpha1.PauseReasonUser, nil)
		d.activity, d.message = rolloutsv1alpha1.ReasonPausedUser, fmt.Sprintf("paused by spec.paused before the release starts (%s webhook %s)", c.typ, c.closed.Name)
	} else {
		d.holdGate(in, c)
	}
	return *d, false
}

// preRollout runs the pre-rollout webhooks once per release, as Flagger
// does: once the canary's first pods are up and ready, before it gets any
// traffic. hold is the shape of those pods (its weight is dropped: with a
// traffic router the canary gets none until the webhooks pass; without
// one its pods are behind the shared Service as soon as they are ready).
// ok false: out holds the release there, or aborts it when the failed
// checks exceed the threshold.
func (d *decision) preRollout(in planInput, step *int32, hold shape, where string) (out decision, ok bool) {
	if len(webhooksOf(in.spec, rolloutsv1alpha1.WebhookPreRollout)) == 0 || d.gatesOpen(in, rolloutsv1alpha1.WebhookPreRollout) {
		return *d, true
	}
	hold.weight = 0
	d.shapeTo(in, hold)
	d.headers, d.mirrors = nil, nil
	if !settled(in, hold) {
		d.activity = rolloutsv1alpha1.ReasonStepRunning
		d.message = fmt.Sprintf("%s: %d/%d canary pods ready, then the pre-rollout webhooks before any traffic", where, d.status.CanaryReadyReplicas, hold.canary)
		return *d, false
	}
	c := d.gate(in, rolloutsv1alpha1.WebhookPreRollout, step, !in.spec.Paused)
	switch {
	case c.abort != "":
		return d.failGates(in, c.abort), false
	case c.open:
		return *d, true
	}
	d.waitCheck(in, c, where)
	return *d, false
}

// stepCheck runs the rollout webhooks before step (nil: a blue-green
// preview) completes. ok false: out holds the step or aborts.
func (d *decision) stepCheck(in planInput, step *int32) (out decision, ok bool) {
	c := d.gate(in, rolloutsv1alpha1.WebhookRollout, step, true)
	switch {
	case c.abort != "":
		return d.failGates(in, c.abort), false
	case !c.open:
		where := "preview"
		if step != nil {
			where = fmt.Sprintf("step %d", *step)
		}
		d.waitCheck(in, c, where)
		return *d, false
	}
	return *d, true
}

// raises reports whether step i raises the canary's weight or pods over
// the step before it (setWeight and setCanaryScale only): the shape before
// is prev.
func raises(in planInput, i int) (prev shape, ok bool) {
	s := in.spec.Strategy.Canary.Steps[i]
	prev = stepShape(in, i-1)
	if s.SetWeight == nil && s.SetCanaryScale == nil {
		return prev, false
	}
	sh := stepShape(in, i)
	return prev, sh.weight > prev.weight || sh.canary > prev.canary
}

// heldShape is the shape of step i as far as the recorded gates let it go
// (spec.paused: no webhook is called), and the step whose routes apply.
func (d *decision) heldShape(in planInput, i int) (shape, int) {
	last := len(in.spec.Strategy.Canary.Steps) - 1
	if i > last {
		if d.gatesOpen(in, rolloutsv1alpha1.WebhookConfirmPromotion) {
			return promotionShape(in), -1
		}
		return stepShape(in, last), last
	}
	if prev, ok := raises(in, i); ok && !d.gatesOpen(in, rolloutsv1alpha1.WebhookConfirmTrafficIncrease) {
		return prev, i - 1
	}
	sh := stepShape(in, i)
	if len(webhooksOf(in.spec, rolloutsv1alpha1.WebhookPreRollout)) > 0 && !d.gatesOpen(in, rolloutsv1alpha1.WebhookPreRollout) {
		sh.weight = 0 // no traffic before pre-rollout passes
	}
	return sh, i
}

// dropStepGates forgets the step-scoped gates when the step advances.
func (d *decision) dropStepGates() {
	gates := d.status.Gates[:0:0]
	for _, g := range d.status.Gates {
		if !stepScoped(g.Type) {
			gates = append(gates, g)
		}
	}
	if len(gates) == 0 {
		gates = nil
	}
	d.status.Gates = gates
}

// rollbackCheck polls the rollback webhooks of a release under way; it
// returns why the release must abort ("" when it goes on).
func (d *decision) rollbackCheck(in planInput) string {
	st := &d.status
	for _, h := range webhooksOf(in.spec, rolloutsv1alpha1.WebhookRollback) {
		g := d.gateStatus(h)
		key := keyOf(h.Name, st.CurrentStepIndex)
		res, ok := in.gates[key]
		switch {
		case ok:
			d.want(h, st.CurrentStepIndex, st.CanaryRevision)
			d.recordGate(in, g, key, res)
			if res.ok {
				return fmt.Sprintf("rollback webhook %s answered 2xx", h.Name)
			}
			d.gateWait = podcontrol.MinPositive(d.gateWait, gateInterval)
		case gateDue(g, in.now):
			d.want(h, st.CurrentStepIndex, st.CanaryRevision)
			d.gateWait = podcontrol.MinPositive(d.gateWait, gateInterval)
		default:
			d.gateWait = podcontrol.MinPositive(d.gateWait, g.LastCheck.Add(gateInterval).Sub(in.now))
		}
	}
	return ""
}

// afterRelease calls the post-rollout webhooks in the decision that
// promoted or aborted a release, and notes their answers.
func (d *decision) afterRelease(in planInput) {
	old, st := in.status, &d.status
	var revision string
	switch {
	case st.AbortedRevision != "" && st.AbortedRevision != old.AbortedRevision:
		revision = st.AbortedRevision
	case old.StableRevision != "" && st.StableRevision != old.StableRevision && st.AbortedRevision == "":
		revision = st.StableRevision
	default:
		return
	}
	step := old.CurrentStepIndex
	for _, h := range webhooksOf(in.spec, rolloutsv1alpha1.WebhookPostRollout) {
		d.want(h, step, revision)
		res, ok := in.gates[keyOf(h.Name, step)]
		if !ok {
			continue
		}
		said := truncate(res.message, maxEventAnswer)
		if res.ok {
			d.note(false, "PostRolloutWebhook", "post-rollout webhook %s (%s): %s", h.Name, revision, said)
		} else {
			d.note(true, "PostRolloutWebhookFailed", "post-rollout webhook %s (%s): %s", h.Name, revision, said)
		}
	}
}

// finishGates ends every decision: the WebhookGate pause goes once no
// gate holds, an aborted release asks no check, entries of webhooks no
// longer in the spec go, and the release comes back when a check is due.
func (d *decision) finishGates(in planInput) {
	if !d.gateHeld {
		d.unpause(rolloutsv1alpha1.PauseReasonWebhookGate)
	}
	if d.aborted {
		// An aborted release asks nothing more (a check asked before the
		// abort was decided is dropped) but its post-rollout webhooks.
		d.wantGates = slices.DeleteFunc(d.wantGates, func(w wantGate) bool { return w.typ != rolloutsv1alpha1.WebhookPostRollout })
	}
	if len(d.status.Gates) > 0 {
		gates := d.status.Gates[:0:0]
		for _, g := range d.status.Gates {
			if slices.ContainsFunc(in.spec.Webhooks, func(h rolloutsv1alpha1.RolloutWebhook) bool {
				return h.Name == g.Name && h.Type == g.Type && blocking(h.Type)
			}) {
				gates = append(gates, g)
			}
		}
		if len(gates) == 0 {
			gates = nil
		}
		d.status.Gates = gates
	}
	if !d.aborted && !d.done {
		d.requeueAfter = podcontrol.MinPositive(d.requeueAfter, d.gateWait)
	}
}
