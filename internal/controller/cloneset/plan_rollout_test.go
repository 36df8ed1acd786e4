package cloneset

import (
	"testing"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

// plRevStray is a third revision: neither the update revision nor the
// rollout's stable one (plRevOld in these tests).
const plRevStray = "stray"

// plControlled is plInput as sync.go builds it under a rollout control:
// updated pods wanted at plRevNew, stable at plRevOld.
func plControlled(updated, stable int32, pods ...[]*podView) planInput {
	in := plInput(updated+stable, pods...)
	in.partition, in.stable = stable, plRevOld
	return in
}

func TestComputePlanRolloutControl(t *testing.T) {
	cases := []struct {
		name string
		in   planInput
		want plWant
	}{
		{
			name: "canary of 2 out of 5 moves two stable pods forward",
			in:   plWith(plControlled(2, 3, plViews("o", plRevOld, 5)), func(in *planInput) { in.maxUnavailable = 2 }),
			want: plWant{inPlace: plNames("o", 0, 1)},
		},
		{
			name: "abort: every canary pod returns to stable within maxUnavailable, last updated first",
			in:   plControlled(0, 5, plViews("o", plRevOld, 2), plViews("n", plRevNew, 3)),
			want: plWant{returns: plNames("n", 2)},
		},
		{
			name: "smaller canary: the surplus returns, the rest stay",
			in: plWith(plControlled(1, 4, plViews("o", plRevOld, 2), plViews("n", plRevNew, 3)),
				func(in *planInput) { in.maxUnavailable = 5 }),
			want: plWant{returns: plNames("n", 2, 1)},
		},
		{
			name: "pods already returning count against the surplus",
			in: plWith(plControlled(1, 4, plViews("o", plRevOld, 2), plViews("r", plRevNew, 1, "returning"), plViews("n", plRevNew, 2)),
				func(in *planInput) { in.maxUnavailable = 5 }),
			want: plWant{returns: plNames("n", 1)},
		},
		{
			name: "unavailable canary pods return for free",
			in: plControlled(0, 4, plViews("o", plRevOld, 2), plViews("a", plRevNew, 1),
				plViews("u", plRevNew, 1, "unavailable")),
			want: plWant{returns: []string{"u0"}},
		},
		{
			name: "a new revision not yet released: an old canary's pods go back to stable",
			// plRevStray was the canary; the update revision plRevNew gets
			// no pods until the rollout names it.
			in: plWith(plControlled(0, 4, plViews("o", plRevOld, 2), plViews("s", plRevStray, 2)),
				func(in *planInput) { in.maxUnavailable = 2 }),
			want: plWant{returns: plNames("s", 1, 0)},
		},
		{
			name: "a new canary takes the old canary's pods first",
			in: plWith(plControlled(2, 2, plViews("o", plRevOld, 2), plViews("s", plRevStray, 2)),
				func(in *planInput) { in.maxUnavailable = 2 }),
			want: plWant{inPlace: plNames("s", 0, 1)},
		},
		{
			name: "third-revision pods not needed by the canary return to stable",
			in: plWith(plControlled(1, 3, plViews("o", plRevOld, 2), plViews("s", plRevStray, 2)),
				func(in *planInput) { in.maxUnavailable = 2 }),
			want: plWant{inPlace: []string{"s0"}, returns: []string{"s1"}},
		},
		{
			name: "a return that cannot be made in place recreates the pod",
			in: plWith(plControlled(0, 3, plViews("o", plRevOld, 2), plViews("x", plRevNoIP, 1)),
				func(in *planInput) { in.maxUnavailable = 1 }),
			want: plWant{deletes: plDel(deleteReturn, "x0")},
		},
		{
			name: "InPlaceOnly blocks a return that cannot be made in place",
			in: plWith(plControlled(0, 3, plViews("o", plRevOld, 2), plViews("x", plRevNoIP, 1)),
				func(in *planInput) { in.strategy = appsv1alpha1.InPlaceOnlyCloneSetUpdateStrategyType }),
			want: plWant{blocked: true},
		},
		{
			name: "ReCreate returns by recreating",
			in: plWith(plControlled(0, 2, plViews("o", plRevOld, 1), plViews("n", plRevNew, 1)),
				func(in *planInput) { in.strategy = appsv1alpha1.ReCreateCloneSetUpdateStrategyType }),
			want: plWant{deletes: plDel(deleteReturn, "n0")},
		},
		{
			name: "blue-green: the canary is added on top of a full stable side",
			in:   plControlled(3, 3, plViews("o", plRevOld, 3)),
			want: plWant{createUpdated: 3},
		},
		{
			name: "after promotion the stable side is scaled down, old revision first",
			in:   plControlled(3, 0, plViews("n", plRevNew, 3), plViews("o", plRevOld, 3)),
			want: plWant{deletes: plDel(deleteScaleDown, "o0", "o1", "o2")},
		},
		{
			name: "OnDelete moves nothing back",
			in: plWith(plControlled(0, 2, plViews("o", plRevOld, 1), plViews("n", plRevNew, 1)),
				func(in *planInput) { in.strategy = appsv1alpha1.OnDeleteCloneSetUpdateStrategyType }),
			want: plWant{},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := plGot(computePlan(c.in)); got.String() != c.want.String() {
				t.Errorf("plan:\n got  %s\n want %s", got, c.want)
			}
		})
	}
}
