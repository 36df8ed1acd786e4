package analysis

import (
	"math"
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

func TestJudge(t *testing.T) {
	ev, err := NewEvaluator()
	if err != nil {
		t.Fatal(err)
	}
	const (
		ok   = rolloutsv1alpha1.AnalysisPhaseSuccessful
		bad  = rolloutsv1alpha1.AnalysisPhaseFailed
		inc  = rolloutsv1alpha1.AnalysisPhaseInconclusive
		none = rolloutsv1alpha1.AnalysisPhase("")
	)
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name    string
		c       Conditions
		value   any
		want    rolloutsv1alpha1.AnalysisPhase
		reason  string
		wantErr string
	}{
		{name: "success holds", c: Conditions{Success: "result >= 0.99"}, value: 0.995, want: ok, reason: "result >= 0.99"},
		{name: "success only, not met: failed", c: Conditions{Success: "result >= 0.99"}, value: 0.62, want: bad, reason: "result >= 0.99"},
		{name: "failure only, holds", c: Conditions{Failure: "result < 0.9"}, value: 0.5, want: bad, reason: "failureCondition result < 0.9"},
		{name: "failure only, not met: successful", c: Conditions{Failure: "result < 0.9"}, value: 0.95, want: ok},
		{name: "both, neither: inconclusive", c: Conditions{Success: "result >= 0.99", Failure: "result < 0.9"}, value: 0.95, want: inc},
		{name: "both, success", c: Conditions{Success: "result >= 0.99", Failure: "result < 0.9"}, value: 0.999, want: ok},
		{name: "both hold: failure wins", c: Conditions{Success: "result > 0", Failure: "result < 1"}, value: 0.5, want: bad},
		{name: "int literal against a double", c: Conditions{Success: "result >= 1"}, value: 1.0, want: ok},
		{name: "equality across int and double", c: Conditions{Success: "result == 1"}, value: 1.0, want: ok},
		{name: "list", c: Conditions{Success: "result.all(x, x < 0.5)"}, value: []float64{0.1, 0.4}, want: ok},
		{name: "list, one bad", c: Conditions{Success: "result.all(x, x < 0.5)"}, value: []float64{0.1, 0.6}, want: bad},
		{name: "list index", c: Conditions{Success: "result[0] > 0.5"}, value: []float64{0.6}, want: ok},
		{name: "map", c: Conditions{Success: "result.ok && result.count > 10"}, value: map[string]any{"ok": true, "count": 12.0}, want: ok},
		{name: "bool", c: Conditions{Success: "result"}, value: true, want: ok},
		{name: "string", c: Conditions{Success: "result == 'green'"}, value: "red", want: bad},
		{name: "math ext: NaN", c: Conditions{Failure: "math.isNaN(result)"}, value: math.NaN(), want: bad},
		{name: "no condition: measured is successful", c: Conditions{}, value: 3.0, want: ok, reason: "measured"},
		{name: "range inside", c: Conditions{Min: f(0.99), Max: f(1)}, value: 0.995, want: ok, reason: "inside [0.99, 1]"},
		{name: "range outside", c: Conditions{Min: f(0.99)}, value: 0.5, want: bad, reason: "outside [0.99, +inf]"},
		{name: "range max only", c: Conditions{Max: f(500)}, value: 501.0, want: bad, reason: "outside [-inf, 500]"},
		{name: "range NaN: inconclusive", c: Conditions{Max: f(500)}, value: math.NaN(), want: inc},
		{name: "range needs a number", c: Conditions{Max: f(500)}, value: []float64{1}, want: none, wantErr: "thresholdRange needs a number"},
		{name: "does not compile", c: Conditions{Success: "result >="}, value: 1.0, want: none, wantErr: "compiling"},
		{name: "not a bool", c: Conditions{Success: "result + 1"}, value: 1.0, want: none, wantErr: "not a bool"},
		{name: "no such overload at run time", c: Conditions{Success: "result[0] > 1"}, value: 3.0, want: none, wantErr: "evaluating"},
		{name: "unknown variable", c: Conditions{Success: "value > 1"}, value: 3.0, want: none, wantErr: "undeclared reference"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := ev.Judge(tt.c, tt.value)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want error containing %q, got %v (verdict %+v)", tt.wantErr, err, v)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Phase != tt.want {
				t.Errorf("phase %s, want %s (%s)", v.Phase, tt.want, v.Reason)
			}
			if tt.reason != "" && v.Reason != tt.reason {
				t.Errorf("reason %q, want %q", v.Reason, tt.reason)
			}
		})
	}
}

func TestEvaluatorCachesPrograms(t *testing.T) {
	ev, err := NewEvaluator()
	if err != nil {
		t.Fatal(err)
	}
	p1, err := ev.Compile("result > 1")
	if err != nil {
		t.Fatal(err)
	}
	p2, err := ev.Compile("result > 1")
	if err != nil {
		t.Fatal(err)
	}
	if p1 != p2 || len(ev.programs) != 1 {
		t.Fatalf("the expression was compiled twice (%d programs)", len(ev.programs))
	}
}

func TestConditionsOf(t *testing.T) {
	c, err := ConditionsOf(&rolloutsv1alpha1.Metric{ThresholdRange: &rolloutsv1alpha1.ThresholdRange{Min: ptr.To("0.99"), Max: ptr.To("1")}})
	if err != nil || c.Min == nil || *c.Min != 0.99 || c.Max == nil || *c.Max != 1 || c.Empty() {
		t.Fatalf("got %+v, %v", c, err)
	}
	if _, err := ConditionsOf(&rolloutsv1alpha1.Metric{ThresholdRange: &rolloutsv1alpha1.ThresholdRange{Min: ptr.To("x")}}); err == nil {
		t.Fatal("want an error for a bad bound")
	}
	if c, _ := ConditionsOf(&rolloutsv1alpha1.Metric{}); !c.Empty() {
		t.Fatal("want no condition")
	}
}

func TestFormatValue(t *testing.T) {
	for _, tt := range []struct {
		in   any
		want string
	}{
		{0.62, "0.62"}, {1.0, "1"}, {math.NaN(), "NaN"}, {math.Inf(1), "+Inf"}, {"ok", "ok"}, {true, "true"},
		{[]float64{0.5, math.NaN()}, `[0.5,"NaN"]`}, {map[string]any{"a": 1.5}, `{"a":1.5}`}, {nil, "null"}, {[]any{"x", 2.0}, `["x",2]`},
	} {
		if got := FormatValue(tt.in); got != tt.want {
			t.Errorf("FormatValue(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := FormatValue(strings.Repeat("x", 5000)); len(got) != maxValueLen+3 {
		t.Errorf("long value not clipped: %d", len(got))
	}
}
