package daemonset

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Test builders: nodes are written as "name:pods", pods as revision letters
// with flags, e.g. "n1:o" (an available old pod), "n2:u-" (a not available
// updated pod), "n3:" (no pod), "n4:o,u-" (surging).

const (
	revOld = "rev-old"
	revNew = "rev-new"
)

type tn struct {
	name                      string
	gone, ineligible, outside bool
	kept                      bool // ineligible through a NoSchedule taint only
	pods                      string
}

var testEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func buildNodes(t *testing.T, specs ...tn) []*nodeView {
	t.Helper()
	var out []*nodeView
	seq := 0
	for _, s := range specs {
		n := &nodeView{name: s.name, exists: !s.gone, eligible: !s.ineligible, keep: !s.ineligible || s.kept, inScope: !s.outside}
		for _, p := range strings.Split(s.pods, ",") {
			if p == "" {
				continue
			}
			seq++
			v := &podView{node: s.name, pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("%s-p%d", s.name, seq), CreationTimestamp: metav1.NewTime(testEpoch.Add(time.Duration(seq) * time.Second)),
			}}}
			switch p[0] {
			case 'o':
				v.revision = revOld
			case 'u':
				v.revision, v.updated = revNew, true
			default:
				t.Fatalf("bad pod %q", p)
			}
			v.ready, v.available = true, true
			finished := false
			for _, f := range p[1:] {
				switch f {
				case '-': // not available, not ready
					v.ready, v.available = false, false
				case 'r': // ready, not yet available
					v.available = false
				case 'd': // waiting in its preDelete hook
					v.deleting, v.available = true, false
				case 'i': // in-place update to the update revision in flight
					v.updating, v.inFlight, v.updated, v.available = true, true, true, false
				case 'f':
					finished = true
				default:
					t.Fatalf("bad flag %q", f)
				}
			}
			if v.ready {
				v.pod.Status.Phase = corev1.PodRunning
				v.pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
			}
			if finished {
				n.finished = append(n.finished, v)
			} else {
				n.active = append(n.active, v)
			}
		}
		out = append(out, n)
	}
	return out
}

func baseInput(nodes []*nodeView) planInput {
	return planInput{
		nodes:          nodes,
		updating:       true,
		maxUnavailable: 1,
		inPlace:        func(string) bool { return true },
		haveCurrent:    true,
		sortForUpdate: func(v []*podView) []*podView {
			// Not ready first, then by name: enough for the tables.
			out := slices.Clone(v)
			sort.SliceStable(out, func(i, j int) bool {
				if out[i].ready != out[j].ready {
					return !out[i].ready
				}
				return out[i].pod.Name < out[j].pod.Name
			})
			return out
		},
	}
}

// describe renders a plan as sorted strings: "create n1 new", "create n2
// new surge", "delete n3 old recreate-update", "inplace n4".
func describe(p plan) []string {
	var out []string
	for _, c := range p.creates {
		s := "create " + c.node
		if c.updated {
			s += " new"
		} else {
			s += " old"
		}
		if c.surge {
			s += " surge"
		}
		out = append(out, s)
	}
	for _, d := range p.deletes {
		rev := "old"
		if d.view.updated {
			rev = "new"
		}
		s := fmt.Sprintf("delete %s %s %s", d.view.node, rev, d.reason)
		if d.force {
			s += " force"
		}
		out = append(out, s)
	}
	for _, v := range p.inPlace {
		out = append(out, "inplace "+v.node)
	}
	sort.Strings(out)
	return out
}

func TestComputePlan(t *testing.T) {
	cases := []struct {
		name  string
		nodes []tn
		tweak func(*planInput)
		want  []string
	}{
		{
			name:  "every eligible node without a pod gets one",
			nodes: []tn{{name: "a", pods: ""}, {name: "b", pods: "u"}, {name: "c", pods: ""}},
			tweak: func(in *planInput) { in.haveCurrent = false },
			want:  []string{"create a new", "create c new"},
		},
		{
			name:  "ineligible node loses its pod, gone node loses it at once",
			nodes: []tn{{name: "a", ineligible: true, pods: "u"}, {name: "b", gone: true, pods: "u,o-"}, {name: "c", ineligible: true}},
			want:  []string{"delete a new misscheduled", "delete b new node-gone force", "delete b old node-gone force"},
		},
		{
			name:  "a node refusing new pods (NoSchedule taint, NotReady) keeps its pod, untouched by the update",
			nodes: []tn{{name: "a", ineligible: true, kept: true, pods: "o"}, {name: "b", ineligible: true, kept: true}, {name: "c", pods: "o"}},
			tweak: func(in *planInput) { in.maxUnavailable = 3 },
			want:  []string{"delete c old recreate-update"},
		},
		{
			name:  "a node refusing new pods in the middle of a surge keeps one pod",
			nodes: []tn{{name: "a", ineligible: true, kept: true, pods: "o,u-"}},
			want:  []string{"delete a new duplicate"},
		},
		{
			name:  "finished pods are deleted and replaced",
			nodes: []tn{{name: "a", pods: "uf"}},
			tweak: func(in *planInput) { in.haveCurrent = false },
			want:  []string{"create a new", "delete a new finished"},
		},
		{
			name:  "a node whose pod failed recently waits for its backoff",
			nodes: []tn{{name: "a", pods: "uf"}, {name: "b", pods: "uf"}},
			tweak: func(in *planInput) { in.haveCurrent, in.backoff = false, map[string]bool{"a": true} },
			want:  []string{"create b new", "delete a new finished", "delete b new finished"},
		},
		{
			name:  "duplicates: the best pod of a revision stays",
			nodes: []tn{{name: "a", pods: "u-,u,u-"}},
			want:  []string{"delete a new duplicate", "delete a new duplicate"},
		},
		{
			name:  "recreate within maxUnavailable, old unavailable pods first and free",
			nodes: []tn{{name: "a", pods: "o"}, {name: "b", pods: "o-"}, {name: "c", pods: "o"}, {name: "d", pods: "o"}},
			tweak: func(in *planInput) { in.maxUnavailable = 2 },
			// b is unavailable: counted, so one more node may go.
			want: []string{"delete a old recreate-update", "delete b old recreate-update"},
		},
		{
			name:  "no budget while an updated pod is not yet available",
			nodes: []tn{{name: "a", pods: "ur"}, {name: "b", pods: "o"}},
			want:  nil,
		},
		{
			name:  "in place within maxUnavailable",
			nodes: []tn{{name: "a", pods: "o"}, {name: "b", pods: "o"}, {name: "c", pods: "o"}},
			tweak: func(in *planInput) { in.inPlaceType, in.maxUnavailable = true, 2 },
			want:  []string{"inplace a", "inplace b"},
		},
		{
			name:  "in place falls back to recreate for a change that cannot go in place",
			nodes: []tn{{name: "a", pods: "o"}, {name: "b", pods: "o"}},
			tweak: func(in *planInput) {
				in.inPlaceType = true
				in.inPlace = func(string) bool { return false }
			},
			want: []string{"delete a old recreate-update"},
		},
		{
			name:  "an in-place update in flight holds the budget",
			nodes: []tn{{name: "a", pods: "oi"}, {name: "b", pods: "o"}},
			tweak: func(in *planInput) { in.inPlaceType = true },
			want:  nil,
		},
		{
			name:  "surge: new pod beside the old one, at most maxSurge nodes",
			nodes: []tn{{name: "a", pods: "o"}, {name: "b", pods: "o"}, {name: "c", pods: "o"}},
			tweak: func(in *planInput) { in.maxUnavailable, in.maxSurge = 0, 2 },
			want:  []string{"create a new surge", "create b new surge"},
		},
		{
			name:  "surge: old pod goes once the new one is available",
			nodes: []tn{{name: "a", pods: "o,u"}, {name: "b", pods: "o,u-"}, {name: "c", pods: "o"}},
			tweak: func(in *planInput) { in.maxUnavailable, in.maxSurge = 0, 2 },
			// a's surge ends, but its slot is free only once the old pod
			// is gone; b still surges.
			want: []string{"delete a old replaced-by-surge"},
		},
		{
			name:  "surge with in place: maxUnavailable 0 surges instead",
			nodes: []tn{{name: "a", pods: "o"}, {name: "b", pods: "o"}},
			tweak: func(in *planInput) { in.inPlaceType, in.maxUnavailable, in.maxSurge = true, 0, 1 },
			want:  []string{"create a new surge"},
		},
		{
			name:  "surge and maxUnavailable together",
			nodes: []tn{{name: "a", pods: "o"}, {name: "b", pods: "o"}, {name: "c", pods: "o"}},
			tweak: func(in *planInput) { in.maxUnavailable, in.maxSurge = 1, 1 },
			want:  []string{"create a new surge", "delete b old recreate-update"},
		},
		{
			name:  "unavailable old pod is recreated without using the surge",
			nodes: []tn{{name: "a", pods: "o-"}, {name: "b", pods: "o"}},
			tweak: func(in *planInput) { in.maxUnavailable, in.maxSurge = 0, 1 },
			want:  []string{"create b new surge", "delete a old recreate-update"},
		},
		{
			name:  "partition keeps nodes on the old revision",
			nodes: []tn{{name: "a", pods: "u"}, {name: "b", pods: "o"}, {name: "c", pods: "o"}, {name: "d", pods: "o"}},
			tweak: func(in *planInput) { in.partition, in.maxUnavailable = 2, 3 },
			want:  []string{"delete b old recreate-update"},
		},
		{
			name:  "partition: a node that lost its pod gets the current revision",
			nodes: []tn{{name: "a", pods: "u"}, {name: "b", pods: "u"}, {name: "c", pods: ""}, {name: "d", pods: "o"}},
			tweak: func(in *planInput) { in.partition = 2 },
			want:  []string{"create c old"},
		},
		{
			name:  "partition: a new node gets the update revision",
			nodes: []tn{{name: "a", pods: "u"}, {name: "b", pods: "o"}, {name: "c", pods: "o"}, {name: "new", pods: ""}},
			tweak: func(in *planInput) { in.partition = 2 },
			want:  []string{"create new new"},
		},
		{
			name:  "selector: only nodes in scope are updated",
			nodes: []tn{{name: "a", pods: "o", outside: true}, {name: "b", pods: "o"}, {name: "c", pods: "o", outside: true}},
			tweak: func(in *planInput) { in.maxUnavailable = 3 },
			want:  []string{"delete b old recreate-update"},
		},
		{
			name:  "selector: an empty node outside the scope gets the current revision",
			nodes: []tn{{name: "a", outside: true}, {name: "b", pods: "u"}},
			want:  []string{"create a old"},
		},
		{
			name:  "paused: nothing moves, an empty node gets the update revision",
			nodes: []tn{{name: "a", pods: "o"}, {name: "b"}},
			tweak: func(in *planInput) { in.updating = false },
			want:  []string{"create b new"},
		},
		{
			name:  "paused with a partition: an empty node below it gets the current revision",
			nodes: []tn{{name: "a", pods: "u"}, {name: "b"}},
			tweak: func(in *planInput) { in.updating, in.partition = false, 1 },
			want:  []string{"create b old"},
		},
		{
			name:  "OnDelete: nothing moves, a replaced pod gets the update revision",
			nodes: []tn{{name: "a", pods: "o"}, {name: "b"}},
			tweak: func(in *planInput) { in.updating, in.onDelete = false, true },
			want:  []string{"create b new"},
		},
		{
			name:  "a pod held by its preDelete hook is deleted again and holds its node",
			nodes: []tn{{name: "a", pods: "od"}, {name: "b", pods: "o"}},
			want:  []string{"delete a old held-by-hook"},
		},
		{
			name:  "a misscheduled pod on a node with no pod for us is not replaced",
			nodes: []tn{{name: "a", ineligible: true, pods: "o"}},
			want:  []string{"delete a old misscheduled"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(buildNodes(t, tc.nodes...))
			if tc.tweak != nil {
				tc.tweak(&in)
			}
			got := describe(computePlan(in))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("plan:\n got  %q\n want %q", got, tc.want)
			}
		})
	}
}

func TestExpectedUpdated(t *testing.T) {
	nodes := buildNodes(t, tn{name: "a", pods: "u", outside: true}, tn{name: "b", pods: "o", outside: true},
		tn{name: "c", pods: "o"}, tn{name: "d"}, tn{name: "e", ineligible: true, pods: "o"})
	in := baseInput(nodes)
	if got := expectedUpdated(in); got != 3 {
		t.Fatalf("expected updated: got %d, want 3 (a already updated, c and d in scope)", got)
	}
	in.partition = 3
	if got := expectedUpdated(in); got != 1 {
		t.Fatalf("with partition 3 of 4: got %d, want 1", got)
	}
	in.onDelete = true
	if got := expectedUpdated(in); got != 4 {
		t.Fatalf("OnDelete: got %d, want every eligible node", got)
	}
}
