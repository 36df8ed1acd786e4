package daemonset

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/podcontrol"
)

// Under a rollout control the stable revision is revOld and the canary
// revNew; revStray is a third revision (an earlier canary).
const revStray = "rev-stray"

// ctlNodes is buildNodes with two more marks: a pod written "s" runs
// revStray, and the flag "b" says an in-place update back to the stable
// revision is in flight (its label is still the update revision's).
func ctlNodes(t *testing.T, specs ...tn) []*nodeView {
	t.Helper()
	type mark struct{ stray, back bool }
	var marks [][]mark
	for i, s := range specs {
		var pods []string
		var ms []mark
		for _, p := range strings.Split(s.pods, ",") {
			if p == "" {
				continue
			}
			m := mark{stray: p[0] == 's', back: strings.Contains(p, "b")}
			if m.stray {
				p = "o" + p[1:]
			}
			pods = append(pods, strings.ReplaceAll(p, "b", "-"))
			ms = append(ms, m)
		}
		specs[i].pods = strings.Join(pods, ",")
		marks = append(marks, ms)
	}
	nodes := buildNodes(t, specs...)
	for i, n := range nodes {
		for j, v := range n.active {
			switch m := marks[i][j]; {
			case m.stray:
				v.revision = revStray
			case m.back:
				v.inFlight, v.returning, v.updated = true, true, false
			}
		}
	}
	return nodes
}

// controlled is planInput as sync.go builds it under a rollout control
// with canary nodes wanted on the update revision.
func controlled(nodes []*nodeView, canary int32) planInput {
	in := baseInput(nodes)
	var desired int32
	for _, n := range nodes {
		if n.exists && n.eligible {
			desired++
		}
	}
	in.partition = desired - canary
	in.stable = revOld
	in.inPlaceReturn = func(string) bool { return true }
	return in
}

// ctlDescribe is describe with the moves back: "return n1".
func ctlDescribe(p plan) []string {
	out := describe(p)
	for _, v := range p.returns {
		out = append(out, "return "+v.node)
	}
	sort.Strings(out)
	return out
}

func TestComputePlanRolloutControl(t *testing.T) {
	inPlace := func(mu int32) func(*planInput) {
		return func(in *planInput) { in.inPlaceType, in.maxUnavailable = true, mu }
	}
	cases := []struct {
		name   string
		nodes  []tn
		canary int32
		tweak  func(*planInput)
		want   []string
	}{
		{
			name:   "a canary of 2 nodes out of 4 moves two stable nodes forward",
			nodes:  []tn{{name: "a", pods: "o"}, {name: "b", pods: "o"}, {name: "c", pods: "o"}, {name: "d", pods: "o"}},
			canary: 2, tweak: inPlace(2),
			want: []string{"inplace a", "inplace b"},
		},
		{
			name:   "abort: canary nodes go back in place within maxUnavailable, the last updated first",
			nodes:  []tn{{name: "a", pods: "u"}, {name: "b", pods: "u"}, {name: "c", pods: "o"}, {name: "d", pods: "o"}},
			canary: 0, tweak: inPlace(1),
			want: []string{"return b"},
		},
		{
			name:   "abort with maxUnavailable 2: both at once",
			nodes:  []tn{{name: "a", pods: "u"}, {name: "b", pods: "u"}, {name: "c", pods: "o"}, {name: "d", pods: "o"}},
			canary: 0, tweak: inPlace(2),
			want: []string{"return a", "return b"},
		},
		{
			name:   "a smaller canary: the surplus goes back, the rest stays",
			nodes:  []tn{{name: "a", pods: "u"}, {name: "b", pods: "u"}, {name: "c", pods: "o"}, {name: "d", pods: "o"}},
			canary: 1, tweak: inPlace(3),
			want: []string{"return b"},
		},
		{
			name:   "a node already going back is no canary any more, and uses the budget",
			nodes:  []tn{{name: "a", pods: "ub"}, {name: "b", pods: "u"}, {name: "c", pods: "o"}},
			canary: 0, tweak: inPlace(1),
			want: nil,
		},
		{
			name:   "a node already going back is not taken again",
			nodes:  []tn{{name: "a", pods: "ub"}, {name: "b", pods: "u"}, {name: "c", pods: "o"}},
			canary: 0, tweak: inPlace(2),
			want: []string{"return b"},
		},
		{
			name:   "an unavailable canary pod goes back first, for free",
			nodes:  []tn{{name: "a", pods: "u"}, {name: "b", pods: "u-"}, {name: "c", pods: "o"}},
			canary: 1, tweak: inPlace(1),
			want: []string{"return b"},
		},
		{
			name:   "Standard: a canary pod goes back by the delete and recreate path",
			nodes:  []tn{{name: "a", pods: "u"}, {name: "b", pods: "o"}},
			canary: 0,
			want:   []string{"delete a new recreate-return"},
		},
		{
			name:   "a change that cannot go in place back is recreated",
			nodes:  []tn{{name: "a", pods: "u"}, {name: "b", pods: "o"}},
			canary: 0,
			tweak: func(in *planInput) {
				inPlace(1)(in)
				in.inPlaceReturn = func(string) bool { return false }
			},
			want: []string{"delete a new recreate-return"},
		},
		{
			name:   "a node emptied beyond the canary count gets a stable pod",
			nodes:  []tn{{name: "a"}, {name: "b", pods: "u"}, {name: "c", pods: "o"}},
			canary: 1,
			want:   []string{"create a old"},
		},
		{
			name:   "a node emptied within the canary count gets a canary pod",
			nodes:  []tn{{name: "a"}, {name: "b", pods: "o"}, {name: "c", pods: "o"}},
			canary: 1,
			want:   []string{"create a new"},
		},
		{
			name:   "a canary pod held in its preDelete hook on its way back is no canary",
			nodes:  []tn{{name: "a", pods: "ud"}, {name: "b", pods: "u"}, {name: "c", pods: "o"}},
			canary: 1, tweak: inPlace(3),
			want: []string{"delete a new held-by-hook"},
		},
		{
			name:   "a third revision off the canary goes back to stable",
			nodes:  []tn{{name: "a", pods: "u"}, {name: "b", pods: "s"}, {name: "c", pods: "o"}},
			canary: 1, tweak: inPlace(1),
			want: []string{"return b"},
		},
		{
			name:   "a new canary takes the third revision's nodes first",
			nodes:  []tn{{name: "a", pods: "o"}, {name: "b", pods: "o"}, {name: "c", pods: "s"}},
			canary: 1, tweak: inPlace(1),
			want: []string{"inplace c"},
		},
		{
			name:   "a third revision not needed by the canary goes back",
			nodes:  []tn{{name: "a", pods: "o"}, {name: "b", pods: "s"}, {name: "c", pods: "s"}},
			canary: 1, tweak: inPlace(2),
			want: []string{"inplace b", "return c"},
		},
		{
			name:   "a surge toward a canary no longer wanted loses its new pod",
			nodes:  []tn{{name: "a", pods: "o,u-"}, {name: "b", pods: "o"}},
			canary: 0,
			tweak:  func(in *planInput) { in.maxUnavailable, in.maxSurge = 0, 1 },
			want:   []string{"delete a new recreate-return"},
		},
		{
			name:   "no surge on the way back: maxUnavailable 0 holds available canary pods",
			nodes:  []tn{{name: "a", pods: "u"}, {name: "b", pods: "o"}},
			canary: 0,
			tweak:  func(in *planInput) { in.inPlaceType, in.maxUnavailable, in.maxSurge = true, 0, 1 },
			want:   nil,
		},
		{
			name:   "a pod moving forward in place finishes before it goes back",
			nodes:  []tn{{name: "a", pods: "oi"}, {name: "b", pods: "o"}},
			canary: 0, tweak: inPlace(2),
			want: nil,
		},
		{
			name:   "nodes outside rollingUpdate.selector stay",
			nodes:  []tn{{name: "a", pods: "u", outside: true}, {name: "b", pods: "u"}, {name: "c", pods: "s", outside: true}},
			canary: 0, tweak: inPlace(3),
			want: []string{"return b"},
		},
		{
			name:   "OnDelete: nothing moves, but a replaced pod beyond the canary is stable",
			nodes:  []tn{{name: "a", pods: "u"}, {name: "b"}, {name: "c", pods: "s"}},
			canary: 1,
			tweak:  func(in *planInput) { in.updating, in.onDelete = false, true },
			want:   []string{"create b old"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := controlled(ctlNodes(t, tc.nodes...), tc.canary)
			if tc.tweak != nil {
				tc.tweak(&in)
			}
			got := ctlDescribe(computePlan(in))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("plan:\n got  %q\n want %q", got, tc.want)
			}
		})
	}
}

// limits sets the DaemonSet's own maxUnavailable and maxSurge and the
// rollout control's ("" leaves one unset).
func limits(ownMaxUnavailable, ownMaxSurge int32, maxUnavailable, maxSurge string) func(*planInput) {
	return func(in *planInput) {
		in.maxUnavailable, in.maxSurge = ownMaxUnavailable, ownMaxSurge
		in.control = &appsv1alpha1.RolloutControl{StableRevision: revOld}
		if maxUnavailable != "" {
			in.control.MaxUnavailable = ptr.To(intstr.Parse(maxUnavailable))
		}
		if maxSurge != "" {
			in.control.MaxSurge = ptr.To(intstr.Parse(maxSurge))
		}
	}
}

// TestComputePlanRolloutControlLimits: the control's maxUnavailable and
// maxSurge replace the DaemonSet's own for the nodes a step moves.
func TestComputePlanRolloutControlLimits(t *testing.T) {
	inPlace := func(in *planInput) { in.inPlaceType = true }
	five := []tn{{name: "a", pods: "o"}, {name: "b", pods: "o"}, {name: "c", pods: "o"}, {name: "d", pods: "o"}, {name: "e", pods: "o"}}
	cases := []struct {
		name   string
		nodes  []tn
		canary int32
		tweaks []func(*planInput)
		want   []string
	}{
		{
			name:  "the DaemonSet's own maxUnavailable 1 moves one node of a step of 3",
			nodes: five, canary: 3, tweaks: []func(*planInput){inPlace, limits(1, 0, "", "")},
			want: []string{"inplace a"},
		},
		{
			name:  "control maxUnavailable 3 over the DaemonSet's 1: the step moves 3 nodes at once",
			nodes: five, canary: 3, tweaks: []func(*planInput){inPlace, limits(1, 0, "3", "")},
			want: []string{"inplace a", "inplace b", "inplace c"},
		},
		{
			name:  "control maxUnavailable 1 under the DaemonSet's 3: one at a time",
			nodes: five, canary: 3, tweaks: []func(*planInput){inPlace, limits(3, 0, "1", "")},
			want: []string{"inplace a"},
		},
		{
			name:  "control maxUnavailable as a percentage rounds up, as the DaemonSet's: 50% of 5 is 3",
			nodes: five, canary: 3, tweaks: []func(*planInput){inPlace, limits(1, 0, "50%", "")},
			want: []string{"inplace a", "inplace b", "inplace c"},
		},
		{
			name: "a percentage counts eligible nodes only: 50% of 4 is 2",
			nodes: []tn{{name: "a", pods: "o"}, {name: "b", pods: "o"}, {name: "c", pods: "o"}, {name: "d", pods: "o"},
				{name: "e", pods: "o", ineligible: true, kept: true}},
			canary: 3, tweaks: []func(*planInput){inPlace, limits(1, 0, "50%", "")},
			want: []string{"inplace a", "inplace b"},
		},
		{
			name:  "control maxSurge 2 with maxUnavailable 0: new pods beside the old ones",
			nodes: five, canary: 3, tweaks: []func(*planInput){limits(1, 0, "0", "2")},
			want: []string{"create a new surge", "create b new surge"},
		},
		{
			name:  "control maxSurge 0 stops the DaemonSet's own surge",
			nodes: five, canary: 3, tweaks: []func(*planInput){limits(1, 2, "", "0")},
			want: []string{"delete a old recreate-update"},
		},
		{
			name:  "control 0 and 0: one node may still be unavailable",
			nodes: five, canary: 3, tweaks: []func(*planInput){limits(3, 2, "0", "0")},
			want: []string{"delete a old recreate-update"},
		},
		{
			name:  "a control that sets neither keeps the DaemonSet's own",
			nodes: five, canary: 3, tweaks: []func(*planInput){inPlace, limits(2, 0, "", "")},
			want: []string{"inplace a", "inplace b"},
		},
		{
			name:   "control maxUnavailable 3 also bounds an abort's returns",
			nodes:  []tn{{name: "a", pods: "u"}, {name: "b", pods: "u"}, {name: "c", pods: "u"}, {name: "d", pods: "o"}, {name: "e", pods: "o"}},
			canary: 0, tweaks: []func(*planInput){inPlace, limits(1, 0, "3", "")},
			want: []string{"return a", "return b", "return c"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := controlled(ctlNodes(t, slices.Clone(tc.nodes)...), tc.canary) // ctlNodes rewrites its specs
			for _, f := range tc.tweaks {
				f(&in)
			}
			got := ctlDescribe(computePlan(in))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("plan:\n got  %q\n want %q", got, tc.want)
			}
		})
	}
}

func TestExpectedUpdatedRolloutControl(t *testing.T) {
	in := controlled(ctlNodes(t, tn{name: "a", pods: "u"}, tn{name: "b", pods: "o"}, tn{name: "c"}), 1)
	if got := expectedUpdated(in); got != 1 {
		t.Fatalf("canary 1: got %d", got)
	}
	in.onDelete = true
	if got := expectedUpdated(in); got != 1 {
		t.Fatalf("canary 1 with OnDelete: got %d, want the canary count", got)
	}
}

func TestStrays(t *testing.T) {
	nodes := ctlNodes(t, tn{name: "a", pods: "u"}, tn{name: "b", pods: "o"}, tn{name: "c", pods: "s"},
		tn{name: "d", pods: "ub"}, tn{name: "e", pods: "s", outside: true}, tn{name: "f", pods: "s", ineligible: true})
	if got := strays(nodes, revOld); got != 2 {
		t.Fatalf("strays: got %d, want 2 (c on a third revision, d on its way back)", got)
	}
}

func TestReadControl(t *testing.T) {
	history := []*appsv1.ControllerRevision{
		{ObjectMeta: metav1.ObjectMeta{Name: revOld}}, {ObjectMeta: metav1.ObjectMeta{Name: revNew}},
	}
	tpl := podcontrol.NewTemplates(history, history[1])
	ds := func(annotation string) *appsv1alpha1.DaemonSet {
		d := &appsv1alpha1.DaemonSet{Spec: appsv1alpha1.DaemonSetSpec{UpdateStrategy: appsv1alpha1.DaemonSetUpdateStrategy{
			RollingUpdate: &appsv1alpha1.RollingUpdateDaemonSet{Paused: true}}}}
		if annotation != "" {
			d.Annotations = map[string]string{appsv1alpha1.AnnotationRolloutControl: annotation}
		}
		return d
	}
	cases := []struct {
		name, annotation, want string
	}{
		{"none: the spec's pause", "", "ctl=false stable= paused=true err=false"},
		{"canary", `{"stableRevision":"rev-old","canaryRevision":"rev-new","canaryReplicas":1}`, "ctl=true stable=rev-old paused=false err=false"},
		{"promoted", `{"stableRevision":"rev-new","canaryReplicas":0}`, "ctl=true stable= paused=false err=false"},
		{"unknown stable revision", `{"stableRevision":"gone","canaryReplicas":0}`, "ctl=false stable= paused=true err=true"},
		{"unreadable", `{`, "ctl=false stable= paused=true err=true"},
	}
	for _, tc := range cases {
		d := ds(tc.annotation)
		rc := podcontrol.ReadControl(d, Kind, tpl)
		got := fmt.Sprintf("ctl=%v stable=%s paused=%v err=%v", rc.Ctl != nil, rc.Stable, paused(rc, d), rc.Err != nil)
		if got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestRolloutControlLimitsReachThePlan: the control annotation's
// maxUnavailable goes from podcontrol.ReadControl through planInput to the plan.
func TestRolloutControlLimitsReachThePlan(t *testing.T) {
	history := []*appsv1.ControllerRevision{
		{ObjectMeta: metav1.ObjectMeta{Name: revOld}}, {ObjectMeta: metav1.ObjectMeta{Name: revNew}},
	}
	tpl := podcontrol.NewTemplates(history, history[1])
	const ctl = `{"stableRevision":"rev-old","canaryRevision":"rev-new","canaryReplicas":3`
	for _, c := range []struct {
		name, annotation string
		deletes          int
	}{
		{"the DaemonSet's own maxUnavailable 1", ctl + `}`, 1},
		{"control maxUnavailable 3", ctl + `,"maxUnavailable":3}`, 3},
		{"control maxUnavailable 50% of 5 rounds up to 3", ctl + `,"maxUnavailable":"50%"}`, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			ds := &appsv1alpha1.DaemonSet{
				ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{appsv1alpha1.AnnotationRolloutControl: c.annotation}},
				Spec: appsv1alpha1.DaemonSetSpec{UpdateStrategy: appsv1alpha1.DaemonSetUpdateStrategy{
					Type: appsv1alpha1.RollingUpdateDaemonSetStrategyType, RollingUpdate: &appsv1alpha1.RollingUpdateDaemonSet{}}},
			}
			rc := podcontrol.ReadControl(ds, Kind, tpl)
			if rc.Err != nil {
				t.Fatal(rc.Err)
			}
			nodes := ctlNodes(t, tn{name: "a", pods: "o"}, tn{name: "b", pods: "o"}, tn{name: "c", pods: "o"}, tn{name: "d", pods: "o"}, tn{name: "e", pods: "o"})
			in := (&Reconciler{}).planInput(ds, nodes, tpl, history[0], rc)
			if got := ctlDescribe(computePlan(in)); len(got) != c.deletes {
				t.Errorf("plan %q, want %d recreates", got, c.deletes)
			}
		})
	}
}
