// Package analysisrun implements the AnalysisRun controller: the engine a
// Rollout's analysis steps wait on.
//
// Each reconcile reads the run (from the cache), asks the measurement
// engine (internal/analysis) which metrics are due, takes their
// measurements through the providers (internal/analysis/provider/...),
// brings the counts and phases up to date and writes the status; it comes
// back when the next measurement is due (RequeueAfter, from the injected
// clock). A completed run is never measured again.
package analysisrun

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/analysis"
	"github.com/drover-dev/drover/internal/analysis/provider"
)

// +kubebuilder:rbac:groups=rollouts.drover.dev,resources=analysisruns,verbs=get;list;watch
// +kubebuilder:rbac:groups=rollouts.drover.dev,resources=analysisruns/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=rollouts.drover.dev,resources=rollouts,verbs=get;list;watch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// conflictRetry is how soon a reconcile whose status write lost a race
// (a stale cache) comes back.
const conflictRetry = time.Second

// Reconciler reconciles AnalysisRuns.
type Reconciler struct {
	// Client reads runs, Rollouts and Jobs from the cache and writes.
	Client client.Client
	// APIReader reads Secrets, uncached.
	APIReader client.Reader
	Clock     clock.PassiveClock
	Recorder  events.EventRecorder
	Providers provider.Set
	Evaluator *analysis.Evaluator
	metrics   *metrics
}

// Options configure SetupWithManager.
type Options struct {
	MaxConcurrentReconciles int
	// Clock is the controller's time (default: the real clock).
	Clock clock.PassiveClock
	// Providers take the measurements (default: provider.New).
	Providers *provider.Set
}

// SetupWithManager registers the controller: runs are reconciled on
// creation and spec changes (terminate), when their Jobs change, and when
// a measurement is due.
func SetupWithManager(mgr manager.Manager, opts Options) error {
	m, err := newMetrics(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	ev, err := analysis.NewEvaluator()
	if err != nil {
		return err
	}
	r := &Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Clock: opts.Clock,
		Recorder: mgr.GetEventRecorder("analysisrun-controller"), Evaluator: ev, metrics: m}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if opts.Providers != nil {
		r.Providers = *opts.Providers
	} else {
		r.Providers = provider.New(mgr.GetClient())
	}
	return builder.ControllerManagedBy(mgr).
		For(&rolloutsv1alpha1.AnalysisRun{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&batchv1.Job{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, opts.MaxConcurrentReconciles)}).
		Named("analysisrun").
		Complete(r)
}

// Reconcile takes the run's due measurements and records them.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	var run rolloutsv1alpha1.AnalysisRun
	if err := r.Client.Get(ctx, req.NamespacedName, &run); err != nil {
		if apierrors.IsNotFound(err) {
			r.metrics.forget(req.Namespace, req.Name)
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if run.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}
	if run.Status.Phase.Completed() {
		// Never measured again; a Job a failed stop left running goes now.
		r.metrics.record(&run, &run.Status)
		return reconcile.Result{}, r.stop(ctx, &run)
	}
	now := r.Clock.Now()
	st := run.Status.DeepCopy()
	if st.StartedAt == nil {
		st.StartedAt = &metav1.Time{Time: now}
	}
	if plan := analysis.PlanRun(&run.Spec, st, now); len(plan.Due) > 0 {
		r.measure(ctx, &run, st, plan.Due, r.vars(ctx, &run), now)
	}
	now = r.Clock.Now()
	analysis.Assess(&run.Spec, st, now)
	st.ObservedGeneration = run.Generation
	setConditions(st, run.Generation, now)

	if err := r.writeStatus(ctx, &run, st); err != nil {
		if apierrors.IsConflict(err) {
			log.V(1).Info("status changed meanwhile: measuring again from the new status")
			return reconcile.Result{RequeueAfter: conflictRetry}, nil
		}
		return reconcile.Result{}, err
	}
	r.recordEvents(&run, &run.Status, st)
	r.metrics.record(&run, st)
	if st.Phase.Completed() {
		log.Info("analysis run completed", "phase", st.Phase, "message", st.Message)
		return reconcile.Result{}, r.stop(ctx, &run)
	}
	return reconcile.Result{RequeueAfter: analysis.Wait(&run.Spec, st, r.Clock.Now())}, nil
}

// stop stops the measurements still in progress of a completed run.
func (r *Reconciler) stop(ctx context.Context, run *rolloutsv1alpha1.AnalysisRun) error {
	if err := r.Providers.Stop(ctx, run); err != nil {
		return fmt.Errorf("stopping the measurements of a completed run: %w", err)
	}
	return nil
}

// measure takes the due metrics' measurements in parallel and records
// them in st.
func (r *Reconciler) measure(ctx context.Context, run *rolloutsv1alpha1.AnalysisRun, st *rolloutsv1alpha1.AnalysisRunStatus, due []string, vars *analysis.Vars, now time.Time) {
	taken := make([]rolloutsv1alpha1.Measurement, len(due))
	var wg sync.WaitGroup
	for i, name := range due {
		m := metric(&run.Spec, name)
		res := analysis.Result(st, name)
		started := now
		if ms := analysis.InProgress(res); ms != nil {
			started = ms.StartedAt.Time
		}
		kind, p, err := r.Providers.For(m)
		var conds analysis.Conditions
		if err == nil {
			conds, err = provider.Conditions(m, p)
		}
		if err != nil {
			taken[i] = rolloutsv1alpha1.Measurement{Phase: rolloutsv1alpha1.AnalysisPhaseError, Message: err.Error(),
				StartedAt: metav1.Time{Time: started}, FinishedAt: &metav1.Time{Time: now}}
			r.metrics.measured(kind, taken[i].Phase, 0)
			continue
		}
		env := &analysis.Env{Run: run, Metric: m, Index: analysis.Index(res), Now: now, Vars: vars}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := r.Clock.Now()
			taken[i] = analysis.Take(ctx, p, r.Evaluator, conds, env, started, r.Clock.Now)
			r.metrics.measured(kind, taken[i].Phase, r.Clock.Since(t0))
		}()
	}
	wg.Wait()
	log := ctrl.LoggerFrom(ctx)
	for i, name := range due {
		res := analysis.Result(st, name)
		if res == nil {
			st.MetricResults = append(st.MetricResults, rolloutsv1alpha1.MetricResult{Name: name})
			res = &st.MetricResults[len(st.MetricResults)-1]
		}
		analysis.Record(res, taken[i])
		// Values and messages were redacted of every secret read.
		log.V(1).Info("measured", "metric", name, "phase", taken[i].Phase, "value", taken[i].Value, "message", taken[i].Message)
	}
}

func metric(spec *rolloutsv1alpha1.AnalysisRunSpec, name string) *rolloutsv1alpha1.Metric {
	for i := range spec.Metrics {
		if spec.Metrics[i].Name == name {
			return &spec.Metrics[i]
		}
	}
	return nil
}

// vars are the run's template variables: its namespace, the Rollout named
// by its label (name, services and revisions, when the Rollout exists),
// the revision it judges, and its args (Secrets read when used).
func (r *Reconciler) vars(ctx context.Context, run *rolloutsv1alpha1.AnalysisRun) *analysis.Vars {
	values := map[string]string{
		analysis.VarRolloutNamespace: run.Namespace,
		analysis.VarRolloutName:      run.Labels[rolloutsv1alpha1.LabelRollout],
		analysis.VarRevision:         run.Labels[rolloutsv1alpha1.LabelAnalysisRevision],
	}
	if name := values[analysis.VarRolloutName]; name != "" {
		var ro rolloutsv1alpha1.Rollout
		err := r.Client.Get(ctx, types.NamespacedName{Namespace: run.Namespace, Name: name}, &ro)
		switch {
		case err == nil:
			values[analysis.VarRolloutStableRevision] = ro.Status.StableRevision
			values[analysis.VarRolloutCanaryRevision] = ro.Status.CanaryRevision
			values[analysis.VarRolloutStableService] = ro.Status.StableService
			values[analysis.VarRolloutCanaryService] = ro.Status.CanaryService
		case !apierrors.IsNotFound(err):
			// Templates that need the Rollout fail with "has no value".
			ctrl.LoggerFrom(ctx).Error(err, "reading the run's rollout", "rollout", name)
		}
	}
	return analysis.NewVars(run.Namespace, values, run.Spec.Args, secretReader{r.APIReader})
}

// secretReader reads Secrets from the API server (never cached).
type secretReader struct{ reader client.Reader }

func (s secretReader) SecretData(ctx context.Context, namespace, name string) (map[string][]byte, error) {
	var sec corev1.Secret
	if err := s.reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, errors.New("not found")
		}
		return nil, err
	}
	return sec.Data, nil
}
