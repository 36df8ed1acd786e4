package analysis

import (
	"context"
	"errors"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

// maxMessageLen bounds a measurement's message in status.
const maxMessageLen = 1024

// Take takes one measurement of env.Metric with the provider and judges
// it against conds: a value judged Successful, Failed or Inconclusive; a
// provider's error is an Error measurement with the error as message;
// ErrInProgress is a Running measurement. started is when the measurement
// began (env.Now, or the StartedAt of the measurement in progress);
// finished reads the clock when it ends. Every text is redacted of the
// secrets env read.
func Take(ctx context.Context, p Provider, ev *Evaluator, conds Conditions, env *Env, started time.Time, finished func() time.Time) rolloutsv1alpha1.Measurement {
	ms := rolloutsv1alpha1.Measurement{StartedAt: metav1.Time{Time: started}}
	value, err := p.Measure(ctx, env.Metric, env)
	if errors.Is(err, ErrInProgress) {
		ms.Phase = rolloutsv1alpha1.AnalysisPhaseRunning
		ms.Message = clip(env.Redact(err.Error()))
		return ms
	}
	ms.FinishedAt = &metav1.Time{Time: finished()}
	if err != nil {
		ms.Phase = rolloutsv1alpha1.AnalysisPhaseError
		ms.Message = clip(env.Redact(err.Error()))
		return ms
	}
	ms.Value = env.Redact(FormatValue(value))
	v, err := ev.Judge(conds, value)
	if err != nil {
		ms.Phase = rolloutsv1alpha1.AnalysisPhaseError
		ms.Message = clip(env.Redact(err.Error()))
		return ms
	}
	ms.Phase, ms.Message = v.Phase, clip(env.Redact(v.Reason))
	return ms
}

func clip(s string) string {
	if len(s) > maxMessageLen {
		return s[:maxMessageLen] + "..."
	}
	return s
}
