package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/util/intstr"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/podstate"
	"github.com/drover-dev/drover/internal/revision"
)

// Snapshot is everything `get cloneset` shows, read at one moment. Render
// is a pure function of it.
type Snapshot struct {
	// Now is the reference time for ages.
	Now      time.Time
	CloneSet *appsv1alpha1.CloneSet
	// Revisions are the CloneSet's ControllerRevisions, in any order.
	Revisions []appsv1.ControllerRevision
	// Pods are the CloneSet's pods, in any order.
	Pods []corev1.Pod
}

// conditionRank is the position a condition is shown at; unknown types
// follow, by name.
func conditionRank(t string) int {
	switch t {
	case appsv1alpha1.ConditionReady:
		return 0
	case appsv1alpha1.ConditionReconciling:
		return 1
	case appsv1alpha1.ConditionStalled:
		return 2
	case appsv1alpha1.ConditionProgressing:
		return 3
	case appsv1alpha1.ConditionInPlaceUpdateBlocked:
		return 4
	}
	return 5
}

// maxBarWidth caps the progress bar; up to it, one cell is one pod.
const maxBarWidth = 40

// Render writes the snapshot as the human-readable `get cloneset` view.
func Render(w io.Writer, s Snapshot) error {
	cs := s.CloneSet
	if cs == nil {
		return fmt.Errorf("render: snapshot has no CloneSet")
	}
	st := cs.Status
	revs := sortedRevisions(s.Revisions)
	revNumber := make(map[string]int64, len(revs))
	for i := range revs {
		revNumber[revs[i].Name] = revs[i].Revision
	}

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }

	p("CloneSet:\t%s/%s\n", cs.Namespace, cs.Name)
	if st.ObservedGeneration < cs.Generation {
		p("Status:\tnot yet observed for generation %d (observed %d)\n", cs.Generation, st.ObservedGeneration)
	}
	p("Replicas:\t%d desired | %d current | %d ready | %d available | %d updated (%d ready) | %d expected updated\n",
		desired(cs), st.Replicas, st.ReadyReplicas, st.AvailableReplicas, st.UpdatedReplicas, st.UpdatedReadyReplicas, st.ExpectedUpdatedReplicas)
	p("Strategy:\t%s\n", strategyLine(cs))
	p("Partition:\t%s\n", partitionText(cs))
	p("Paused:\t%t\n", cs.Spec.UpdateStrategy.Paused)
	p("Current Revision:\t%s\n", orDash(st.CurrentRevision))
	p("Update Revision:\t%s\n", orDash(st.UpdateRevision))
	p("Progress:\t%s\n", progressLine(cs, s.Pods))
	if err := tw.Flush(); err != nil {
		return err
	}

	// Conditions.
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Conditions:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(st.Conditions) == 0 {
		fmt.Fprintln(tw, "  (none)")
	} else {
		fmt.Fprintln(tw, "  TYPE\tSTATUS\tREASON\tAGE\tMESSAGE")
		for _, c := range sortedConditions(st.Conditions) {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, orDash(c.Reason), age(s.Now, c.LastTransitionTime), orDash(oneLine(c.Message)))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	// Revisions.
	podsPerRev := map[string]int{}
	for i := range s.Pods {
		podsPerRev[s.Pods[i].Labels[revision.LabelRevisionHash]]++
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Revisions:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tREVISION\tROLE\tIMAGES\tPODS")
	known := map[string]bool{}
	for i := range revs {
		r := &revs[i]
		known[r.Name] = true
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%d\n", r.Name, r.Revision, role(cs, r.Name), revisionImages(r), podsPerRev[r.Name])
	}
	var unknown []string
	for name := range podsPerRev {
		if !known[name] {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	for _, name := range unknown {
		fmt.Fprintf(tw, "  %s\t?\t%s\t?\t%d\n", orDash(name), role(cs, name), podsPerRev[name])
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	// Pods.
	pods := append([]corev1.Pod(nil), s.Pods...)
	sort.SliceStable(pods, func(i, j int) bool {
		ri, rj := podRevOrder(&pods[i], revNumber), podRevOrder(&pods[j], revNumber)
		if ri != rj {
			return ri < rj
		}
		return pods[i].Name < pods[j].Name
	})
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Pods:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(pods) == 0 {
		fmt.Fprintln(tw, "  (none)")
	} else {
		fmt.Fprintln(tw, "  NAME\tREVISION\tSTATUS\tREADY\tGATE\tIN-PLACE\tLIFECYCLE\tNODE\tIP\tRESTARTS\tAGE")
		for i := range pods {
			pod := &pods[i]
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n",
				pod.Name,
				shortRevision(cs.Name, pod.Labels[revision.LabelRevisionHash]),
				podStatus(pod),
				podReady(pod),
				gate(pod),
				inPlacePhase(pod),
				orDash(pod.Labels[appsv1alpha1.LabelLifecycleState]),
				orDash(pod.Spec.NodeName),
				orDash(pod.Status.PodIP),
				podstate.Restarts(pod),
				age(s.Now, pod.CreationTimestamp),
			)
		}
	}
	return tw.Flush()
}

// RenderList writes a one-line-per-CloneSet table.
func RenderList(w io.Writer, now time.Time, items []appsv1alpha1.CloneSet) error {
	if len(items) == 0 {
		_, err := fmt.Fprintln(w, "No CloneSets found.")
		return err
	}
	items = sortedByName(items, func(cs *appsv1alpha1.CloneSet) metav1.Object { return cs })
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDESIRED\tUPDATED\tREADY\tAVAILABLE\tSTRATEGY\tPARTITION\tSTATUS\tAGE")
	for i := range items {
		cs := &items[i]
		status := "-"
		for _, c := range cs.Status.Conditions {
			if c.Type == appsv1alpha1.ConditionReady {
				status = c.Reason
			}
		}
		part := "0"
		if p := cs.Spec.UpdateStrategy.Partition; p != nil {
			part = p.String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%d/%d\t%d\t%d\t%s\t%s\t%s\t%s\n", cs.Name, desired(cs),
			cs.Status.UpdatedReplicas, cs.Status.ExpectedUpdatedReplicas, cs.Status.ReadyReplicas, cs.Status.AvailableReplicas,
			orDash(string(cs.Spec.UpdateStrategy.Type)), part, orDash(status), age(now, cs.CreationTimestamp))
	}
	return tw.Flush()
}

func desired(cs *appsv1alpha1.CloneSet) int32 {
	if cs.Spec.Replicas == nil {
		return 1
	}
	return *cs.Spec.Replicas
}

func strategyLine(cs *appsv1alpha1.CloneSet) string {
	us := cs.Spec.UpdateStrategy
	parts := []string{orDash(string(us.Type))}
	if us.MaxUnavailable != nil {
		parts = append(parts, "maxUnavailable "+us.MaxUnavailable.String())
	}
	if us.MaxSurge != nil {
		parts = append(parts, "maxSurge "+us.MaxSurge.String())
	}
	if us.InPlaceUpdate != nil && us.InPlaceUpdate.GracePeriodSeconds > 0 {
		parts = append(parts, fmt.Sprintf("in-place grace period %ds", us.InPlaceUpdate.GracePeriodSeconds))
	}
	return strings.Join(parts, ", ")
}

// keptByPartition is how many pods the partition keeps on old revisions.
func keptByPartition(cs *appsv1alpha1.CloneSet) int32 {
	p := cs.Spec.UpdateStrategy.Partition
	if p == nil {
		return 0
	}
	n := desired(cs)
	v, err := intstr.GetScaledValueFromIntOrPercent(p, int(n), true)
	if err != nil || v < 0 {
		return 0
	}
	return min(int32(v), n)
}

func partitionText(cs *appsv1alpha1.CloneSet) string {
	p := cs.Spec.UpdateStrategy.Partition
	if p == nil {
		return "0"
	}
	if p.Type == intstr.String {
		return fmt.Sprintf("%s (%d pods)", p.String(), keptByPartition(cs))
	}
	return p.String()
}

// progressLine is a bar (one cell per pod: '#' updated, '-' still to
// update, '.' kept on the old revision by the partition) and a sentence
// such as "updated 3/3 (partition 2 keeps 2 on the old revision)".
func progressLine(cs *appsv1alpha1.CloneSet, pods []corev1.Pod) string {
	st := cs.Status
	n := desired(cs)
	kept := keptByPartition(cs)
	expected := n - kept
	if st.ObservedGeneration >= cs.Generation && st.ObservedGeneration > 0 {
		expected = st.ExpectedUpdatedReplicas
		kept = max(n-expected, 0)
	}
	updated := st.UpdatedReplicas
	// Pods on older revisions right now.
	old := max(st.Replicas-updated, 0)

	var b strings.Builder
	if n > 0 {
		cells := int(n)
		scale := 1.0
		if cells > maxBarWidth {
			scale = float64(maxBarWidth) / float64(cells)
			cells = maxBarWidth
		}
		upd := min(int(float64(updated)*scale+0.5), cells)
		keep := min(int(float64(kept)*scale+0.5), cells-upd)
		b.WriteString("[")
		b.WriteString(strings.Repeat("#", upd))
		b.WriteString(strings.Repeat("-", cells-upd-keep))
		b.WriteString(strings.Repeat(".", keep))
		b.WriteString("] ")
	}
	partition := ""
	if p := cs.Spec.UpdateStrategy.Partition; p != nil {
		partition = p.String()
	}
	switch {
	case updated <= expected:
		fmt.Fprintf(&b, "updated %d/%d", updated, expected)
		if kept > 0 {
			fmt.Fprintf(&b, " (partition %s keeps %d on the old revision)", partition, kept)
		}
	case old == 0:
		// Created (or scaled) after the partition was set: nothing old to keep.
		fmt.Fprintf(&b, "updated %d/%d (partition %s: no pod on an old revision to keep)", updated, updated, partition)
	default:
		// The partition was raised after pods were updated; they are not moved back.
		fmt.Fprintf(&b, "updated %d, partition %s asks for %d; %d on old revisions", updated, partition, expected, old)
	}
	var notes []string
	if updated > 0 && st.UpdatedReadyReplicas < updated {
		notes = append(notes, fmt.Sprintf("%d/%d updated ready", st.UpdatedReadyReplicas, updated))
	}
	inFlight := 0
	for i := range pods {
		if inplace.InFlight(&pods[i]) {
			inFlight++
		}
	}
	if inFlight > 0 {
		notes = append(notes, fmt.Sprintf("%d updating in place", inFlight))
	}
	if cs.Spec.UpdateStrategy.Paused {
		notes = append(notes, "paused")
	}
	if len(notes) > 0 {
		b.WriteString("; " + strings.Join(notes, ", "))
	}
	return b.String()
}

func sortedConditions(in []metav1.Condition) []metav1.Condition {
	out := append([]metav1.Condition(nil), in...)
	sort.SliceStable(out, func(i, j int) bool {
		ri, rj := conditionRank(out[i].Type), conditionRank(out[j].Type)
		if ri != rj {
			return ri < rj
		}
		return out[i].Type < out[j].Type
	})
	return out
}

func sortedRevisions(in []appsv1.ControllerRevision) []appsv1.ControllerRevision {
	out := append([]appsv1.ControllerRevision(nil), in...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Revision != out[j].Revision {
			return out[i].Revision < out[j].Revision
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func role(cs *appsv1alpha1.CloneSet, rev string) string {
	var roles []string
	if rev != "" && rev == cs.Status.CurrentRevision {
		roles = append(roles, "current")
	}
	if rev != "" && rev == cs.Status.UpdateRevision {
		roles = append(roles, "update")
	}
	if len(roles) == 0 {
		return "-"
	}
	return strings.Join(roles, ",")
}

// revisionImages lists the images of a revision's template: "img" for a
// single container, "name=img, ..." for several.
func revisionImages(r *appsv1.ControllerRevision) string {
	t, err := revision.Template(r)
	if err != nil {
		return "?"
	}
	all := append(append([]corev1.Container(nil), t.Spec.InitContainers...), t.Spec.Containers...)
	if len(all) == 1 {
		return all[0].Image
	}
	parts := make([]string, 0, len(all))
	for _, c := range all {
		parts = append(parts, c.Name+"="+c.Image)
	}
	return strings.Join(parts, ", ")
}

// podRevOrder sorts pods by the number of their revision; pods of unknown
// revisions come last.
func podRevOrder(pod *corev1.Pod, numbers map[string]int64) int64 {
	if n, ok := numbers[pod.Labels[revision.LabelRevisionHash]]; ok {
		return n
	}
	return 1<<63 - 1
}

// shortRevision strips the CloneSet name from a revision name, leaving the hash.
func shortRevision(csName, rev string) string {
	if rev == "" {
		return "-"
	}
	if s, ok := strings.CutPrefix(rev, csName+"-"); ok && s != "" {
		return s
	}
	return rev
}

func podStatus(pod *corev1.Pod) string {
	if pod.DeletionTimestamp != nil {
		return "Terminating"
	}
	for _, c := range pod.Status.ContainerStatuses {
		if c.State.Waiting != nil && c.State.Waiting.Reason != "" {
			return c.State.Waiting.Reason
		}
	}
	if pod.Status.Phase == "" {
		return "Pending"
	}
	return string(pod.Status.Phase)
}

func podReady(pod *corev1.Pod) string {
	if c := podstate.Condition(pod, corev1.PodReady); c != nil {
		return string(c.Status)
	}
	return "-"
}

func gate(pod *corev1.Pod) string {
	if s := inplace.GateStatus(pod); s != "" {
		return string(s)
	}
	return "-"
}

func inPlacePhase(pod *corev1.Pod) string {
	s, ok := inplace.StateOf(pod)
	if !ok || s.Phase == "" {
		return "-"
	}
	return string(s.Phase)
}

func age(now time.Time, t metav1.Time) string {
	if t.IsZero() || now.IsZero() {
		return "-"
	}
	d := now.Sub(t.Time)
	if d < 0 {
		d = 0
	}
	return duration.HumanDuration(d)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// sortedByName returns a copy of items sorted by namespace, then name.
func sortedByName[T any](items []T, meta func(*T) metav1.Object) []T {
	out := append([]T(nil), items...)
	sort.Slice(out, func(i, j int) bool {
		a, b := meta(&out[i]), meta(&out[j])
		if a.GetNamespace() != b.GetNamespace() {
			return a.GetNamespace() < b.GetNamespace()
		}
		return a.GetName() < b.GetName()
	})
	return out
}
