package cloneset

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/podcontrol"
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
			name: "abort: a canary pod whose update never finishes (its container never ready) returns too",
			in:   plControlled(0, 4, plViews("o", plRevOld, 3), plViews("s", plRevNew, 1, "updating")),
			want: plWant{returns: []string{"s0"}},
		},
		{
			name: "unavailable canary pods return for free",
			in: plControlled(0, 4, plViews("o", plRevOld, 2), plViews("a", plRevNew, 1),
				plViews("u", plRevNew, 1, "unavailable")),
			want: plWant{returns: []string{"u0"}},
		},
		{
			name: "no pod for the update revision: pods of a third revision go back to stable",
			// plRevStray was the canary of an aborted release; the update
			// revision plRevNew gets no pods (Targets gave it none).
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

// plLimits sets the rollout control's maxUnavailable and maxSurge ("" leaves
// one unset) on top of the CloneSet's own, given as numbers like sync.go
// resolves them.
func plLimits(ownMaxUnavailable, ownMaxSurge int32, maxUnavailable, maxSurge string) func(*planInput) {
	return func(in *planInput) {
		in.maxUnavailable, in.maxSurge = ownMaxUnavailable, ownMaxSurge
		in.control = &appsv1alpha1.RolloutControl{StableRevision: plRevOld, CanaryReplicas: in.replicas - in.partition}
		if maxUnavailable != "" {
			in.control.MaxUnavailable = ptr.To(intstr.Parse(maxUnavailable))
		}
		if maxSurge != "" {
			in.control.MaxSurge = ptr.To(intstr.Parse(maxSurge))
		}
	}
}

// TestComputePlanRolloutControlLimits: the control's maxUnavailable and
// maxSurge replace the CloneSet's own for the pods a step moves.
func TestComputePlanRolloutControlLimits(t *testing.T) {
	step := func(f func(*planInput)) planInput { return plWith(plControlled(3, 2, plViews("o", plRevOld, 5)), f) }
	cases := []struct {
		name string
		in   planInput
		want plWant
	}{
		{
			name: "the CloneSet's own maxUnavailable 1 moves one pod of a step of 3",
			in:   step(plLimits(1, 0, "", "")),
			want: plWant{inPlace: plNames("o", 0)},
		},
		{
			name: "control maxUnavailable 3 over the CloneSet's 1: the step moves 3 at once",
			in:   step(plLimits(1, 0, "3", "")),
			want: plWant{inPlace: plNames("o", 0, 1, 2)},
		},
		{
			name: "control maxUnavailable 1 under the CloneSet's 3: one at a time",
			in:   step(plLimits(3, 0, "1", "")),
			want: plWant{inPlace: plNames("o", 0)},
		},
		{
			name: "control maxUnavailable 60% of 5 replicas is 3",
			in:   step(plLimits(1, 0, "60%", "")),
			want: plWant{inPlace: plNames("o", 0, 1, 2)},
		},
		{
			name: "control maxUnavailable as a percentage rounds down: 50% of 5 is 2",
			in:   step(plLimits(1, 0, "50%", "")),
			want: plWant{inPlace: plNames("o", 0, 1)},
		},
		{
			name: "control maxSurge 2 with maxUnavailable 0: the canary surges instead",
			in:   step(plLimits(1, 0, "0", "2")),
			want: plWant{createUpdated: 2, surge: 2},
		},
		{
			name: "control maxSurge as a percentage rounds up: 30% of 5 is 2",
			in:   step(plLimits(1, 0, "0", "30%")),
			want: plWant{createUpdated: 2, surge: 2},
		},
		{
			name: "control maxSurge 0 stops the CloneSet's own surge",
			in:   step(plLimits(1, 2, "", "0")),
			want: plWant{inPlace: plNames("o", 0)},
		},
		{
			name: "control maxSurge alone keeps the CloneSet's maxUnavailable",
			in:   step(plLimits(0, 0, "", "1")),
			want: plWant{createUpdated: 1, surge: 1},
		},
		{
			name: "control 0 and 0: one pod may still be unavailable",
			in:   step(plLimits(3, 2, "0", "0")),
			want: plWant{inPlace: plNames("o", 0)},
		},
		{
			name: "a control that sets neither keeps the CloneSet's own",
			in:   step(plLimits(2, 0, "", "")),
			want: plWant{inPlace: plNames("o", 0, 1)},
		},
		{
			name: "control maxUnavailable 3 also bounds an abort's returns",
			in: plWith(plControlled(0, 5, plViews("o", plRevOld, 2), plViews("n", plRevNew, 3)),
				plLimits(1, 0, "3", "")),
			want: plWant{returns: plNames("n", 2, 1, 0)},
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

// TestRolloutControlLimitsReachThePlan: the control annotation's
// maxUnavailable goes from desiredShape through planInput to the plan.
func TestRolloutControlLimitsReachThePlan(t *testing.T) {
	history := []*appsv1.ControllerRevision{{ObjectMeta: metav1.ObjectMeta{Name: plRevOld}}, {ObjectMeta: metav1.ObjectMeta{Name: plRevNew}}}
	tpl := podcontrol.NewTemplates(history, history[1])
	cs := func(annotation string) *appsv1alpha1.CloneSet {
		return &appsv1alpha1.CloneSet{
			ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{appsv1alpha1.AnnotationRolloutControl: annotation}},
			Spec: appsv1alpha1.CloneSetSpec{Replicas: ptr.To[int32](5), UpdateStrategy: appsv1alpha1.CloneSetUpdateStrategy{
				Type: appsv1alpha1.ReCreateCloneSetUpdateStrategyType, MaxUnavailable: ptr.To(intstr.FromInt32(1))}},
		}
	}
	const ctl = `{"stableRevision":"old","canaryRevision":"new","canaryReplicas":3`
	for _, c := range []struct {
		name, annotation string
		deletes          int
	}{
		{"the CloneSet's own maxUnavailable 1", ctl + `}`, 1},
		{"control maxUnavailable 3", ctl + `,"maxUnavailable":3}`, 3},
		{"control maxUnavailable 60% of 5", ctl + `,"maxUnavailable":"60%"}`, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			set := cs(c.annotation)
			sh := desiredShape(set, tpl)
			if sh.controlErr != nil {
				t.Fatal(sh.controlErr)
			}
			in := (&Reconciler{}).planInput(set, sh, plViews("o", plRevOld, 5), 0, tpl)
			if p := computePlan(in); len(p.deletes) != c.deletes {
				t.Errorf("plan %s, want %d recreates", plGot(p), c.deletes)
			}
		})
	}
}
