package rollout

import (
	"fmt"
	"regexp"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/podcontrol"
	"github.com/drover-dev/drover/internal/target"
	"github.com/drover-dev/drover/internal/traffic"
)

// The release is a state machine over small step actions, in the manner of
// helm-controller's reconcile: the state (the Rollout's status and what the
// workload and the router report) decides the next action, the action is
// applied (apply.go) and recorded in status. Everything here is pure: it
// reads no API and no clock.

// planInput is what one reconcile knows.
type planInput struct {
	spec   *rolloutsv1alpha1.RolloutSpec
	status *rolloutsv1alpha1.RolloutStatus
	// workload is the target, already caught up with its spec.
	workload *target.Workload
	// action is the user's pending action ("" when none).
	action rolloutsv1alpha1.Action
	// routed: a traffic router shifts the traffic; observedWeight and
	// weightVerified are what it reported.
	routed         bool
	observedWeight int32
	weightVerified bool
	// observedRoutes are the managed header and mirror routes the router
	// carries (traffic.Observed.Routes).
	observedRoutes []string
	// deadlineExceeded: the Progressing condition says no progress was
	// made within progressDeadlineSeconds.
	deadlineExceeded bool
	now              time.Time
	// name is the Rollout's name; runs are its AnalysisRuns by name.
	name string
	runs map[string]observedRun
	// gates are the webhooks' answers this reconcile got (nil: none yet).
	gates map[gateKey]gateResult
}

// event is a transition worth an Event.
type event struct {
	reason, message string
	warning         bool
	// trigger is the notification trigger the event is (none: it is not
	// notified); step the step it is about, when not the current one.
	trigger rolloutsv1alpha1.NotificationTrigger
	step    *int32
}

// decision is what the reconcile should make true.
type decision struct {
	// status is the new status (conditions are set later, status.go).
	status rolloutsv1alpha1.RolloutStatus
	// control is written on the workload.
	control appsv1alpha1.RolloutControl
	// weight is the canary weight to set on the router, and headers and
	// mirrors its managed routes.
	weight  int32
	headers []traffic.HeaderRoute
	mirrors []traffic.MirrorRoute
	// stableSelects and canarySelects are the revisions the stable and
	// canary Services select.
	stableSelects, canarySelects string
	// activity is the Reconciling reason while not done, and message the
	// human summary.
	activity, message string
	// done: no release is under way and every pod runs the stable
	// revision, ready. paused: the release waits for time or a user.
	// aborted: the release was aborted.
	done, paused, aborted bool
	// progressed: something moved (step, counts, revisions).
	progressed   bool
	requeueAfter time.Duration
	events       []event
	// actionDone: the pending action was handled and can be removed.
	actionDone bool
	// wantRuns are the AnalysisRuns the release needs now; running runs
	// of the Rollout not among them are terminated.
	wantRuns []wantRun
	// wantGates are the webhook checks the release needs now
	// (webhook_plan.go); gateHeld: a closed confirm gate holds it;
	// gateWait: when the next check is due.
	wantGates     []wantGate
	gateHeld      bool
	gateWait      time.Duration
	gatesRecorded map[gateKey]bool
}

// shape is how many pods of each revision a step runs and the canary's
// traffic weight.
type shape struct {
	canary, stable int32
	weight         int32
}

// decide runs the state machine for one reconcile.
func decide(in planInput) decision {
	d := decideRelease(in)
	d.afterRelease(in)
	d.finishGates(in)
	return d
}

func decideRelease(in planInput) decision {
	w := in.workload
	d := decision{status: *in.status.DeepCopy()}
	st := &d.status
	st.Replicas = w.Replicas
	d.actionDone = in.action != ""

	if st.StableRevision == "" {
		// First sight of the workload: what it runs is stable; an update
		// already under way is released through the steps.
		st.StableRevision = w.CurrentRevision
	}
	if st.ScaleDownRevision != "" {
		if done, ok := d.scaleDown(in); !ok {
			return done
		}
	}
	stable, update := st.StableRevision, w.UpdateRevision

	if update == stable {
		return d.steady(in)
	}
	if st.CanaryRevision != update {
		prev := st.CanaryRevision
		d.startRelease(in.now, update)
		if prev != "" {
			d.note(false, "ReleaseRestarted", "revision %s replaces %s mid-release: starting again from step 0", update, prev)
		} else {
			d.note(false, "ReleaseStarted", "releasing revision %s (stable %s)", update, stable)
		}
	}

	switch in.action {
	case rolloutsv1alpha1.ActionAbort:
		if st.AbortedRevision != update {
			st.AbortedRevision, st.AbortMessage = update, "aborted by a user"
			d.note(true, "Aborted", "release of %s aborted by a user: traffic and pods back to %s", update, stable)
		}
	case rolloutsv1alpha1.ActionRetry:
		if st.AbortedRevision == update {
			d.startRelease(in.now, update)
			d.note(false, "Retried", "release of %s retried from step 0", update)
		}
	}
	if st.AbortedRevision != update && in.deadlineExceeded && in.spec.ProgressDeadlineAbort {
		st.AbortedRevision = update
		st.AbortMessage = fmt.Sprintf("no progress within %ds", ptr.Deref(in.spec.ProgressDeadlineSeconds, 600))
		d.note(true, "Aborted", "release of %s aborted: %s", update, st.AbortMessage)
	}
	if st.AbortedRevision != update {
		if why := d.rollbackCheck(in); why != "" {
			return d.failGates(in, why)
		}
	}
	if st.AbortedRevision == update {
		return d.abort(in)
	}
	if in.spec.Strategy.BlueGreen != nil {
		return d.blueGreen(in)
	}
	return d.release(in)
}

// startRelease resets the step machine for a new canary revision.
func (d *decision) startRelease(now time.Time, update string) {
	st := &d.status
	st.CanaryRevision = update
	st.ReleaseStartedAt = &metav1.Time{Time: now}
	st.CurrentStepIndex = ptr.To[int32](0)
	st.StepStartedAt = &metav1.Time{Time: now}
	st.PauseConditions = nil
	st.PromoteFull = false
	st.AbortedRevision, st.AbortMessage = "", ""
	st.ScaleDownRevision, st.ScaleDownAt, st.SwitchedBackAt = "", nil, nil
	st.AnalysisRuns = nil
	st.WebhookFailures, st.Gates = 0, nil
	d.progressed = true
}

// steady: the template is the stable revision. Every pod runs it; the
// canary Service points at it too.
func (d *decision) steady(in planInput) decision {
	st, w := &d.status, in.workload
	if st.CanaryRevision != "" {
		d.note(false, "ReleaseReverted", "the template went back to the stable revision %s: release of %s dropped", st.StableRevision, st.CanaryRevision)
		d.progressed = true
	}
	st.CanaryRevision, st.CurrentStepIndex, st.StepStartedAt, st.ReleaseStartedAt = "", nil, nil, nil
	st.PauseConditions, st.PromoteFull, st.AbortedRevision, st.AbortMessage = nil, false, "", ""
	st.WebhookFailures, st.Gates, st.SwitchedBackAt = 0, nil, nil
	d.shapeTo(in, shape{stable: w.Replicas})
	d.control = appsv1alpha1.RolloutControl{StableRevision: st.StableRevision}
	st.CanaryReplicas, st.StableReplicas = 0, w.Replicas
	d.stableSelects, d.canarySelects = st.StableRevision, st.StableRevision
	c := w.Counts
	d.done = c.Replicas == w.Replicas && c.Updated == w.Replicas && c.UpdatedReady == w.Replicas &&
		(!in.routed || (in.observedWeight == 0 && in.weightVerified))
	d.activity = rolloutsv1alpha1.ReasonHealthy
	d.message = fmt.Sprintf("revision %s: %d/%d pods ready", st.StableRevision, c.UpdatedReady, w.Replicas)
	if !d.done {
		d.activity = rolloutsv1alpha1.ReasonWaitingForWorkload
	}
	return *d
}

// abort keeps every pod and all traffic on the stable revision.
func (d *decision) abort(in planInput) decision {
	st, w := &d.status, in.workload
	st.PauseConditions = nil
	d.shapeTo(in, shape{stable: w.Replicas})
	d.holdSwitchedBack(in)
	d.stableSelects, d.canarySelects = st.StableRevision, st.CanaryRevision
	d.aborted = true
	d.activity = rolloutsv1alpha1.ReasonAborted
	why := st.AbortMessage
	if why == "" {
		why = "aborted"
	}
	d.message = fmt.Sprintf("release of %s aborted (%s): %d/%d pods back on %s; retry it or release a new revision",
		st.CanaryRevision, why, st.StableReadyReplicas, w.Replicas, st.StableRevision)
	return *d
}

// release moves through the steps, then promotes.
func (d *decision) release(in planInput) decision {
	out := d.steps(in)
	out.startBackground(in)
	if w := in.workload; in.routed && (w.UpdateRevision != out.status.CanaryRevision || w.Counts.UpdatedReady == 0) {
		// The canary revision has no ready pod yet (a release that just
		// started, or restarted on a newer revision while the router
		// still sends the previous canary its weight): the canary
		// Service selects the stable pods until it has one, so no
		// request finds an empty Service.
		out.canarySelects = out.status.StableRevision
	}
	return out
}

// steps runs the canary steps from the current one.
func (d *decision) steps(in planInput) decision {
	st := &d.status
	steps := in.spec.Strategy.Canary.Steps
	d.stableSelects, d.canarySelects = st.StableRevision, st.CanaryRevision
	i := ptr.Deref(st.CurrentStepIndex, 0)

	switch in.action {
	case rolloutsv1alpha1.ActionPromoteFull:
		if !st.PromoteFull {
			st.PromoteFull = true
			d.note(false, "PromotedFull", "remaining steps skipped by a user: promoting %s", st.CanaryRevision)
		}
	case rolloutsv1alpha1.ActionPromote:
		// A promote at an inconclusive background analysis accepts it
		// (background, below); elsewhere it ends the current step.
		if int(i) < len(steps) && !d.inconclusiveBackground() {
			d.note(false, "StepSkipped", "step %d promoted by a user", i)
			i = d.advance(in.now, i)
		}
	}
	// Webhooks: no pod moves before confirm-rollout passes.
	st.CurrentStepIndex = ptr.To(i)
	if out, ok := d.startGates(in, shape{stable: in.workload.Replicas}); !ok {
		return out
	}
	if st.PromoteFull {
		i = int32(len(steps))
	}
	if out, ok, _ := d.background(in, i); !ok {
		st.CurrentStepIndex = ptr.To(i)
		return out
	}

	if in.spec.Paused {
		// Hold: the current step's shape stays (as far as its gates let
		// it); nothing advances.
		sh, routes := d.heldShape(in, int(i))
		d.shapeTo(in, sh)
		d.routesTo(in, routes)
		d.pause(in.now, rolloutsv1alpha1.PauseReasonUser, nil)
		d.keepRuns()
		d.activity, d.message = rolloutsv1alpha1.ReasonPausedUser, "paused by spec.paused at step "+fmt.Sprint(i)
		st.CurrentStepIndex = ptr.To(i)
		return *d
	}
	d.unpause(rolloutsv1alpha1.PauseReasonUser)

	for int(i) < len(steps) {
		step := steps[i]
		if prev, ok := raises(in, int(i)); ok {
			// confirm-traffic-increase: the previous shape holds until
			// the webhooks let the canary grow.
			if c := d.gate(in, rolloutsv1alpha1.WebhookConfirmTrafficIncrease, ptr.To(i), true); !c.open {
				d.shapeTo(in, prev)
				d.routesTo(in, int(i)-1)
				d.holdGate(in, c)
				d.message = fmt.Sprintf("step %d: %s", i, d.message)
				st.CurrentStepIndex = ptr.To(i)
				return *d
			}
		}
		// pre-rollout: at the first step that gives the canary pods
		// (once confirm-traffic-increase let it), when they are ready,
		// before they get traffic. A pause step raises nothing.
		if sh := stepShape(in, int(i)); sh.canary > 0 {
			if out, ok := d.preRollout(in, ptr.To(i), sh, fmt.Sprintf("step %d", i)); !ok {
				st.CurrentStepIndex = ptr.To(i)
				return out
			}
		}
		if step.Pause != nil {
			sh := stepShape(in, int(i))
			d.shapeTo(in, sh)
			d.routesTo(in, int(i))
			started := st.StepStartedAt.Time
			if step.Pause.Duration == nil {
				d.pause(started, rolloutsv1alpha1.PauseReasonCanaryPauseStep, nil)
				d.activity, d.message = rolloutsv1alpha1.ReasonPausedStep, fmt.Sprintf("paused at step %d until promoted (drover promote)", i)
				st.CurrentStepIndex = ptr.To(i)
				return *d
			}
			until := started.Add(step.Pause.Duration.Duration)
			if in.now.Before(until) {
				d.pause(started, rolloutsv1alpha1.PauseReasonCanaryPauseStep, &until)
				d.activity, d.message = rolloutsv1alpha1.ReasonPausedStep, fmt.Sprintf("paused at step %d for %s", i, step.Pause.Duration.Duration)
				d.requeueAfter = until.Sub(in.now)
				st.CurrentStepIndex = ptr.To(i)
				return *d
			}
			d.unpause(rolloutsv1alpha1.PauseReasonCanaryPauseStep)
			if out, ok := d.stepCheck(in, ptr.To(i)); !ok {
				st.CurrentStepIndex = ptr.To(i)
				return out
			}
			d.note(false, "StepCompleted", "step %d (pause %s) completed", i, step.Pause.Duration.Duration).step = ptr.To(i)
			i = d.advance(in.now, i)
			continue
		}
		sh := stepShape(in, int(i))
		d.shapeTo(in, sh)
		d.routesTo(in, int(i))
		if !settled(in, sh) || !d.routesSettled(in) {
			d.activity = rolloutsv1alpha1.ReasonStepRunning
			d.message = fmt.Sprintf("step %d: %d/%d canary pods ready, weight %d%%", i, st.CanaryReadyReplicas, sh.canary, sh.weight)
			st.CurrentStepIndex = ptr.To(i)
			return *d
		}
		if step.Analysis != nil {
			// The analysis judges the canary the steps before it set up,
			// once that is in place.
			v, run, _ := d.analysis(in, rolloutsv1alpha1.AnalysisKindStep, ptr.To(i), st.CanaryRevision, step.Analysis)
			st.CurrentStepIndex = ptr.To(i)
			switch v {
			case verdictFailed:
				return d.failRelease(in, run)
			case verdictInconclusive:
				d.holdInconclusive(in, run)
				return *d
			case verdictRunning:
				d.waitAnalysis(run)
				return *d
			}
			d.unpause(rolloutsv1alpha1.PauseReasonInconclusiveAnalysis)
			if out, ok := d.stepCheck(in, ptr.To(i)); !ok {
				return out
			}
			d.note(false, "StepCompleted", "step %d (analysis %s) completed", i, run.Name).step = ptr.To(i)
			i = d.advance(in.now, i)
			continue
		}
		if out, ok := d.stepCheck(in, ptr.To(i)); !ok {
			st.CurrentStepIndex = ptr.To(i)
			return out
		}
		d.note(false, "StepCompleted", "step %d completed: %d canary pods, weight %d%%", i, sh.canary, sh.weight).step = ptr.To(i)
		i = d.advance(in.now, i)
	}
	st.CurrentStepIndex = ptr.To(i)
	// Steps that gave the canary no pod (or promote --full): pre-rollout
	// runs before promotion, with the last step's shape.
	hold := shape{stable: in.workload.Replicas}
	if len(steps) > 0 {
		hold = stepShape(in, len(steps)-1)
	}
	if out, ok := d.preRollout(in, ptr.To(i), hold, "before promotion"); !ok {
		return out
	}
	if c := d.gate(in, rolloutsv1alpha1.WebhookConfirmPromotion, ptr.To(i), true); !c.open {
		// The last step's shape holds until the webhooks confirm the
		// promotion; a background analysis keeps judging it.
		last := len(steps) - 1
		d.shapeTo(in, stepShape(in, last))
		d.routesTo(in, last)
		d.keepRuns()
		d.holdGate(in, c)
		return *d
	}
	st.PauseConditions = nil
	return d.promote(in)
}

// promote moves every pod to the canary revision, with traffic following
// the ready pods, then makes it stable.
func (d *decision) promote(in planInput) decision {
	st, w := &d.status, in.workload
	sh := promotionShape(in)
	d.shapeTo(in, sh)
	if !settled(in, sh) {
		d.activity = rolloutsv1alpha1.ReasonPromoting
		d.message = fmt.Sprintf("promoting %s: %d/%d pods ready on it", st.CanaryRevision, st.CanaryReadyReplicas, w.Replicas)
		return *d
	}
	// Every pod runs the canary revision and is ready: it becomes stable.
	// Both Services select it before the router sends everything to the
	// stable Service, so no request finds an empty Service.
	d.note(false, "Promoted", "revision %s is stable (was %s)", st.CanaryRevision, st.StableRevision)
	st.StableRevision, st.CanaryRevision = st.CanaryRevision, ""
	d.progressed = true
	return d.steady(in)
}

// advance moves to the next step.
func (d *decision) advance(now time.Time, i int32) int32 {
	d.unpause(rolloutsv1alpha1.PauseReasonCanaryPauseStep)
	d.unpause(rolloutsv1alpha1.PauseReasonInconclusiveAnalysis)
	d.dropStepGates()
	d.status.StepStartedAt = &metav1.Time{Time: now}
	d.progressed = true
	return i + 1
}

// stepShape is the shape of step i: the weight of the last setWeight at or
// before it, and the canary size of the last setCanaryScale (or the
// weight's share of replicas).
func stepShape(in planInput, i int) shape {
	steps := in.spec.Strategy.Canary.Steps
	var weight int32
	var scale *rolloutsv1alpha1.SetCanaryScale
	for j := 0; j <= i && j < len(steps); j++ {
		if s := steps[j]; s.SetWeight != nil {
			weight = *s.SetWeight
		} else if s.SetCanaryScale != nil {
			scale = s.SetCanaryScale
		}
	}
	replicas := in.workload.Replicas
	canary := percentOf(replicas, weight)
	switch {
	case scale == nil || scale.MatchTrafficWeight:
	case scale.Replicas != nil:
		canary = min(*scale.Replicas, replicas)
	case scale.Weight != nil:
		canary = percentOf(replicas, *scale.Weight)
	}
	return shape{canary: canary, stable: replicas - canary, weight: weight}
}

// promotionShape moves every pod to the canary revision but one, with the
// router's weight following the share of ready pods that are canary; once
// those are ready the router sends everything to the canary, and only when
// it has verified that does the last stable pod move. So the stable
// Service is never left without a ready pod while it still gets traffic.
func promotionShape(in planInput) shape {
	n, c := in.workload.Replicas, in.workload.Counts
	if !in.routed || n <= 1 {
		return shape{canary: n, weight: 100}
	}
	if ok, _ := in.weightSettled(100); ok {
		return shape{canary: n, weight: 100}
	}
	sh := shape{canary: n - 1, stable: 1, weight: in.observedWeight}
	switch {
	case c.Updated >= n-1 && c.UpdatedReady >= n-1:
		sh.weight = 100
	case c.Ready > 0:
		sh.weight = max(sh.weight, c.UpdatedReady*100/c.Ready)
	}
	return sh
}

// routesTo sets the managed header and mirror routes of step i: each
// setHeaderRoute and setMirrorRoute at or before it, by name, the last one
// of a name winning and an empty one removing it. They are withheld while
// the canary has no ready pod (a header route would send requests
// nowhere): give the canary pods first (setCanaryScale).
func (d *decision) routesTo(in planInput, i int) {
	d.headers, d.mirrors = nil, nil
	if in.workload.Counts.UpdatedReady == 0 || in.workload.UpdateRevision != d.status.CanaryRevision {
		return
	}
	headers := map[string]traffic.HeaderRoute{}
	mirrors := map[string]traffic.MirrorRoute{}
	var hOrder, mOrder []string
	steps := in.spec.Strategy.Canary.Steps
	for j := 0; j <= i && j < len(steps); j++ {
		switch s := steps[j]; {
		case s.SetHeaderRoute != nil:
			name := s.SetHeaderRoute.Name
			if len(s.SetHeaderRoute.Match) == 0 {
				delete(headers, name)
				continue
			}
			if _, ok := headers[name]; !ok {
				hOrder = append(hOrder, name)
			}
			headers[name] = traffic.HeaderRoute{Name: name, Match: headerMatches(s.SetHeaderRoute.Match)}
		case s.SetMirrorRoute != nil:
			name := s.SetMirrorRoute.Name
			if len(s.SetMirrorRoute.Match) == 0 && s.SetMirrorRoute.Percentage == nil {
				delete(mirrors, name)
				continue
			}
			if _, ok := mirrors[name]; !ok {
				mOrder = append(mOrder, name)
			}
			mirrors[name] = traffic.MirrorRoute{Name: name, Percent: ptr.Deref(s.SetMirrorRoute.Percentage, 100),
				Match: headerMatches(s.SetMirrorRoute.Match)}
		}
	}
	for _, n := range hOrder {
		if h, ok := headers[n]; ok {
			d.headers = append(d.headers, h)
		}
	}
	for _, n := range mOrder {
		if m, ok := mirrors[n]; ok {
			d.mirrors = append(d.mirrors, m)
		}
	}
}

// routesSettled reports whether the router carries exactly the decided
// managed routes, verified.
func (d *decision) routesSettled(in planInput) bool {
	if !in.routed {
		return true
	}
	want := traffic.State{HeaderRoutes: d.headers, MirrorRoutes: d.mirrors}.RouteNames()
	return in.weightVerified && slices.Equal(want, in.observedRoutes)
}

// headerMatches turns the API's matches into header matches: a cookie is
// a regex on the Cookie header, a prefix a regex on the value.
func headerMatches(ms []rolloutsv1alpha1.RouteMatch) []traffic.HeaderMatch {
	out := make([]traffic.HeaderMatch, 0, len(ms))
	for _, m := range ms {
		exact, re := m.Value.Exact, m.Value.Regex
		if m.Value.Prefix != "" {
			re = "^" + regexp.QuoteMeta(m.Value.Prefix) + ".*"
		}
		if m.CookieName != "" {
			value := regexp.QuoteMeta(exact)
			switch {
			case m.Value.Prefix != "":
				value = regexp.QuoteMeta(m.Value.Prefix) + "[^;]*"
			case m.Value.Regex != "":
				value = m.Value.Regex
			}
			out = append(out, traffic.HeaderMatch{Name: "Cookie", Regex: "(^|;\\s*)" + regexp.QuoteMeta(m.CookieName) + "=(" + value + ")(;|$)"})
			continue
		}
		if re != "" {
			exact = ""
		}
		out = append(out, traffic.HeaderMatch{Name: m.HeaderName, Exact: exact, Regex: re})
	}
	return out
}

// trafficSettle is how long a verified weight must have held before pods
// leave the side that lost traffic: gateways report a route accepted
// before their data plane routes by it (Traefik throttles configuration
// changes by 2 s by default).
const trafficSettle = 3 * time.Second

// weightSettled reports whether the router has carried weight w, verified,
// for trafficSettle; wait is the time left otherwise (0 when it is not
// even verified yet: the next observation decides).
func (in planInput) weightSettled(w int32) (ok bool, wait time.Duration) {
	st := in.status
	if !in.weightVerified || in.observedWeight != w {
		return false, 0
	}
	if st.VerifiedWeight == nil || *st.VerifiedWeight != w || st.WeightVerifiedAt == nil {
		return false, trafficSettle // verified just now: this reconcile records it
	}
	left := st.WeightVerifiedAt.Add(trafficSettle).Sub(in.now)
	return left <= 0, max(0, left)
}

// percentOf is p% of n, rounded up.
func percentOf(n, p int32) int32 {
	return int32((int64(n)*int64(p) + 99) / 100)
}

// settled reports whether the workload runs the shape with every pod ready
// and the router carries (and verified) its weight.
func settled(in planInput, sh shape) bool {
	c := in.workload.Counts
	pods := c.Updated == sh.canary && c.UpdatedReady == sh.canary &&
		c.Replicas == sh.canary+sh.stable && c.Ready == sh.canary+sh.stable
	if !in.routed {
		return pods
	}
	return pods && in.observedWeight == sh.weight && in.weightVerified
}

// shapeTo aims the workload and the router at a shape, in the order that
// never sends traffic to pods that are not there: a growing canary gets
// its pods ready before its weight, a shrinking one loses its weight
// (verified by the router) before its pods.
func (d *decision) shapeTo(in planInput, sh shape) {
	st, c := &d.status, in.workload.Counts
	canary, weight := sh.canary, sh.weight
	if in.routed {
		cur := in.observedWeight
		switch {
		case weight > 0 && (c.UpdatedReady == 0 || in.workload.UpdateRevision != st.CanaryRevision):
			// No ready pod of the canary revision (a release restarted on
			// a newer revision): no weight until it has one.
			weight = 0
		case weight > cur && (c.Updated < canary || c.UpdatedReady < canary):
			weight = cur
		case weight < cur || (weight == cur && !in.weightVerified) || c.Updated > canary:
			if ok, wait := in.weightSettled(weight); !ok {
				canary = max(canary, min(c.Updated, in.workload.Replicas))
				d.requeueAfter = podcontrol.MinPositive(d.requeueAfter, wait)
			}
		}
	}
	d.weight = weight
	d.control = appsv1alpha1.RolloutControl{
		StableRevision: st.StableRevision,
		CanaryRevision: st.CanaryRevision,
		CanaryReplicas: canary,
		StableReplicas: ptr.To(max(0, sh.stable-max(0, canary-sh.canary))),
	}
	if c := in.spec.Strategy.Canary; c != nil {
		d.control.MaxUnavailable, d.control.MaxSurge = c.MaxUnavailable, c.MaxSurge
	}
	st.DesiredWeight = sh.weight
	st.CanaryReplicas, st.StableReplicas = canary, *d.control.StableReplicas
	if st.CanaryRevision != "" && in.workload.UpdateRevision == st.CanaryRevision {
		st.CanaryReadyReplicas = c.UpdatedReady
		st.StableReadyReplicas = max(0, c.Ready-c.UpdatedReady)
	} else {
		st.CanaryReadyReplicas, st.StableReadyReplicas = 0, c.Ready
	}
	switch {
	case in.routed && in.weightVerified:
		if in.status.VerifiedWeight == nil || *in.status.VerifiedWeight != in.observedWeight || in.status.WeightVerifiedAt == nil {
			st.WeightVerifiedAt = &metav1.Time{Time: in.now}
		}
		st.VerifiedWeight = ptr.To(in.observedWeight)
	case in.routed:
		st.VerifiedWeight, st.WeightVerifiedAt = nil, nil
	case c.Ready > 0:
		st.VerifiedWeight = ptr.To(st.CanaryReadyReplicas * 100 / c.Ready)
	default:
		st.VerifiedWeight = ptr.To[int32](0)
	}
}

// pause records a pause condition (kept with its first start time).
func (d *decision) pause(start time.Time, reason rolloutsv1alpha1.PauseReason, until *time.Time) {
	d.paused = true
	for i := range d.status.PauseConditions {
		if d.status.PauseConditions[i].Reason == reason {
			return
		}
	}
	pc := rolloutsv1alpha1.PauseCondition{Reason: reason, StartTime: metav1.Time{Time: start}}
	if until != nil {
		pc.Until = &metav1.Time{Time: *until}
	}
	d.status.PauseConditions = append(d.status.PauseConditions, pc)
	d.note(false, "Paused", "release paused (%s)", reason)
}

func (d *decision) unpause(reason rolloutsv1alpha1.PauseReason) {
	pcs := d.status.PauseConditions[:0:0]
	for _, pc := range d.status.PauseConditions {
		if pc.Reason != reason {
			pcs = append(pcs, pc)
		}
	}
	if len(pcs) == 0 {
		pcs = nil
	}
	d.status.PauseConditions = pcs
}

// note records an event; the returned pointer (valid until the next note)
// lets the caller say more of it.
func (d *decision) note(warning bool, reason, format string, args ...any) *event {
	d.events = append(d.events, event{reason: reason, message: fmt.Sprintf(format, args...), warning: warning,
		trigger: triggerOf(reason)})
	return &d.events[len(d.events)-1]
}

// triggerOf is the notification trigger of an event's reason. An abort
// caused by an analysis has the reason AnalysisFailed too: its note sets
// the trigger Aborted.
func triggerOf(reason string) rolloutsv1alpha1.NotificationTrigger {
	switch reason {
	case "StepCompleted":
		return rolloutsv1alpha1.TriggerStepCompleted
	case "Paused":
		return rolloutsv1alpha1.TriggerPaused
	case "Promoted":
		return rolloutsv1alpha1.TriggerPromoted
	case "Aborted":
		return rolloutsv1alpha1.TriggerAborted
	case "AnalysisFailed", "AnalysisError":
		return rolloutsv1alpha1.TriggerAnalysisFailed
	case "AnalysisInconclusive":
		return rolloutsv1alpha1.TriggerAnalysisInconclusive
	}
	return ""
}
