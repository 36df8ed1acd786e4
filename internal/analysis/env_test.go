package analysis

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

// secrets is a SecretReader over a map, counting reads.
type secrets struct {
	data  map[string]map[string][]byte
	reads int
}

func (s *secrets) SecretData(_ context.Context, _, name string) (map[string][]byte, error) {
	s.reads++
	d, ok := s.data[name]
	if !ok {
		return nil, errors.New("not found")
	}
	return d, nil
}

func secretArg(name, secret, key string) rolloutsv1alpha1.Argument {
	return rolloutsv1alpha1.Argument{Name: name, ValueFrom: &rolloutsv1alpha1.ArgumentValueFrom{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key}}}
}

func testEnv(reader SecretReader) *Env {
	vars := NewVars("team-a", map[string]string{
		VarRolloutName: "web", VarRolloutNamespace: "team-a", VarRevision: "web-7f9c", VarRolloutCanaryService: "web-canary",
		VarRolloutStableRevision: "",
	}, []rolloutsv1alpha1.Argument{
		{Name: "service", Value: ptr.To("web")},
		secretArg("token", "creds", "token"),
		{Name: "from-rollout", ValueFrom: &rolloutsv1alpha1.ArgumentValueFrom{FieldRef: &rolloutsv1alpha1.FieldRef{FieldPath: "metadata.name"}}},
	}, reader)
	return &Env{Metric: &rolloutsv1alpha1.Metric{Name: "success-rate", Interval: dur(90 * time.Second)}, Index: 1, Now: t0, Vars: vars}
}

func TestRender(t *testing.T) {
	s := &secrets{data: map[string]map[string][]byte{"creds": {"token": []byte("s3cr3t/+&")}}}
	env := testEnv(s)
	ctx := context.Background()
	tests := []struct {
		in, want, wantErr string
	}{
		{in: `up{service="{{args.service}}",ns="{{rollout.namespace}}"}`, want: `up{service="web",ns="team-a"}`},
		{in: `{{ rollout.name }}/{{revision}}/{{rollout.canaryService}}/{{metric.name}}`, want: `web/web-7f9c/web-canary/success-rate`},
		{in: `rate(x[{{interval}}])`, want: `rate(x[1m30s])`},
		{in: `Bearer {{args.token}}`, want: `Bearer s3cr3t/+&`},
		{in: `no variables`, want: `no variables`},
		{in: `{{args.missing}}`, wantErr: `the run has no argument "missing"`},
		{in: `{{args.from-rollout}}`, wantErr: "the argument has no value"},
		{in: `{{rollout.stableRevision}}`, wantErr: "has no value for this run"},
		{in: `{{rollout.canaryRevision}}`, wantErr: "has no value for this run"},
		{in: `{{nope}}`, wantErr: "unknown variable {{nope}}"},
	}
	for _, tt := range tests {
		got, err := env.Render(ctx, tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Render(%q): want error %q, got %q, %v", tt.in, tt.wantErr, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Render(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if s.reads != 1 {
		t.Errorf("the secret was read %d times in one reconcile, want once", s.reads)
	}
	// Without an interval, {{interval}} is the default window.
	env.Metric = &rolloutsv1alpha1.Metric{Name: "m"}
	if got, _ := env.Render(ctx, "{{interval}}"); got != "5m" {
		t.Errorf("default window %q", got)
	}
}

func TestRedact(t *testing.T) {
	s := &secrets{data: map[string]map[string][]byte{"creds": {"token": []byte("s3cr3t/+&"), "other": []byte("zz")}}}
	env := testEnv(s)
	if env.Redact("s3cr3t/+&") != "s3cr3t/+&" {
		t.Fatal("nothing read yet: nothing to redact")
	}
	if _, err := env.Render(context.Background(), "{{args.token}}"); err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"s3cr3t/+&", url.QueryEscape("s3cr3t/+&"), url.PathEscape("s3cr3t/+&"), fmt.Sprintf("%q", "s3cr3t/+&")} {
		msg := env.Redact(`Get "http://x/?q=` + leak + `": refused`)
		if strings.Contains(msg, "s3cr3t") {
			t.Errorf("secret left in %q", msg)
		}
	}
	if _, err := env.Secret(context.Background(), "creds", "missing"); err == nil || !strings.Contains(err.Error(), `no key "missing"`) {
		t.Errorf("missing key: %v", err)
	}
	if v, err := env.OptionalSecret(context.Background(), "creds", "missing"); err != nil || v != "" {
		t.Errorf("optional missing key: %q, %v", v, err)
	}
	if _, err := env.Secret(context.Background(), "absent", "k"); err == nil || !strings.Contains(err.Error(), "reading secret absent") {
		t.Errorf("absent secret: %v", err)
	}
}

// fakeProvider returns a fixed value or error, and reads the token.
type fakeProvider struct {
	value any
	err   error
}

func (f fakeProvider) Measure(ctx context.Context, _ *rolloutsv1alpha1.Metric, env *Env) (any, error) {
	tok, err := env.Render(ctx, "{{args.token}}")
	if err != nil {
		return nil, err
	}
	if f.err != nil {
		return nil, fmt.Errorf("query with %s: %w", tok, f.err)
	}
	return f.value, nil
}

func TestTake(t *testing.T) {
	ev, err := NewEvaluator()
	if err != nil {
		t.Fatal(err)
	}
	s := &secrets{data: map[string]map[string][]byte{"creds": {"token": []byte("hunter2-token")}}}
	finished := func() time.Time { return t0.Add(2 * time.Second) }
	ctx := context.Background()
	conds := Conditions{Success: "result >= 0.99"}

	m := Take(ctx, fakeProvider{value: 0.62}, ev, conds, testEnv(s), t0, finished)
	if m.Phase != failed || m.Value != "0.62" || m.Message != "result >= 0.99" || !m.StartedAt.Time.Equal(t0) || !m.FinishedAt.Time.Equal(finished()) {
		t.Errorf("failed measurement %+v", m)
	}
	m = Take(ctx, fakeProvider{value: 0.995}, ev, conds, testEnv(s), t0, finished)
	if m.Phase != successful || m.Value != "0.995" {
		t.Errorf("successful measurement %+v", m)
	}
	m = Take(ctx, fakeProvider{err: errors.New("connection refused")}, ev, conds, testEnv(s), t0, finished)
	if m.Phase != errored || strings.Contains(m.Message, "hunter2") || !strings.Contains(m.Message, "query with ***: connection refused") {
		t.Errorf("error measurement leaks or lost its message: %+v", m)
	}
	m = Take(ctx, fakeProvider{err: fmt.Errorf("job x running: %w", ErrInProgress)}, ev, conds, testEnv(s), t0, finished)
	if m.Phase != running || m.FinishedAt != nil || !strings.Contains(m.Message, "job x running") {
		t.Errorf("in-progress measurement %+v", m)
	}
	m = Take(ctx, fakeProvider{value: "hunter2-token"}, ev, Conditions{}, testEnv(s), t0, finished)
	if m.Phase != successful || m.Value != Redacted {
		t.Errorf("a value echoing a secret must be redacted: %+v", m)
	}
	m = Take(ctx, fakeProvider{value: 3.0}, ev, Conditions{Success: "result[0] > 1"}, testEnv(s), t0, finished)
	if m.Phase != errored || !strings.Contains(m.Message, "evaluating") {
		t.Errorf("a condition that does not apply is an error, never a success: %+v", m)
	}
}
