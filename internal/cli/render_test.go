package cli

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/revision"
)

var testNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func demoCloneSet() *appsv1alpha1.CloneSet {
	part := intstr.FromInt32(2)
	maxUnavail := intstr.FromString("20%")
	return &appsv1alpha1.CloneSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-frontend", Namespace: "default", UID: types.UID("cs-uid"), Generation: 2,
			CreationTimestamp: metav1.NewTime(testNow.Add(-10 * time.Minute)),
		},
		Spec: appsv1alpha1.CloneSetSpec{
			Replicas: ptr.To[int32](5),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web-frontend"}},
			Template: podTemplate("nginx:1.26"),
			UpdateStrategy: appsv1alpha1.CloneSetUpdateStrategy{
				Type:           appsv1alpha1.InPlaceIfPossibleCloneSetUpdateStrategyType,
				Partition:      &part,
				MaxUnavailable: &maxUnavail,
				InPlaceUpdate:  &appsv1alpha1.InPlaceUpdateStrategy{GracePeriodSeconds: 10},
			},
		},
	}
}

func podTemplate(image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web-frontend"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: image}}},
	}
}

func mustRevision(t *testing.T, cs *appsv1alpha1.CloneSet, image string, number int64) appsv1.ControllerRevision {
	t.Helper()
	tpl := podTemplate(image)
	rev, err := revision.New(cs, appsv1alpha1.GroupVersion.WithKind("CloneSet"), map[string]string{appsv1alpha1.LabelWorkload: "CloneSet"}, &tpl, number, nil)
	if err != nil {
		t.Fatal(err)
	}
	return *rev
}

type podOpt func(*corev1.Pod)

func mkPod(cs *appsv1alpha1.CloneSet, name, rev, node, ip string, restarts int32, opts ...podOpt) corev1.Pod {
	p := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: cs.Namespace,
			Labels: map[string]string{
				"app": "web-frontend", revision.LabelRevisionHash: rev,
				appsv1alpha1.LabelLifecycleState: string(appsv1alpha1.LifecycleStateNormal),
			},
			CreationTimestamp: metav1.NewTime(testNow.Add(-9 * time.Minute)),
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: appsv1alpha1.GroupVersion.String(), Kind: "CloneSet", Name: cs.Name, UID: cs.UID,
				Controller: ptr.To(true),
			}},
		},
		Spec: corev1.PodSpec{NodeName: node, ReadinessGates: []corev1.PodReadinessGate{{ConditionType: inplace.GateType}}},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: ip,
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodReady, Status: corev1.ConditionTrue},
				{Type: inplace.GateType, Status: corev1.ConditionTrue},
			},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "nginx", Ready: true, RestartCount: restarts}},
		},
	}
	for _, o := range opts {
		o(&p)
	}
	return p
}

// draining marks a pod as being updated in place: gate False, not ready.
func draining(t *testing.T, target string) podOpt {
	return func(p *corev1.Pod) {
		raw, err := json.Marshal(inplace.State{Revision: target, Phase: inplace.PhaseDraining, Since: metav1.NewTime(testNow.Add(-3 * time.Second))})
		if err != nil {
			t.Fatal(err)
		}
		p.Annotations = map[string]string{appsv1alpha1.AnnotationInPlaceUpdateState: string(raw)}
		p.Labels[appsv1alpha1.LabelLifecycleState] = string(appsv1alpha1.LifecycleStateUpdating)
		p.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionFalse},
			{Type: inplace.GateType, Status: corev1.ConditionFalse},
		}
	}
}

func done(t *testing.T, target string) podOpt {
	return func(p *corev1.Pod) {
		raw, err := json.Marshal(inplace.State{Revision: target, Phase: inplace.PhaseDone})
		if err != nil {
			t.Fatal(err)
		}
		p.Annotations = map[string]string{appsv1alpha1.AnnotationInPlaceUpdateState: string(raw)}
	}
}

// midUpdate is the demo CloneSet during its in-place update: revision 1
// (nginx:1.25) and 2 (nginx:1.26); pods a and b updated, c draining, d and
// e kept by the partition.
func midUpdate(t *testing.T) Snapshot {
	cs := demoCloneSet()
	r1 := mustRevision(t, cs, "nginx:1.25", 1)
	r2 := mustRevision(t, cs, "nginx:1.26", 2)
	cs.Status = appsv1alpha1.CloneSetStatus{
		ObservedGeneration: 2, Replicas: 5, ReadyReplicas: 4, AvailableReplicas: 4,
		UpdatedReplicas: 2, UpdatedReadyReplicas: 2, UpdatedAvailableReplicas: 2, ExpectedUpdatedReplicas: 3,
		CurrentRevision: r1.Name, UpdateRevision: r2.Name,
		Conditions: []metav1.Condition{
			{Type: appsv1alpha1.ConditionProgressing, Status: metav1.ConditionTrue, Reason: appsv1alpha1.ReasonUpdating, Message: "2 of 3\nupdated", LastTransitionTime: metav1.NewTime(testNow.Add(-20 * time.Second))},
			{Type: appsv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: appsv1alpha1.ReasonUpdating, Message: "updating", LastTransitionTime: metav1.NewTime(testNow.Add(-20 * time.Second))},
			{Type: appsv1alpha1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: appsv1alpha1.ReasonUpdating, LastTransitionTime: metav1.NewTime(testNow.Add(-20 * time.Second))},
		},
	}
	pods := []corev1.Pod{
		// Deliberately unsorted.
		mkPod(cs, "web-frontend-eeeee", r1.Name, "node-4", "127.1.4.2", 0),
		mkPod(cs, "web-frontend-ccccc", r1.Name, "node-2", "127.1.2.2", 0, draining(t, r2.Name)),
		mkPod(cs, "web-frontend-bbbbb", r2.Name, "node-1", "127.1.1.2", 1, done(t, r2.Name)),
		mkPod(cs, "web-frontend-aaaaa", r2.Name, "node-0", "127.1.0.2", 1, done(t, r2.Name)),
		mkPod(cs, "web-frontend-ddddd", r1.Name, "node-3", "127.1.3.2", 0),
	}
	return Snapshot{Now: testNow, CloneSet: cs, Revisions: []appsv1.ControllerRevision{r2, r1}, Pods: pods}
}

func render(t *testing.T, s Snapshot) string {
	t.Helper()
	var b bytes.Buffer
	if err := Render(&b, s); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// fields splits a table line into its whitespace-separated cells.
func fields(line string) string { return strings.Join(strings.Fields(line), " ") }

// lineWith returns the (whitespace-normalised) line starting with prefix.
func lineWith(t *testing.T, out, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(fields(l), prefix) {
			return fields(l)
		}
	}
	t.Fatalf("no line starting with %q in:\n%s", prefix, out)
	return ""
}

func TestRenderMidUpdate(t *testing.T) {
	s := midUpdate(t)
	out := render(t, s)
	r1, r2 := s.Revisions[1].Name, s.Revisions[0].Name
	h1, h2 := strings.TrimPrefix(r1, "web-frontend-"), strings.TrimPrefix(r2, "web-frontend-")

	for _, want := range []string{
		"CloneSet: default/web-frontend",
		"Replicas: 5 desired | 5 current | 4 ready | 4 available | 2 updated (2 ready) | 3 expected updated",
		"Strategy: InPlaceIfPossible, maxUnavailable 20%, in-place grace period 10s",
		"Partition: 2",
		"Paused: false",
		"Current Revision: " + r1,
		"Update Revision: " + r2,
		"Progress: [##-..] updated 2/3 (partition 2 keeps 2 on the old revision); 1 updating in place",
		// Conditions in a fixed order, messages on one line.
		"TYPE STATUS REASON AGE MESSAGE",
		"Ready False Updating 20s updating",
		"Reconciling True Updating 20s -",
		"Progressing True Updating 20s 2 of 3 updated",
		// Revisions oldest first, with roles and pod counts.
		"NAME REVISION ROLE IMAGES PODS",
		r1 + " 1 current nginx:1.25 3",
		r2 + " 2 update nginx:1.26 2",
		"NAME REVISION STATUS READY GATE IN-PLACE LIFECYCLE NODE IP RESTARTS AGE",
	} {
		if !strings.Contains(normalise(out), want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Status: not yet observed") {
		t.Errorf("observed status reported as unobserved:\n%s", out)
	}

	// Pods: by revision (oldest first), then name.
	var podLines []string
	inPods := false
	for _, l := range strings.Split(out, "\n") {
		if l == "Pods:" {
			inPods = true
			continue
		}
		if inPods && strings.HasPrefix(strings.TrimSpace(l), "web-frontend-") {
			podLines = append(podLines, fields(l))
		}
	}
	want := []string{
		"web-frontend-ccccc " + h1 + " Running False False Draining Updating node-2 127.1.2.2 0 9m",
		"web-frontend-ddddd " + h1 + " Running True True - Normal node-3 127.1.3.2 0 9m",
		"web-frontend-eeeee " + h1 + " Running True True - Normal node-4 127.1.4.2 0 9m",
		"web-frontend-aaaaa " + h2 + " Running True True Done Normal node-0 127.1.0.2 1 9m",
		"web-frontend-bbbbb " + h2 + " Running True True Done Normal node-1 127.1.1.2 1 9m",
	}
	if strings.Join(podLines, "\n") != strings.Join(want, "\n") {
		t.Errorf("pod rows:\n%s\nwant:\n%s", strings.Join(podLines, "\n"), strings.Join(want, "\n"))
	}

	// Deterministic: same snapshot, same bytes, whatever the input order.
	s2 := midUpdate(t)
	s2.Pods[0], s2.Pods[4] = s2.Pods[4], s2.Pods[0]
	s2.Revisions[0], s2.Revisions[1] = s2.Revisions[1], s2.Revisions[0]
	if out2 := render(t, s2); out2 != out {
		t.Errorf("output depends on input order:\n%s\nvs\n%s", out, out2)
	}
}

// normalise collapses runs of spaces so assertions do not depend on
// column widths.
func normalise(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = fields(l)
	}
	return strings.Join(lines, "\n")
}

func TestRenderDone(t *testing.T) {
	s := midUpdate(t)
	cs := s.CloneSet
	cs.Status.UpdatedReplicas, cs.Status.UpdatedReadyReplicas, cs.Status.ReadyReplicas, cs.Status.AvailableReplicas = 3, 3, 5, 5
	s.Pods[1] = mkPod(cs, "web-frontend-ccccc", s.Revisions[0].Name, "node-2", "127.1.2.2", 1, done(t, s.Revisions[0].Name))
	out := render(t, s)
	if got := lineWith(t, out, "Progress:"); got != "Progress: [###..] updated 3/3 (partition 2 keeps 2 on the old revision)" {
		t.Errorf("progress line %q", got)
	}
	if got := lineWith(t, out, s.Revisions[1].Name); !strings.HasSuffix(got, " 2") {
		t.Errorf("old revision should have 2 pods: %q", got)
	}
	if got := lineWith(t, out, s.Revisions[0].Name); !strings.HasSuffix(got, " 3") {
		t.Errorf("update revision should have 3 pods: %q", got)
	}
}

func TestRenderEdgeCases(t *testing.T) {
	t.Run("unobserved generation, no partition, paused, no pods", func(t *testing.T) {
		cs := demoCloneSet()
		cs.Spec.UpdateStrategy.Partition = nil
		cs.Spec.UpdateStrategy.Paused = true
		cs.Generation = 3
		cs.Status.ObservedGeneration = 2
		out := render(t, Snapshot{Now: testNow, CloneSet: cs})
		for _, want := range []string{
			"Status: not yet observed for generation 3 (observed 2)",
			"Progress: [-----] updated 0/5; paused",
			"Current Revision: -",
		} {
			if !strings.Contains(normalise(out), want) {
				t.Errorf("missing %q in:\n%s", want, out)
			}
		}
		if !regexp.MustCompile(`(?m)^Pods:\n  \(none\)$`).MatchString(out) {
			t.Errorf("expected an empty pod list:\n%s", out)
		}
	})
	t.Run("percent partition", func(t *testing.T) {
		cs := demoCloneSet()
		p := intstr.FromString("50%")
		cs.Spec.UpdateStrategy.Partition = &p
		cs.Status.ObservedGeneration = 0
		out := render(t, Snapshot{Now: testNow, CloneSet: cs})
		// 50% of 5 rounds up to 3, as the controller does.
		if !strings.Contains(normalise(out), "Partition: 50% (3 pods)") ||
			!strings.Contains(normalise(out), "updated 0/2 (partition 50% keeps 3 on the old revision)") {
			t.Errorf("percent partition:\n%s", out)
		}
	})
	t.Run("pod of an unknown revision and a terminating pod", func(t *testing.T) {
		s := midUpdate(t)
		s.Pods = append(s.Pods, mkPod(s.CloneSet, "web-frontend-zzzzz", "web-frontend-gone", "node-0", "127.1.0.9", 0, func(p *corev1.Pod) {
			p.DeletionTimestamp = ptr.To(metav1.NewTime(testNow))
		}))
		out := render(t, s)
		if got := lineWith(t, out, "web-frontend-gone"); got != "web-frontend-gone ? - ? 1" {
			t.Errorf("unknown revision row %q", got)
		}
		if got := lineWith(t, out, "web-frontend-zzzzz"); !strings.HasPrefix(got, "web-frontend-zzzzz gone Terminating") {
			t.Errorf("terminating pod row %q", got)
		}
	})
	t.Run("no CloneSet", func(t *testing.T) {
		if err := Render(&bytes.Buffer{}, Snapshot{}); err == nil {
			t.Error("expected an error")
		}
	})
}

func TestRenderList(t *testing.T) {
	s := midUpdate(t)
	other := demoCloneSet()
	other.Name = "api"
	other.Spec.UpdateStrategy.Partition = nil
	other.Status.Conditions = []metav1.Condition{{Type: appsv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: appsv1alpha1.ReasonAvailable}}
	var b bytes.Buffer
	if err := RenderList(&b, testNow, []appsv1alpha1.CloneSet{*s.CloneSet, *other}); err != nil {
		t.Fatal(err)
	}
	want := "NAME DESIRED UPDATED READY AVAILABLE STRATEGY PARTITION STATUS AGE\n" +
		"api 5 0/0 0 0 InPlaceIfPossible 0 Available 10m\n" +
		"web-frontend 5 2/3 4 4 InPlaceIfPossible 2 Updating 10m\n"
	if got := normalise(b.String()); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	b.Reset()
	if err := RenderList(&b, testNow, nil); err != nil || b.String() != "No CloneSets found.\n" {
		t.Errorf("empty list: %q, %v", b.String(), err)
	}
}

func TestDisplayName(t *testing.T) {
	for in, want := range map[string]string{
		"drover":                    "drover",
		"/usr/local/bin/drover":     "drover",
		"bin/kubectl-drover":        "kubectl drover",
		"/opt/bin/kubectl-drover":   "kubectl drover",
		`C:\bin\kubectl-drover.exe`: "kubectl drover",
	} {
		if got := DisplayName(strings.ReplaceAll(in, `\`, "/")); got != want {
			t.Errorf("DisplayName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestProgressLine(t *testing.T) {
	cases := []struct {
		name                        string
		partition                   *intstr.IntOrString
		replicas, updated, expected int32
		want                        string
	}{
		{"fresh, all on the update revision", ptr.To(intstr.FromInt32(2)), 5, 5, 3,
			"[#####] updated 5/5 (partition 2: no pod on an old revision to keep)"},
		{"update started", ptr.To(intstr.FromInt32(2)), 5, 0, 3,
			"[---..] updated 0/3 (partition 2 keeps 2 on the old revision)"},
		{"partition raised after the update", ptr.To(intstr.FromInt32(4)), 5, 3, 1,
			"[###..] updated 3, partition 4 asks for 1; 2 on old revisions"},
		{"no partition, done", nil, 5, 5, 5, "[#####] updated 5/5"},
		{"large, scaled bar", nil, 100, 50, 100, "[" + strings.Repeat("#", 20) + strings.Repeat("-", 20) + "] updated 50/100"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cs := demoCloneSet()
			cs.Spec.Replicas = ptr.To(tc.replicas)
			cs.Spec.UpdateStrategy.Partition = tc.partition
			cs.Status = appsv1alpha1.CloneSetStatus{ObservedGeneration: cs.Generation, Replicas: tc.replicas,
				UpdatedReplicas: tc.updated, UpdatedReadyReplicas: tc.updated, ExpectedUpdatedReplicas: tc.expected}
			if got := progressLine(cs, nil); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}
