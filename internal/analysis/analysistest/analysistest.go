// Package analysistest builds what the providers' tests need: an Env over
// Secrets held in memory.
package analysistest

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/analysis"
)

// Namespace is the namespace of Env's run.
const Namespace = "team-a"

// Now is Env's measurement time.
func Now() time.Time { return time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC) }

// Secrets are Secrets by name, their data by key.
type Secrets map[string]map[string]string

// SecretData implements analysis.SecretReader.
func (s Secrets) SecretData(_ context.Context, _, name string) (map[string][]byte, error) {
	d, ok := s[name]
	if !ok {
		return nil, errors.New("not found")
	}
	out := make(map[string][]byte, len(d))
	for k, v := range d {
		out[k] = []byte(v)
	}
	return out, nil
}

// SecretArg is an argument read from a Secret's key.
func SecretArg(name, secret, key string) rolloutsv1alpha1.Argument {
	return rolloutsv1alpha1.Argument{Name: name, ValueFrom: &rolloutsv1alpha1.ArgumentValueFrom{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key}}}
}

// Env is the first measurement of m, by a run "run-1" of the Rollout
// "web" (canary Service web-canary, judged revision web-7f9c) in
// Namespace, at Now.
func Env(m *rolloutsv1alpha1.Metric, secrets Secrets, args ...rolloutsv1alpha1.Argument) *analysis.Env {
	run := &rolloutsv1alpha1.AnalysisRun{ObjectMeta: metav1.ObjectMeta{Name: "run-1", Namespace: Namespace, UID: "uid-1"}}
	run.Spec.Args = args
	run.Spec.Metrics = []rolloutsv1alpha1.Metric{*m}
	vars := analysis.NewVars(Namespace, map[string]string{
		analysis.VarRolloutName:           "web",
		analysis.VarRolloutNamespace:      Namespace,
		analysis.VarRevision:              "web-7f9c",
		analysis.VarRolloutCanaryRevision: "web-7f9c",
		analysis.VarRolloutStableRevision: "web-55d1",
		analysis.VarRolloutCanaryService:  "web-canary",
		analysis.VarRolloutStableService:  "web-stable",
	}, args, secrets)
	return &analysis.Env{Run: run, Metric: m, Index: 1, Now: Now(), Vars: vars}
}
