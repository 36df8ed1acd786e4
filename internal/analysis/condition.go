package analysis

import (
	"fmt"
	"math"
	"strconv"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

// Conditions judge a measured value: CEL expressions over `result`, or a
// threshold range. The zero value has no condition: every measurement
// taken is successful.
type Conditions struct {
	// Success and Failure are CEL expressions over `result`.
	Success, Failure string
	// Min and Max bound a numeric result (thresholdRange); nil is open.
	Min, Max *float64
}

// Empty reports whether no condition is set.
func (c Conditions) Empty() bool {
	return c.Success == "" && c.Failure == "" && c.Min == nil && c.Max == nil
}

// ConditionsOf returns the conditions a metric sets.
func ConditionsOf(m *rolloutsv1alpha1.Metric) (Conditions, error) {
	c := Conditions{Success: m.SuccessCondition, Failure: m.FailureCondition}
	if tr := m.ThresholdRange; tr != nil {
		for _, b := range []struct {
			s   *string
			dst **float64
			f   string
		}{{tr.Min, &c.Min, "min"}, {tr.Max, &c.Max, "max"}} {
			if b.s == nil {
				continue
			}
			v, err := strconv.ParseFloat(*b.s, 64)
			if err != nil {
				return c, fmt.Errorf("thresholdRange.%s %q: %w", b.f, *b.s, err)
			}
			*b.dst = &v
		}
	}
	return c, nil
}

// Verdict is the judgement of one measured value.
type Verdict struct {
	// Phase is Successful, Failed or Inconclusive.
	Phase rolloutsv1alpha1.AnalysisPhase
	// Reason is the condition that decided, e.g. "result >= 0.99".
	Reason string
}

// maxPrograms bounds the Evaluator's cache: when full, it starts again.
const maxPrograms = 1024

// costLimit bounds the work of one condition's evaluation.
const costLimit = 1_000_000

// Evaluator compiles and evaluates conditions. Compiled programs are cached
// by expression, so a condition is compiled once however often its metric
// is measured. It is safe for concurrent use.
type Evaluator struct {
	env *cel.Env

	mu       sync.Mutex
	programs map[string]cel.Program
}

// NewEvaluator returns an Evaluator whose expressions see `result` (a
// number, a string, a bool, a list or a map) and CEL's standard library
// plus the strings, math and lists extensions.
func NewEvaluator() (*Evaluator, error) {
	env, err := cel.NewEnv(
		cel.Variable("result", cel.DynType),
		ext.Strings(), ext.Math(), ext.Lists(),
	)
	if err != nil {
		return nil, fmt.Errorf("building the CEL environment: %w", err)
	}
	return &Evaluator{env: env, programs: map[string]cel.Program{}}, nil
}

// Compile checks an expression; it returns the compiled program (cached).
func (e *Evaluator) Compile(expr string) (cel.Program, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p, ok := e.programs[expr]; ok {
		return p, nil
	}
	ast, iss := e.env.Compile(expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("compiling %q: %w", expr, iss.Err())
	}
	if t := ast.OutputType(); t != cel.BoolType && t != cel.DynType {
		return nil, fmt.Errorf("%q is a %s, not a bool", expr, t)
	}
	p, err := e.env.Program(ast, cel.CostLimit(costLimit))
	if err != nil {
		return nil, fmt.Errorf("building %q: %w", expr, err)
	}
	if len(e.programs) >= maxPrograms {
		clear(e.programs)
	}
	e.programs[expr] = p
	return p, nil
}

// eval evaluates a boolean expression over result.
func (e *Evaluator) eval(expr string, result any) (bool, error) {
	p, err := e.Compile(expr)
	if err != nil {
		return false, err
	}
	out, _, err := p.Eval(map[string]any{"result": result})
	if err != nil {
		return false, fmt.Errorf("evaluating %q: %w", expr, err)
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("%q returned %s, not a bool", expr, out.Type())
	}
	return bool(b), nil
}

// Judge decides a measured value's phase:
//
//   - a failure condition that holds fails it, whatever the success
//     condition says;
//   - a success condition that holds makes it successful;
//   - with only a success condition, a value that does not meet it fails;
//     with only a failure condition, a value that does not meet it
//     succeeds; with both and neither holding, it is inconclusive;
//   - a threshold range succeeds inside [min, max] and fails outside;
//   - without any condition every measurement taken is successful.
//
// An error (a condition that does not compile or apply to the value) is
// an error measurement, never a success.
func (e *Evaluator) Judge(c Conditions, value any) (Verdict, error) {
	if c.Min != nil || c.Max != nil {
		return judgeRange(c, value)
	}
	if c.Failure != "" {
		failed, err := e.eval(c.Failure, value)
		if err != nil {
			return Verdict{}, fmt.Errorf("failureCondition: %w", err)
		}
		if failed {
			return Verdict{rolloutsv1alpha1.AnalysisPhaseFailed, "failureCondition " + c.Failure}, nil
		}
	}
	if c.Success != "" {
		ok, err := e.eval(c.Success, value)
		if err != nil {
			return Verdict{}, fmt.Errorf("successCondition: %w", err)
		}
		switch {
		case ok:
			return Verdict{rolloutsv1alpha1.AnalysisPhaseSuccessful, c.Success}, nil
		case c.Failure == "":
			return Verdict{rolloutsv1alpha1.AnalysisPhaseFailed, c.Success}, nil
		}
		return Verdict{rolloutsv1alpha1.AnalysisPhaseInconclusive,
			fmt.Sprintf("neither %s nor failureCondition %s", c.Success, c.Failure)}, nil
	}
	if c.Failure != "" {
		return Verdict{rolloutsv1alpha1.AnalysisPhaseSuccessful, "not " + c.Failure}, nil
	}
	return Verdict{rolloutsv1alpha1.AnalysisPhaseSuccessful, "measured"}, nil
}

func judgeRange(c Conditions, value any) (Verdict, error) {
	v, ok := number(value)
	if !ok {
		return Verdict{}, fmt.Errorf("thresholdRange needs a number, got %s", FormatValue(value))
	}
	bound := func(p *float64, open string) string {
		if p == nil {
			return open
		}
		return strconv.FormatFloat(*p, 'g', -1, 64)
	}
	rng := "[" + bound(c.Min, "-inf") + ", " + bound(c.Max, "+inf") + "]"
	if math.IsNaN(v) {
		return Verdict{rolloutsv1alpha1.AnalysisPhaseInconclusive, "NaN is neither inside nor outside " + rng}, nil
	}
	if (c.Min != nil && v < *c.Min) || (c.Max != nil && v > *c.Max) {
		return Verdict{rolloutsv1alpha1.AnalysisPhaseFailed, "outside " + rng}, nil
	}
	return Verdict{rolloutsv1alpha1.AnalysisPhaseSuccessful, "inside " + rng}, nil
}

// number reads a numeric value.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	}
	return 0, false
}
