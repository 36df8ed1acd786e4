package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/revision"
)

func TestRolloutName(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
		err  string
	}{
		{[]string{"web"}, "web", ""},
		{[]string{"rollout/web"}, "web", ""},
		{[]string{"ro", "web"}, "web", ""},
		{[]string{"cloneset/web"}, "", "is not a rollout"},
		{[]string{"cs", "web"}, "", "is not a rollout type"},
		{[]string{"rollout/"}, "", "is not a rollout"},
		{nil, "", "missing the rollout"},
	} {
		got, err := rolloutName(c.args)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v: error %v, want %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%v: %q, %v; want %q", c.args, got, err, c.want)
		}
	}
}

func TestRenderRollout(t *testing.T) {
	start := metav1.NewTime(time.Date(2026, 12, 2, 10, 4, 12, 0, time.UTC))
	ro := &rolloutsv1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: rolloutsv1alpha1.RolloutSpec{
			TargetRef: rolloutsv1alpha1.TargetRef{Kind: "CloneSet", Name: "web"},
			Strategy: rolloutsv1alpha1.RolloutStrategy{Canary: &rolloutsv1alpha1.CanaryStrategy{Steps: []rolloutsv1alpha1.CanaryStep{
				{SetWeight: ptr.To[int32](10)}, {Pause: &rolloutsv1alpha1.PauseStep{}}, {SetWeight: ptr.To[int32](50)},
			}}},
		},
		Status: rolloutsv1alpha1.RolloutStatus{
			Phase: rolloutsv1alpha1.RolloutPhasePaused, Message: "paused at step 1", CurrentStepIndex: ptr.To[int32](1),
			StableRevision: "web-1", CanaryRevision: "web-2", DesiredWeight: 10, VerifiedWeight: ptr.To[int32](10),
			StableReplicas: 9, StableReadyReplicas: 9, CanaryReplicas: 1, CanaryReadyReplicas: 1,
			StableService: "web-stable", CanaryService: "web-canary",
			PauseConditions: []rolloutsv1alpha1.PauseCondition{{Reason: rolloutsv1alpha1.PauseReasonCanaryPauseStep, StartTime: start}},
			TrackedConfigs: []rolloutsv1alpha1.TrackedConfig{{Kind: "ConfigMap", Name: "app", Snapshot: "app-0a1b2c3d4e"},
				{Kind: "ConfigMap", Name: "opt"}, {Kind: "Secret", Name: "db-99", Snapshot: "db-99"}},
		},
	}
	var b bytes.Buffer
	RenderRollout(&b, ro)
	for _, want := range []string{
		"Configs:     ConfigMap app → app-0a1b2c3d4e\n             ConfigMap opt → (not found)\n             Secret db-99 → (used as it is)\n",
		"Phase:       Paused", "Step:        1/3", "Weight:      10% desired, 10% verified",
		"Stable:      web-1  9/9 ready  (service web-stable)", "Canary:      web-2  1/1 ready  (service web-canary)",
		"Paused:      CanaryPauseStep since 10:04:12, until promoted",
		"✔ 0  setWeight 10%", "▶ 1  pause (until promoted)", "  2  setWeight 50%",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in:\n%s", want, b.String())
		}
	}
}

// treeRollout is Rollout web on CloneSet web mid-release: stable web-1
// (2 pods), canary web-2 (1 pod), paused at a timed pause after an
// analysis step, with a background analysis.
func treeRollout() *rolloutsv1alpha1.Rollout {
	at := func(d time.Duration) *metav1.Time { return ptr.To(metav1.NewTime(testNow.Add(d))) }
	analysis := &rolloutsv1alpha1.RolloutAnalysis{Templates: []rolloutsv1alpha1.AnalysisTemplateRef{{TemplateName: "success-rate"}}}
	return &rolloutsv1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Generation: 4},
		Spec: rolloutsv1alpha1.RolloutSpec{
			TargetRef: rolloutsv1alpha1.TargetRef{APIVersion: "apps.drover.dev/v1alpha1", Kind: "CloneSet", Name: "web"},
			Strategy: rolloutsv1alpha1.RolloutStrategy{Canary: &rolloutsv1alpha1.CanaryStrategy{
				Steps: []rolloutsv1alpha1.CanaryStep{
					{SetWeight: ptr.To[int32](20)},
					{Analysis: analysis},
					{Pause: &rolloutsv1alpha1.PauseStep{Duration: &metav1.Duration{Duration: time.Minute}}},
					{SetHeaderRoute: &rolloutsv1alpha1.SetHeaderRoute{Name: "beta", Match: []rolloutsv1alpha1.RouteMatch{
						{HeaderName: "X-Beta", Value: rolloutsv1alpha1.StringMatch{Exact: "yes"}}}}},
					{SetWeight: ptr.To[int32](50)},
				},
				TrafficRouting: &rolloutsv1alpha1.TrafficRouting{GatewayAPI: &rolloutsv1alpha1.GatewayAPIRouting{HTTPRoutes: []rolloutsv1alpha1.RouteRef{{Name: "web"}}}},
				Analysis:       &rolloutsv1alpha1.BackgroundAnalysis{RolloutAnalysis: *analysis, StartingStep: ptr.To[int32](1)},
			}},
		},
		Status: rolloutsv1alpha1.RolloutStatus{
			ObservedGeneration: 4,
			Phase:              rolloutsv1alpha1.RolloutPhasePaused, Message: "paused at step 2 for 1m0s",
			StableRevision: "web-1", CanaryRevision: "web-2", CurrentStepIndex: ptr.To[int32](2),
			DesiredWeight: 20, VerifiedWeight: ptr.To[int32](20),
			Replicas: 3, StableReplicas: 2, StableReadyReplicas: 2, CanaryReplicas: 1, CanaryReadyReplicas: 1,
			StableService: "web-stable", CanaryService: "web-canary",
			PauseConditions: []rolloutsv1alpha1.PauseCondition{{Reason: rolloutsv1alpha1.PauseReasonCanaryPauseStep,
				StartTime: metav1.NewTime(testNow.Add(-20 * time.Second)), Until: at(40 * time.Second)}},
			AnalysisRuns: []rolloutsv1alpha1.RolloutAnalysisRunStatus{
				{Name: "web-web-2-abc-background", Kind: rolloutsv1alpha1.AnalysisKindBackground, Revision: "web-2", Phase: rolloutsv1alpha1.AnalysisPhaseRunning},
				{Name: "web-web-2-abc-step-1", Kind: rolloutsv1alpha1.AnalysisKindStep, Step: ptr.To[int32](1), Revision: "web-2",
					Phase: rolloutsv1alpha1.AnalysisPhaseSuccessful, Message: "all metrics\nsuccessful"},
			},
			Conditions: []metav1.Condition{
				{Type: rolloutsv1alpha1.ConditionPaused, Status: metav1.ConditionTrue, Reason: rolloutsv1alpha1.ReasonPausedStep, LastTransitionTime: *at(-20 * time.Second)},
				{Type: rolloutsv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: rolloutsv1alpha1.ReasonPausedStep, Message: "paused", LastTransitionTime: *at(-time.Minute)},
			},
		},
	}
}

// treePods are CloneSet web's pods: two stable, one canary (owned by cs).
func treePods(cs *appsv1alpha1.CloneSet) []corev1.Pod {
	return []corev1.Pod{
		mkPod(cs, "web-bbbbb", "web-1", "node-1", "127.1.1.2", 0),
		mkPod(cs, "web-ccccc", "web-2", "node-2", "127.1.2.2", 1, func(p *corev1.Pod) {
			p.Status.Conditions[0].Status = corev1.ConditionFalse
		}),
		mkPod(cs, "web-aaaaa", "web-1", "node-0", "127.1.0.2", 0),
	}
}

func treeServices() []corev1.Service {
	svc := func(name, rev string) corev1.Service {
		return corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web-frontend", revision.LabelRevisionHash: rev}}}
	}
	return []corev1.Service{svc("web-stable", "web-1"), svc("web-canary", "web-2")}
}

func TestRenderRolloutTree(t *testing.T) {
	cs := twoContainerCloneSet()
	v := RolloutView{Now: testNow, Rollout: treeRollout(), Collected: true, RevisionLabel: revision.LabelRevisionHash,
		Pods: treePods(cs), Services: treeServices()}
	var b bytes.Buffer
	if err := RenderRolloutView(&b, v); err != nil {
		t.Fatal(err)
	}
	out := normalise(b.String())
	for _, want := range []string{
		"Strategy: canary, 5 steps, traffic routing gatewayAPI (HTTPRoute web)",
		"Weight: 20% desired, 20% verified",
		"Paused: CanaryPauseStep since 11:59:40, until 12:00:40 (40s left)",
		// Steps: done, current (with its pause), to come; analysis runs.
		"Steps:\n✔ 0 setWeight 20%\n✔ 1 analysis success-rate ◀ run web-web-2-abc-step-1: Successful\n" +
			"▶ 2 pause 1m0s ◀ paused (CanaryPauseStep) until 12:00:40 (40s left)\n3 setHeaderRoute beta header X-Beta=yes\n4 setWeight 50%\n" +
			"↻ background analysis success-rate from step 1 ◀ run web-web-2-abc-background: Running\n",
		// Pods grouped under their revision, sorted by name.
		"Pods:\nstable web-1 (2 pods, 2 ready)\nNAME READY STATUS NODE RESTARTS AGE\n" +
			"web-aaaaa True Running node-0 0 9m\nweb-bbbbb True Running node-1 0 9m\n" +
			"canary web-2 (1 pod, 0 ready)\nNAME READY STATUS NODE RESTARTS AGE\nweb-ccccc False Running node-2 1 9m\n",
		"Services:\nROLE NAME SELECTS\nstable web-stable web-1\ncanary web-canary web-2\n",
		"Analysis Runs:\nNAME KIND STEP REVISION PHASE MESSAGE\n" +
			"web-web-2-abc-background Background - web-2 Running -\n" +
			"web-web-2-abc-step-1 Step 1 web-2 Successful all metrics successful\n",
		"Conditions:\nTYPE STATUS REASON AGE MESSAGE\nReady False PausedStep 60s paused\nPaused True PausedStep 20s -\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, b.String())
		}
	}

	// Same view, whatever the order of the pods.
	v.Pods[0], v.Pods[2] = v.Pods[2], v.Pods[0]
	var b2 bytes.Buffer
	if err := RenderRolloutView(&b2, v); err != nil || b2.String() != b.String() {
		t.Errorf("output depends on pod order (%v):\n%s", err, b2.String())
	}

	// On a terminal the current step is bold.
	v.Color = true
	b2.Reset()
	_ = RenderRolloutView(&b2, v)
	if !strings.Contains(b2.String(), "\x1b[1m  ▶ 2  pause 1m0s") {
		t.Errorf("current step not highlighted:\n%q", b2.String())
	}

	t.Run("aborted, a pod of another revision, unreadable pods", func(t *testing.T) {
		ro := treeRollout()
		ro.Status.Phase, ro.Status.AbortedRevision, ro.Status.PauseConditions = rolloutsv1alpha1.RolloutPhaseDegraded, "web-2", nil
		ro.Status.AnalysisRuns[1].Phase = rolloutsv1alpha1.AnalysisPhaseFailed
		pods := append(treePods(cs), mkPod(cs, "web-zzzzz", "web-0", "node-3", "127.1.3.2", 0))
		var b bytes.Buffer
		if err := RenderRolloutView(&b, RolloutView{Now: testNow, Rollout: ro, Collected: true, RevisionLabel: revision.LabelRevisionHash, Pods: pods}); err != nil {
			t.Fatal(err)
		}
		out := normalise(b.String())
		for _, want := range []string{
			"Aborted: web-2 (retry with: drover retry web)",
			"✔ 1 analysis success-rate ◀ run web-web-2-abc-step-1: Failed",
			"✖ 2 pause 1m0s ◀ aborted\n",
			"revision web-0 (1 pod, 1 ready)\nNAME READY STATUS NODE RESTARTS AGE\nweb-zzzzz True Running node-3 0 9m",
			"stable web-stable (not found)",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("missing %q in:\n%s", want, b.String())
			}
		}
		b.Reset()
		_ = RenderRolloutView(&b, RolloutView{Rollout: ro, Collected: true, PodsErr: errors.New("targetRef apps/v1 Deployment: kind not supported yet")})
		if !strings.Contains(b.String(), "Pods:\n  unavailable: targetRef apps/v1 Deployment: kind not supported yet\n") {
			t.Errorf("unreadable pods:\n%s", b.String())
		}
	})

	t.Run("blue-green", func(t *testing.T) {
		ro := &rolloutsv1alpha1.Rollout{
			ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "default"},
			Spec: rolloutsv1alpha1.RolloutSpec{Strategy: rolloutsv1alpha1.RolloutStrategy{BlueGreen: &rolloutsv1alpha1.BlueGreenStrategy{
				ActiveService: "api-active", PreviewService: "api-preview", AutoPromotionEnabled: ptr.To(false),
				PrePromotionAnalysis: &rolloutsv1alpha1.RolloutAnalysis{Templates: []rolloutsv1alpha1.AnalysisTemplateRef{{TemplateName: "smoke", ClusterScope: true}}},
			}}},
			Status: rolloutsv1alpha1.RolloutStatus{StableRevision: "api-1", CanaryRevision: "api-2"},
		}
		var b bytes.Buffer
		if err := RenderRolloutView(&b, RolloutView{Rollout: ro, Collected: true, RevisionLabel: revision.LabelRevisionHash}); err != nil {
			t.Fatal(err)
		}
		out := normalise(b.String())
		for _, want := range []string{
			"Strategy: blueGreen, active service api-active, preview service api-preview, promotion by hand, pre-promotion analysis smoke (cluster)",
			"active api-1 (0 pods, 0 ready)\npreview api-2 (0 pods, 0 ready)",
			"active api-active (not found)\npreview api-preview (not found)",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("missing %q in:\n%s", want, b.String())
			}
		}
		if strings.Contains(out, "Steps:") {
			t.Errorf("blue-green has no steps:\n%s", b.String())
		}
	})
}

func TestGetRolloutCommand(t *testing.T) {
	cs := twoContainerCloneSet()
	cs.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web-frontend"}}
	objs := []client.Object{treeRollout(), cs}
	for _, p := range treePods(cs) {
		objs = append(objs, p.DeepCopy())
	}
	for _, s := range treeServices() {
		objs = append(objs, s.DeepCopy())
	}
	// A pod with the labels but another owner is not the workload's.
	stray := mkPod(cs, "stray", "web-1", "node-9", "127.1.9.9", 0)
	stray.OwnerReferences = nil
	objs = append(objs, &stray)
	f := testFactory{c: fakeClient(t, objs...), ns: "default"}

	for _, args := range [][]string{{"get", "rollout", "web"}, {"get", "ro/web"}} {
		out, _, err := runCLI(t, f, "drover", args...)
		if err != nil {
			t.Fatal(err)
		}
		n := normalise(out)
		for _, want := range []string{
			"stable web-1 (2 pods, 2 ready)", "web-aaaaa True Running node-0 0", "canary web-2 (1 pod, 0 ready)",
			"stable web-stable web-1", "▶ 2 pause 1m0s",
		} {
			if !strings.Contains(n, want) {
				t.Errorf("%v: missing %q in:\n%s", args, want, out)
			}
		}
		if strings.Contains(out, "stray") || strings.Contains(out, "\x1b[") {
			t.Errorf("%v: a pod of another owner, or colour on a buffer:\n%s", args, out)
		}
	}
	if _, _, err := runCLI(t, f, "drover", "get", "rollout", "nope"); err == nil || err.Error() != `rollout "nope" not found in namespace "default"` {
		t.Errorf("missing rollout: %v", err)
	}
}

func TestGetRolloutDeploymentPods(t *testing.T) {
	labels := func(hash string) map[string]string {
		return map[string]string{"app": "api", appsv1.DefaultDeploymentUniqueLabelKey: hash}
	}
	ctl := func(apiVersion, kind, name string, uid types.UID) []metav1.OwnerReference {
		return []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid, Controller: ptr.To(true)}}
	}
	ro := &rolloutsv1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "default", UID: "ro-uid"},
		Spec: rolloutsv1alpha1.RolloutSpec{
			TargetRef: rolloutsv1alpha1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "api"},
			Strategy:  rolloutsv1alpha1.RolloutStrategy{Canary: &rolloutsv1alpha1.CanaryStrategy{}},
		},
		Status: rolloutsv1alpha1.RolloutStatus{StableRevision: "aaa", CanaryRevision: "bbb"},
	}
	tpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "api"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "default", UID: "d-uid"},
		Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}}, Template: tpl},
	}
	rs := func(name, hash string, owner []metav1.OwnerReference) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name + "-uid"), Labels: labels(hash), OwnerReferences: owner},
			Spec:       appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels(hash)}, Template: tpl},
		}
	}
	pod := func(name, hash, rsName string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: labels(hash),
			OwnerReferences: ctl("apps/v1", "ReplicaSet", rsName, types.UID(rsName+"-uid"))}}
	}
	objs := []client.Object{ro, d,
		rs("api-aaa", "aaa", ctl("apps/v1", "Deployment", "api", "d-uid")),
		rs("api-bbb", "bbb", ctl(rolloutsv1alpha1.GroupVersion.String(), "Rollout", "api", "ro-uid")),
		rs("other-ccc", "ccc", ctl("apps/v1", "Deployment", "other", "other-uid")),
		pod("api-aaa-1", "aaa", "api-aaa"), pod("api-aaa-2", "aaa", "api-aaa"), pod("api-bbb-1", "bbb", "api-bbb"),
		pod("other-ccc-1", "ccc", "other-ccc"),
	}
	out, _, err := runCLI(t, testFactory{c: fakeClient(t, objs...), ns: "default"}, "drover", "get", "rollout", "api")
	if err != nil {
		t.Fatal(err)
	}
	n := normalise(out)
	if !strings.Contains(n, "stable aaa (2 pods, 0 ready)\nNAME READY STATUS NODE RESTARTS AGE\napi-aaa-1 - Pending - 0 -\napi-aaa-2 ") ||
		!strings.Contains(n, "canary bbb (1 pod, 0 ready)\nNAME READY STATUS NODE RESTARTS AGE\napi-bbb-1 ") || strings.Contains(n, "other-ccc") {
		t.Errorf("deployment pods:\n%s", out)
	}
}
