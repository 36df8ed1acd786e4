package statefulset

import (
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/podcontrol"
)

// Under a rollout control the rollout's stable revision is "old" (in place
// both ways with "new"), "stray" is a third revision that also goes in
// place, and "old-noip" one that must be recreated.

func stray(v *podView)     { v.revision, v.updated = "stray", false }
func returning(v *podView) { v.inFlight, v.returning, v.available = true, true, false }

// controlled is planInput as sync.go builds it under a rollout control:
// canary pods wanted at "new" at the highest positions, stable ones at
// "old" below; ordered, maxUnavailable 1, InPlaceIfPossible.
func controlled(canary, stable int32, pods ...*podView) planInput {
	in := baseInput(seq(0, canary+stable-1), pods...)
	in.partition, in.stable = stable, "old"
	in.policy = appsv1alpha1.InPlaceIfPossibleStatefulSetPodUpdatePolicy
	in.inPlace = func(rev string) bool { return rev != "old-noip" }
	in.inPlaceReturn = func(rev string) bool { return rev != "old-noip" }
	return in
}

// ctlSummary is summary with the returns: "<3" moves ordinal 3 back in place.
func ctlSummary(p plan) string {
	parts := []string{summary(p)}
	for _, v := range p.returns {
		parts = append(parts, fmt.Sprintf("<%d", v.ordinal))
	}
	return strings.TrimSpace(strings.Join(parts, " "))
}

func TestComputePlanRolloutControl(t *testing.T) {
	parallel := func(in *planInput) { in.ordered = false }
	maxU := func(n int32) func(*planInput) { return func(in *planInput) { in.maxUnavailable = n } }
	policy := func(p appsv1alpha1.StatefulSetPodUpdatePolicy) func(*planInput) {
		return func(in *planInput) { in.policy = p }
	}
	onDelete := func(in *planInput) { in.onDelete = true }
	cases := []struct {
		name string
		in   planInput
		mods []func(*planInput)
		want string
	}{
		{"canary of 2 out of 5, ordered: the highest position first",
			controlled(2, 3, view(0, old), view(1, old), view(2, old), view(3, old), view(4, old)), nil, "~4"},
		{"canary of 2 out of 5, ordered: then the next one down",
			controlled(2, 3, view(0, old), view(1, old), view(2, old), view(3, old), view(4)), nil, "~3"},
		{"canary of 2 out of 5, parallel maxUnavailable 2: both at once",
			controlled(2, 3, view(0, old), view(1, old), view(2, old), view(3, old), view(4, old)), []func(*planInput){parallel, maxU(2)}, "~4 ~3"},
		{"abort, ordered: the canary goes back from the top, one at a time",
			controlled(0, 5, view(0, old), view(1, old), view(2, old), view(3), view(4)), nil, "<4"},
		{"abort, parallel maxUnavailable 5: every canary pod at once",
			controlled(0, 5, view(0, old), view(1, old), view(2, old), view(3), view(4)), []func(*planInput){parallel, maxU(5)}, "<4 <3"},
		{"smaller canary: the lowest canary position goes back",
			controlled(1, 4, view(0, old), view(1, old), view(2, old), view(3), view(4)), []func(*planInput){parallel, maxU(5)}, "<3"},
		{"a pod already going back uses the budget",
			controlled(0, 5, view(0, old), view(1, old), view(2, old), view(3, returning), view(4)), []func(*planInput){parallel}, ""},
		{"a pod already going back is not taken again",
			controlled(0, 5, view(0, old), view(1, old), view(2, old), view(3, returning), view(4)), []func(*planInput){parallel, maxU(2)}, "<4"},
		{"an unavailable canary pod goes back for free",
			controlled(0, 5, view(0, old), view(1, old), view(2, old), view(3), view(4, notReady)), []func(*planInput){parallel}, "<4"},
		{"a third revision below the partition goes back to stable",
			controlled(1, 2, view(0, stray), view(1, old), view(2)), nil, "<0"},
		{"a third revision at a canary position moves forward",
			controlled(2, 1, view(0, old), view(1, stray), view(2)), nil, "~1"},
		{"ordered: a move back waits for the canary above it",
			controlled(1, 2, view(0), view(1, old), view(2, old)), nil, "~2"},
		{"ordered: then the surplus below goes back",
			controlled(1, 2, view(0), view(1, old), view(2)), nil, "<0"},
		{"a return that cannot be made in place recreates the pod",
			controlled(0, 2, view(0, old), view(1, oldNoIP)), nil, "-1(recreate-return)"},
		{"InPlaceOnly blocks a return that cannot be made in place, touching nothing",
			controlled(1, 2, view(0, old), view(1, oldNoIP), view(2, old)), []func(*planInput){parallel, maxU(3), policy(appsv1alpha1.InPlaceOnlyStatefulSetPodUpdatePolicy)}, "blocked"},
		{"ReCreate returns by recreating",
			controlled(0, 2, view(0, old), view(1)), []func(*planInput){policy(appsv1alpha1.ReCreateStatefulSetPodUpdatePolicy)}, "-1(recreate-return)"},
		{"pods created below the partition get the stable revision",
			controlled(1, 2), []func(*planInput){parallel}, "+0(cur) +1(cur) +2"},
		{"OnDelete: a lost pod below the partition comes back stable",
			controlled(1, 2, view(0, old), view(2)), []func(*planInput){parallel, onDelete}, "+1(cur)"},
		{"OnDelete: nothing moves",
			controlled(0, 3, view(0, old), view(1, stray), view(2)), []func(*planInput){parallel, onDelete}, ""},
		{"blue-green: the canary is added on top of a full stable side",
			controlled(2, 2, view(0, old), view(1, old)), []func(*planInput){parallel}, "+2 +3"},
		{"a pod held in PreparingUpdate for a return goes on",
			controlled(0, 2, view(0, old), view(1, preparing, notReady)), nil, "wait <1"},
		{"a pod held in PreparingUpdate whose move is no longer needed stays (repaired)",
			controlled(0, 2, view(0, old), view(1, old, preparing)), nil, ""},
		{"a pod going back finishes before it moves forward again",
			controlled(1, 1, view(0, old), view(1, old, returning)), []func(*planInput){parallel, maxU(2)}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			for _, m := range tc.mods {
				m(&in)
			}
			if got := ctlSummary(computePlan(in)); got != tc.want {
				t.Errorf("plan %q, want %q", got, tc.want)
			}
		})
	}
}

// limits sets the set's own maxUnavailable and the rollout control's
// maxUnavailable and maxSurge ("" leaves one unset).
func limits(own int32, maxUnavailable, maxSurge string) func(*planInput) {
	return func(in *planInput) {
		in.maxUnavailable = own
		in.control = &appsv1alpha1.RolloutControl{StableRevision: "old"}
		if maxUnavailable != "" {
			in.control.MaxUnavailable = ptr.To(intstr.Parse(maxUnavailable))
		}
		if maxSurge != "" {
			in.control.MaxSurge = ptr.To(intstr.Parse(maxSurge))
		}
	}
}

// TestComputePlanRolloutControlLimits: the control's maxUnavailable
// replaces the set's own for the pods a step moves; a StatefulSet does not
// surge, whatever the control's maxSurge.
func TestComputePlanRolloutControlLimits(t *testing.T) {
	parallel := func(in *planInput) { in.ordered = false }
	five := func() planInput {
		return controlled(3, 2, view(0, old), view(1, old), view(2, old), view(3, old), view(4, old))
	}
	cases := []struct {
		name string
		in   planInput
		mods []func(*planInput)
		want string
	}{
		{"the set's own maxUnavailable 1 moves one pod of a step of 3",
			five(), []func(*planInput){parallel, limits(1, "", "")}, "~4"},
		{"control maxUnavailable 3 over the set's 1: the step moves 3 at once",
			five(), []func(*planInput){parallel, limits(1, "3", "")}, "~4 ~3 ~2"},
		{"control maxUnavailable 1 under the set's 3: one at a time",
			five(), []func(*planInput){parallel, limits(3, "1", "")}, "~4"},
		{"control maxUnavailable 60% of 5 replicas is 3",
			five(), []func(*planInput){parallel, limits(1, "60%", "")}, "~4 ~3 ~2"},
		{"control maxUnavailable as a percentage rounds down: 50% of 5 is 2",
			five(), []func(*planInput){parallel, limits(1, "50%", "")}, "~4 ~3"},
		{"control maxUnavailable 0 is at least 1",
			five(), []func(*planInput){parallel, limits(3, "0", "")}, "~4"},
		{"a control that sets no maxUnavailable keeps the set's own",
			five(), []func(*planInput){parallel, limits(2, "", "")}, "~4 ~3"},
		{"control maxSurge is ignored: nothing is created above the replicas",
			five(), []func(*planInput){parallel, limits(1, "", "3")}, "~4"},
		{"control maxUnavailable 3 also bounds an abort's returns",
			controlled(0, 5, view(0, old), view(1, old), view(2), view(3), view(4)),
			[]func(*planInput){parallel, limits(1, "3", "")}, "<4 <3 <2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			for _, m := range tc.mods {
				m(&in)
			}
			if got := ctlSummary(computePlan(in)); got != tc.want {
				t.Errorf("plan %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSettledUnderRolloutControl(t *testing.T) {
	in := controlled(1, 2)
	settled := in.settled()
	cases := []struct {
		v    *podView
		want bool
	}{
		{view(0, old), true},
		{view(0), false},            // surplus canary below the partition
		{view(1, stray), false},     // a third revision
		{view(2), true},             // the canary
		{view(2, old), false},       // not yet moved forward
		{view(7), true},             // condemned: updated is what counts
		{view(7, old), false},       // condemned
		{view(0, preparing), false}, // held for a return
	}
	for _, tc := range cases {
		if got := settled(tc.v); got != tc.want {
			t.Errorf("ordinal %d rev %s: settled %v, want %v", tc.v.ordinal, tc.v.revision, got, tc.want)
		}
	}
	plain := baseInput(seq(0, 2))
	plain.partition = 2
	if plain.settled()(view(0, old)) || !plain.settled()(view(0)) {
		t.Error("without a rollout, settled is whether the pod runs the update revision")
	}
}

func TestDesiredShape(t *testing.T) {
	history := []*appsv1.ControllerRevision{
		{ObjectMeta: metav1.ObjectMeta{Name: "old"}}, {ObjectMeta: metav1.ObjectMeta{Name: "new"}},
	}
	tpl := podcontrol.NewTemplates(history, history[1])
	set := func(annotation string) *appsv1alpha1.StatefulSet {
		s := &appsv1alpha1.StatefulSet{Spec: appsv1alpha1.StatefulSetSpec{Replicas: ptr.To[int32](5)}}
		if annotation != "" {
			s.Annotations = map[string]string{appsv1alpha1.AnnotationRolloutControl: annotation}
		}
		return s
	}
	spec := resolved{partition: 2, paused: true}
	cases := []struct {
		name, annotation string
		want             string
	}{
		{"no control: the spec", "", "replicas=5 partition=2 paused=true stable= err=false"},
		{"canary 2 of 5", `{"stableRevision":"old","canaryRevision":"new","canaryReplicas":2}`, "replicas=5 partition=3 paused=false stable=old err=false"},
		{"canary on top of the stable side", `{"stableRevision":"old","canaryRevision":"new","canaryReplicas":2,"stableReplicas":5}`, "replicas=7 partition=5 paused=false stable=old err=false"},
		{"an update revision not yet released gets no pod", `{"stableRevision":"old","canaryReplicas":0}`, "replicas=5 partition=5 paused=false stable=old err=false"},
		{"a revision changed mid-release takes the previous canary's pods", `{"stableRevision":"old","canaryRevision":"older","canaryReplicas":2}`, "replicas=5 partition=3 paused=false stable=old err=false"},
		{"promoted: stable is the update revision", `{"stableRevision":"new","canaryReplicas":0}`, "replicas=5 partition=0 paused=false stable= err=false"},
		{"unknown stable revision: the spec, paused", `{"stableRevision":"gone","canaryRevision":"new","canaryReplicas":2}`, "replicas=5 partition=2 paused=true stable= err=true"},
		{"unreadable: the spec, paused", `{"stableRevision":`, "replicas=5 partition=2 paused=true stable= err=true"},
	}
	for _, tc := range cases {
		sh := desiredShape(set(tc.annotation), spec, tpl)
		got := fmt.Sprintf("replicas=%d partition=%d paused=%v stable=%s err=%v", sh.replicas, sh.partition, sh.paused, sh.stable, sh.controlErr != nil)
		if got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestDesiredShapeCarriesControlLimits: the control reaches the planner
// (planInput.control) through the shape, and an unusable one does not.
func TestDesiredShapeCarriesControlLimits(t *testing.T) {
	history := []*appsv1.ControllerRevision{
		{ObjectMeta: metav1.ObjectMeta{Name: "old"}}, {ObjectMeta: metav1.ObjectMeta{Name: "new"}},
	}
	tpl := podcontrol.NewTemplates(history, history[1])
	set := func(annotation string) *appsv1alpha1.StatefulSet {
		return &appsv1alpha1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{appsv1alpha1.AnnotationRolloutControl: annotation}},
			Spec:       appsv1alpha1.StatefulSetSpec{Replicas: ptr.To[int32](5)},
		}
	}
	sh := desiredShape(set(`{"stableRevision":"old","canaryRevision":"new","canaryReplicas":3,"maxUnavailable":"60%"}`), resolved{maxUnavailable: 1}, tpl)
	if sh.control == nil || sh.control.MaxUnavailable == nil || sh.control.MaxUnavailable.String() != "60%" {
		t.Fatalf("shape control %+v, want maxUnavailable 60%%", sh.control)
	}
	in := controlled(3, 2, view(0, old), view(1, old), view(2, old), view(3, old), view(4, old))
	in.ordered, in.control = false, sh.control
	if got := ctlSummary(computePlan(in)); got != "~4 ~3 ~2" {
		t.Errorf("plan %q, want 60%% of 5 = 3 moves", got)
	}
	if sh := desiredShape(set(`{"stableRevision":"gone","canaryReplicas":3,"maxUnavailable":3}`), resolved{maxUnavailable: 1}, tpl); sh.control != nil {
		t.Errorf("an unusable control reached the shape: %+v", sh.control)
	}
}
