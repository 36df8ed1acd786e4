package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

// isAnalysisRunType reports whether s names the AnalysisRun resource.
func isAnalysisRunType(s string) bool {
	switch strings.ToLower(s) {
	case "analysisrun", "analysisruns", "ar", "analysisrun.rollouts.drover.dev", "analysisruns.rollouts.drover.dev":
		return true
	}
	return false
}

// RenderAnalysisRunList writes one line per AnalysisRun.
func RenderAnalysisRunList(w io.Writer, now time.Time, items []rolloutsv1alpha1.AnalysisRun) error {
	if len(items) == 0 {
		_, err := fmt.Fprintln(w, "No AnalysisRuns found.")
		return err
	}
	items = sortedByName(items, func(r *rolloutsv1alpha1.AnalysisRun) metav1.Object { return r })
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPHASE\tAGE\tMESSAGE")
	for i := range items {
		r := &items[i]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, runPhase(r.Status.Phase), age(now, r.CreationTimestamp), orDash(oneLine(r.Status.Message)))
	}
	return tw.Flush()
}

// runPhase is a run's or metric's phase; not yet set means Pending.
func runPhase(p rolloutsv1alpha1.AnalysisPhase) string {
	if p == "" {
		return string(rolloutsv1alpha1.AnalysisPhasePending)
	}
	return string(p)
}

// RenderAnalysisRun writes the `get analysisrun NAME` view: the run's
// phase and message, then every metric with its phase, counts, how it is
// judged and its measurements (oldest first).
func RenderAnalysisRun(w io.Writer, now time.Time, run *rolloutsv1alpha1.AnalysisRun) error {
	if run == nil {
		return fmt.Errorf("render: no AnalysisRun")
	}
	st := &run.Status
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }
	p("AnalysisRun:\t%s/%s\n", run.Namespace, run.Name)
	if ro := run.Labels[rolloutsv1alpha1.LabelRollout]; ro != "" {
		var parts []string
		if k := run.Labels[rolloutsv1alpha1.LabelAnalysisKind]; k != "" {
			parts = append(parts, k+" analysis")
		}
		if rev := run.Labels[rolloutsv1alpha1.LabelAnalysisRevision]; rev != "" {
			parts = append(parts, "revision "+rev)
		}
		extra := ""
		if len(parts) > 0 {
			extra = " (" + strings.Join(parts, ", ") + ")"
		}
		p("Rollout:\t%s%s\n", ro, extra)
	}
	p("Phase:\t%s\n", runPhase(st.Phase))
	if st.Message != "" {
		p("Message:\t%s\n", oneLine(st.Message))
	}
	if st.StartedAt != nil {
		p("Started:\t%s (%s ago)\n", st.StartedAt.UTC().Format(time.RFC3339), age(now, *st.StartedAt))
	}
	if run.Spec.Terminate {
		p("Terminated:\ttrue (metrics still running were stopped)\n")
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	// Metrics, in the spec's order; results of metrics the spec lacks last.
	results := map[string]*rolloutsv1alpha1.MetricResult{}
	for i := range st.MetricResults {
		results[st.MetricResults[i].Name] = &st.MetricResults[i]
	}
	type metric struct {
		spec   *rolloutsv1alpha1.Metric
		result *rolloutsv1alpha1.MetricResult
		name   string
	}
	var metrics []metric
	inSpec := map[string]bool{}
	for i := range run.Spec.Metrics {
		m := &run.Spec.Metrics[i]
		inSpec[m.Name] = true
		metrics = append(metrics, metric{spec: m, result: results[m.Name], name: m.Name})
	}
	for i := range st.MetricResults {
		if r := &st.MetricResults[i]; !inSpec[r.Name] {
			metrics = append(metrics, metric{result: r, name: r.Name})
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Metrics:")
	if len(metrics) == 0 {
		fmt.Fprintln(w, "  (none)")
		return nil
	}
	for i, m := range metrics {
		if i > 0 {
			fmt.Fprintln(w)
		}
		r := m.result
		if r == nil {
			r = &rolloutsv1alpha1.MetricResult{Name: m.name}
		}
		dry := ""
		if r.DryRun || (m.spec != nil && dryRun(run.Spec.DryRun, m.name)) {
			dry = " (dry run: does not fail the run)"
		}
		fmt.Fprintf(w, "  %s: %s%s\n", m.name, runPhase(r.Phase), dry)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		p := func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }
		if r.Message != "" {
			p("    Message:\t%s\n", oneLine(r.Message))
		}
		if m.spec != nil {
			p("    Provider:\t%s\n", metricProvider(m.spec.Provider))
			if c := metricCondition(m.spec); c != "" {
				p("    Condition:\t%s\n", c)
			}
			if l := metricLimits(m.spec); l != "" {
				p("    Limits:\t%s\n", l)
			}
		}
		p("    Counts:\t%d measured: %d successful, %d failed, %d inconclusive, %d error\n",
			r.Count, r.Successful, r.Failed, r.Inconclusive, r.Error)
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(r.Measurements) == 0 {
			fmt.Fprintln(w, "    Measurements: (none yet)")
			continue
		}
		fmt.Fprintln(w, "    Measurements:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "      TIME\tPHASE\tVALUE\tMESSAGE")
		for _, ms := range r.Measurements {
			fmt.Fprintf(tw, "      %s\t%s\t%s\t%s\n", clock(ms.StartedAt), runPhase(ms.Phase), orDash(oneLine(ms.Value)), orDash(oneLine(ms.Message)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func dryRun(sel []rolloutsv1alpha1.MetricSelector, name string) bool {
	for _, s := range sel {
		if s.MetricName == "*" || s.MetricName == name {
			return true
		}
	}
	return false
}

// metricProvider names a metric's provider.
func metricProvider(p rolloutsv1alpha1.MetricProvider) string {
	switch {
	case p.Prometheus != nil:
		return "prometheus " + p.Prometheus.Address
	case p.Web != nil:
		return "web"
	case p.Job != nil:
		return "job"
	case p.Datadog != nil:
		return "datadog"
	case p.NewRelic != nil:
		return "newRelic"
	case p.Builtin != nil:
		src := p.Builtin.Source
		if src == "" {
			src = "http"
		}
		return fmt.Sprintf("builtin %s (%s, %s)", p.Builtin.Name, src, p.Builtin.Address)
	}
	return "-"
}

// metricCondition says how a measurement is judged.
func metricCondition(m *rolloutsv1alpha1.Metric) string {
	var parts []string
	if m.SuccessCondition != "" {
		parts = append(parts, "success when "+oneLine(m.SuccessCondition))
	}
	if m.FailureCondition != "" {
		parts = append(parts, "failure when "+oneLine(m.FailureCondition))
	}
	if tr := m.ThresholdRange; tr != nil {
		parts = append(parts, fmt.Sprintf("success within [%s, %s]", ptr.Deref(tr.Min, "-∞"), ptr.Deref(tr.Max, "+∞")))
	}
	return strings.Join(parts, "; ")
}

// metricLimits is the metric's schedule and tolerances, as set.
func metricLimits(m *rolloutsv1alpha1.Metric) string {
	var parts []string
	if m.InitialDelay != nil {
		parts = append(parts, "initial delay "+m.InitialDelay.Duration.String())
	}
	if m.Interval != nil {
		parts = append(parts, "every "+m.Interval.Duration.String())
	}
	if m.Count != nil {
		parts = append(parts, fmt.Sprintf("count %d", *m.Count))
	}
	if m.FailureLimit != nil {
		parts = append(parts, fmt.Sprintf("failure limit %d", *m.FailureLimit))
	}
	if m.InconclusiveLimit != nil {
		parts = append(parts, fmt.Sprintf("inconclusive limit %d", *m.InconclusiveLimit))
	}
	if m.ConsecutiveErrorLimit != nil {
		parts = append(parts, fmt.Sprintf("consecutive error limit %d", *m.ConsecutiveErrorLimit))
	}
	if m.ConsecutiveSuccessLimit != nil {
		parts = append(parts, fmt.Sprintf("consecutive success limit %d", *m.ConsecutiveSuccessLimit))
	}
	return strings.Join(parts, ", ")
}
