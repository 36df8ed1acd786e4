package cloneset

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

// Revisions used by the planner tests: plRevNew is the update revision,
// plRevOld an old revision that can be updated in place, plRevNoIP an old
// revision whose change to plRevNew needs a recreate.
const (
	plRevNew  = "new"
	plRevOld  = "old"
	plRevNoIP = "old-noip"
)

// plView builds a podView named name at revision rev. flags: "unavailable"
// (default is available), "updating", "deleting".
func plView(name, rev string, flags ...string) *podView {
	v := &podView{
		pod:       &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}},
		revision:  rev,
		updated:   rev == plRevNew,
		available: true,
	}
	for _, f := range flags {
		switch f {
		case "unavailable":
			v.available = false
		case "updating":
			v.updating, v.available = true, false
		case "returning":
			v.returning, v.available = true, false
		case "deleting":
			v.deleting = true
		default:
			panic("unknown flag " + f)
		}
	}
	return v
}

// plViews builds n pods named prefix0..prefix<n-1> at rev.
func plViews(prefix, rev string, n int, flags ...string) []*podView {
	out := make([]*podView, n)
	for i := range out {
		out[i] = plView(fmt.Sprintf("%s%d", prefix, i), rev, flags...)
	}
	return out
}

func plIdentity(pods []*podView) []*podView { return slices.Clone(pods) }

func plReverse(pods []*podView) []*podView {
	out := slices.Clone(pods)
	slices.Reverse(out)
	return out
}

// plInput is a planInput with test defaults: InPlaceIfPossible,
// maxUnavailable 1, no surge, no scale limit, identity orders, plRevNoIP
// cannot go in place; notReady is derived from the pods' availability.
func plInput(replicas int32, pods ...[]*podView) planInput {
	var all []*podView
	for _, p := range pods {
		all = append(all, p...)
	}
	in := planInput{
		replicas:            replicas,
		maxUnavailable:      1,
		scaleMaxUnavailable: -1,
		strategy:            appsv1alpha1.InPlaceIfPossibleCloneSetUpdateStrategyType,
		update:              plRevNew,
		inPlace:             func(from, to string) bool { return from != plRevNoIP && to != plRevNoIP },
		pods:                all,
		specified:           sets.New[string](),
		rank:                plIdentity,
		sortForUpdate:       plIdentity,
	}
	for _, v := range all {
		if !v.available {
			in.notReady++
		}
	}
	return in
}

// plWant is the expected plan; deletes are "name:reason" in plan order.
type plWant struct {
	createUpdated, createCurrent int32
	deletes                      []string
	inPlace                      []string
	returns                      []string
	surge                        int32
	blocked                      bool
}

func plGot(p plan) plWant {
	var w plWant
	w.createUpdated, w.createCurrent, w.surge, w.blocked = p.createUpdated, p.createCurrent, p.surge, p.blocked
	for _, d := range p.deletes {
		w.deletes = append(w.deletes, d.view.pod.Name+":"+string(d.reason))
	}
	for _, v := range p.inPlace {
		w.inPlace = append(w.inPlace, v.pod.Name)
	}
	for _, v := range p.returns {
		w.returns = append(w.returns, v.pod.Name)
	}
	return w
}

func (w plWant) String() string {
	return fmt.Sprintf("createUpdated=%d createCurrent=%d deletes=[%s] inPlace=[%s] returns=[%s] surge=%d blocked=%v",
		w.createUpdated, w.createCurrent, strings.Join(w.deletes, " "), strings.Join(w.inPlace, " "), strings.Join(w.returns, " "), w.surge, w.blocked)
}

func plDel(reason deleteReason, names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n + ":" + string(reason)
	}
	return out
}

func plNames(prefix string, idx ...int) []string {
	out := make([]string, len(idx))
	for i, n := range idx {
		out[i] = fmt.Sprintf("%s%d", prefix, n)
	}
	return out
}

// plWith returns in changed by f.
func plWith(in planInput, f func(*planInput)) planInput {
	f(&in)
	return in
}

func TestComputePlan(t *testing.T) {
	type tc struct {
		name string
		in   planInput
		want plWant
	}
	mixed := func() []*podView {
		// n0 o0 n1 o1: updated and old pods interleaved.
		return []*podView{plView("n0", plRevNew), plView("o0", plRevOld), plView("n1", plRevNew), plView("o1", plRevOld)}
	}
	cases := []tc{
		// ---- scale up ----
		{
			name: "scale up from 0",
			in:   plInput(5),
			want: plWant{createUpdated: 5},
		},
		{
			name: "scale up from 0 with partition creates some at the current revision",
			in:   plWith(plInput(5), func(in *planInput) { in.partition = 2 }),
			want: plWant{createUpdated: 3, createCurrent: 2},
		},
		{
			name: "scale up with partition counts existing pods of each revision",
			// U=3, t.old=2; 1 new + 1 old exist: 2 more updated, 1 more current.
			in:   plWith(plInput(5, plViews("n", plRevNew, 1), plViews("o", plRevOld, 1)), func(in *planInput) { in.partition = 2 }),
			want: plWant{createUpdated: 2, createCurrent: 1},
		},
		{
			name: "scale up with partition 100% creates only current pods",
			in:   plWith(plInput(4, plViews("o", plRevOld, 1)), func(in *planInput) { in.partition = 4 }),
			want: plWant{createCurrent: 3},
		},
		{
			name: "scaleMaxUnavailable limits creates by the not-ready pods",
			// limit 3, 1 not ready: 2 creates though 7 are missing.
			in: plWith(plInput(10, plViews("a", plRevNew, 2), plViews("u", plRevNew, 1, "unavailable")),
				func(in *planInput) { in.scaleMaxUnavailable = 3 }),
			want: plWant{createUpdated: 2},
		},
		{
			name: "scaleMaxUnavailable reached creates nothing",
			in: plWith(plInput(10, plViews("u", plRevNew, 3, "unavailable")),
				func(in *planInput) { in.scaleMaxUnavailable = 2 }),
			want: plWant{},
		},
		{
			name: "scaleMaxUnavailable from 0 pods",
			in:   plWith(plInput(10), func(in *planInput) { in.scaleMaxUnavailable = 4 }),
			want: plWant{createUpdated: 4},
		},
		{
			name: "scale up during an update does not update",
			in:   plInput(6, plViews("o", plRevOld, 4)),
			want: plWant{createUpdated: 2},
		},
		// ---- scale down ----
		{
			name: "scale down prefers old pods when old is over its target",
			// R=3 P=1: U=2 t.old=1; 2 old, 2 new: the old o0 goes although n0 ranks first.
			in:   plWith(plInput(3, mixed()), func(in *planInput) { in.partition = 1; in.maxUnavailable = 0 }),
			want: plWant{deletes: plDel(deleteScaleDown, "o0")},
		},
		{
			name: "scale down prefers updated pods when updated is over its target, in rank order",
			// R=3 P=2: U=1; 2 new: rank reverse is o1 n1 o0 n0: n1 goes.
			in:   plWith(plInput(3, mixed()), func(in *planInput) { in.partition = 2; in.rank = plReverse }),
			want: plWant{deletes: plDel(deleteScaleDown, "n1")},
		},
		{
			name: "scale down takes pods of each revision over target, then rank order",
			// R=1 P=0: both old pods and the one extra new pod go, in
			// rank order; n1 stays.
			in:   plInput(1, mixed()),
			want: plWant{deletes: plDel(deleteScaleDown, "n0", "o0", "o1")},
		},
		{
			name: "scale down without revision preference follows rank",
			in:   plWith(plInput(2, plViews("n", plRevNew, 4)), func(in *planInput) { in.rank = plReverse }),
			want: plWant{deletes: plDel(deleteScaleDown, "n3", "n2")},
		},
		{
			name: "scale to 0 deletes everything",
			in:   plInput(0, mixed()),
			want: plWant{deletes: plDel(deleteScaleDown, "n0", "o0", "n1", "o1")},
		},
		// ---- specified ----
		{
			name: "specified pod with lower replicas is deleted without replacement",
			in: plWith(plInput(2, plViews("n", plRevNew, 3)),
				func(in *planInput) { in.specified = sets.New("n1") }),
			want: plWant{deletes: plDel(deleteSpecified, "n1")},
		},
		{
			name: "specified pod with replicas unchanged is deleted and replaced",
			// The replacement is planned in the same reconcile: rest is
			// one short once the specified pod is set aside.
			in: plWith(plInput(3, plViews("n", plRevNew, 3)),
				func(in *planInput) { in.specified = sets.New("n1") }),
			want: plWant{deletes: plDel(deleteSpecified, "n1"), createUpdated: 1},
		},
		{
			name: "next round: specified pod still in its preDelete hook is not replaced twice",
			in:   plInput(3, []*podView{plView("n0", plRevNew), plView("n1", plRevNew, "deleting"), plView("n2", plRevNew), plView("n3", plRevNew, "unavailable")}),
			want: plWant{deletes: plDel(deleteSpecified, "n1")},
		},
		{
			name: "next round: specified pod gone, replacement present: nothing to do",
			in:   plInput(3, []*podView{plView("n0", plRevNew), plView("n2", plRevNew), plView("n3", plRevNew, "unavailable")}),
			want: plWant{},
		},
		{
			name: "specified old pod during an update is replaced at the update revision and nothing updates",
			in: plWith(plInput(4, plViews("o", plRevOld, 4)),
				func(in *planInput) { in.specified = sets.New("o2"); in.maxUnavailable = 4 }),
			want: plWant{deletes: plDel(deleteSpecified, "o2"), createUpdated: 1},
		},
		{
			name: "specified pods and scale down",
			// R=1: n0 specified, and two of the remaining three go.
			in: plWith(plInput(1, plViews("n", plRevNew, 4)),
				func(in *planInput) { in.specified = sets.New("n0") }),
			want: plWant{deletes: append(plDel(deleteSpecified, "n0"), plDel(deleteScaleDown, "n1", "n2")...)},
		},
		{
			// A pod waiting in its preDelete hook may wait long; it must
			// not hold the update of the others back.
			name: "pod held in preDelete does not block the update",
			in:   plInput(3, []*podView{plView("o0", plRevOld), plView("o1", plRevOld), plView("o2", plRevOld, "deleting"), plView("n0", plRevNew)}),
			want: plWant{deletes: plDel(deleteSpecified, "o2"), inPlace: plNames("o", 0)},
		},
		{
			name: "a fresh specified delete blocks the update of this reconcile",
			in: plWith(plInput(3, []*podView{plView("o0", plRevOld), plView("o1", plRevOld), plView("o2", plRevOld), plView("n0", plRevNew)}),
				func(in *planInput) { in.specified = sets.New("o2") }),
			want: plWant{deletes: plDel(deleteSpecified, "o2")},
		},
		// ---- update ----
		{
			name: "in-place update bounded by maxUnavailable",
			in:   plWith(plInput(10, plViews("o", plRevOld, 10)), func(in *planInput) { in.maxUnavailable = 2 }),
			want: plWant{inPlace: plNames("o", 0, 1)},
		},
		{
			name: "update follows sortForUpdate",
			in: plWith(plInput(10, plViews("o", plRevOld, 10)),
				func(in *planInput) { in.maxUnavailable = 2; in.sortForUpdate = plReverse }),
			want: plWant{inPlace: plNames("o", 9, 8)},
		},
		{
			name: "unavailable old pods are updated for free",
			// 7 available, maxUnavailable 2: budget 7-8 < 0, the 3
			// unavailable pods go anyway, no available one does.
			in: plWith(plInput(10, plViews("a", plRevOld, 7), plViews("u", plRevOld, 3, "unavailable")),
				func(in *planInput) { in.maxUnavailable = 2 }),
			want: plWant{inPlace: plNames("u", 0, 1, 2)},
		},
		{
			name: "unavailable old pods are free, available ones use the rest of the budget",
			// 9 available, maxUnavailable 2: budget 1.
			in: plWith(plInput(10, []*podView{plView("a0", plRevOld), plView("u0", plRevOld, "unavailable")}, plViews("b", plRevOld, 8)),
				func(in *planInput) { in.maxUnavailable = 2 }),
			want: plWant{inPlace: []string{"a0", "u0"}},
		},
		{
			name: "updated pods count toward the budget; the update stops at need",
			// 3 new available + 2 old: need 2, budget 5-(5-3)=3.
			in:   plWith(plInput(5, plViews("n", plRevNew, 3), plViews("o", plRevOld, 2)), func(in *planInput) { in.maxUnavailable = 3 }),
			want: plWant{inPlace: plNames("o", 0, 1)},
		},
		{
			name: "unavailable updated pods consume the budget",
			// 4 available of 5, maxUnavailable 1: budget 0.
			in:   plInput(5, plViews("n", plRevNew, 1, "unavailable"), plViews("o", plRevOld, 4)),
			want: plWant{},
		},
		{
			name: "ReCreate deletes with reason recreate-update",
			in: plWith(plInput(10, plViews("o", plRevOld, 10)), func(in *planInput) {
				in.maxUnavailable = 2
				in.strategy = appsv1alpha1.ReCreateCloneSetUpdateStrategyType
			}),
			want: plWant{deletes: plDel(deleteRecreate, "o0", "o1")},
		},
		{
			name: "recreated pods are re-created at the update revision by the next scale-up",
			in:   plWith(plInput(10, plViews("o", plRevOld, 8)), func(in *planInput) { in.maxUnavailable = 2 }),
			want: plWant{createUpdated: 2},
		},
		{
			name: "InPlaceIfPossible recreates a revision that cannot go in place",
			in: plWith(plInput(4, []*podView{plView("x0", plRevNoIP), plView("o0", plRevOld), plView("o1", plRevOld), plView("x1", plRevNoIP)}),
				func(in *planInput) { in.maxUnavailable = 3 }),
			want: plWant{deletes: plDel(deleteRecreate, "x0"), inPlace: []string{"o0", "o1"}},
		},
		{
			name: "InPlaceOnly updates in place",
			in: plWith(plInput(3, plViews("o", plRevOld, 3)), func(in *planInput) {
				in.strategy = appsv1alpha1.InPlaceOnlyCloneSetUpdateStrategyType
			}),
			want: plWant{inPlace: plNames("o", 0)},
		},
		{
			name: "InPlaceOnly with a revision that cannot go in place is blocked and touches nothing",
			in: plWith(plInput(3, []*podView{plView("o0", plRevOld), plView("x0", plRevNoIP, "unavailable"), plView("o1", plRevOld)}), func(in *planInput) {
				in.strategy = appsv1alpha1.InPlaceOnlyCloneSetUpdateStrategyType
				in.maxUnavailable = 3
				in.maxSurge = 1
			}),
			want: plWant{blocked: true},
		},
		{
			name: "InPlaceOnly blocked still scales, without surge",
			in: plWith(plInput(4, []*podView{plView("o0", plRevOld), plView("x0", plRevNoIP)}), func(in *planInput) {
				in.strategy = appsv1alpha1.InPlaceOnlyCloneSetUpdateStrategyType
				in.maxSurge = 2
			}),
			want: plWant{blocked: true, createUpdated: 2},
		},
		{
			name: "InPlaceOnly ignores a pod already updating",
			in: plWith(plInput(3, []*podView{plView("x0", plRevNoIP, "updating"), plView("o0", plRevOld), plView("o1", plRevOld)}), func(in *planInput) {
				in.strategy = appsv1alpha1.InPlaceOnlyCloneSetUpdateStrategyType
				in.maxUnavailable = 2
			}),
			want: plWant{inPlace: []string{"o0"}},
		},
		{
			name: "paused does not update",
			in: plWith(plInput(3, plViews("o", plRevOld, 3)), func(in *planInput) {
				in.paused = true
				in.maxSurge = 1
			}),
			want: plWant{},
		},
		{
			name: "paused still scales up",
			in:   plWith(plInput(5, plViews("o", plRevOld, 3)), func(in *planInput) { in.paused = true; in.maxSurge = 1 }),
			want: plWant{createUpdated: 2},
		},
		{
			name: "paused still scales down",
			in:   plWith(plInput(2, plViews("o", plRevOld, 3)), func(in *planInput) { in.paused = true }),
			want: plWant{deletes: plDel(deleteScaleDown, "o0")},
		},
		{
			name: "OnDelete does not update",
			in: plWith(plInput(3, plViews("o", plRevOld, 3)), func(in *planInput) {
				in.strategy = appsv1alpha1.OnDeleteCloneSetUpdateStrategyType
				in.maxSurge = 1
			}),
			want: plWant{},
		},
		{
			name: "OnDelete replaces a deleted old pod at the update revision",
			in: plWith(plInput(3, plViews("o", plRevOld, 2)), func(in *planInput) {
				in.strategy = appsv1alpha1.OnDeleteCloneSetUpdateStrategyType
			}),
			want: plWant{createUpdated: 1},
		},
		{
			name: "maxSurge 1 maxUnavailable 0 creates one updated pod first",
			in:   plWith(plInput(3, plViews("o", plRevOld, 3)), func(in *planInput) { in.maxUnavailable = 0; in.maxSurge = 1 }),
			want: plWant{createUpdated: 1, surge: 1},
		},
		{
			name: "maxSurge 1 maxUnavailable 0 waits for the surge pod",
			in: plWith(plInput(3, plViews("o", plRevOld, 3), plViews("n", plRevNew, 1, "unavailable")),
				func(in *planInput) { in.maxUnavailable = 0; in.maxSurge = 1 }),
			want: plWant{surge: 1},
		},
		{
			name: "maxSurge 1 maxUnavailable 0 updates one old pod once the surge pod is available",
			in: plWith(plInput(3, plViews("o", plRevOld, 3), plViews("n", plRevNew, 1)),
				func(in *planInput) { in.maxUnavailable = 0; in.maxSurge = 1 }),
			want: plWant{surge: 1, inPlace: plNames("o", 0)},
		},
		{
			name: "surge is bounded by the old pods over target",
			// R=4 P=2: 2 old over target, maxSurge 3.
			in: plWith(plInput(4, plViews("o", plRevOld, 4)),
				func(in *planInput) { in.partition = 2; in.maxSurge = 3; in.maxUnavailable = 0 }),
			want: plWant{createUpdated: 2, surge: 2},
		},
		{
			name: "surge pods are removed once the update is done",
			in:   plWith(plInput(3, plViews("n", plRevNew, 4)), func(in *planInput) { in.maxUnavailable = 0; in.maxSurge = 1 }),
			want: plWant{deletes: plDel(deleteScaleDown, "n0")},
		},
		{
			name: "partition 100% updates nothing",
			in: plWith(plInput(4, plViews("o", plRevOld, 4)),
				func(in *planInput) { in.partition = 4; in.maxSurge = 2; in.maxUnavailable = 4 }),
			want: plWant{},
		},
		{
			name: "partition keeps its old pods",
			in: plWith(plInput(4, plViews("n", plRevNew, 1), plViews("o", plRevOld, 3)),
				func(in *planInput) { in.partition = 2; in.maxUnavailable = 4 }),
			want: plWant{inPlace: plNames("o", 0)},
		},
		{
			name: "partition higher than the old pods does not roll back updated pods",
			in: plWith(plInput(4, plViews("n", plRevNew, 3), plViews("o", plRevOld, 1)),
				func(in *planInput) { in.partition = 2; in.maxUnavailable = 4 }),
			want: plWant{},
		},
		{
			name: "already-updating pods are not re-planned and count toward need",
			// 4 old, 2 updating: need 2; budget 2-(4-3)=1: one more.
			in: plWith(plInput(4, plViews("w", plRevOld, 2, "updating"), plViews("o", plRevOld, 2)),
				func(in *planInput) { in.maxUnavailable = 3 }),
			want: plWant{inPlace: plNames("o", 0)},
		},
		{
			name: "already-updating pods covering the need leave nothing to plan",
			in: plWith(plInput(4, plViews("n", plRevNew, 2), plViews("w", plRevOld, 2, "updating")),
				func(in *planInput) { in.maxUnavailable = 4 }),
			want: plWant{},
		},
		{
			name: "an updating pod already at the update revision is not old",
			in: plWith(plInput(3, plViews("w", plRevNew, 1, "updating"), plViews("o", plRevOld, 2)),
				func(in *planInput) { in.maxUnavailable = 2 }),
			want: plWant{inPlace: plNames("o", 0)},
		},
		{
			name: "nothing to do",
			in:   plInput(3, plViews("n", plRevNew, 3)),
			want: plWant{},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := plGot(computePlan(c.in))
			if got.String() != c.want.String() {
				t.Errorf("\n got: %s\nwant: %s", got, c.want)
			}
		})
	}
}

// TestComputePlanDoesNotModifyInput: the planner is pure.
func TestComputePlanDoesNotModifyInput(t *testing.T) {
	pods := append(plViews("o", plRevOld, 5), plViews("n", plRevNew, 2, "unavailable")...)
	in := plInput(6, pods)
	in.maxSurge = 2
	before := fmt.Sprintf("%+v", derefViews(in.pods))
	for range 3 {
		computePlan(in)
	}
	if after := fmt.Sprintf("%+v", derefViews(in.pods)); after != before {
		t.Fatalf("computePlan modified its input:\n%s\n%s", before, after)
	}
}

func derefViews(vs []*podView) []podView {
	out := make([]podView, len(vs))
	for i, v := range vs {
		out[i] = *v
	}
	return out
}

// TestPlanScaleDownKeepsAvailability: a scale-down that replicas did not
// ask for (the surge shrinking) must not take available pods below
// replicas-maxUnavailable.
func TestPlanScaleDownKeepsAvailability(t *testing.T) {
	cases := []struct {
		name string
		in   planInput
	}{
		{
			// maxUnavailable 0, one surge pod not ready yet, update
			// paused: surge 0, the scale-down takes available o0.
			name: "paused mid-surge",
			in: plWith(plInput(3, plViews("o", plRevOld, 3), plViews("n", plRevNew, 1, "unavailable")),
				func(in *planInput) { in.maxUnavailable, in.maxSurge, in.paused = 0, 1, true }),
		},
		{
			// R=3 maxUnavailable=2 maxSurge=2: w0 was updated in place and
			// relabelled but is not available yet; the surge pods are not
			// ready. One old pod over target: surge 1, 5 pods > 4, and the
			// only available pod, o0, is deleted: 0 available < 1.
			name: "in-place relabel shrinks the surge",
			in: plWith(plInput(3, plViews("w", plRevNew, 1, "updating"), plViews("o", plRevOld, 1), plViews("n", plRevNew, 3, "unavailable")),
				func(in *planInput) { in.maxUnavailable, in.maxSurge = 2, 2 }),
		},
		{
			// R=10 P=3 maxUnavailable=2 maxSurge=2 InPlaceOnly: 4 updated
			// available, 4 relabelled in flight, 4 old available: surge
			// drops to 1 and o3 is deleted: 7 available < 8.
			name: "in-place relabel shrinks the surge with a partition",
			in: plWith(plInput(10, plViews("n", plRevNew, 4), plViews("w", plRevNew, 4, "updating"), plViews("o", plRevOld, 4)),
				func(in *planInput) {
					in.partition, in.maxUnavailable, in.maxSurge = 3, 2, 2
					in.strategy = appsv1alpha1.InPlaceOnlyCloneSetUpdateStrategyType
				}),
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := computePlan(c.in)
			var available int32
			for _, v := range c.in.pods {
				if v.available {
					available++
				}
			}
			for _, d := range p.deletes {
				if d.view.available {
					available--
				}
			}
			for _, v := range p.inPlace {
				if v.available {
					available--
				}
			}
			if floor := c.in.replicas - c.in.maxUnavailable; available < floor {
				t.Fatalf("plan leaves %d available pods, want >= %d: %s", available, floor, plGot(p))
			}
		})
	}
}
