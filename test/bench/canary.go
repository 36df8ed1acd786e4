package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

// The canary row: a Rollout (rollouts.drover.dev/v1alpha1) releases a new
// image of a CloneSet in canary steps setWeight 20 and setWeight 50, no
// pauses and no traffic router (the canary's share is its share of pods),
// then promotes it to 100%. The CloneSet updates its pods in place.
const (
	canaryName    = "bench-canary"
	canaryImageV2 = "example.com/app:v2"
	// canaryPort is declared by the pod template so that the Rollout can
	// create its stable and canary Services.
	canaryPort = 8080
)

// canaryWeights are the setWeight steps of the canary row, in order.
var canaryWeights = []int32{20, 50}

// canaryCounts is how many pods each phase of the release moves to the new
// revision: one entry per setWeight step (the Rollout runs ⌈n × w / 100⌉
// canary pods at weight w), then the promotion's rest.
func canaryCounts(n int, weights []int32) []int {
	out := make([]int, 0, len(weights)+1)
	prev := 0
	for _, w := range weights {
		c := int((int64(n)*int64(w) + 99) / 100)
		out = append(out, c-prev)
		prev = c
	}
	return append(out, n-prev)
}

// rolloutSample is the Rollout's status as the bench saw it at one instant.
type rolloutSample struct {
	at     time.Time
	step   *int32 // status.currentStepIndex
	stable string
	canary string
	phase  rolloutsv1alpha1.RolloutPhase
}

func (s rolloutSample) same(o rolloutSample) bool {
	return ptr.Equal(s.step, o.step) && s.stable == o.stable && s.canary == o.canary && s.phase == o.phase
}

// milestones are the times, since the spec change, at which each step of
// the release completed and at which it was promoted; -1 where not seen.
type milestones struct {
	steps    []time.Duration
	promoted time.Duration
}

func newMilestones(steps int) milestones {
	m := milestones{steps: make([]time.Duration, steps), promoted: -1}
	for i := range m.steps {
		m.steps[i] = -1
	}
	return m
}

// complete reports whether every step and the promotion were seen.
func (m milestones) complete() bool {
	if m.promoted < 0 {
		return false
	}
	for _, d := range m.steps {
		if d < 0 {
			return false
		}
	}
	return true
}

// stepDone reports whether a sample shows step i of the release of rev
// completed: the current step index is beyond it, or rev is already
// stable (a promotion comes after every step).
func stepDone(s rolloutSample, i int, rev string) bool {
	if rev != "" && s.stable == rev {
		return true
	}
	return s.canary == rev && s.step != nil && int(*s.step) > i
}

// observedMilestones reads the milestones from the Rollout's status as
// polled by the bench: step i completed at the first sample that shows
// its index passed (status.currentStepIndex > i) or rev stable; the
// release was promoted at the first sample with rev stable.
func observedMilestones(samples []rolloutSample, start time.Time, steps int, rev string) milestones {
	m := newMilestones(steps)
	for _, s := range samples {
		if s.at.Before(start) {
			continue
		}
		for i := range m.steps {
			if m.steps[i] < 0 && stepDone(s, i, rev) {
				m.steps[i] = s.at.Sub(start)
			}
		}
		if m.promoted < 0 && rev != "" && s.stable == rev {
			m.promoted = s.at.Sub(start)
		}
	}
	return m
}

// rolloutEvent is one event recorded for the Rollout.
type rolloutEvent struct {
	reason string
	note   string
	at     time.Time
}

// parseStepCompleted reads the step index of a StepCompleted event's note:
// "step 1 completed: 500 canary pods, weight 50%", "step 2 (pause 30s)
// completed", "step 3 (analysis x) completed".
func parseStepCompleted(note string) (int, bool) {
	rest, ok := strings.CutPrefix(note, "step ")
	if !ok {
		return 0, false
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end <= 0 {
		return 0, false
	}
	i, err := strconv.Atoi(rest[:end])
	if err != nil {
		return 0, false
	}
	rest = rest[end:]
	if strings.HasPrefix(rest, " (") {
		if k := strings.Index(rest, ")"); k > 0 {
			rest = rest[k+1:]
		}
	}
	if !strings.HasPrefix(rest, " completed") {
		return 0, false
	}
	return i, true
}

// eventMilestones reads the milestones from the Rollout's events at or
// after start: the first StepCompleted of each step, and the Promoted
// event of rev ("revision <rev> is stable (was …)").
func eventMilestones(events []rolloutEvent, start time.Time, steps int, rev string) milestones {
	m := newMilestones(steps)
	for _, e := range events {
		if e.at.Before(start) {
			continue
		}
		d := e.at.Sub(start)
		switch e.reason {
		case "StepCompleted":
			if i, ok := parseStepCompleted(e.note); ok && i < steps && (m.steps[i] < 0 || d < m.steps[i]) {
				m.steps[i] = d
			}
		case "Promoted":
			if strings.HasPrefix(e.note, "revision "+rev+" is stable") && (m.promoted < 0 || d < m.promoted) {
				m.promoted = d
			}
		}
	}
	return m
}

func secs(d time.Duration) string {
	if d < 0 {
		return "not seen"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// eventTime is when an event happened: eventTime (events.k8s.io, to the
// microsecond), else the core/v1 timestamps (to the second).
func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	}
	return e.FirstTimestamp.Time
}

func newCanaryCloneSet(n int32, maxUnavailable string) *appsv1alpha1.CloneSet {
	cs := newCloneSet(canaryName, n, imageV1)
	mu := intstr.Parse(maxUnavailable)
	cs.Spec.UpdateStrategy.MaxUnavailable = &mu
	cs.Spec.Template.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: canaryPort}}
	return cs
}

func newCanaryRollout() *rolloutsv1alpha1.Rollout {
	steps := make([]rolloutsv1alpha1.CanaryStep, 0, len(canaryWeights))
	for _, w := range canaryWeights {
		steps = append(steps, rolloutsv1alpha1.CanaryStep{SetWeight: ptr.To(w)})
	}
	return &rolloutsv1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: canaryName, Namespace: droverNS},
		Spec: rolloutsv1alpha1.RolloutSpec{
			TargetRef: rolloutsv1alpha1.TargetRef{APIVersion: appsv1alpha1.GroupVersion.String(), Kind: "CloneSet", Name: canaryName},
			Strategy:  rolloutsv1alpha1.RolloutStrategy{Canary: &rolloutsv1alpha1.CanaryStrategy{Steps: steps}},
		},
	}
}

func (b *bench) getRollout(ctx context.Context) (*rolloutsv1alpha1.Rollout, error) {
	ro := &rolloutsv1alpha1.Rollout{}
	err := b.cl.Get(ctx, client.ObjectKey{Namespace: droverNS, Name: canaryName}, ro)
	return ro, err
}

// rolloutHealthyOn reports whether the Rollout has observed its spec and
// is Healthy with rev stable and no release under way.
func rolloutHealthyOn(ro *rolloutsv1alpha1.Rollout, rev string) bool {
	st := ro.Status
	return st.ObservedGeneration == ro.Generation && st.Phase == rolloutsv1alpha1.RolloutPhaseHealthy &&
		st.StableRevision == rev && st.CanaryRevision == ""
}

func rolloutSummary(ro *rolloutsv1alpha1.Rollout) string {
	st := ro.Status
	step := "-"
	if st.CurrentStepIndex != nil {
		step = fmt.Sprint(*st.CurrentStepIndex)
	}
	return fmt.Sprintf("rollout %s: phase %s step %s stable %s canary %s canary ready %d/%d stable ready %d; %s",
		ro.Name, st.Phase, step, st.StableRevision, st.CanaryRevision, st.CanaryReadyReplicas, st.CanaryReplicas, st.StableReadyReplicas, st.Message)
}

// canaryRows times a canary release of a new image through a Rollout: one
// row for the whole release and one per phase (each step, the promotion).
func (b *bench) canaryRows(ctx context.Context) error {
	n := int32(b.o.canaryPods)
	if err := ensureNamespace(ctx, b.cs, droverNS); err != nil {
		return err
	}
	var pods *podTracker
	if b.o.trace {
		var err error
		if pods, err = trackPods(ctx, b.cs, droverNS, "app="+canaryName); err != nil {
			return err
		}
		defer pods.close()
	}

	// Untimed set-up: the CloneSet with n ready pods, then the Rollout
	// Healthy on its revision.
	logf("drover: canary: creating CloneSet %s of %d pods and its Rollout", canaryName, n)
	cs := newCanaryCloneSet(n, b.o.canaryMaxUnavailable)
	if err := b.cl.Create(ctx, cs); err != nil {
		return fmt.Errorf("create CloneSet %s: %w", canaryName, err)
	}
	ro := newCanaryRollout()
	defer b.deleteCanary(ctx, n)
	if err := b.waitCloneSets(ctx, []string{canaryName}, n); err != nil {
		return err
	}
	cur := &appsv1alpha1.CloneSet{}
	if err := b.cl.Get(ctx, client.ObjectKeyFromObject(cs), cur); err != nil {
		return err
	}
	oldRev := cur.Status.UpdateRevision
	if err := b.cl.Create(ctx, ro); err != nil {
		return fmt.Errorf("create Rollout %s: %w", canaryName, err)
	}
	if err := waitFor(ctx, 2*time.Minute, "Rollout healthy", func() (bool, string) {
		got, err := b.getRollout(ctx)
		if err != nil {
			return false, err.Error()
		}
		return rolloutHealthyOn(got, oldRev), rolloutSummary(got)
	}); err != nil {
		return err
	}

	steps := len(canaryWeights)
	moved := canaryCounts(int(n), canaryWeights)
	scenario := fmt.Sprintf("Drover: canary of %d replicas %s → 100%% (Rollout, no router; CloneSet in place, maxUnavailable %s)",
		n, weightsText(canaryWeights), b.o.canaryMaxUnavailable)
	logf("%s", scenario)
	m, err := b.begin(ctx)
	if err != nil {
		return err
	}
	tr := b.startTrace(ctx, pods, canaryImageV2)
	if err := b.patchCloneSet(ctx, canaryName,
		map[string]any{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": canaryImageV2}); err != nil {
		return err
	}

	var samples []rolloutSample
	var newRev string
	crashed := false
	waitErr := waitFor(ctx, podTimeout(int(n)), "canary release done", func() (bool, string) {
		if !b.mgr.running() {
			crashed = true
			return true, ""
		}
		if newRev == "" {
			if err := b.cl.Get(ctx, client.ObjectKeyFromObject(cs), cur); err != nil {
				return false, err.Error()
			}
			if cur.Status.ObservedGeneration != cur.Generation || cur.Status.UpdateRevision == oldRev {
				return false, "CloneSet has not computed the new revision yet"
			}
			newRev = cur.Status.UpdateRevision
		}
		got, err := b.getRollout(ctx)
		if err != nil {
			return false, err.Error()
		}
		s := rolloutSample{at: time.Now(), step: got.Status.CurrentStepIndex, stable: got.Status.StableRevision,
			canary: got.Status.CanaryRevision, phase: got.Status.Phase}
		if len(samples) == 0 || !s.same(samples[len(samples)-1]) {
			samples = append(samples, s)
		}
		if !rolloutHealthyOn(got, newRev) {
			return false, rolloutSummary(got)
		}
		return b.cloneSetDone(ctx, canaryName, n)
	})
	wall := time.Since(m.start)
	if crashed {
		waitErr = &crashError{crash: crashSummary(b.mgr.logPath), log: b.mgr.logPath}
	}
	if waitErr != nil && ctx.Err() == nil && !crashed {
		got, _ := b.getRollout(ctx)
		waitErr = fmt.Errorf("%w\n%s\n%s", waitErr, rolloutSummary(got), b.describeUnready(ctx, canaryName))
	}

	total := &row{scenario: scenario, wall: wall, target: "reported"}
	tr.finish(total)
	if waitErr != nil {
		var ce *crashError
		if !errors.As(waitErr, &ce) {
			return waitErr
		}
		if err := b.closeRow(ctx, m, total, int(n), waitErr, []string{canaryName}, n); err != nil {
			return err
		}
		b.add(total)
		return nil
	}
	if err := m.finish(ctx, total, int(n)); err != nil {
		return err
	}
	if sc, err := scrapeHTTP(ctx, b.mgr.metricsAddr); err == nil && m.before.hasMgr {
		d := managerStatsFrom(sc).minus(m.before.mgr)
		total.notes = append(total.notes, "reconciles (time in them) by controller: "+d.byController())
	}
	// Milestones: the controller's events (its own clock, to the
	// microsecond) and the status as the bench polled it.
	observed := observedMilestones(samples, m.start, steps, newRev)
	var events []rolloutEvent
	list, err := b.cs.CoreV1().Events(droverNS).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Rollout,involvedObject.name=" + canaryName,
	})
	if err != nil {
		return fmt.Errorf("list the Rollout's events: %w", err)
	}
	for i := range list.Items {
		e := &list.Items[i]
		events = append(events, rolloutEvent{reason: e.Reason, note: e.Message, at: eventTime(e)})
	}
	evm := eventMilestones(events, m.start, steps, newRev)
	ms, source := evm, "StepCompleted/Promoted events"
	if !evm.complete() {
		ms, source = observed, "status.currentStepIndex as polled (the events were incomplete)"
	}

	var doneAt []string
	for i, w := range canaryWeights {
		doneAt = append(doneAt, fmt.Sprintf("step %d (%d%%) done at %s", i, w, secs(ms.steps[i])))
	}
	total.scenario += fmt.Sprintf("; %s, promoted at %s", strings.Join(doneAt, ", "), secs(ms.promoted))
	for i := range canaryWeights {
		total.notes = append(total.notes, fmt.Sprintf("step %d (setWeight %d) completed at %s (StepCompleted event), %s (status.currentStepIndex seen past it)",
			i, canaryWeights[i], secs(evm.steps[i]), secs(observed.steps[i])))
	}
	total.notes = append(total.notes,
		fmt.Sprintf("promoted at %s (Promoted event), %s (status.stableRevision seen on the new revision); the Rollout Healthy with every pod updated and ready at %.2f s", secs(evm.promoted), secs(observed.promoted), wall.Seconds()),
		fmt.Sprintf("the step times in the scenario cell and the phase rows are from the %s; writes, CPU and RSS are for the whole release (a step's completion and the next step's first writes fall in the same reconcile, so per-step counters cannot be separated from outside)", source))

	// One row per phase, timed from the previous step's completion to this
	// one's (the last: to the end of the release). The counters are the
	// release's only: the reconcile that completes a step starts the next
	// one, so a snapshot taken when the bench sees a step complete already
	// holds some of the next step's writes.
	rows := []*row{total}
	ends := append(append([]time.Duration{}, ms.steps...), wall)
	prevEnd := time.Duration(0)
	for i := 0; i <= steps; i++ {
		var what string
		if i < steps {
			what = fmt.Sprintf("↳ step %d, setWeight %d: %d pods to the new revision (%d canary), done at %s", i, canaryWeights[i], moved[i], sum(moved[:i+1]), secs(ends[i]))
		} else {
			what = fmt.Sprintf("↳ promotion to 100%%: %d pods, Healthy with every pod updated at %s", moved[i], secs(ends[i]))
		}
		r := &row{scenario: what, wall: ends[i] - prevEnd, target: "reported",
			clientWrites: math.NaN(), apiPodWrites: math.NaN(), apiAllWrites: math.NaN(), cpu: math.NaN(), peakRSS: math.NaN()}
		if ends[i] < 0 || prevEnd < 0 {
			r.wall = 0
			r.notes = append(r.notes, "the phase's end was not seen")
		}
		rows = append(rows, r)
		prevEnd = ends[i]
	}
	for _, r := range rows {
		b.add(r)
	}
	return nil
}

func weightsText(ws []int32) string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = fmt.Sprintf("%d%%", w)
	}
	return strings.Join(parts, " → ")
}

func sum(xs []int) int {
	t := 0
	for _, x := range xs {
		t += x
	}
	return t
}

// deleteCanary deletes the Rollout (which hands the CloneSet back), then
// the CloneSet, and waits until its pods are gone, so later rows start
// from a quiet cluster.
func (b *bench) deleteCanary(ctx context.Context, n int32) {
	ro := &rolloutsv1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: droverNS, Name: canaryName}}
	if err := b.cl.Delete(ctx, ro); err != nil && !apierrors.IsNotFound(err) {
		logf("delete Rollout %s: %v", canaryName, err)
	}
	if err := waitFor(ctx, time.Minute, "Rollout deleted", func() (bool, string) {
		_, err := b.getRollout(ctx)
		if apierrors.IsNotFound(err) {
			return true, ""
		}
		return false, fmt.Sprint("still there: ", err)
	}); err != nil {
		logf("%v", err)
	}
	cs := &appsv1alpha1.CloneSet{ObjectMeta: metav1.ObjectMeta{Namespace: droverNS, Name: canaryName}}
	if err := b.cl.Delete(ctx, cs, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
		logf("delete CloneSet %s: %v", canaryName, err)
	}
	err := pollFor(ctx, podTimeout(int(n)), time.Second, "canary pods deleted", func() (bool, string) {
		pods, err := b.cs.CoreV1().Pods(droverNS).List(ctx, metav1.ListOptions{LabelSelector: "app=" + canaryName})
		if err != nil {
			return false, err.Error()
		}
		return len(pods.Items) == 0, fmt.Sprintf("%d pods left", len(pods.Items))
	})
	if err != nil {
		logf("%v", err)
	}
}
