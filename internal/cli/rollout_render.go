package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/podstate"
	"github.com/drover-dev/drover/internal/target"
)

// RolloutView is everything `get rollout` shows, read at one moment.
// RenderRolloutView is a pure function of it.
type RolloutView struct {
	// Now is the reference time for ages and pause countdowns.
	Now     time.Time
	Rollout *rolloutsv1alpha1.Rollout
	// Collected: the workload's pods and the Rollout's Services were read
	// (the fields below). Without it only the Rollout is shown.
	Collected bool
	// RevisionLabel is the pod label that carries the revision.
	RevisionLabel string
	// Pods are the workload's pods, in any order; PodsErr says why they
	// could not be read.
	Pods    []corev1.Pod
	PodsErr error
	// Services are the Rollout's Services that exist (stable and canary,
	// or active and preview); ServicesErr says why one could not be read.
	Services    []corev1.Service
	ServicesErr error
	// Color highlights the current step (ANSI bold), for a terminal.
	Color bool
}

// CollectRollout reads a Rollout with its workload's pods and its
// Services. Only a missing or unreadable Rollout is an error; the rest is
// shown as unavailable.
func CollectRollout(ctx context.Context, c client.Reader, namespace, name string, now time.Time) (RolloutView, error) {
	ro := &rolloutsv1alpha1.Rollout{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, ro); err != nil {
		if apierrors.IsNotFound(err) {
			return RolloutView{}, &rolloutNotFoundError{namespace: namespace, name: name}
		}
		return RolloutView{}, fmt.Errorf("getting rollout %s/%s: %w", namespace, name, err)
	}
	v := RolloutView{Now: now, Rollout: ro, Collected: true}

	if wl, err := target.Get(ctx, c, namespace, ro.Spec.TargetRef); err != nil {
		v.PodsErr = err
	} else {
		v.RevisionLabel = wl.RevisionLabel
		v.Pods, v.PodsErr = workloadPods(ctx, c, ro, wl)
	}

	for _, svcName := range rolloutServiceNames(ro) {
		var svc corev1.Service
		err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: svcName}, &svc)
		switch {
		case err == nil:
			v.Services = append(v.Services, svc)
		case !apierrors.IsNotFound(err):
			v.ServicesErr = fmt.Errorf("getting service %s: %w", svcName, err)
		}
	}
	return v, nil
}

// workloadPods lists the pods of a Rollout's workload: those it controls
// or, for a Deployment, those of its ReplicaSets and of the canary
// ReplicaSets the Rollout controls.
func workloadPods(ctx context.Context, c client.Reader, ro *rolloutsv1alpha1.Rollout, wl *target.Workload) ([]corev1.Pod, error) {
	ns := ro.Namespace
	owners := map[types.UID]bool{}
	if uid := wl.Object.GetUID(); uid != "" {
		owners[uid] = true
	}
	if _, ok := wl.Object.(*appsv1.Deployment); ok {
		var rss appsv1.ReplicaSetList
		if err := c.List(ctx, &rss, client.InNamespace(ns), client.MatchingLabels(wl.PodLabels)); err != nil {
			return nil, fmt.Errorf("listing replicasets: %w", err)
		}
		for i := range rss.Items {
			if ref := metav1.GetControllerOf(&rss.Items[i]); ref != nil && ref.UID != "" && (ref.UID == wl.Object.GetUID() || ref.UID == ro.UID) {
				owners[rss.Items[i].UID] = true
			}
		}
	}
	var list corev1.PodList
	if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels(wl.PodLabels)); err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	var pods []corev1.Pod
	for i := range list.Items {
		if ref := metav1.GetControllerOf(&list.Items[i]); ref != nil && owners[ref.UID] {
			pods = append(pods, list.Items[i])
		}
	}
	return pods, nil
}

// rolloutServiceNames are the distinct Services of a Rollout: those of its
// status, else those of its spec.
func rolloutServiceNames(ro *rolloutsv1alpha1.Rollout) []string {
	var names []string
	add := func(n string) {
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, r := range rolloutServiceRoles(ro) {
		add(r.name)
	}
	return names
}

type serviceRole struct{ role, name string }

// rolloutServiceRoles are the Rollout's Services with their role.
func rolloutServiceRoles(ro *rolloutsv1alpha1.Rollout) []serviceRole {
	st := &ro.Status
	stableRole, canaryRole := "stable", "canary"
	stableName, canaryName := st.StableService, st.CanaryService
	if bg := ro.Spec.Strategy.BlueGreen; bg != nil {
		stableRole, canaryRole = "active", "preview"
		if stableName == "" {
			stableName = bg.ActiveService
		}
		if canaryName == "" {
			canaryName = bg.PreviewService
		}
	} else if c := ro.Spec.Strategy.Canary; c != nil {
		if stableName == "" {
			stableName = c.StableService
		}
		if canaryName == "" {
			canaryName = c.CanaryService
		}
	}
	var out []serviceRole
	if stableName != "" {
		out = append(out, serviceRole{stableRole, stableName})
	}
	if canaryName != "" {
		out = append(out, serviceRole{canaryRole, canaryName})
	}
	return out
}

// RenderRollout writes the human-readable view of a Rollout alone.
func RenderRollout(w io.Writer, ro *rolloutsv1alpha1.Rollout) {
	_ = RenderRolloutView(w, RolloutView{Rollout: ro})
}

// RenderRolloutView writes the `get rollout` view: the Rollout's state,
// its steps (done, current, to come), its revisions with their pods, its
// Services, its AnalysisRuns and its conditions.
func RenderRolloutView(w io.Writer, v RolloutView) error {
	ro := v.Rollout
	if ro == nil {
		return fmt.Errorf("render: view has no Rollout")
	}
	st := &ro.Status
	steps := 0
	if c := ro.Spec.Strategy.Canary; c != nil {
		steps = len(c.Steps)
	}
	fmt.Fprintf(w, "Name:        %s\n", ro.Name)
	fmt.Fprintf(w, "Namespace:   %s\n", ro.Namespace)
	fmt.Fprintf(w, "Target:      %s %s\n", ro.Spec.TargetRef.Kind, ro.Spec.TargetRef.Name)
	fmt.Fprintf(w, "Strategy:    %s\n", rolloutStrategyLine(ro))
	fmt.Fprintf(w, "Phase:       %s\n", orDash(string(st.Phase)))
	if st.Message != "" {
		fmt.Fprintf(w, "Message:     %s\n", oneLine(st.Message))
	}
	if st.ObservedGeneration < ro.Generation {
		fmt.Fprintf(w, "Status:      not yet observed for generation %d (observed %d)\n", ro.Generation, st.ObservedGeneration)
	}
	if st.CurrentStepIndex != nil {
		fmt.Fprintf(w, "Step:        %d/%d\n", *st.CurrentStepIndex, steps)
	}
	verified := "-"
	if st.VerifiedWeight != nil {
		verified = fmt.Sprint(*st.VerifiedWeight)
	}
	fmt.Fprintf(w, "Weight:      %d%% desired, %s%% verified\n", st.DesiredWeight, verified)
	fmt.Fprintf(w, "Stable:      %s  %d/%d ready  (service %s)\n", orDash(st.StableRevision), st.StableReadyReplicas, st.StableReplicas, orDash(st.StableService))
	if st.CanaryRevision != "" {
		fmt.Fprintf(w, "Canary:      %s  %d/%d ready  (service %s)\n", st.CanaryRevision, st.CanaryReadyReplicas, st.CanaryReplicas, orDash(st.CanaryService))
	}
	if st.AbortedRevision != "" {
		fmt.Fprintf(w, "Aborted:     %s (retry with: drover retry %s)\n", st.AbortedRevision, ro.Name)
	}
	for _, pc := range st.PauseConditions {
		fmt.Fprintf(w, "Paused:      %s since %s, %s\n", pc.Reason, clock(pc.StartTime), pauseUntil(v.Now, pc))
	}
	for i, tc := range st.TrackedConfigs {
		label := "Configs:    "
		if i > 0 {
			label = "            "
		}
		snap := tc.Snapshot
		switch snap {
		case "":
			snap = "(not found)"
		case tc.Name:
			snap = "(used as it is)"
		}
		fmt.Fprintf(w, "%s %s %s → %s\n", label, tc.Kind, tc.Name, snap)
	}
	renderSteps(w, v)
	if v.Collected {
		if err := renderRolloutPods(w, v); err != nil {
			return err
		}
		if err := renderRolloutServices(w, v); err != nil {
			return err
		}
	}
	if err := renderRolloutRuns(w, st.AnalysisRuns); err != nil {
		return err
	}
	return renderConditions(w, v.Now, st.Conditions)
}

// renderSteps lists the canary steps: ✔ done, ▶ current (✖ where a
// release was aborted), blank to come; the current step carries its pause
// reasons, an analysis step its run's phase.
func renderSteps(w io.Writer, v RolloutView) {
	ro, st := v.Rollout, &v.Rollout.Status
	c := ro.Spec.Strategy.Canary
	if c == nil || (len(c.Steps) == 0 && c.Analysis == nil) {
		return
	}
	fmt.Fprintln(w, "Steps:")
	cur := int(ptr.Deref(st.CurrentStepIndex, -1))
	aborted := st.AbortedRevision != "" && st.AbortedRevision == st.CanaryRevision
	width := len(fmt.Sprint(max(len(c.Steps)-1, 0)))
	for i, s := range c.Steps {
		mark := " "
		switch {
		case cur > i || (st.CanaryRevision == "" && st.CurrentStepIndex == nil):
			mark = "✔"
		case cur == i && aborted:
			mark = "✖"
		case cur == i:
			mark = "▶"
		}
		var notes []string
		if cur == i && st.CanaryRevision != "" {
			if aborted {
				notes = append(notes, "aborted")
			}
			for _, pc := range st.PauseConditions {
				notes = append(notes, fmt.Sprintf("paused (%s) %s", pc.Reason, pauseUntil(v.Now, pc)))
			}
		}
		if s.Analysis != nil {
			if run := lastRun(st.AnalysisRuns, rolloutsv1alpha1.AnalysisKindStep, ptr.To(int32(i))); run != nil {
				notes = append(notes, runNote(run))
			}
		}
		line := fmt.Sprintf("  %s %*d  %s", mark, width, i, describeStep(s))
		if len(notes) > 0 {
			line += "  ◀ " + strings.Join(notes, "; ")
		}
		if v.Color && mark == "▶" {
			line = "\x1b[1m" + line + "\x1b[0m"
		}
		fmt.Fprintln(w, line)
	}
	if a := c.Analysis; a != nil {
		line := fmt.Sprintf("  ↻ background analysis %s from step %d", templateList(&a.RolloutAnalysis), ptr.Deref(a.StartingStep, 0))
		if run := lastRun(st.AnalysisRuns, rolloutsv1alpha1.AnalysisKindBackground, nil); run != nil {
			line += "  ◀ " + runNote(run)
		}
		fmt.Fprintln(w, line)
	}
}

// lastRun is the newest run of a kind (and step) in the status.
func lastRun(runs []rolloutsv1alpha1.RolloutAnalysisRunStatus, kind rolloutsv1alpha1.AnalysisKind, step *int32) *rolloutsv1alpha1.RolloutAnalysisRunStatus {
	for i := len(runs) - 1; i >= 0; i-- {
		r := &runs[i]
		if r.Kind == kind && (step == nil || (r.Step != nil && *r.Step == *step)) {
			return r
		}
	}
	return nil
}

func runNote(r *rolloutsv1alpha1.RolloutAnalysisRunStatus) string {
	return fmt.Sprintf("run %s: %s", r.Name, orDash(string(r.Phase)))
}

func templateList(a *rolloutsv1alpha1.RolloutAnalysis) string {
	names := make([]string, 0, len(a.Templates))
	for _, t := range a.Templates {
		n := t.TemplateName
		if t.ClusterScope {
			n += " (cluster)"
		}
		names = append(names, n)
	}
	return strings.Join(names, ", ")
}

// renderRolloutPods groups the workload's pods under their revision:
// stable (active) first, then canary (preview), then any other.
func renderRolloutPods(w io.Writer, v RolloutView) error {
	ro, st := v.Rollout, &v.Rollout.Status
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Pods:")
	if v.PodsErr != nil {
		fmt.Fprintf(w, "  unavailable: %v\n", v.PodsErr)
		return nil
	}
	stableRole, canaryRole := "stable", "canary"
	if ro.Spec.Strategy.BlueGreen != nil {
		stableRole, canaryRole = "active", "preview"
	}
	byRev := map[string][]corev1.Pod{}
	for _, p := range v.Pods {
		rev := p.Labels[v.RevisionLabel]
		byRev[rev] = append(byRev[rev], p)
	}
	type group struct{ title, rev, note string }
	var groups []group
	seen := map[string]bool{}
	add := func(title, rev, note string) {
		if rev != "" && !seen[rev] {
			seen[rev] = true
			groups = append(groups, group{title, rev, note})
		}
	}
	add(stableRole, st.StableRevision, "")
	add(canaryRole, st.CanaryRevision, "")
	if st.ScaleDownRevision != "" {
		note := ""
		if st.ScaleDownAt != nil {
			note = ", scaled down at " + clock(*st.ScaleDownAt)
		}
		add("old", st.ScaleDownRevision, note)
	}
	var others []string
	for rev := range byRev {
		if !seen[rev] {
			others = append(others, rev)
		}
	}
	sort.Strings(others)
	for _, rev := range others {
		if rev == "" {
			groups = append(groups, group{"without revision label", "", ""})
			continue
		}
		add("revision", rev, "")
	}
	if len(groups) == 0 {
		fmt.Fprintln(w, "  (none)")
		return nil
	}
	for _, g := range groups {
		pods := byRev[g.rev]
		sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
		ready := 0
		for i := range pods {
			if podReady(&pods[i]) == string(corev1.ConditionTrue) {
				ready++
			}
		}
		title := "  " + g.title
		if g.rev != "" {
			title += " " + g.rev
		}
		fmt.Fprintf(w, "%s  (%s, %d ready%s)\n", title, plural(len(pods), "pod"), ready, g.note)
		if len(pods) == 0 {
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "    NAME\tREADY\tSTATUS\tNODE\tRESTARTS\tAGE")
		for i := range pods {
			p := &pods[i]
			fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%d\t%s\n", p.Name, podReady(p), podStatus(p), orDash(p.Spec.NodeName), podstate.Restarts(p), age(v.Now, p.CreationTimestamp))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// renderRolloutServices lists the Rollout's Services and the revision each
// selects (its selector's revision label; "-": every revision).
func renderRolloutServices(w io.Writer, v RolloutView) error {
	roles := rolloutServiceRoles(v.Rollout)
	if len(roles) == 0 && v.ServicesErr == nil {
		return nil
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Services:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ROLE\tNAME\tSELECTS")
	for _, r := range roles {
		selects := "(not found)"
		for i := range v.Services {
			if svc := &v.Services[i]; svc.Name == r.name {
				selects = orDash(svc.Spec.Selector[v.RevisionLabel])
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", r.role, r.name, selects)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if v.ServicesErr != nil {
		fmt.Fprintf(w, "  unavailable: %v\n", v.ServicesErr)
	}
	return nil
}

func renderRolloutRuns(w io.Writer, runs []rolloutsv1alpha1.RolloutAnalysisRunStatus) error {
	if len(runs) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Analysis Runs:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tKIND\tSTEP\tREVISION\tPHASE\tMESSAGE")
	for _, r := range runs {
		step := "-"
		if r.Step != nil {
			step = fmt.Sprint(*r.Step)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Kind, step, orDash(r.Revision), orDash(string(r.Phase)), orDash(oneLine(r.Message)))
	}
	return tw.Flush()
}

// renderConditions writes a Conditions section like `get cloneset`'s.
func renderConditions(w io.Writer, now time.Time, conds []metav1.Condition) error {
	if len(conds) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Conditions:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TYPE\tSTATUS\tREASON\tAGE\tMESSAGE")
	for _, c := range sortedConditions(conds) {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, orDash(c.Reason), age(now, c.LastTransitionTime), orDash(oneLine(c.Message)))
	}
	return tw.Flush()
}

// rolloutStrategyLine summarises the strategy: its kind, number of steps
// and traffic routers.
func rolloutStrategyLine(ro *rolloutsv1alpha1.Rollout) string {
	s := ro.Spec.Strategy
	switch {
	case s.Canary != nil:
		parts := []string{"canary, " + plural(len(s.Canary.Steps), "step")}
		if tr := s.Canary.TrafficRouting; tr != nil {
			var routers []string
			if g := tr.GatewayAPI; g != nil {
				var routes []string
				for _, r := range g.HTTPRoutes {
					routes = append(routes, "HTTPRoute "+r.Name)
				}
				for _, r := range g.GRPCRoutes {
					routes = append(routes, "GRPCRoute "+r.Name)
				}
				routers = append(routers, "gatewayAPI ("+strings.Join(routes, ", ")+")")
			}
			if i := tr.Istio; i != nil {
				routers = append(routers, "istio (VirtualService "+i.VirtualService.Name+")")
			}
			if n := tr.NGINX; n != nil {
				routers = append(routers, "nginx (Ingress "+n.StableIngress+")")
			}
			if m := tr.SMI; m != nil {
				routers = append(routers, "smi (root Service "+m.RootService+")")
			}
			parts = append(parts, "traffic routing "+strings.Join(routers, ", "))
		} else {
			parts = append(parts, "no traffic router (weight is the canary's share of pods)")
		}
		return strings.Join(parts, ", ")
	case s.BlueGreen != nil:
		bg := s.BlueGreen
		parts := []string{"blueGreen", "active service " + bg.ActiveService}
		if bg.PreviewService != "" {
			parts = append(parts, "preview service "+bg.PreviewService)
		}
		switch {
		case !ptr.Deref(bg.AutoPromotionEnabled, true):
			parts = append(parts, "promotion by hand")
		case ptr.Deref(bg.AutoPromotionSeconds, 0) > 0:
			parts = append(parts, fmt.Sprintf("auto-promotion after %ds", *bg.AutoPromotionSeconds))
		default:
			parts = append(parts, "auto-promotion")
		}
		if bg.PrePromotionAnalysis != nil {
			parts = append(parts, "pre-promotion analysis "+templateList(bg.PrePromotionAnalysis))
		}
		if bg.PostPromotionAnalysis != nil {
			parts = append(parts, "post-promotion analysis "+templateList(bg.PostPromotionAnalysis))
		}
		return strings.Join(parts, ", ")
	}
	return "-"
}

func describeStep(s rolloutsv1alpha1.CanaryStep) string {
	switch {
	case s.SetWeight != nil:
		return fmt.Sprintf("setWeight %d%%", *s.SetWeight)
	case s.Pause != nil && s.Pause.Duration != nil:
		return "pause " + s.Pause.Duration.Duration.String()
	case s.Pause != nil:
		return "pause (until promoted)"
	case s.SetCanaryScale != nil && s.SetCanaryScale.Replicas != nil:
		return fmt.Sprintf("setCanaryScale %d replicas", *s.SetCanaryScale.Replicas)
	case s.SetCanaryScale != nil && s.SetCanaryScale.Weight != nil:
		return fmt.Sprintf("setCanaryScale %d%%", *s.SetCanaryScale.Weight)
	case s.SetCanaryScale != nil:
		return "setCanaryScale matchTrafficWeight"
	case s.SetHeaderRoute != nil:
		if len(s.SetHeaderRoute.Match) == 0 {
			return "setHeaderRoute " + s.SetHeaderRoute.Name + " (removed)"
		}
		return "setHeaderRoute " + s.SetHeaderRoute.Name + " " + routeMatches(s.SetHeaderRoute.Match)
	case s.SetMirrorRoute != nil:
		m := s.SetMirrorRoute
		if len(m.Match) == 0 && m.Percentage == nil {
			return "setMirrorRoute " + m.Name + " (removed)"
		}
		out := fmt.Sprintf("setMirrorRoute %s %d%%", m.Name, ptr.Deref(m.Percentage, 100))
		if len(m.Match) > 0 {
			out += " of " + routeMatches(m.Match)
		}
		return out
	case s.Analysis != nil:
		return "analysis " + templateList(s.Analysis)
	}
	return "?"
}

// routeMatches is "header X-Canary=yes, cookie beta^=on" (= exact, ^=
// prefix, ~= regex).
func routeMatches(ms []rolloutsv1alpha1.RouteMatch) string {
	parts := make([]string, 0, len(ms))
	for _, m := range ms {
		what := "header " + m.HeaderName
		if m.CookieName != "" {
			what = "cookie " + m.CookieName
		}
		switch {
		case m.Value.Prefix != "":
			what += "^=" + m.Value.Prefix
		case m.Value.Regex != "":
			what += "~=" + m.Value.Regex
		default:
			what += "=" + m.Value.Exact
		}
		parts = append(parts, what)
	}
	return strings.Join(parts, ", ")
}

// pauseUntil is "until promoted", or "until 10:05:12" with the time left
// when now is known.
func pauseUntil(now time.Time, pc rolloutsv1alpha1.PauseCondition) string {
	if pc.Until == nil {
		return "until promoted"
	}
	out := "until " + clock(*pc.Until)
	if !now.IsZero() {
		if left := pc.Until.Sub(now); left > 0 {
			out += " (" + duration.HumanDuration(left) + " left)"
		}
	}
	return out
}

// clock is a time of day in UTC, as the Rollout views show times.
func clock(t metav1.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("15:04:05")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
