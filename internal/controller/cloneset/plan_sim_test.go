package cloneset

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/simtest"
)

// A rolling-update simulation in the manner of cluster-api's
// Test_RollingUpdateSequences: a tiny fake cluster of pods on which
// computePlan is applied again and again while the cluster moves on in
// random orders, with invariants checked after every step.

const (
	simRevUpdate  = "v2"      // the update revision
	simRevCurrent = "v1"      // the current revision; in place to v2
	simRevNoIP    = "v1-noip" // an old revision that must be recreated
	simMaxSteps   = 20000     // a rollout not done by then is stuck
	simTraceLen   = 40        // steps kept for a failure report
	simSeeds      = 200       // seeds per rollout configuration
)

// in-place phases of a simulated pod, as the in-place engine moves them:
// draining (still labelled with the old revision), then updating
// (labelled with the update revision), then done (phase none, ready).
const (
	simPhaseNone = iota
	simPhaseDraining
	simPhaseUpdating
)

type simPod struct {
	pod         *corev1.Pod // the object the planner's views point at
	name        string
	seq         int // creation order
	rev         string
	ready       bool
	phase       int
	terminating bool
}

func (p *simPod) available() bool {
	return p.ready && p.phase == simPhaseNone && !p.terminating
}

type simConfig struct {
	replicas, partition   int32
	maxUnavailable        int32 // as set; resolved like planInput does
	maxSurge              int32
	scaleMaxUnavailable   int32 // <0 unbounded
	strategy              appsv1alpha1.CloneSetUpdateStrategyType
	initial               int32    // pods at start; all available
	initialRevs           []string // round-robin revisions of the initial pods
	instantInPlace        bool     // in-place updates that restart nothing finish at once
	togglePause           bool     // pause and resume the update at random
	expectBlocked         bool     // InPlaceOnly with a revision that cannot go in place
	checkScaleUnavailable bool     // assert not-ready <= scaleMaxUnavailable after creates
}

func (c simConfig) String() string {
	s := fmt.Sprintf("R=%d P=%d maxUnavailable=%d maxSurge=%d %s initial=%d%v", c.replicas, c.partition,
		c.maxUnavailable, c.maxSurge, c.strategy, c.initial, c.initialRevs)
	if c.scaleMaxUnavailable >= 0 {
		s += fmt.Sprintf(" scaleMaxUnavailable=%d", c.scaleMaxUnavailable)
	}
	if c.instantInPlace {
		s += " instantInPlace"
	}
	if c.togglePause {
		s += " togglePause"
	}
	return s
}

// resolved maxUnavailable, as planInput resolves it: both 0 means 1.
func (c simConfig) resolvedMaxUnavailable() int32 {
	if c.maxUnavailable == 0 && c.maxSurge == 0 {
		return 1
	}
	return c.maxUnavailable
}

type simCluster struct {
	cfg    simConfig
	rng    *rand.Rand
	pods   []*simPod
	seq    int
	paused bool
	// trace keeps the last steps (a failing seed is re-run with it on).
	trace *simtest.Trace
	// views of the last reconcile, to map a plan back to pods.
	byView map[*podView]*simPod
	// armAvailable: the set has been fully available; armPartition: the
	// old pods have reached the partition.
	armAvailable, armPartition bool
}

func (s *simCluster) add(rev string, ready bool) {
	name := fmt.Sprintf("p%d", s.seq)
	s.pods = append(s.pods, &simPod{pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}}, name: name, seq: s.seq, rev: rev, ready: ready})
	s.seq++
}

func (s *simCluster) state() string {
	var b strings.Builder
	for _, p := range s.pods {
		b.WriteString(p.name + "/" + p.rev + simtest.PodMark(p.terminating, p.phase == simPhaseDraining, p.phase == simPhaseUpdating, p.ready) + " ")
	}
	if s.paused {
		b.WriteString("(paused)")
	}
	return b.String()
}

type simCounts struct {
	active, available, notReady, terminating int32
	updated, oldSteady                       int32 // active at the update revision; active old and not moving
}

func (s *simCluster) counts() simCounts {
	var c simCounts
	for _, p := range s.pods {
		if p.terminating {
			c.terminating++
			continue
		}
		c.active++
		if p.available() {
			c.available++
		}
		if !p.ready || p.phase != simPhaseNone {
			c.notReady++
		}
		if p.rev == simRevUpdate {
			c.updated++
		} else if p.phase == simPhaseNone {
			c.oldSteady++
		}
	}
	return c
}

func simInPlace(from, to string) bool { return from != simRevNoIP && to != simRevNoIP }

// input builds the planner's view of the active pods, as sync.go does.
func (s *simCluster) input() planInput {
	cfg := s.cfg
	s.byView = make(map[*podView]*simPod, len(s.pods))
	var views []*podView
	var notReady int32
	for _, p := range s.pods {
		if p.terminating {
			continue
		}
		v := &podView{
			pod:       p.pod,
			revision:  p.rev,
			updated:   p.rev == simRevUpdate,
			available: p.available(),
			updating:  p.phase != simPhaseNone,
		}
		if !p.ready || p.phase != simPhaseNone {
			notReady++
		}
		s.byView[v] = p
		views = append(views, v)
	}
	return planInput{
		replicas:            cfg.replicas,
		partition:           min(cfg.partition, cfg.replicas),
		maxUnavailable:      cfg.resolvedMaxUnavailable(),
		maxSurge:            cfg.maxSurge,
		scaleMaxUnavailable: cfg.scaleMaxUnavailable,
		strategy:            cfg.strategy,
		paused:              s.paused,
		update:              simRevUpdate,
		inPlace:             simInPlace,
		notReady:            notReady,
		pods:                views,
		specified:           sets.New[string](),
		rank:                s.rank,
		sortForUpdate:       func(v []*podView) []*podView { return slices.Clone(v) },
	}
}

// rank mimics podorder.RankForScaleDown: not ready first, then old
// revision, then the most recently created.
func (s *simCluster) rank(views []*podView) []*podView {
	out := slices.Clone(views)
	slices.SortStableFunc(out, func(a, b *podView) int {
		pa, pb := s.byView[a], s.byView[b]
		ra, rb := pa.ready && pa.phase == simPhaseNone, pb.ready && pb.phase == simPhaseNone
		if ra != rb {
			if !ra {
				return -1
			}
			return 1
		}
		if a.updated != b.updated {
			if !a.updated {
				return -1
			}
			return 1
		}
		return cmp.Compare(pb.seq, pa.seq)
	})
	return out
}

// reconcile computes a plan and applies it. It reports whether the plan
// did anything, and the plan.
func (s *simCluster) reconcile() (plan, bool, error) {
	in := s.input()
	p := computePlan(in)
	cfg := s.cfg
	seen := map[*podView]bool{}
	check := func(v *podView) (*simPod, error) {
		sp, ok := s.byView[v]
		if !ok {
			return nil, fmt.Errorf("plan names a pod that is not in its input")
		}
		if seen[v] {
			return nil, fmt.Errorf("plan touches %s twice", sp.name)
		}
		seen[v] = true
		return sp, nil
	}
	creates := p.createUpdated + p.createCurrent
	if p.createUpdated < 0 || p.createCurrent < 0 {
		return p, false, fmt.Errorf("negative creates %d/%d", p.createUpdated, p.createCurrent)
	}
	var recreates int
	for _, d := range p.deletes {
		if _, err := check(d.view); err != nil {
			return p, false, err
		}
		if d.reason == deleteSpecified {
			return p, false, fmt.Errorf("specified delete of %s with nothing specified", d.view.pod.Name)
		}
		if d.reason == deleteRecreate {
			recreates++
			if d.view.updated || d.view.updating {
				return p, false, fmt.Errorf("recreate of %s which is updated or updating", d.view.pod.Name)
			}
		}
	}
	for _, v := range p.inPlace {
		if _, err := check(v); err != nil {
			return p, false, err
		}
		if v.updated || v.updating || !simInPlace(v.revision, simRevUpdate) || cfg.strategy == appsv1alpha1.ReCreateCloneSetUpdateStrategyType {
			return p, false, fmt.Errorf("in-place update of %s (rev %s, updating %v) not allowed", v.pod.Name, v.revision, v.updating)
		}
	}
	if (creates > 0 || len(p.deletes) > recreates) && (recreates > 0 || len(p.inPlace) > 0) {
		return p, false, fmt.Errorf("a reconcile that scales also updates")
	}
	if (p.blocked || s.paused) && (recreates > 0 || len(p.inPlace) > 0 || p.surge > 0) {
		return p, false, fmt.Errorf("blocked or paused plan updates or surges")
	}
	if p.surge > cfg.maxSurge || p.surge < 0 {
		return p, false, fmt.Errorf("surge %d out of [0,%d]", p.surge, cfg.maxSurge)
	}
	var oldLabelled int32
	for _, v := range in.pods {
		if !v.updated {
			oldLabelled++
		}
	}
	if want := cfg.expectBlocked && !s.paused && oldLabelled > in.partition; p.blocked != want {
		return p, false, fmt.Errorf("blocked=%v, want %v", p.blocked, want)
	}

	for _, d := range p.deletes {
		s.byView[d.view].terminating = true
	}
	for _, v := range p.inPlace {
		sp := s.byView[v]
		if cfg.instantInPlace {
			sp.rev = simRevUpdate
			continue
		}
		sp.phase, sp.ready = simPhaseDraining, false
	}
	for range p.createUpdated {
		s.add(simRevUpdate, false)
	}
	for range p.createCurrent {
		s.add(simRevCurrent, false)
	}
	did := creates > 0 || len(p.deletes) > 0 || len(p.inPlace) > 0
	if did && s.trace.On() {
		var del, ip []string
		for _, d := range p.deletes {
			del = append(del, d.view.pod.Name+":"+string(d.reason))
		}
		for _, v := range p.inPlace {
			ip = append(ip, v.pod.Name)
		}
		s.trace.Logf("reconcile: +%d updated +%d current, delete %v, in place %v, surge %d -> %s",
			p.createUpdated, p.createCurrent, del, ip, p.surge, s.state())
	}
	if creates > 0 {
		c := s.counts()
		if c.active > cfg.replicas+cfg.maxSurge {
			return p, did, fmt.Errorf("created up to %d active pods > replicas+maxSurge", c.active)
		}
		if cfg.checkScaleUnavailable && cfg.scaleMaxUnavailable >= 0 && c.notReady > cfg.scaleMaxUnavailable {
			return p, did, fmt.Errorf("%d pods not ready after creating, scaleMaxUnavailable %d", c.notReady, cfg.scaleMaxUnavailable)
		}
	}
	return p, did, nil
}

// pending reports whether the cluster still has something to settle.
func (s *simCluster) pending() bool {
	for _, p := range s.pods {
		if p.terminating || !p.ready || p.phase != simPhaseNone {
			return true
		}
	}
	return false
}

// events lets the cluster move on: each pending transition happens with
// probability q, in a random order.
func (s *simCluster) events(q float64) {
	order := s.rng.Perm(len(s.pods))
	var gone []*simPod
	var moved []string
	for _, i := range order {
		p := s.pods[i]
		if s.rng.Float64() >= q {
			continue
		}
		switch {
		case p.terminating:
			gone = append(gone, p)
			moved = s.note(moved, p.name, " gone")
		case p.phase == simPhaseDraining:
			p.phase, p.rev = simPhaseUpdating, simRevUpdate
			moved = s.note(moved, p.name, " relabelled")
		case p.phase == simPhaseUpdating:
			p.phase, p.ready = simPhaseNone, true
			moved = s.note(moved, p.name, " in place done")
		case !p.ready:
			p.ready = true
			moved = s.note(moved, p.name, " ready")
		}
	}
	if len(gone) > 0 {
		s.pods = slices.DeleteFunc(s.pods, func(p *simPod) bool { return slices.Contains(gone, p) })
	}
	if len(moved) > 0 && s.trace.On() {
		s.trace.Logf("events: %s -> %s", strings.Join(moved, ", "), s.state())
	}
}

func (s *simCluster) note(moved []string, name, what string) []string {
	if !s.trace.On() {
		return moved
	}
	return append(moved, name+what)
}

// invariants hold after every step. The availability floor holds once
// the set has been fully available, and the partition once reached.
func (s *simCluster) invariants() error {
	cfg := s.cfg
	c := s.counts()
	r := cfg.replicas
	keep := min(cfg.partition, r)
	s.armAvailable = s.armAvailable || c.available >= r
	s.armPartition = s.armPartition || c.oldSteady >= keep
	if floor := r - cfg.resolvedMaxUnavailable(); s.armAvailable && c.available < floor {
		return fmt.Errorf("available %d < replicas %d - maxUnavailable %d", c.available, r, cfg.resolvedMaxUnavailable())
	}
	if limit := max(r+cfg.maxSurge, cfg.initial); c.active > limit {
		return fmt.Errorf("active %d > %d (replicas+maxSurge)", c.active, limit)
	}
	if s.armPartition && c.oldSteady < keep {
		return fmt.Errorf("old pods %d < partition %d", c.oldSteady, keep)
	}
	if limit := r - keep + cfg.maxSurge; c.updated > limit {
		return fmt.Errorf("updated %d > replicas-partition+maxSurge %d", c.updated, limit)
	}
	return nil
}

// final checks the settled cluster.
func (s *simCluster) final(last plan) error {
	cfg := s.cfg
	c := s.counts()
	r := cfg.replicas
	p := min(cfg.partition, r)
	if c.terminating != 0 || c.active != r || c.available != r {
		return fmt.Errorf("settled with %d active, %d available, %d terminating; want %d all available", c.active, c.available, c.terminating, r)
	}
	if cfg.expectBlocked {
		if !last.blocked {
			return fmt.Errorf("InPlaceOnly with %s pods settled without blocked", simRevNoIP)
		}
		if c.updated > r-c.oldSteady || c.oldSteady < p {
			return fmt.Errorf("blocked rollout moved pods: %d updated, %d old", c.updated, c.oldSteady)
		}
		return nil
	}
	if c.updated != r-p || c.oldSteady != p {
		return fmt.Errorf("settled with %d updated and %d old; want %d and %d", c.updated, c.oldSteady, r-p, p)
	}
	return nil
}

// simRun runs one configuration with one seed; a failing run is repeated
// with tracing to report its last steps.
func simRun(cfg simConfig, seed uint64) error {
	if err := simRunOnce(cfg, seed, false); err != nil {
		return simRunOnce(cfg, seed, true)
	}
	return nil
}

func simRunOnce(cfg simConfig, seed uint64, tracing bool) (err error) {
	s := &simCluster{cfg: cfg, rng: rand.New(rand.NewPCG(seed, 0x5eed)), trace: simtest.NewTrace(tracing, simTraceLen)}
	revs := cfg.initialRevs
	if len(revs) == 0 {
		revs = []string{simRevCurrent}
	}
	for i := range cfg.initial {
		s.add(revs[int(i)%len(revs)], true)
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("seed %d, %s: %w\nlast steps:\n%s\nstate: %s", seed, cfg, err, s.trace, s.state())
		}
	}()
	if err := s.invariants(); err != nil {
		return err
	}
	for step := 0; step < simMaxSteps; step++ {
		if cfg.togglePause && s.rng.IntN(8) == 0 {
			s.paused = !s.paused
			s.trace.Logf("paused=%v", s.paused)
		}
		if s.rng.IntN(2) == 0 {
			last, did, err := s.reconcile()
			if err != nil {
				return err
			}
			if err := s.invariants(); err != nil {
				return err
			}
			if !did && !s.pending() && !s.paused {
				return s.final(last)
			}
			continue
		}
		// Sometimes a single event, sometimes a burst.
		q := s.rng.Float64()
		if s.rng.IntN(3) == 0 {
			q = 1
		}
		s.events(q)
		if err := s.invariants(); err != nil {
			return err
		}
	}
	return fmt.Errorf("not settled after %d steps", simMaxSteps)
}

// simRolloutConfigs: every replicas × (maxUnavailable, maxSurge) ×
// partition × strategy; the initial pods are all at old revisions and
// available. InPlaceIfPossible starts from a mix of revisions that can and
// cannot go in place; InPlaceOnly runs with slow and with instant in-place
// updates.
func simRolloutConfigs() []simConfig {
	var out []simConfig
	for _, r := range []int32{1, 3, 10, 25} {
		for _, mu := range [][2]int32{{0, 1}, {1, 0}, {2, 2}, {r, 0}, {1, 1}, {0, 3}} {
			for _, part := range []int32{0, max(1, r/3)} {
				base := simConfig{replicas: r, partition: part, maxUnavailable: mu[0], maxSurge: mu[1],
					scaleMaxUnavailable: -1, initial: r}
				re := base
				re.strategy = appsv1alpha1.ReCreateCloneSetUpdateStrategyType
				ipp := base
				ipp.strategy = appsv1alpha1.InPlaceIfPossibleCloneSetUpdateStrategyType
				ipp.initialRevs = []string{simRevCurrent, simRevNoIP}
				ipo := base
				ipo.strategy = appsv1alpha1.InPlaceOnlyCloneSetUpdateStrategyType
				ipoInstant := ipo
				ipoInstant.instantInPlace = true
				out = append(out, re, ipp, ipo, ipoInstant)
			}
		}
	}
	return out
}

// simHitsSurgeScaleDownBug: with in-place updates and maxSurge >= 2 the
// surge shrinks while relabelled pods are still unavailable and scaleDown
// deletes available old pods beyond maxUnavailable (see
// TestPlanScaleDownKeepsAvailability).
func simHitsSurgeScaleDownBug(cfg simConfig) bool {
	return cfg.strategy != appsv1alpha1.ReCreateCloneSetUpdateStrategyType && cfg.maxSurge >= 2
}

func simRunAll(t *testing.T, cfgs []simConfig, seeds int) {
	t.Helper()
	for _, cfg := range cfgs {
		failed := 0
		for seed := range uint64(seeds) {
			if err := simRun(cfg, seed); err != nil {
				t.Error(err)
				if failed++; failed == 2 {
					break // enough for one configuration
				}
			}
		}
	}
}

// TestSimRollingUpdateSequences rolls every configuration out over many
// seeds: each step either reconciles (computePlan applied to the fake
// cluster) or lets random pods become ready, vanish or finish their
// in-place update, and the invariants hold after every step.
func TestSimRollingUpdateSequences(t *testing.T) {
	var cfgs []simConfig
	for _, cfg := range simRolloutConfigs() {
		if !simHitsSurgeScaleDownBug(cfg) {
			cfgs = append(cfgs, cfg)
		}
	}
	simRunAll(t, cfgs, simSeeds)
}

// TestSimRollingUpdateInPlaceSurge: the in-place configurations with
// maxSurge >= 2 left out of TestSimRollingUpdateSequences.
func TestSimRollingUpdateInPlaceSurge(t *testing.T) {
	var cfgs []simConfig
	for _, cfg := range simRolloutConfigs() {
		if simHitsSurgeScaleDownBug(cfg) {
			cfgs = append(cfgs, cfg)
		}
	}
	simRunAll(t, cfgs, simSeeds)
}

// TestSimInPlaceOnlyBlocked: InPlaceOnly with pods that cannot go in place
// settles with no pod touched.
func TestSimInPlaceOnlyBlocked(t *testing.T) {
	var cfgs []simConfig
	for _, r := range []int32{1, 3, 10} {
		for _, mu := range [][2]int32{{0, 1}, {1, 0}, {r, 0}} {
			cfgs = append(cfgs, simConfig{replicas: r, maxUnavailable: mu[0], maxSurge: mu[1], scaleMaxUnavailable: -1,
				strategy: appsv1alpha1.InPlaceOnlyCloneSetUpdateStrategyType, initial: r,
				initialRevs: []string{simRevNoIP, simRevCurrent}, expectBlocked: true})
		}
	}
	simRunAll(t, cfgs, 50)
}

// TestSimScale scales from 0 (with partition and scaleMaxUnavailable) and
// down from a larger set, to the same settled state.
func TestSimScale(t *testing.T) {
	var cfgs []simConfig
	for _, r := range []int32{1, 3, 10, 25} {
		for _, smu := range []int32{-1, 1, 3} {
			for _, part := range []int32{0, max(1, r/3)} {
				cfgs = append(cfgs, simConfig{replicas: r, partition: part, maxUnavailable: 1, scaleMaxUnavailable: smu,
					strategy: appsv1alpha1.ReCreateCloneSetUpdateStrategyType, checkScaleUnavailable: true})
			}
		}
		// Scale down from 2R old pods with an update and a partition.
		cfgs = append(cfgs, simConfig{replicas: r, partition: max(1, r/3), maxUnavailable: 1, maxSurge: 1,
			scaleMaxUnavailable: -1, strategy: appsv1alpha1.InPlaceIfPossibleCloneSetUpdateStrategyType, initial: 2 * r,
			initialRevs: []string{simRevCurrent, simRevNoIP}})
	}
	simRunAll(t, cfgs, 50)
}

// TestSimRollingUpdatePauseToggle pauses and resumes the update at random.
func TestSimRollingUpdatePauseToggle(t *testing.T) {
	var cfgs []simConfig
	for _, cfg := range simRolloutConfigs() {
		cfg.togglePause = true
		cfgs = append(cfgs, cfg)
	}
	simRunAll(t, cfgs, 20)
}
