package rollout_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/testenv"
)

// successRate is an analysis template with one argument without a default
// (the Rollout must give it) and one with a default.
func successRate(ns string) *rolloutsv1alpha1.AnalysisTemplate {
	return &rolloutsv1alpha1.AnalysisTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: "success-rate", Namespace: ns},
		Spec: rolloutsv1alpha1.AnalysisTemplateSpec{
			Args: []rolloutsv1alpha1.Argument{{Name: "revision"}, {Name: "service"}, {Name: "window", Value: ptr.To("1m")}},
			Metrics: []rolloutsv1alpha1.Metric{{
				Name:             "success-rate",
				SuccessCondition: "result >= 0.99",
				Provider: rolloutsv1alpha1.MetricProvider{Prometheus: &rolloutsv1alpha1.PrometheusMetric{
					Address: "http://prometheus:9090",
					Query:   `sum(rate(http_requests_total{revision="{{args.revision}}",code!~"5.."}[{{args.window}}])) / sum(rate(http_requests_total{revision="{{args.revision}}"}[{{args.window}}]))`,
				}},
			}},
		},
	}
}

func analysisOn(template string) *rolloutsv1alpha1.RolloutAnalysis {
	return &rolloutsv1alpha1.RolloutAnalysis{
		Templates: []rolloutsv1alpha1.AnalysisTemplateRef{{TemplateName: template}},
		Args: []rolloutsv1alpha1.Argument{
			{Name: "revision", ValueFrom: &rolloutsv1alpha1.ArgumentValueFrom{PodTemplateHashValue: ptr.To("Latest")}},
			{Name: "service", ValueFrom: &rolloutsv1alpha1.ArgumentValueFrom{FieldRef: &rolloutsv1alpha1.FieldRef{FieldPath: "metadata.name"}}},
		},
	}
}

// waitRun waits for the Rollout's AnalysisRun of a kind and returns it.
func waitRun(t *testing.T, ro *rolloutsv1alpha1.Rollout, kind rolloutsv1alpha1.AnalysisKind) *rolloutsv1alpha1.AnalysisRun {
	t.Helper()
	var found *rolloutsv1alpha1.AnalysisRun
	testenv.Eventually(t, "analysis run "+string(kind), func() (bool, string) {
		var list rolloutsv1alpha1.AnalysisRunList
		if err := k8s.List(context.Background(), &list, client.InNamespace(ro.Namespace),
			client.MatchingLabels{rolloutsv1alpha1.LabelRollout: ro.Name, rolloutsv1alpha1.LabelAnalysisKind: string(kind)}); err != nil {
			return false, err.Error()
		}
		for i := range list.Items {
			if !list.Items[i].Spec.Terminate && !list.Items[i].Status.Phase.Completed() {
				found = &list.Items[i]
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d runs, none running", len(list.Items))
	})
	return found
}

func setRunPhase(t *testing.T, run *rolloutsv1alpha1.AnalysisRun, phase rolloutsv1alpha1.AnalysisPhase, msg string) {
	t.Helper()
	run.Status.Phase, run.Status.Message = phase, msg
	if err := k8s.Status().Update(context.Background(), run); err != nil {
		t.Fatal(err)
	}
}

// TestStepAnalysis: an analysis step creates an AnalysisRun from the
// template with its arguments resolved, holds the release until the run
// succeeds; in the next release a failed run aborts it, naming the run
// and its message.
func TestStepAnalysis(t *testing.T) {
	cs, ro := start(t, 4, setWeight(25), rolloutsv1alpha1.CanaryStep{Analysis: analysisOn("success-rate")}, setWeight(50))
	if err := k8s.Create(context.Background(), successRate(cs.Namespace)); err != nil {
		t.Fatal(err)
	}
	setImage(t, cs, "app:2")
	run := waitRun(t, ro, rolloutsv1alpha1.AnalysisKindStep)
	// The run is created before the status that records it is written.
	testenv.Eventually(t, "status records the analysis run", func() (bool, string) {
		get(t, ro)
		return len(ro.Status.AnalysisRuns) == 1, fmt.Sprintf("%+v", ro.Status.AnalysisRuns)
	})
	args := map[string]string{}
	for _, a := range run.Spec.Args {
		args[a.Name] = ptr.Deref(a.Value, "<none>")
	}
	if args["revision"] != ro.Status.CanaryRevision || args["service"] != "web" || args["window"] != "1m" {
		t.Fatalf("run args %v, want revision %s, service web, window 1m", args, ro.Status.CanaryRevision)
	}
	if len(run.Spec.Metrics) != 1 || !metav1.IsControlledBy(run, ro) {
		t.Fatalf("run %+v", run)
	}
	if ptr.Deref(ro.Status.CurrentStepIndex, -1) != 1 || ro.Status.CanaryReplicas != 1 || len(ro.Status.AnalysisRuns) != 1 {
		t.Fatalf("while the analysis runs: %+v", ro.Status)
	}
	setRunPhase(t, run, rolloutsv1alpha1.AnalysisPhaseSuccessful, "")
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseHealthy)

	// The next release fails its analysis.
	setImage(t, cs, "app:3")
	run = waitRun(t, ro, rolloutsv1alpha1.AnalysisKindStep)
	setRunPhase(t, run, rolloutsv1alpha1.AnalysisPhaseFailed, "success-rate: 0.62 is not >= 0.99")
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseDegraded)
	if !strings.Contains(ro.Status.Message, "0.62") || !strings.Contains(ro.Status.AbortMessage, run.Name) ||
		!meta.IsStatusConditionTrue(ro.Status.Conditions, rolloutsv1alpha1.ConditionAborted) {
		t.Fatalf("aborted by the analysis: message %q status %+v", ro.Status.Message, ro.Status)
	}
	testenv.Eventually(t, "every pod back on the stable revision", func() (bool, string) {
		counts, _ := revisions(t, cs)
		return counts[ro.Status.StableRevision] == 4, ""
	})
}

// TestAnalysisTemplateMissing: a run that cannot be built is an error:
// the release aborts rather than go on without evidence.
func TestAnalysisTemplateMissing(t *testing.T) {
	cs, ro := start(t, 2, setWeight(50), rolloutsv1alpha1.CanaryStep{Analysis: analysisOn("nowhere")})
	setImage(t, cs, "app:2")
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseDegraded)
	if !strings.Contains(ro.Status.AbortMessage, "AnalysisTemplate nowhere") {
		t.Fatalf("abort message %q", ro.Status.AbortMessage)
	}
}

// TestBackgroundAnalysisTerminatedAtPromotion: the background run is
// terminated (spec.terminate) once the release is promoted.
func TestBackgroundAnalysisTerminatedAtPromotion(t *testing.T) {
	cs, ro := start(t, 2, setWeight(50), pause())
	if err := k8s.Create(context.Background(), successRate(cs.Namespace)); err != nil {
		t.Fatal(err)
	}
	testenv.Update(t, k8s, ro, func(r *rolloutsv1alpha1.Rollout) {
		r.Spec.Strategy.Canary.Analysis = &rolloutsv1alpha1.BackgroundAnalysis{RolloutAnalysis: *analysisOn("success-rate")}
	})
	setImage(t, cs, "app:2")
	run := waitRun(t, ro, rolloutsv1alpha1.AnalysisKindBackground)
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhasePaused)
	action(t, ro, rolloutsv1alpha1.ActionPromote)
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseHealthy)
	testenv.Eventually(t, "background run terminated", func() (bool, string) {
		get(t, run)
		return run.Spec.Terminate, ""
	})
	// A Rollout's runs go with it.
	if len(run.OwnerReferences) != 1 || run.OwnerReferences[0].UID != ro.UID {
		t.Fatalf("run owners %+v", run.OwnerReferences)
	}
}
