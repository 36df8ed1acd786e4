package analysis

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

// Provider takes one measurement of a metric. The value is a float64, a
// []float64, a bool, a string, a []any or a map[string]any: what the
// metric's conditions see as `result`.
//
// A provider whose measurement takes longer than one call (a Job) returns
// ErrInProgress: the engine records the measurement as Running and calls
// the provider again, with the same Env.Index, until it returns a value or
// an error.
type Provider interface {
	Measure(ctx context.Context, m *rolloutsv1alpha1.Metric, env *Env) (any, error)
}

// ErrInProgress is returned by a Provider whose measurement has started
// and not finished.
var ErrInProgress = errors.New("measurement in progress")

// Defaulter is implemented by providers whose metrics have a condition
// when they set none (builtin metrics, Jobs).
type Defaulter interface {
	DefaultConditions(m *rolloutsv1alpha1.Metric) Conditions
}

// SecretReader reads a Secret's data. Implementations read from the API
// server each time (Secrets are not cached cluster-wide); Vars remembers
// what one reconcile read.
type SecretReader interface {
	SecretData(ctx context.Context, namespace, name string) (map[string][]byte, error)
}

// DefaultWindow is {{interval}} of a metric without an interval.
const DefaultWindow = 5 * time.Minute

// Variable names a template can use besides args.NAME.
const (
	VarRolloutName           = "rollout.name"
	VarRolloutNamespace      = "rollout.namespace"
	VarRolloutStableRevision = "rollout.stableRevision"
	VarRolloutCanaryRevision = "rollout.canaryRevision"
	VarRolloutStableService  = "rollout.stableService"
	VarRolloutCanaryService  = "rollout.canaryService"
	VarRevision              = "revision"
	VarInterval              = "interval"
	VarMetricName            = "metric.name"
)

var knownVars = []string{VarRolloutName, VarRolloutNamespace, VarRolloutStableRevision, VarRolloutCanaryRevision,
	VarRolloutStableService, VarRolloutCanaryService, VarRevision, VarInterval, VarMetricName}

// Vars are the values the templates of one run can use, shared by the
// measurements of one reconcile. Secret-backed arguments are read when a
// template first uses them; every secret value read is kept for Redact.
// It is safe for concurrent use.
type Vars struct {
	namespace  string
	values     map[string]string
	secretArgs map[string]corev1.SecretKeySelector
	unresolved map[string]bool
	reader     SecretReader

	mu      sync.Mutex
	secrets map[string]map[string][]byte
	redact  []string
}

// NewVars returns the variables of a run in namespace: values ("revision",
// "rollout.name", ...; an empty value counts as unknown) and the run's
// args.
func NewVars(namespace string, values map[string]string, args []rolloutsv1alpha1.Argument, reader SecretReader) *Vars {
	v := &Vars{namespace: namespace, values: map[string]string{}, secretArgs: map[string]corev1.SecretKeySelector{},
		unresolved: map[string]bool{}, reader: reader, secrets: map[string]map[string][]byte{}}
	for k, s := range values {
		if s != "" {
			v.values[k] = s
		}
	}
	for _, a := range args {
		switch {
		case a.Value != nil:
			v.values["args."+a.Name] = *a.Value
		case a.ValueFrom != nil && a.ValueFrom.SecretKeyRef != nil:
			v.secretArgs[a.Name] = *a.ValueFrom.SecretKeyRef
		default:
			v.unresolved[a.Name] = true
		}
	}
	return v
}

// Secret returns a key of a Secret of the run's namespace; its value will
// be redacted. optional: a missing key is "" without error.
func (v *Vars) Secret(ctx context.Context, name, key string, optional bool) (string, error) {
	v.mu.Lock()
	data, ok := v.secrets[name]
	v.mu.Unlock()
	if !ok {
		if v.reader == nil {
			return "", fmt.Errorf("secret %s: no secret reader", name)
		}
		d, err := v.reader.SecretData(ctx, v.namespace, name)
		if err != nil {
			return "", fmt.Errorf("reading secret %s: %w", name, err)
		}
		data = d
		v.mu.Lock()
		v.secrets[name] = data
		v.mu.Unlock()
	}
	val, ok := data[key]
	if !ok {
		if optional {
			return "", nil
		}
		return "", fmt.Errorf("secret %s has no key %q", name, key)
	}
	s := string(val)
	v.mu.Lock()
	v.remember(s)
	v.mu.Unlock()
	return s, nil
}

func (v *Vars) remember(s string) {
	if s == "" {
		return
	}
	for _, form := range []string{s, url.QueryEscape(s), url.PathEscape(s), strings.Trim(fmt.Sprintf("%q", s), `"`)} {
		if form != "" && !contains(v.redact, form) {
			v.redact = append(v.redact, form)
		}
	}
	// Longest first, so that a secret containing another is replaced whole.
	sort.Slice(v.redact, func(i, j int) bool { return len(v.redact[i]) > len(v.redact[j]) })
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Redacted replaces a secret value in text.
const Redacted = "***"

// Redact replaces every secret value read so far (raw, URL-escaped or
// quoted) in s.
func (v *Vars) Redact(s string) string {
	if v == nil {
		return s
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, secret := range v.redact {
		s = strings.ReplaceAll(s, secret, Redacted)
	}
	return s
}

// Env is what a provider needs for one measurement of one metric.
type Env struct {
	// Run is the AnalysisRun measured (the owner of a Job).
	Run *rolloutsv1alpha1.AnalysisRun
	// Metric is the metric measured.
	Metric *rolloutsv1alpha1.Metric
	// Index is the measurement's number (1 for the first measurement of
	// the metric), the same across the calls of a measurement in progress.
	Index int32
	// Now is when the measurement is taken (from the injected clock).
	Now time.Time
	// Vars are the run's variables.
	Vars *Vars
}

// Namespace is the run's namespace.
func (e *Env) Namespace() string { return e.Vars.namespace }

// Window is the metric's interval, or DefaultWindow without one.
func (e *Env) Window() time.Duration {
	if e.Metric != nil && e.Metric.Interval != nil && e.Metric.Interval.Duration > 0 {
		return e.Metric.Interval.Duration
	}
	return DefaultWindow
}

// Secret reads a key of a Secret of the run's namespace (see Vars.Secret).
func (e *Env) Secret(ctx context.Context, name, key string) (string, error) {
	return e.Vars.Secret(ctx, name, key, false)
}

// OptionalSecret reads a key that may be missing ("" then).
func (e *Env) OptionalSecret(ctx context.Context, name, key string) (string, error) {
	return e.Vars.Secret(ctx, name, key, true)
}

// Redact scrubs secret values from s.
func (e *Env) Redact(s string) string { return e.Vars.Redact(s) }

var varRef = regexp.MustCompile(`\{\{\s*([^{}\s]+)\s*\}\}`)

// Render replaces {{args.NAME}}, {{rollout.name}}, {{rollout.namespace}},
// {{rollout.stableRevision}}, {{rollout.canaryRevision}},
// {{rollout.stableService}}, {{rollout.canaryService}}, {{revision}},
// {{metric.name}} and {{interval}} (the metric's interval as a Prometheus
// duration, 5m without one) in s. A variable without a value is an error.
func (e *Env) Render(ctx context.Context, s string) (string, error) {
	var errs []error
	out := varRef.ReplaceAllStringFunc(s, func(ref string) string {
		name := varRef.FindStringSubmatch(ref)[1]
		val, err := e.lookup(ctx, name)
		if err != nil {
			errs = append(errs, err)
			return ref
		}
		return val
	})
	if len(errs) > 0 {
		return "", errors.Join(errs...)
	}
	return out, nil
}

func (e *Env) lookup(ctx context.Context, name string) (string, error) {
	switch name {
	case VarInterval:
		return model.Duration(e.Window()).String(), nil
	case VarMetricName:
		if e.Metric != nil {
			return e.Metric.Name, nil
		}
	}
	v := e.Vars
	if val, ok := v.values[name]; ok {
		return val, nil
	}
	if arg, ok := strings.CutPrefix(name, "args."); ok {
		if ref, ok := v.secretArgs[arg]; ok {
			val, err := v.Secret(ctx, ref.Name, ref.Key, ptrDeref(ref.Optional))
			if err != nil {
				return "", fmt.Errorf("{{%s}}: %w", name, err)
			}
			return val, nil
		}
		if v.unresolved[arg] {
			return "", fmt.Errorf("{{%s}}: the argument has no value (a Rollout resolves fieldRef and podTemplateHashValue)", name)
		}
		return "", fmt.Errorf("{{%s}}: the run has no argument %q", name, arg)
	}
	if contains(knownVars, name) {
		return "", fmt.Errorf("{{%s}} has no value for this run (it comes from the run's Rollout)", name)
	}
	return "", fmt.Errorf("unknown variable {{%s}} (known: args.NAME, %s)", name, strings.Join(knownVars, ", "))
}

func ptrDeref(b *bool) bool { return b != nil && *b }
