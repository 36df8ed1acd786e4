package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

// +kubebuilder:rbac:groups=rollouts.drover.dev,resources=analysisruns,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=rollouts.drover.dev,resources=analysistemplates;clusteranalysistemplates,verbs=get;list;watch

// runHistoryLimit is how many finished AnalysisRuns of earlier releases a
// Rollout keeps; the runs of the current release are always kept.
const runHistoryLimit = 10

// listRuns reads the Rollout's AnalysisRuns (cached; a run created a
// moment ago and not yet seen is created again and found to exist).
func (r *Reconciler) listRuns(ctx context.Context, ro *rolloutsv1alpha1.Rollout) ([]rolloutsv1alpha1.AnalysisRun, error) {
	var list rolloutsv1alpha1.AnalysisRunList
	if err := r.Client.List(ctx, &list, client.InNamespace(ro.Namespace),
		client.MatchingLabels{rolloutsv1alpha1.LabelRollout: ro.Name}); err != nil {
		return nil, fmt.Errorf("listing analysis runs: %w", err)
	}
	out := list.Items[:0]
	for _, run := range list.Items {
		if metav1.IsControlledBy(&run, ro) {
			out = append(out, run)
		}
	}
	return out, nil
}

// observedRuns is what the plan reads of the runs.
func observedRuns(runs []rolloutsv1alpha1.AnalysisRun) map[string]observedRun {
	out := make(map[string]observedRun, len(runs))
	for _, run := range runs {
		p := run.Status.Phase
		if p == "" {
			p = rolloutsv1alpha1.AnalysisPhasePending
		}
		out[run.Name] = observedRun{phase: p, message: run.Status.Message}
	}
	return out
}

// syncRuns creates the runs the decision wants and terminates the running
// runs it does not. A run that cannot be built (a template missing, two
// templates defining one metric) is returned in failed with the reason:
// the release must not go on without its evidence.
func (r *Reconciler) syncRuns(ctx context.Context, ro *rolloutsv1alpha1.Rollout, want []wantRun, have []rolloutsv1alpha1.AnalysisRun, status *rolloutsv1alpha1.RolloutStatus) (failed map[string]observedRun, err error) {
	existing := map[string]*rolloutsv1alpha1.AnalysisRun{}
	for i := range have {
		existing[have[i].Name] = &have[i]
	}
	var errs []error
	for _, w := range want {
		if _, ok := existing[w.name]; ok || w.spec == nil {
			continue
		}
		run, buildErr := r.buildRun(ctx, ro, w, status)
		if buildErr != nil {
			if failed == nil {
				failed = map[string]observedRun{}
			}
			failed[w.name] = observedRun{phase: rolloutsv1alpha1.AnalysisPhaseError, message: buildErr.Error()}
			continue
		}
		if err := r.Client.Create(ctx, run); err != nil && !apierrors.IsAlreadyExists(err) {
			if apierrors.IsInvalid(err) {
				if failed == nil {
					failed = map[string]observedRun{}
				}
				failed[w.name] = observedRun{phase: rolloutsv1alpha1.AnalysisPhaseError, message: err.Error()}
				continue
			}
			errs = append(errs, fmt.Errorf("creating analysis run %s: %w", w.name, err))
		}
	}
	wanted := func(name string) bool {
		return slices.ContainsFunc(want, func(w wantRun) bool { return w.name == name })
	}
	var finished []*rolloutsv1alpha1.AnalysisRun
	for i := range have {
		run := &have[i]
		switch {
		case wanted(run.Name):
		case !run.Status.Phase.Completed() && !run.Spec.Terminate:
			patched := run.DeepCopy()
			patched.Spec.Terminate = true
			if err := r.Client.Patch(ctx, patched, client.MergeFrom(run)); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("terminating analysis run %s: %w", run.Name, err))
			}
		case run.Status.Phase.Completed() && !slices.ContainsFunc(status.AnalysisRuns, func(s rolloutsv1alpha1.RolloutAnalysisRunStatus) bool { return s.Name == run.Name }):
			finished = append(finished, run)
		}
	}
	// Runs of earlier releases beyond the history limit go, oldest first.
	sort.Slice(finished, func(i, j int) bool {
		return finished[j].CreationTimestamp.Before(&finished[i].CreationTimestamp)
	})
	for _, run := range finished[min(len(finished), runHistoryLimit):] {
		if err := r.Client.Delete(ctx, run); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting old analysis run %s: %w", run.Name, err))
		}
	}
	return failed, errors.Join(errs...)
}

// buildRun instantiates a wanted run from its templates: their metrics,
// dry-run and retention settings merged, their arguments resolved from the
// Rollout's args. Secret-backed arguments stay references: the analysis
// controller reads the Secret when it measures, so no secret value is
// ever written to the run.
func (r *Reconciler) buildRun(ctx context.Context, ro *rolloutsv1alpha1.Rollout, w wantRun, status *rolloutsv1alpha1.RolloutStatus) (*rolloutsv1alpha1.AnalysisRun, error) {
	var spec rolloutsv1alpha1.AnalysisTemplateSpec
	metricOf := map[string]string{}
	for _, ref := range w.spec.Templates {
		tmpl, err := r.template(ctx, ro.Namespace, ref)
		if err != nil {
			return nil, err
		}
		for _, m := range tmpl.Metrics {
			if other, dup := metricOf[m.Name]; dup {
				return nil, fmt.Errorf("metric %q is defined by both template %s and template %s", m.Name, other, ref.TemplateName)
			}
			metricOf[m.Name] = ref.TemplateName
			spec.Metrics = append(spec.Metrics, m)
		}
		for _, a := range tmpl.Args {
			if i := slices.IndexFunc(spec.Args, func(x rolloutsv1alpha1.Argument) bool { return x.Name == a.Name }); i >= 0 {
				if spec.Args[i].Value == nil && spec.Args[i].ValueFrom == nil {
					spec.Args[i] = a
				}
				continue
			}
			spec.Args = append(spec.Args, a)
		}
		spec.DryRun = append(spec.DryRun, tmpl.DryRun...)
		spec.MeasurementRetention = append(spec.MeasurementRetention, tmpl.MeasurementRetention...)
	}
	for _, a := range w.spec.Args {
		i := slices.IndexFunc(spec.Args, func(x rolloutsv1alpha1.Argument) bool { return x.Name == a.Name })
		if i < 0 {
			return nil, fmt.Errorf("args: %q is not an argument of the templates %s", a.Name, templateNames(w.spec))
		}
		resolved, err := resolveArg(ro, status, a)
		if err != nil {
			return nil, err
		}
		spec.Args[i] = resolved
	}
	for _, a := range spec.Args {
		if a.Value == nil && a.ValueFrom == nil {
			return nil, fmt.Errorf("args: argument %q of the templates %s has no value: give it in the rollout's analysis args", a.Name, templateNames(w.spec))
		}
	}
	run := &rolloutsv1alpha1.AnalysisRun{}
	run.Name, run.Namespace = w.name, ro.Namespace
	run.Labels = map[string]string{
		rolloutsv1alpha1.LabelRollout:          ro.Name,
		rolloutsv1alpha1.LabelAnalysisKind:     string(w.kind),
		rolloutsv1alpha1.LabelAnalysisRevision: w.revision,
	}
	run.Spec.AnalysisTemplateSpec = spec
	if err := controllerutil.SetControllerReference(ro, run, r.Client.Scheme()); err != nil {
		return nil, fmt.Errorf("owning analysis run %s: %w", w.name, err)
	}
	return run, nil
}

func templateNames(a *rolloutsv1alpha1.RolloutAnalysis) string {
	names := make([]string, len(a.Templates))
	for i, t := range a.Templates {
		names[i] = t.TemplateName
	}
	return strings.Join(names, ", ")
}

// template reads an AnalysisTemplate or ClusterAnalysisTemplate (from the
// API: templates are read once per run, not worth a cache).
func (r *Reconciler) template(ctx context.Context, ns string, ref rolloutsv1alpha1.AnalysisTemplateRef) (*rolloutsv1alpha1.AnalysisTemplateSpec, error) {
	if ref.ClusterScope {
		var t rolloutsv1alpha1.ClusterAnalysisTemplate
		if err := r.APIReader.Get(ctx, types.NamespacedName{Name: ref.TemplateName}, &t); err != nil {
			return nil, fmt.Errorf("ClusterAnalysisTemplate %s: %w", ref.TemplateName, err)
		}
		return &t.Spec, nil
	}
	var t rolloutsv1alpha1.AnalysisTemplate
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.TemplateName}, &t); err != nil {
		return nil, fmt.Errorf("AnalysisTemplate %s: %w", ref.TemplateName, err)
	}
	return &t.Spec, nil
}

// resolveArg turns a Rollout's argument into the run's: revisions and
// fields of the Rollout become values; a Secret reference stays one.
func resolveArg(ro *rolloutsv1alpha1.Rollout, st *rolloutsv1alpha1.RolloutStatus, a rolloutsv1alpha1.Argument) (rolloutsv1alpha1.Argument, error) {
	if a.ValueFrom == nil || a.ValueFrom.SecretKeyRef != nil {
		return a, nil
	}
	out := rolloutsv1alpha1.Argument{Name: a.Name}
	switch vf := a.ValueFrom; {
	case vf.PodTemplateHashValue != nil:
		v := st.StableRevision
		if *vf.PodTemplateHashValue == "Latest" {
			v = st.CanaryRevision
			if v == "" {
				v = st.StableRevision
			}
		}
		out.Value = ptr.To(v)
	case vf.FieldRef != nil:
		v, err := rolloutField(ro, vf.FieldRef.FieldPath)
		if err != nil {
			return out, fmt.Errorf("args[%s].valueFrom.fieldRef: %w", a.Name, err)
		}
		out.Value = ptr.To(v)
	}
	return out, nil
}

// rolloutField reads metadata.name, metadata.namespace, metadata.uid,
// metadata.labels['K'] or metadata.annotations['K'] of the Rollout.
func rolloutField(ro *rolloutsv1alpha1.Rollout, path string) (string, error) {
	switch path {
	case "metadata.name":
		return ro.Name, nil
	case "metadata.namespace":
		return ro.Namespace, nil
	case "metadata.uid":
		return string(ro.UID), nil
	}
	for prefix, m := range map[string]map[string]string{"metadata.labels": ro.Labels, "metadata.annotations": ro.Annotations} {
		if rest, ok := strings.CutPrefix(path, prefix+"['"); ok {
			if key, ok := strings.CutSuffix(rest, "']"); ok {
				v, found := m[key]
				if !found {
					return "", fmt.Errorf("%s has no key %q", prefix, key)
				}
				return v, nil
			}
		}
	}
	return "", fmt.Errorf("unsupported fieldPath %q (metadata.name, metadata.namespace, metadata.uid, metadata.labels['KEY'], metadata.annotations['KEY'])", path)
}
