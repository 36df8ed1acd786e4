package sidecarset

import (
	"fmt"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// p builds a view from a compact spec: r ready, u updated, f in flight,
// b blocked, x not upgradable, o out of scope; c:<name> the sidecar the
// pod's next run (or run under way) changes.
func p(name string, flags ...string) *podView {
	v := &podView{pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}}, upgradable: true, inScope: true,
		next: step{kind: stepUpgrade, containers: []string{"s"}}}
	for _, f := range flags {
		switch {
		case f == "r":
			v.ready = true
		case f == "u":
			v.updated, v.next = true, step{}
		case f == "f":
			v.inFlight, v.changing = true, []string{"s"}
		case f == "b":
			v.blocked = true
		case f == "x":
			v.upgradable, v.next = false, step{}
		case f == "o":
			v.inScope = false
		case len(f) > 2 && f[:2] == "c:":
			v.next.containers, v.changing = []string{f[2:]}, []string{f[2:]}
		default:
			panic(f)
		}
	}
	return v
}

func inOrder(v []*podView) []*podView { return v }

func names(vs []*podView) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, v.pod.Name)
	}
	return out
}

func TestPlan(t *testing.T) {
	cases := []struct {
		name           string
		pods           []*podView
		partition, max int
		caps           map[string]int
		stopped        bool
		want           []string
	}{
		{"maxUnavailable 1", []*podView{p("a", "r"), p("b", "r"), p("c", "r")}, 0, 1, nil, false, []string{"a"}},
		{"in flight uses the budget", []*podView{p("a", "r", "f"), p("b", "r"), p("c", "r")}, 0, 1, nil, false, []string{}},
		{"unready pods cost nothing", []*podView{p("a"), p("b"), p("c", "r")}, 0, 1, nil, false, []string{"a", "b"}},
		{"an unready pod uses the budget of others", []*podView{p("a", "r"), p("b", "r"), p("c", "u")}, 0, 1, nil, false, []string{}},
		{"partition keeps the last", []*podView{p("a", "r"), p("b", "r"), p("c", "r"), p("d", "r")}, 2, 4, nil, false, []string{"a", "b"}},
		{"partition counts updated and in flight", []*podView{p("a", "r", "u"), p("b", "r", "f"), p("c", "r"), p("d", "r")}, 2, 4, nil, false, []string{}},
		{"blocked, out of scope, not upgradable are skipped", []*podView{p("a", "r", "b"), p("b", "r", "o"), p("c", "r", "x"), p("d", "r")}, 0, 4, nil, false, []string{"d"}},
		{"stopped (paused or NotUpdate)", []*podView{p("a", "r")}, 0, 1, nil, true, nil},
		{"container cap", []*podView{p("a", "r"), p("b", "r"), p("c", "r")}, 0, 3, map[string]int{"s": 1}, false, []string{"a"}},
		{"container cap counts in flight", []*podView{p("a", "r", "f"), p("b", "r"), p("c", "r")}, 0, 3, map[string]int{"s": 1}, false, []string{}},
		{"caps are per container", []*podView{p("a", "r", "f"), p("b", "r"), p("c", "r", "c:t")}, 0, 3, map[string]int{"s": 1, "t": 1}, false, []string{"c"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := plan(planInput{pods: tc.pods, partition: tc.partition, maxUnavailable: tc.max, caps: tc.caps,
				stopped: tc.stopped, sortForUpdate: inOrder})
			if tc.want == nil && got == nil {
				return
			}
			if g := names(got); !reflect.DeepEqual(g, tc.want) {
				t.Errorf("got %v want %v", g, tc.want)
			}
		})
	}
}

// Randomized: driving many pods through upgrades (starts, then each
// in-flight pod finishing at a random moment), the plan never has more
// than maxUnavailable pods unavailable nor more than the cap in flight,
// and always finishes.
func TestPlanSimulation(t *testing.T) {
	for seed := int64(1); seed <= 50; seed++ {
		rng := newRand(seed)
		n := 1 + rng.Intn(30)
		maxU := 1 + rng.Intn(5)
		capS := 1 + rng.Intn(5)
		pods := make([]*podView, n)
		for i := range pods {
			pods[i] = p(fmt.Sprint(i), "r")
		}
		for round := 0; ; round++ {
			if round > 10*n+10 {
				t.Fatalf("seed %d: no convergence", seed)
			}
			for _, v := range plan(planInput{pods: pods, maxUnavailable: maxU, caps: map[string]int{"s": capS}, sortForUpdate: inOrder}) {
				v.inFlight, v.changing = true, []string{"s"}
			}
			unavailable, flying, done := 0, 0, 0
			for _, v := range pods {
				if v.inFlight {
					flying++
					unavailable++
				}
				if v.updated {
					done++
				}
			}
			if unavailable > maxU || flying > capS {
				t.Fatalf("seed %d: %d unavailable (max %d), %d in flight (cap %d)", seed, unavailable, maxU, flying, capS)
			}
			if done == n {
				break
			}
			for _, v := range pods {
				if v.inFlight && rng.Intn(2) == 0 {
					v.inFlight, v.changing, v.updated, v.next = false, nil, true, step{}
				}
			}
		}
	}
}
