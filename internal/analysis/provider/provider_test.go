package provider_test

import (
	"context"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/analysis"
	"github.com/drover-dev/drover/internal/analysis/provider"
)

func TestFor(t *testing.T) {
	s := provider.New(nil)
	for _, tt := range []struct {
		p    rolloutsv1alpha1.MetricProvider
		want string
	}{
		{rolloutsv1alpha1.MetricProvider{Prometheus: &rolloutsv1alpha1.PrometheusMetric{}}, provider.Prometheus},
		{rolloutsv1alpha1.MetricProvider{Web: &rolloutsv1alpha1.WebMetric{}}, provider.Web},
		{rolloutsv1alpha1.MetricProvider{Job: &rolloutsv1alpha1.JobMetric{Spec: batchv1.JobSpec{}}}, provider.Job},
		{rolloutsv1alpha1.MetricProvider{Datadog: &rolloutsv1alpha1.DatadogMetric{}}, provider.Datadog},
		{rolloutsv1alpha1.MetricProvider{NewRelic: &rolloutsv1alpha1.NewRelicMetric{}}, provider.NewRelic},
		{rolloutsv1alpha1.MetricProvider{Builtin: &rolloutsv1alpha1.BuiltinMetric{}}, provider.Builtin},
	} {
		name, p, err := s.For(&rolloutsv1alpha1.Metric{Provider: tt.p})
		if err != nil || name != tt.want || p == nil {
			t.Errorf("%s: %q %v %v", tt.want, name, p, err)
		}
	}
	if _, _, err := s.For(&rolloutsv1alpha1.Metric{}); err == nil {
		t.Error("a metric without provider was accepted")
	}
	s.Datadog = nil
	if _, _, err := s.For(&rolloutsv1alpha1.Metric{Provider: rolloutsv1alpha1.MetricProvider{Datadog: &rolloutsv1alpha1.DatadogMetric{}}}); err == nil ||
		!strings.Contains(err.Error(), "not available") {
		t.Errorf("unavailable provider: %v", err)
	}
}

func TestConditions(t *testing.T) {
	s := provider.New(nil)
	job := &rolloutsv1alpha1.Metric{Provider: rolloutsv1alpha1.MetricProvider{Job: &rolloutsv1alpha1.JobMetric{}}}
	builtin := &rolloutsv1alpha1.Metric{Provider: rolloutsv1alpha1.MetricProvider{Builtin: &rolloutsv1alpha1.BuiltinMetric{Name: "request-duration-p99"}}}
	prom := &rolloutsv1alpha1.Metric{Provider: rolloutsv1alpha1.MetricProvider{Prometheus: &rolloutsv1alpha1.PrometheusMetric{}}}
	own := &rolloutsv1alpha1.Metric{SuccessCondition: "result < 0.2", Provider: builtin.Provider}
	for _, tt := range []struct {
		m    *rolloutsv1alpha1.Metric
		want analysis.Conditions
	}{
		{job, analysis.Conditions{Success: "result == 1"}},
		{builtin, analysis.Conditions{Success: "result <= 0.5"}},
		{prom, analysis.Conditions{}},
		{own, analysis.Conditions{Success: "result < 0.2"}},
	} {
		_, p, _ := s.For(tt.m)
		got, err := provider.Conditions(tt.m, p)
		if err != nil || got.Success != tt.want.Success || got.Failure != tt.want.Failure {
			t.Errorf("%+v: %+v %v, want %+v", tt.m.Provider, got, err, tt.want)
		}
	}
}

func TestStopWithoutJobs(t *testing.T) {
	s := provider.Set{}
	if err := s.Stop(context.Background(), &rolloutsv1alpha1.AnalysisRun{}); err != nil {
		t.Fatal(err)
	}
}
