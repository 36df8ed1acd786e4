// Package job measures a metric by running a Job: the measurement is in
// progress until the Job finishes; a Job that succeeds measures 1, one
// that fails measures 0 (the default condition, result == 1, makes it
// Successful or Failed).
//
// The Job is named <run>-<metric>-<n> (n: the measurement's number; a name
// longer than 63 characters is shortened with a hash), lives in the run's
// namespace and is owned by the run, so it goes with it. It carries the
// label rollouts.drover.dev/analysis-run-uid and the annotations
// rollouts.drover.dev/analysis-run and rollouts.drover.dev/metric.
package job

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/analysis"
)

// Labels and annotations of a metric's Job.
const (
	LabelRunUID        = "rollouts.drover.dev/analysis-run-uid"
	AnnotationRun      = "rollouts.drover.dev/analysis-run"
	AnnotationMetric   = "rollouts.drover.dev/metric"
	maxNameLen         = 63
	hashLen            = 8
	successCondition   = "result == 1"
	measuredSuccessful = 1.0
	measuredFailed     = 0.0
)

// Provider runs Jobs. Client reads Jobs from the manager's cache (the
// controller watches the Jobs runs own) and writes them.
type Provider struct {
	Client client.Client
}

// DefaultConditions: a Job succeeds when it measures 1.
func (Provider) DefaultConditions(*rolloutsv1alpha1.Metric) analysis.Conditions {
	return analysis.Conditions{Success: successCondition}
}

// Measure creates the measurement's Job, or reads how it went.
func (p Provider) Measure(ctx context.Context, m *rolloutsv1alpha1.Metric, env *analysis.Env) (any, error) {
	spec := m.Provider.Job
	if spec == nil {
		return nil, errors.New("metric has no job provider")
	}
	run := env.Run
	name := Name(run.Name, m.Name, env.Index)
	var job batchv1.Job
	err := p.Client.Get(ctx, types.NamespacedName{Namespace: run.Namespace, Name: name}, &job)
	switch {
	case apierrors.IsNotFound(err):
		if err := p.create(ctx, run, m, spec, name); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("job %s created: %w", name, analysis.ErrInProgress)
	case err != nil:
		return nil, fmt.Errorf("reading job %s: %w", name, err)
	}
	if !metav1.IsControlledBy(&job, run) {
		return nil, fmt.Errorf("job %s exists and does not belong to analysis run %s", name, run.Name)
	}
	switch {
	case finished(&job, batchv1.JobComplete), finished(&job, batchv1.JobSuccessCriteriaMet):
		return measuredSuccessful, nil
	case finished(&job, batchv1.JobFailed), finished(&job, batchv1.JobFailureTarget):
		return measuredFailed, nil
	}
	return nil, fmt.Errorf("job %s running (%d active, %d succeeded, %d failed): %w",
		name, job.Status.Active, job.Status.Succeeded, job.Status.Failed, analysis.ErrInProgress)
}

func (p Provider) create(ctx context.Context, run *rolloutsv1alpha1.AnalysisRun, m *rolloutsv1alpha1.Metric, spec *rolloutsv1alpha1.JobMetric, name string) error {
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: run.Namespace,
			Labels:      maps.Clone(spec.Metadata.Labels),
			Annotations: maps.Clone(spec.Metadata.Annotations),
		},
		Spec: *spec.Spec.DeepCopy(),
	}
	if job.Labels == nil {
		job.Labels = map[string]string{}
	}
	if job.Annotations == nil {
		job.Annotations = map[string]string{}
	}
	job.Labels[LabelRunUID] = string(run.UID)
	job.Annotations[AnnotationRun] = run.Name
	job.Annotations[AnnotationMetric] = m.Name
	if job.Spec.Template.Spec.RestartPolicy == "" {
		// A Job's pods may not restart Always, a pod's default.
		job.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
	}
	if err := controllerutil.SetControllerReference(run, job, p.Client.Scheme()); err != nil {
		return fmt.Errorf("owning job %s: %w", name, err)
	}
	if err := p.Client.Create(ctx, job); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating job %s: %w", name, err)
	}
	return nil
}

// Stop deletes the run's Jobs that have not finished (the run ended).
func (p Provider) Stop(ctx context.Context, run *rolloutsv1alpha1.AnalysisRun) error {
	var list batchv1.JobList
	if err := p.Client.List(ctx, &list, client.InNamespace(run.Namespace), client.MatchingLabels{LabelRunUID: string(run.UID)}); err != nil {
		return fmt.Errorf("listing the jobs of analysis run %s: %w", run.Name, err)
	}
	var errs []error
	for i := range list.Items {
		job := &list.Items[i]
		if job.DeletionTimestamp != nil || finished(job, batchv1.JobComplete) || finished(job, batchv1.JobFailed) {
			continue
		}
		if err := p.Client.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting job %s: %w", job.Name, err))
		}
	}
	return errors.Join(errs...)
}

func finished(job *batchv1.Job, t batchv1.JobConditionType) bool {
	for _, c := range job.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// Name is the Job of a run's metric's n-th measurement: <run>-<metric>-<n>,
// lowercased, characters other than [a-z0-9-] as "-", and shortened with
// a hash of the whole to 63 characters (Jobs label their pods with their
// name).
func Name(run, metric string, n int32) string {
	stem := sanitize(run + "-" + metric)
	suffix := "-" + strconv.Itoa(int(n))
	if len(stem)+len(suffix) <= maxNameLen {
		return stem + suffix
	}
	sum := sha256.Sum256([]byte(run + "\x00" + metric))
	h := hex.EncodeToString(sum[:])[:hashLen]
	cut := strings.TrimRight(stem[:maxNameLen-len(suffix)-hashLen-1], "-")
	return cut + "-" + h + suffix
}

func sanitize(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			b[i] = '-'
		}
	}
	return strings.Trim(string(b), "-")
}
