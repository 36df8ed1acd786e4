package statefulset

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/simtest"
)

// A simulation of many reconcile orders, in the manner of cluster-api's
// Test_RollingUpdateSequences: a tiny fake cluster of ordinal pods on which
// computePlan is applied again and again while pods become ready,
// terminate and finish in-place updates in random orders. Invariants are
// checked on every action the plan takes and after every step; every run
// must converge.

const (
	simUpdate   = "new"      // the update revision
	simInPlace  = "old"      // an old revision that can go in place
	simRecreate = "old-noip" // an old revision that must be recreated
	// simStray is a third revision under a rollout control (whose stable
	// revision is simInPlace): it goes forward in place, but must be
	// recreated to go back to stable.
	simStray = "stray"
	simSteps = 5000
	simSeeds = 60
)

type simPod struct {
	ordinal     int32
	rev         string
	ready       bool
	terminating bool
	// inPlace: 0 none, 1 draining (old revision, gate down), 2 updating
	// (new revision, containers restarting).
	inPlace int
	// to is the revision an in-place update goes to.
	to string
}

func (p *simPod) available() bool { return p.ready && !p.terminating && p.inPlace == 0 }

type simConfig struct {
	ordered        bool
	policy         appsv1alpha1.StatefulSetPodUpdatePolicy
	onDelete       bool
	ordinals       []int32 // the set's ordinals (replicas, start, reserved resolved)
	partition      int32
	maxUnavailable int32
	initial        []int32 // ordinals of the pods at start, all available
	initialRev     string
	togglePause    bool
	// canaries, when set, drive the set through a rollout control whose
	// stable revision is simInPlace: the canary count of each phase in
	// turn (the next phase may start at any moment, mid-move); the last
	// phase must converge. The set's ordinals are then canary+stable.
	canaries []int32
	// strays are ordinals that start on simStray under a rollout control.
	strays []int32
}

func (c simConfig) String() string {
	mode := "Parallel"
	if c.ordered {
		mode = "OrderedReady"
	}
	out := fmt.Sprintf("%s %s onDelete=%v ordinals=%v partition=%d maxUnavailable=%d initial=%v@%s pause=%v",
		mode, c.policy, c.onDelete, c.ordinals, c.partition, c.maxUnavailable, c.initial, c.initialRev, c.togglePause)
	if c.canaries != nil {
		out += fmt.Sprintf(" canaries=%v strays=%v", c.canaries, c.strays)
	}
	return out
}

type simCluster struct {
	t      *testing.T
	cfg    simConfig
	rng    *rand.Rand
	pods   map[int32]*simPod
	paused bool
	trace  *simtest.Trace // every step, the last 30 reported
	// phase is the current index in cfg.canaries.
	phase int
}

func (s *simCluster) controlled() bool { return s.cfg.canaries != nil }

// partition is the spec's partition, or the rollout's stable count.
func (s *simCluster) partition() int32 {
	if s.controlled() {
		return int32(len(s.cfg.ordinals)) - s.cfg.canaries[s.phase]
	}
	return s.cfg.partition
}

// target is the revision the pod at position pos must end on ("" when
// any will do).
func (s *simCluster) target(pos int) string {
	switch {
	case s.cfg.onDelete:
		return ""
	case int32(pos) >= s.partition():
		return simUpdate
	case s.controlled():
		return simInPlace
	}
	return ""
}

// simChangeInPlace says which moves between revisions go in place.
func (s *simCluster) simChangeInPlace(from, to string) bool {
	if !s.controlled() {
		return from == simInPlace && to == simUpdate
	}
	return from != simRecreate && to != simRecreate && !(from == simStray && to == simInPlace)
}

func (s *simCluster) fail(format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("%s\n%s\nlast steps:\n%s", s.cfg, fmt.Sprintf(format, args...), s.trace)
}

func (s *simCluster) state() string {
	var ords []int32
	for o := range s.pods {
		ords = append(ords, o)
	}
	slices.Sort(ords)
	var b strings.Builder
	for _, o := range ords {
		p := s.pods[o]
		fmt.Fprintf(&b, "%d/%s%s ", o, p.rev, simtest.PodMark(p.terminating, p.inPlace == 1, p.inPlace == 2, p.ready))
		if p.inPlace != 0 && p.to != simUpdate {
			fmt.Fprintf(&b, "(to %s) ", p.to)
		}
	}
	if s.paused {
		b.WriteString("(paused)")
	}
	if s.controlled() {
		fmt.Fprintf(&b, "(canary %d)", s.cfg.canaries[s.phase])
	}
	return b.String()
}

// unavailable counts the set's positions without an available pod.
func (s *simCluster) unavailable() int32 {
	var n int32
	for _, o := range s.cfg.ordinals {
		if p := s.pods[o]; p == nil || !p.available() {
			n++
		}
	}
	return n
}

func (s *simCluster) position(o int32) int {
	return slices.Index(s.cfg.ordinals, o)
}

func (s *simCluster) input() (planInput, map[*podView]*simPod) {
	in := planInput{
		ordered:        s.cfg.ordered,
		ordinals:       s.cfg.ordinals,
		partition:      s.partition(),
		maxUnavailable: s.cfg.maxUnavailable,
		onDelete:       s.cfg.onDelete,
		paused:         s.paused,
		policy:         s.cfg.policy,
		inPlace:        func(rev string) bool { return s.simChangeInPlace(rev, simUpdate) },
	}
	if s.controlled() {
		in.stable = simInPlace
		in.inPlaceReturn = func(rev string) bool { return s.simChangeInPlace(rev, simInPlace) }
	}
	back := map[*podView]*simPod{}
	for o, p := range s.pods {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: podName("db", o)}, Status: corev1.PodStatus{Phase: corev1.PodPending}}
		if p.terminating {
			pod.DeletionTimestamp = &metav1.Time{}
		}
		if p.ready {
			pod.Status.Phase = corev1.PodRunning
			ready := corev1.ConditionTrue
			if p.inPlace != 0 {
				ready = corev1.ConditionFalse // the gate is down
			}
			pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}
		}
		v := &podView{
			pod:         pod,
			ordinal:     o,
			revision:    p.rev,
			updated:     p.rev == simUpdate,
			available:   p.available(),
			terminating: p.terminating,
			inFlight:    p.inPlace != 0,
			updating:    p.inPlace != 0 && p.to == simUpdate,
			returning:   p.inPlace != 0 && p.to != simUpdate,
		}
		in.pods = append(in.pods, v)
		back[v] = p
	}
	// Map iteration is random: the planner must not depend on pod order.
	return in, back
}

// reconcile computes a plan and applies it, checking every action.
func (s *simCluster) reconcile() {
	s.t.Helper()
	in, back := s.input()
	p := computePlan(in)
	s.trace.Logf("%s => %s", s.state(), summary(p))
	busy := s.unavailable()
	for _, c := range p.creates {
		pos := s.position(c.ordinal)
		if pos < 0 {
			s.fail("created ordinal %d, which is not one of the set's %v", c.ordinal, s.cfg.ordinals)
		}
		if s.pods[c.ordinal] != nil {
			s.fail("created ordinal %d twice", c.ordinal)
		}
		if s.cfg.ordered {
			for _, lower := range s.cfg.ordinals[:pos] {
				if q := s.pods[lower]; q == nil || !q.available() {
					s.fail("OrderedReady created ordinal %d before ordinal %d was available", c.ordinal, lower)
				}
			}
		}
		rev := simUpdate
		if c.current {
			rev = s.cfg.initialRev
			if s.controlled() {
				rev = simInPlace
			}
		}
		if c.current == ((s.cfg.onDelete && !s.controlled()) || int32(pos) >= s.partition()) {
			s.fail("ordinal %d at position %d created at the wrong revision (current=%v)", c.ordinal, pos, c.current)
		}
		s.pods[c.ordinal] = &simPod{ordinal: c.ordinal, rev: rev}
	}
	for _, d := range p.deletes {
		sp := back[d.view]
		switch d.reason {
		case deleteCondemned:
			if s.position(sp.ordinal) >= 0 {
				s.fail("condemned ordinal %d is one of the set's", sp.ordinal)
			}
			if s.cfg.ordered {
				for o, q := range s.pods {
					if q != sp && (q.terminating || (s.position(o) < 0 && o > sp.ordinal)) {
						s.fail("OrderedReady deleted condemned %d while %d is terminating or higher", sp.ordinal, o)
					}
				}
				for _, o := range s.cfg.ordinals {
					if q := s.pods[o]; q == nil || !q.available() {
						s.fail("OrderedReady deleted condemned %d while ordinal %d is not available", sp.ordinal, o)
					}
				}
			}
		case deleteRecreate, deleteReturn:
			to := simUpdate
			if d.reason == deleteReturn {
				to = simInPlace
			}
			s.checkMove(sp, to, &busy)
			if s.cfg.policy == appsv1alpha1.InPlaceOnlyStatefulSetPodUpdatePolicy {
				s.fail("InPlaceOnly recreated ordinal %d", sp.ordinal)
			}
			if s.cfg.policy != appsv1alpha1.ReCreateStatefulSetPodUpdatePolicy && s.simChangeInPlace(sp.rev, to) {
				s.fail("recreated ordinal %d although %s -> %s goes in place", sp.ordinal, sp.rev, to)
			}
		}
		sp.terminating = true
	}
	for _, v := range p.inPlace {
		sp := back[v]
		s.checkMove(sp, simUpdate, &busy)
		if s.cfg.policy == appsv1alpha1.ReCreateStatefulSetPodUpdatePolicy {
			s.fail("ReCreate updated ordinal %d in place", sp.ordinal)
		}
		sp.inPlace, sp.to = 1, simUpdate
	}
	for _, v := range p.returns {
		sp := back[v]
		if !s.controlled() {
			s.fail("ordinal %d moved back without a rollout", sp.ordinal)
		}
		s.checkMove(sp, simInPlace, &busy)
		if s.cfg.policy == appsv1alpha1.ReCreateStatefulSetPodUpdatePolicy || !s.simChangeInPlace(sp.rev, simInPlace) {
			s.fail("ordinal %d moved back in place from %s (policy %s)", sp.ordinal, sp.rev, s.cfg.policy)
		}
		sp.inPlace, sp.to = 1, simInPlace
	}
}

// checkMove checks one update action (a move to revision to) against the
// strategy and the unavailability budget.
func (s *simCluster) checkMove(p *simPod, to string, busy *int32) {
	s.t.Helper()
	pos := s.position(p.ordinal)
	switch {
	case s.paused || s.cfg.onDelete:
		s.fail("updated ordinal %d while paused or OnDelete", p.ordinal)
	case pos < 0:
		s.fail("moved condemned ordinal %d", p.ordinal)
	case s.target(pos) != to:
		s.fail("moved ordinal %d at position %d to %s; partition %d wants %q", p.ordinal, pos, to, s.partition(), s.target(pos))
	case p.rev == to:
		s.fail("moved ordinal %d, already on %s", p.ordinal, to)
	}
	if s.cfg.ordered {
		// Highest ordinal first: every higher position is where it
		// should be, and available.
		for i, o := range s.cfg.ordinals[pos+1:] {
			want := s.target(pos + 1 + i)
			if q := s.pods[o]; q == nil || (want != "" && q.rev != want) || !q.available() {
				s.fail("OrderedReady moved ordinal %d before ordinal %d was on %s and available", p.ordinal, o, want)
			}
		}
	}
	if p.available() {
		if *busy >= s.cfg.maxUnavailable {
			s.fail("ordinal %d taken down with %d positions already unavailable (maxUnavailable %d)", p.ordinal, *busy, s.cfg.maxUnavailable)
		}
		*busy++
	}
}

// step moves the cluster on: one random event, or a reconcile.
func (s *simCluster) step() {
	var events []func()
	for o, p := range s.pods {
		switch {
		case p.terminating:
			events = append(events, func() { delete(s.pods, o) })
		case p.inPlace == 1:
			events = append(events, func() { p.inPlace, p.rev = 2, p.to })
		case p.inPlace == 2:
			events = append(events, func() { p.inPlace, p.ready = 0, true })
		case !p.ready:
			events = append(events, func() { p.ready = true })
		}
	}
	if s.cfg.togglePause {
		events = append(events, func() { s.paused = !s.paused })
	}
	// Reconciles are as likely as all other events together.
	if len(events) == 0 || s.rng.IntN(2) == 0 {
		s.reconcile()
		return
	}
	events[s.rng.IntN(len(events))]()
}

func (s *simCluster) settled(blocked bool) bool {
	if len(s.pods) != len(s.cfg.ordinals) {
		return false
	}
	for i, o := range s.cfg.ordinals {
		p := s.pods[o]
		if p == nil || !p.available() {
			return false
		}
		if want := s.target(i); !blocked && want != "" && p.rev != want {
			return false
		}
	}
	return true
}

// checkStatus checks the status counts and the Done verdict (Ready) against
// the simulated cluster.
func (s *simCluster) checkStatus(blocked bool) {
	s.t.Helper()
	in, back := s.input()
	res := syncResult{views: in.pods, ordinals: s.cfg.ordinals, partition: s.partition(),
		current: &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: s.cfg.initialRev}}}
	if s.controlled() {
		res.shape.stable = simInPlace
	}
	t := count(res, s.cfg.onDelete)
	var live, updated, available int32
	for _, v := range in.pods {
		p := back[v]
		if p.terminating {
			continue
		}
		live++
		if p.rev == simUpdate {
			updated++
		}
		if p.available() {
			available++
		}
	}
	st := t.status
	if st.Replicas != live || st.UpdatedReplicas != updated || st.AvailableReplicas != available {
		s.fail("status replicas %d updated %d available %d, cluster has %d %d %d", st.Replicas, st.UpdatedReplicas, st.AvailableReplicas, live, updated, available)
	}
	if !blocked && (t.scaled && t.updated) != s.settled(false) {
		s.fail("status says done=%v, the cluster is settled=%v: %s", t.scaled && t.updated, s.settled(false), s.state())
	}
}

func runSim(t *testing.T, cfg simConfig, seed uint64) {
	s := &simCluster{t: t, cfg: cfg, rng: rand.New(rand.NewPCG(seed, 7)), pods: map[int32]*simPod{}, trace: simtest.NewTrace(true, 30)}
	for _, o := range cfg.initial {
		s.pods[o] = &simPod{ordinal: o, rev: cfg.initialRev, ready: true}
	}
	for _, o := range cfg.strays {
		s.pods[o].rev = simStray
	}
	blocked := cfg.policy == appsv1alpha1.InPlaceOnlyStatefulSetPodUpdatePolicy && cfg.initialRev == simRecreate
	steady := slices.Equal(cfg.initial, cfg.ordinals)
	// A pausing run toggles the pause for a random number of steps, then
	// resumes for good.
	resumeAt := 0
	if cfg.togglePause {
		resumeAt = 1 + s.rng.IntN(200)
	}
	for i := 0; i < simSteps; i++ {
		if i == resumeAt {
			s.cfg.togglePause, s.paused = false, false
		}
		// The rollout moves to its next phase once the set settles, or
		// at any moment.
		if s.controlled() && s.phase < len(cfg.canaries)-1 && (s.settled(false) || s.rng.IntN(40) == 0) {
			s.phase++
			s.trace.Logf("control: canary %d", cfg.canaries[s.phase])
		}
		s.step()
		s.checkStatus(blocked)
		if steady && s.unavailable() > cfg.maxUnavailable {
			s.fail("%d positions unavailable, maxUnavailable %d", s.unavailable(), cfg.maxUnavailable)
		}
		if i >= resumeAt && s.settled(blocked) && (!s.controlled() || s.phase == len(cfg.canaries)-1) {
			in, _ := s.input()
			p := computePlan(in)
			if len(p.creates)+len(p.deletes)+len(p.inPlace) > 0 {
				s.fail("settled set planned %s", summary(p))
			}
			if blocked && !p.blocked && !cfg.onDelete && int32(len(cfg.ordinals)) > cfg.partition {
				s.fail("InPlaceOnly with a change that needs recreation is not reported blocked")
			}
			return
		}
	}
	s.fail("did not converge in %d steps: %s", simSteps, s.state())
}

func TestPlanSimulation(t *testing.T) {
	const (
		recreate = appsv1alpha1.ReCreateStatefulSetPodUpdatePolicy
		ifPos    = appsv1alpha1.InPlaceIfPossibleStatefulSetPodUpdatePolicy
		only     = appsv1alpha1.InPlaceOnlyStatefulSetPodUpdatePolicy
	)
	var configs []simConfig
	for _, ordered := range []bool{true, false} {
		for _, policy := range []appsv1alpha1.StatefulSetPodUpdatePolicy{recreate, ifPos, only} {
			for _, rev := range []string{simInPlace, simRecreate} {
				maxU := []int32{1}
				if !ordered {
					maxU = []int32{1, 2, 5}
				}
				for _, mu := range maxU {
					base := simConfig{ordered: ordered, policy: policy, maxUnavailable: mu, initialRev: rev}
					update := base
					update.ordinals, update.initial = seq(0, 4), seq(0, 4)
					partitioned := update
					partitioned.partition = 2
					pausing := update
					pausing.togglePause = true
					scaleUp := base
					scaleUp.ordinals, scaleUp.initial = seq(0, 5), seq(0, 1)
					scaleDown := base
					scaleDown.ordinals, scaleDown.initial = seq(0, 1), seq(0, 4)
					reserve := base // reserve 1 and 3-4, start at 0: ordinals 0 2 5 6
					reserve.ordinals, reserve.initial = []int32{0, 2, 5, 6}, seq(0, 4)
					reserve.partition = 1
					onDelete := update
					onDelete.onDelete = true
					configs = append(configs, update, partitioned, pausing, scaleUp, scaleDown, reserve, onDelete)
				}
			}
		}
	}
	for _, cfg := range configs {
		t.Run(cfg.String(), func(t *testing.T) {
			for seed := uint64(0); seed < simSeeds; seed++ {
				runSim(t, cfg, seed)
			}
		})
	}
}

// TestPlanSimulationRolloutControl drives sets through rollout controls:
// canary steps up, a smaller canary, then an abort (every pod back to
// stable) or a full promotion, with phases changing mid-move. Every move
// is checked against the unavailability budget and the OrderedReady
// order; the last phase must converge.
func TestPlanSimulationRolloutControl(t *testing.T) {
	const (
		recreate = appsv1alpha1.ReCreateStatefulSetPodUpdatePolicy
		ifPos    = appsv1alpha1.InPlaceIfPossibleStatefulSetPodUpdatePolicy
		only     = appsv1alpha1.InPlaceOnlyStatefulSetPodUpdatePolicy
	)
	var configs []simConfig
	for _, ordered := range []bool{true, false} {
		for _, policy := range []appsv1alpha1.StatefulSetPodUpdatePolicy{recreate, ifPos, only} {
			maxU := []int32{1}
			if !ordered {
				maxU = []int32{1, 2, 5}
			}
			for _, mu := range maxU {
				base := simConfig{ordered: ordered, policy: policy, maxUnavailable: mu, initialRev: simInPlace,
					ordinals: seq(0, 4), initial: seq(0, 4)}
				abort := base
				abort.canaries = []int32{1, 3, 2, 0}
				promote := base
				promote.canaries = []int32{2, 1, 4, 5}
				configs = append(configs, abort, promote)
				if policy != only {
					// A third revision (an earlier canary) below and above
					// the partition; InPlaceOnly could not send it back.
					strays := abort
					strays.strays = []int32{1, 4}
					strays.canaries = []int32{2, 0}
					configs = append(configs, strays)
				}
			}
		}
	}
	for _, cfg := range configs {
		t.Run(cfg.String(), func(t *testing.T) {
			for seed := uint64(0); seed < simSeeds; seed++ {
				runSim(t, cfg, seed)
			}
		})
	}
}
