package daemonset

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drover-dev/drover/internal/simtest"
)

// A rolling-update simulation in the manner of cluster-api's
// Test_RollingUpdateSequences: a tiny fake cluster of nodes and pods on
// which computePlan is applied again and again while the cluster moves on
// in random orders (pods become ready, in-place updates finish, hooks are
// released, terminating pods go, nodes join, leave and change labels), with
// invariants checked after every step.

const (
	simMaxSteps = 20000
	simTraceLen = 40
	simSeeds    = 150
)

type simPod struct {
	view        *podView // what the planner sees; rebuilt each reconcile
	name        string
	seq         int
	rev         string // revOld, revNew or revStray (the label)
	ready       bool
	inPlace     int    // 0 none, 1 draining (label old), 2 updating (label new)
	to          string // the revision an in-place update goes to
	deleting    bool
	released    bool // the preDelete hook let go
	terminating bool
}

func (p *simPod) available() bool {
	return p.ready && p.inPlace == 0 && !p.deleting && !p.terminating
}

type simNode struct {
	name             string
	exists, eligible bool
	keep             bool // not eligible only through a NoSchedule taint
	inScope          bool
	pods             []*simPod
}

type simConfig struct {
	nodes                     int
	maxUnavailable, maxSurge  int32
	partition                 int32
	inPlaceType, inPlaceOK    bool
	hook                      bool // a preDelete hook holds deleted pods until released
	churn                     bool // nodes join, leave and change labels during the update
	outOfScope                int  // nodes outside rollingUpdate.selector
	togglePause               bool
	startEmpty                bool // no pods at start
	instantReady, slowRelease bool
	// canaries, when set, drive the DaemonSet through a rollout control
	// whose stable revision is revOld: the canary node count of each
	// phase in turn (the next phase may start at any moment, mid-move);
	// every phase's rest is checked.
	canaries []int32
	// strays is how many nodes start on revStray under a rollout control.
	strays int
}

func (c simConfig) String() string {
	out := fmt.Sprintf("%+v", struct {
		N, MU, MS, P             int32
		InPlace, OK, Hook, Churn bool
		OutOfScope               int
		Pause, Empty             bool
	}{int32(c.nodes), c.maxUnavailable, c.maxSurge, c.partition, c.inPlaceType, c.inPlaceOK, c.hook, c.churn, c.outOfScope, c.togglePause, c.startEmpty})
	if c.canaries != nil {
		out += fmt.Sprintf(" canaries=%v strays=%d", c.canaries, c.strays)
	}
	return out
}

type simCluster struct {
	cfg     simConfig
	rng     *rand.Rand
	nodes   []*simNode
	seq     int
	paused  bool
	trace   *simtest.Trace
	nodeSeq int
	phase   int // the current index in cfg.canaries
}

func (s *simCluster) controlled() bool { return s.cfg.canaries != nil }

// partition is the spec's partition, or the nodes beyond the rollout's
// canary count.
func (s *simCluster) partition(eligible int32) int32 {
	if s.controlled() {
		return eligible - min(s.cfg.canaries[s.phase], eligible)
	}
	return s.cfg.partition
}

func newSim(cfg simConfig, seed uint64, tracing bool) *simCluster {
	s := &simCluster{cfg: cfg, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), trace: simtest.NewTrace(tracing, simTraceLen)}
	for i := 0; i < cfg.nodes; i++ {
		n := s.addNode()
		n.inScope = i >= cfg.outOfScope
		if !cfg.startEmpty {
			rev := revOld
			if i < cfg.strays {
				rev = revStray
			}
			s.addPod(n, rev, true)
		}
	}
	return s
}

func (s *simCluster) addNode() *simNode {
	s.nodeSeq++
	n := &simNode{name: fmt.Sprintf("n%03d", s.nodeSeq), exists: true, eligible: true, inScope: true}
	s.nodes = append(s.nodes, n)
	return n
}

func (s *simCluster) addPod(n *simNode, rev string, ready bool) *simPod {
	s.seq++
	p := &simPod{name: fmt.Sprintf("%s-p%d", n.name, s.seq), seq: s.seq, rev: rev, ready: ready}
	n.pods = append(n.pods, p)
	return p
}

// live returns the pods of n that are not terminating.
func live(n *simNode) []*simPod {
	var out []*simPod
	for _, p := range n.pods {
		if !p.terminating {
			out = append(out, p)
		}
	}
	return out
}

func (s *simCluster) input() (planInput, map[*podView]*simPod) {
	back := map[*podView]*simPod{}
	var nodes []*nodeView
	var eligible int32
	for _, n := range s.nodes {
		if n.exists && n.eligible {
			eligible++
		}
		nv := &nodeView{name: n.name, exists: n.exists, eligible: n.eligible, keep: n.eligible || n.keep, inScope: n.inScope}
		for _, p := range live(n) {
			v := &podView{
				pod:  &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.name, CreationTimestamp: metav1.NewTime(testEpoch.Add(0))}},
				node: n.name, revision: p.rev, ready: p.ready && p.inPlace == 0, deleting: p.deleting,
				available: p.available(), inFlight: p.inPlace > 0, updating: p.inPlace > 0 && p.to == revNew,
				returning: p.inPlace > 0 && p.to != revNew,
			}
			v.updated = (p.rev == revNew && !v.returning) || v.updating
			p.view = v
			back[v] = p
			nv.active = append(nv.active, v)
		}
		if n.exists && n.eligible || len(nv.active) > 0 {
			nodes = append(nodes, nv)
		}
	}
	in := baseInput(nodes)
	in.updating = !s.paused
	in.maxUnavailable, in.maxSurge = s.cfg.maxUnavailable, s.cfg.maxSurge
	if in.maxUnavailable == 0 && in.maxSurge == 0 {
		in.maxUnavailable = 1
	}
	in.partition = s.partition(eligible)
	in.inPlaceType = s.cfg.inPlaceType
	in.inPlace = func(string) bool { return s.cfg.inPlaceOK }
	if s.controlled() {
		in.stable = revOld
		in.inPlaceReturn = func(string) bool { return s.cfg.inPlaceOK }
	}
	return in, back
}

func (s *simCluster) node(name string) *simNode {
	for _, n := range s.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// reconcile computes a plan on the current state and applies it; it
// returns the plan's size.
func (s *simCluster) reconcile() (int, error) {
	in, back := s.input()
	p := computePlan(in)
	before := s.unavailable()
	budgetUsed := 0
	for _, d := range p.deletes {
		pod := back[d.view]
		if d.reason == deleteReturn && (!s.controlled() || (s.cfg.inPlaceType && s.cfg.inPlaceOK && len(live(s.node(pod.view.node))) == 1 && !pod.deleting)) {
			return 0, fmt.Errorf("pod %s deleted to go back (controlled %v), though it could go in place", pod.name, s.controlled())
		}
		switch {
		case d.force || !s.cfg.hook || pod.released:
			pod.terminating = true
		case !pod.deleting:
			pod.deleting = true
		}
		if (d.reason == deleteRecreate || d.reason == deleteReturn) && d.view.available {
			budgetUsed++
		}
	}
	for _, c := range p.creates {
		n := s.node(c.node)
		if n == nil || !n.exists {
			return 0, fmt.Errorf("create on a missing node %s", c.node)
		}
		rev := revOld
		if c.updated {
			rev = revNew
		}
		s.addPod(n, rev, s.cfg.instantReady)
	}
	for _, v := range p.inPlace {
		pod := back[v]
		if pod.available() {
			budgetUsed++
		}
		pod.inPlace, pod.to = 1, revNew
	}
	for _, v := range p.returns {
		pod := back[v]
		if !s.controlled() || !s.cfg.inPlaceType || !s.cfg.inPlaceOK || pod.rev == revOld {
			return 0, fmt.Errorf("pod %s (%s) moved back in place (controlled %v, in place %v/%v)", pod.name, pod.rev, s.controlled(), s.cfg.inPlaceType, s.cfg.inPlaceOK)
		}
		if pod.available() {
			budgetUsed++
		}
		pod.inPlace, pod.to = 1, revOld
	}
	s.trace.Logf("reconcile: %s", strings.Join(describe(p), "; "))
	if budgetUsed > 0 {
		if after := s.unavailable(); after > max(int(s.resolvedMaxUnavailable()), before) {
			return 0, fmt.Errorf("the plan took nodes down to %d unavailable (was %d), maxUnavailable %d", after, before, s.resolvedMaxUnavailable())
		}
	}
	return len(p.creates) + len(p.deletes) + len(p.inPlace) + len(p.returns), s.checkShape()
}

func (s *simCluster) resolvedMaxUnavailable() int32 {
	if s.cfg.maxUnavailable == 0 && s.cfg.maxSurge == 0 {
		return 1
	}
	return s.cfg.maxUnavailable
}

// unavailable counts existing eligible nodes without an available pod.
func (s *simCluster) unavailable() int {
	n := 0
	for _, node := range s.nodes {
		if !node.exists || !node.eligible {
			continue
		}
		if !slices.ContainsFunc(node.pods, (*simPod).available) {
			n++
		}
	}
	return n
}

// checkShape: at most one surge pod per node (two live pods, one of each
// revision) and at most maxSurge nodes with two.
func (s *simCluster) checkShape() error {
	double := 0
	for _, n := range s.nodes {
		l := live(n)
		if len(l) > 2 {
			return fmt.Errorf("node %s runs %d pods", n.name, len(l))
		}
		if len(l) == 2 {
			if (l[0].rev == revNew) == (l[1].rev == revNew) && l[0].inPlace == 0 && l[1].inPlace == 0 {
				return fmt.Errorf("node %s runs two pods of one revision", n.name)
			}
			if n.exists && n.eligible {
				double++
			}
		}
	}
	if double > int(s.cfg.maxSurge) {
		return fmt.Errorf("%d nodes run two pods, maxSurge %d", double, s.cfg.maxSurge)
	}
	return nil
}

// step moves the cluster on by one random event; it returns false when no
// event is possible.
func (s *simCluster) step(allowChurn bool) bool {
	pause := allowChurn && s.cfg.togglePause
	allowChurn = allowChurn && s.cfg.churn
	type event struct {
		what string
		do   func()
	}
	var evs []event
	for _, n := range s.nodes {
		for _, p := range n.pods {
			switch {
			case p.terminating:
				evs = append(evs, event{"gone " + p.name, func() { n.pods = slices.DeleteFunc(n.pods, func(x *simPod) bool { return x == p }) }})
			case !n.exists:
				// No kubelet: nothing happens to the pod.
			case p.inPlace == 1:
				evs = append(evs, event{"in-place spec written " + p.name, func() { p.inPlace, p.rev, p.ready = 2, p.to, false }})
			case p.inPlace == 2:
				evs = append(evs, event{"in-place done " + p.name, func() { p.inPlace, p.ready = 0, true }})
			case !p.ready:
				evs = append(evs, event{"ready " + p.name, func() { p.ready = true }})
			}
			if p.deleting && !p.released {
				evs = append(evs, event{"hook released " + p.name, func() { p.released = true }})
			}
		}
	}
	if allowChurn {
		evs = append(evs,
			event{"node joins", func() {
				n := s.addNode()
				n.inScope = s.rng.IntN(3) > 0
			}},
		)
		for _, n := range s.nodes {
			if !n.exists {
				continue
			}
			evs = append(evs,
				event{"node leaves " + n.name, func() { n.exists = false }},
				event{"node relabelled (fit) " + n.name, func() { n.eligible, n.keep = !n.eligible, false }},
				event{"node (un)tainted NoSchedule " + n.name, func() { n.eligible, n.keep = !n.eligible, n.eligible }},
				event{"node relabelled (scope) " + n.name, func() { n.inScope = !n.inScope }},
			)
		}
	}
	if pause {
		evs = append(evs, event{"toggle pause", func() { s.paused = !s.paused }})
	}
	if len(evs) == 0 {
		return false
	}
	e := evs[s.rng.IntN(len(evs))]
	s.trace.Logf("event: %s", e.what)
	e.do()
	return true
}

func (s *simCluster) checkRest() error {
	var updated, eligible int32
	for _, n := range s.nodes {
		l := live(n)
		if !n.exists || !n.eligible {
			if len(l) > 0 && !(n.exists && n.keep && len(l) == 1) {
				return fmt.Errorf("node %s (exists %v, eligible %v, keep %v) still runs %d pods", n.name, n.exists, n.eligible, n.keep, len(l))
			}
			continue
		}
		eligible++
		if len(l) != 1 {
			return fmt.Errorf("eligible node %s runs %d pods at rest", n.name, len(l))
		}
		if !l[0].available() {
			return fmt.Errorf("pod on %s not available at rest", n.name)
		}
		if l[0].rev == revNew {
			updated++
		}
	}
	if s.controlled() {
		return s.checkRestControlled(eligible, updated)
	}
	var inScope int32
	for _, n := range s.nodes {
		if n.exists && n.eligible && (n.inScope || live(n)[0].rev == revNew) {
			inScope++
		}
	}
	// A partition never moves updated pods back: with nodes leaving, more
	// than eligible-partition nodes may stay updated.
	if want := min(max(0, eligible-s.cfg.partition), inScope); updated < want || (!s.cfg.churn && updated != want) {
		return fmt.Errorf("%d of %d nodes updated at rest, want %d (partition %d, %d reachable)", updated, eligible, want, s.cfg.partition, inScope)
	}
	return nil
}

// checkRestControlled checks a rollout control's rest: the canary count
// holds (or cannot be reached within rollingUpdate.selector), and every
// node in scope runs the canary or the stable revision.
func (s *simCluster) checkRestControlled(eligible, updated int32) error {
	target := eligible - s.partition(eligible)
	var inScopeUpdated, inScopeStable int32
	for _, n := range s.nodes {
		if !n.exists || !n.eligible || !n.inScope {
			continue
		}
		switch rev := live(n)[0].rev; rev {
		case revNew:
			inScopeUpdated++
		case revOld:
			inScopeStable++
		default:
			return fmt.Errorf("node %s in scope still runs %s at rest", n.name, rev)
		}
	}
	switch {
	case updated == target:
	case updated < target && inScopeStable == 0:
	case updated > target && inScopeUpdated == 0:
	default:
		return fmt.Errorf("%d of %d nodes on the canary at rest, want %d (%d in scope on it, %d stable)", updated, eligible, target, inScopeUpdated, inScopeStable)
	}
	return nil
}

func runSim(cfg simConfig, seed uint64, tracing bool) (*simCluster, error) {
	s := newSim(cfg, seed, tracing)
	if cfg.togglePause {
		s.paused = s.rng.IntN(2) == 0
	}
	churnSteps := 0
	if cfg.churn || cfg.togglePause {
		churnSteps = 400
	}
	quiet := 0
	for step := 0; step < simMaxSteps; step++ {
		allowChurn := step < churnSteps && s.rng.IntN(8) == 0
		if step == churnSteps {
			s.paused = false
		}
		if s.controlled() && s.phase < len(cfg.canaries)-1 && s.rng.IntN(60) == 0 {
			s.phase++
			s.trace.Logf("control: canary %d", cfg.canaries[s.phase])
		}
		if s.rng.IntN(3) == 0 || quiet > 0 {
			n, err := s.reconcile()
			if err != nil {
				return s, fmt.Errorf("step %d: %w", step, err)
			}
			if n == 0 && quiet > 0 && step > churnSteps {
				if err := s.checkRest(); err != nil {
					return s, fmt.Errorf("step %d: %w", step, err)
				}
				if s.controlled() && s.phase < len(cfg.canaries)-1 {
					s.phase++
					s.trace.Logf("control: canary %d", cfg.canaries[s.phase])
					quiet = 0
					continue
				}
				return s, nil
			}
			quiet = 0
			continue
		}
		if !cfg.churn && !s.paused && step > 0 {
			if u := s.unavailable(); u > int(s.resolvedMaxUnavailable()) && !cfg.startEmpty {
				return s, fmt.Errorf("step %d: %d nodes unavailable, maxUnavailable %d", step, u, s.resolvedMaxUnavailable())
			}
		}
		if !s.step(allowChurn) {
			quiet = 1 // nothing happens on its own: the next reconcile must settle it
		}
	}
	return s, fmt.Errorf("not settled after %d steps", simMaxSteps)
}

func TestRollingUpdateSimulation(t *testing.T) {
	var configs []simConfig
	for _, n := range []int{1, 3, 7} {
		for _, mu := range []int32{0, 1, 3} {
			for _, ms := range []int32{0, 1, 2} {
				if mu == 0 && ms == 0 {
					continue
				}
				configs = append(configs,
					simConfig{nodes: n, maxUnavailable: mu, maxSurge: ms},
					simConfig{nodes: n, maxUnavailable: mu, maxSurge: ms, inPlaceType: true, inPlaceOK: true},
					simConfig{nodes: n, maxUnavailable: mu, maxSurge: ms, inPlaceType: true, hook: true},
					simConfig{nodes: n, maxUnavailable: mu, maxSurge: ms, partition: 1, outOfScope: 1},
				)
			}
		}
	}
	configs = append(configs,
		simConfig{nodes: 6, maxUnavailable: 2, maxSurge: 1, churn: true},
		simConfig{nodes: 6, maxUnavailable: 1, maxSurge: 0, churn: true, hook: true},
		simConfig{nodes: 6, maxUnavailable: 0, maxSurge: 2, churn: true, inPlaceType: true, inPlaceOK: true},
		simConfig{nodes: 5, maxUnavailable: 1, maxSurge: 1, churn: true, partition: 2, togglePause: true},
		simConfig{nodes: 5, maxUnavailable: 2, togglePause: true, inPlaceType: true, inPlaceOK: true, hook: true},
		simConfig{nodes: 8, maxUnavailable: 3, startEmpty: true},
		simConfig{nodes: 4, maxUnavailable: 4, partition: 2},
		simConfig{nodes: 5, maxUnavailable: 5, maxSurge: 2, partition: 1, outOfScope: 1},
		simConfig{nodes: 8, maxUnavailable: 1, maxSurge: 3, instantReady: true},
	)
	for _, cfg := range configs {
		t.Run(cfg.String(), func(t *testing.T) {
			t.Parallel()
			for seed := uint64(0); seed < simSeeds; seed++ {
				if _, err := runSim(cfg, seed, false); err != nil {
					s, _ := runSim(cfg, seed, true)
					t.Fatalf("seed %d: %v\nlast steps:\n%s\nnodes:\n%s", seed, err, s.trace, s.dump())
				}
			}
		})
	}
}

// TestRollingUpdateSimulationRolloutControl drives DaemonSets through
// rollout controls: canary steps up, a smaller canary, then an abort
// (every node back to stable) or a full promotion, with phases changing
// mid-move; every phase's rest and the unavailability budget are checked.
func TestRollingUpdateSimulationRolloutControl(t *testing.T) {
	var configs []simConfig
	for _, mu := range []int32{1, 2} {
		for _, ms := range []int32{0, 1} {
			for _, c := range []simConfig{
				{inPlaceType: true, inPlaceOK: true},
				{inPlaceType: true, inPlaceOK: true, hook: true},
				{inPlaceType: true},
				{hook: true},
			} {
				c.nodes, c.maxUnavailable, c.maxSurge = 5, mu, ms
				abort, promote, strays := c, c, c
				abort.canaries = []int32{1, 3, 2, 0}
				promote.canaries = []int32{2, 1, 5}
				strays.canaries, strays.strays = []int32{2, 0}, 3
				configs = append(configs, abort, promote, strays)
			}
		}
	}
	configs = append(configs,
		simConfig{nodes: 6, maxUnavailable: 2, maxSurge: 1, churn: true, canaries: []int32{2, 4, 0}},
		simConfig{nodes: 6, maxUnavailable: 1, churn: true, hook: true, inPlaceType: true, inPlaceOK: true, canaries: []int32{3, 1, 0}, strays: 2},
		simConfig{nodes: 5, maxUnavailable: 2, outOfScope: 2, inPlaceType: true, inPlaceOK: true, canaries: []int32{2, 5, 1}, strays: 3},
	)
	for _, cfg := range configs {
		t.Run(cfg.String(), func(t *testing.T) {
			t.Parallel()
			for seed := uint64(0); seed < simSeeds; seed++ {
				if _, err := runSim(cfg, seed, false); err != nil {
					s, _ := runSim(cfg, seed, true)
					t.Fatalf("seed %d: %v\nlast steps:\n%s\nnodes:\n%s", seed, err, s.trace, s.dump())
				}
			}
		})
	}
}

func (s *simCluster) dump() string {
	var b strings.Builder
	names := make([]string, 0, len(s.nodes))
	for _, n := range s.nodes {
		names = append(names, n.name)
	}
	sort.Strings(names)
	for _, name := range names {
		n := s.node(name)
		fmt.Fprintf(&b, "  %s exists=%v eligible=%v scope=%v:", n.name, n.exists, n.eligible, n.inScope)
		for _, p := range n.pods {
			fmt.Fprintf(&b, " %s[%s ready=%v inplace=%d deleting=%v released=%v term=%v]", p.name, p.rev, p.ready, p.inPlace, p.deleting, p.released, p.terminating)
		}
		b.WriteString("\n")
	}
	return b.String()
}
