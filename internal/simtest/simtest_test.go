package simtest

import "testing"

func TestTraceKeepsTheLastSteps(t *testing.T) {
	tr := NewTrace(true, 2)
	for _, s := range []string{"a", "b", "c"} {
		tr.Logf("step %s", s)
	}
	if got, want := tr.String(), "  step b\n  step c"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	off := NewTrace(false, 2)
	off.Logf("x")
	if off.On() || off.String() != "  (none)" {
		t.Fatalf("an off trace kept %q", off.String())
	}
}

func TestPodMark(t *testing.T) {
	for _, tc := range []struct {
		terminating, draining, updating, ready bool
		want                                   string
	}{
		{terminating: true, draining: true, want: "/term"},
		{draining: true, updating: true, want: "/drain"},
		{updating: true, want: "/upd"},
		{want: "/notready"},
		{ready: true, want: ""},
	} {
		if got := PodMark(tc.terminating, tc.draining, tc.updating, tc.ready); got != tc.want {
			t.Errorf("PodMark(%v, %v, %v, %v) = %q, want %q", tc.terminating, tc.draining, tc.updating, tc.ready, got, tc.want)
		}
	}
}
