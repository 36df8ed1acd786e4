package job_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/analysis"
	"github.com/drover-dev/drover/internal/analysis/analysistest"
	"github.com/drover-dev/drover/internal/analysis/provider/job"
)

func scheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := rolloutsv1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func jobMetric() *rolloutsv1alpha1.Metric {
	return &rolloutsv1alpha1.Metric{Name: "smoke", Provider: rolloutsv1alpha1.MetricProvider{Job: &rolloutsv1alpha1.JobMetric{
		Metadata: rolloutsv1alpha1.JobMetadata{Labels: map[string]string{"team": "a"}, Annotations: map[string]string{"note": "x"}},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "smoke", Image: "curl", Args: []string{"http://web-canary/health"}}}}}},
	}}}
}

func setCondition(t *testing.T, c client.Client, name string, ct batchv1.JobConditionType) {
	t.Helper()
	var j batchv1.Job
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: analysistest.Namespace, Name: name}, &j); err != nil {
		t.Fatal(err)
	}
	j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: ct, Status: corev1.ConditionTrue})
	if err := c.Status().Update(context.Background(), &j); err != nil {
		t.Fatal(err)
	}
}

func TestMeasure(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientBuilder().WithScheme(scheme(t)).WithStatusSubresource(&batchv1.Job{}).Build()
	p := job.Provider{Client: c}
	m := jobMetric()
	env := analysistest.Env(m, nil)

	_, err := p.Measure(ctx, m, env)
	if !errors.Is(err, analysis.ErrInProgress) || !strings.Contains(err.Error(), "job run-1-smoke-1 created") {
		t.Fatalf("first call: %v", err)
	}
	var j batchv1.Job
	if err := c.Get(ctx, types.NamespacedName{Namespace: analysistest.Namespace, Name: "run-1-smoke-1"}, &j); err != nil {
		t.Fatal(err)
	}
	if !metav1.IsControlledBy(&j, env.Run) || j.Labels["team"] != "a" || j.Labels[job.LabelRunUID] != "uid-1" ||
		j.Annotations["note"] != "x" || j.Annotations[job.AnnotationMetric] != "smoke" || j.Annotations[job.AnnotationRun] != "run-1" {
		t.Errorf("job metadata %+v", j.ObjectMeta)
	}
	if j.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q", j.Spec.Template.Spec.RestartPolicy)
	}
	if _, err := p.Measure(ctx, m, env); !errors.Is(err, analysis.ErrInProgress) || !strings.Contains(err.Error(), "running") {
		t.Fatalf("second call: %v", err)
	}
	setCondition(t, c, "run-1-smoke-1", batchv1.JobComplete)
	if v, err := p.Measure(ctx, m, env); err != nil || v != 1.0 {
		t.Fatalf("complete: %v, %v", v, err)
	}

	// The next measurement is another Job; a failed Job measures 0.
	env.Index = 2
	if _, err := p.Measure(ctx, m, env); !errors.Is(err, analysis.ErrInProgress) {
		t.Fatal(err)
	}
	setCondition(t, c, "run-1-smoke-2", batchv1.JobFailed)
	v, err := p.Measure(ctx, m, env)
	if err != nil || v != 0.0 {
		t.Fatalf("failed: %v, %v", v, err)
	}
	ev, _ := analysis.NewEvaluator()
	verdict, err := ev.Judge(p.DefaultConditions(m), v)
	if err != nil || verdict.Phase != rolloutsv1alpha1.AnalysisPhaseFailed {
		t.Errorf("a failed Job must fail the measurement: %+v %v", verdict, err)
	}
	verdict, _ = ev.Judge(p.DefaultConditions(m), 1.0)
	if verdict.Phase != rolloutsv1alpha1.AnalysisPhaseSuccessful {
		t.Errorf("a complete Job must succeed: %+v", verdict)
	}
}

func TestForeignJob(t *testing.T) {
	ctx := context.Background()
	other := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "run-1-smoke-1", Namespace: analysistest.Namespace}}
	c := fake.NewClientBuilder().WithScheme(scheme(t)).WithObjects(other).Build()
	m := jobMetric()
	if _, err := (job.Provider{Client: c}).Measure(ctx, m, analysistest.Env(m, nil)); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Fatalf("a Job of someone else must not be read as the measurement: %v", err)
	}
}

func TestStop(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientBuilder().WithScheme(scheme(t)).WithStatusSubresource(&batchv1.Job{}).Build()
	p := job.Provider{Client: c}
	m := jobMetric()
	env := analysistest.Env(m, nil)
	for i := int32(1); i <= 2; i++ {
		env.Index = i
		_, _ = p.Measure(ctx, m, env)
	}
	setCondition(t, c, "run-1-smoke-1", batchv1.JobComplete)
	if err := p.Stop(ctx, env.Run); err != nil {
		t.Fatal(err)
	}
	var list batchv1.JobList
	if err := c.List(ctx, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "run-1-smoke-1" {
		t.Errorf("Stop must delete only the running Jobs: %d left", len(list.Items))
	}
}

func TestName(t *testing.T) {
	if got := job.Name("run-1", "Smoke_Test", 3); got != "run-1-smoke-test-3" {
		t.Errorf("sanitized: %q", got)
	}
	long := strings.Repeat("web", 20) + "-7f9c8d-1a2b3c-step-2"
	a, b := job.Name(long, "smoke", 12), job.Name(long, "smoke2", 12)
	if len(a) > 63 || !strings.HasSuffix(a, "-12") || a == b {
		t.Errorf("long names: %q (%d), %q", a, len(a), b)
	}
	if job.Name(long, "smoke", 12) != a {
		t.Error("not stable")
	}
}
