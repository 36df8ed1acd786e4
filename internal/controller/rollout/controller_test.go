package rollout_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/controller/cloneset"
	"github.com/drover-dev/drover/internal/controller/rollout"
	"github.com/drover-dev/drover/internal/revision"
	"github.com/drover-dev/drover/internal/testenv"
)

// These integration tests run the Rollout and CloneSet controllers against
// a real API server (envtest). kubelet plays the kubelet: pods run their
// spec image and are ready when their gates are.

var k8s client.Client

func TestMain(m *testing.M) {
	os.Exit(testenv.MainWithManager(m, func(mgr ctrl.Manager) error {
		if err := cloneset.SetupWithManager(mgr, cloneset.Options{MaxConcurrentReconciles: 2}); err != nil {
			return err
		}
		return rollout.SetupWithManager(context.Background(), mgr, rollout.Options{MaxConcurrentReconciles: 2})
	}, func(c client.Client) { k8s = c }))
}

func kubelet(t *testing.T, ns string) { testenv.Kubelet(t, k8s, ns) }

func newCloneSet(ns, name string, replicas int32) *appsv1alpha1.CloneSet {
	return &appsv1alpha1.CloneSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1alpha1.CloneSetSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1",
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
			},
			UpdateStrategy: appsv1alpha1.CloneSetUpdateStrategy{Type: appsv1alpha1.InPlaceIfPossibleCloneSetUpdateStrategyType,
				MaxUnavailable: ptr.To(intstr.FromString("50%"))},
		},
	}
}

func newRollout(ns, name, target string, steps ...rolloutsv1alpha1.CanaryStep) *rolloutsv1alpha1.Rollout {
	return &rolloutsv1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: rolloutsv1alpha1.RolloutSpec{
			TargetRef: rolloutsv1alpha1.TargetRef{APIVersion: appsv1alpha1.GroupVersion.String(), Kind: "CloneSet", Name: target},
			Strategy:  rolloutsv1alpha1.RolloutStrategy{Canary: &rolloutsv1alpha1.CanaryStrategy{Steps: steps}},
		},
	}
}

func setWeight(w int32) rolloutsv1alpha1.CanaryStep {
	return rolloutsv1alpha1.CanaryStep{SetWeight: ptr.To(w)}
}

func pause() rolloutsv1alpha1.CanaryStep {
	return rolloutsv1alpha1.CanaryStep{Pause: &rolloutsv1alpha1.PauseStep{}}
}

// start creates a CloneSet of n pods and its Rollout, and waits until the
// Rollout is Healthy.
func start(t *testing.T, n int32, steps ...rolloutsv1alpha1.CanaryStep) (*appsv1alpha1.CloneSet, *rolloutsv1alpha1.Rollout) {
	t.Helper()
	ns := testenv.Namespace(t, k8s, "ro-")
	kubelet(t, ns)
	cs := newCloneSet(ns, "web", n)
	ro := newRollout(ns, "web", "web", steps...)
	for _, o := range []client.Object{cs, ro} {
		if err := k8s.Create(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseHealthy)
	return cs, ro
}

func get(t *testing.T, o client.Object) {
	t.Helper()
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(o), o); err != nil {
		t.Fatal(err)
	}
}

func waitPhase(t *testing.T, ro *rolloutsv1alpha1.Rollout, want rolloutsv1alpha1.RolloutPhase) {
	t.Helper()
	testenv.Eventually(t, "rollout phase "+string(want), func() (bool, string) {
		get(t, ro)
		return ro.Status.Phase == want && ro.Status.ObservedGeneration == ro.Generation,
			fmt.Sprintf("phase %s step %v: %s", ro.Status.Phase, ptr.Deref(ro.Status.CurrentStepIndex, -1), ro.Status.Message)
	})
}

// revisions counts live pods per revision and returns their UIDs by name.
func revisions(t *testing.T, cs *appsv1alpha1.CloneSet) (map[string]int, map[string]types.UID) {
	t.Helper()
	counts, uids := map[string]int{}, map[string]types.UID{}
	for _, p := range testenv.LivePods(t, k8s, cs.Namespace, cs.Spec.Selector.MatchLabels) {
		counts[p.Labels[revision.LabelRevisionHash]]++
		uids[p.Name] = p.UID
	}
	return counts, uids
}

func selects(t *testing.T, ns, svc string) string {
	t.Helper()
	var s corev1.Service
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: svc}, &s); err != nil {
		t.Fatal(err)
	}
	return s.Spec.Selector[revision.LabelRevisionHash]
}

func action(t *testing.T, ro *rolloutsv1alpha1.Rollout, a rolloutsv1alpha1.Action) {
	t.Helper()
	testenv.Update(t, k8s, ro, func(r *rolloutsv1alpha1.Rollout) {
		if r.Annotations == nil {
			r.Annotations = map[string]string{}
		}
		r.Annotations[rolloutsv1alpha1.AnnotationAction] = string(a)
	})
}

func setImage(t *testing.T, cs *appsv1alpha1.CloneSet, image string) {
	t.Helper()
	testenv.Update(t, k8s, cs, func(c *appsv1alpha1.CloneSet) { c.Spec.Template.Spec.Containers[0].Image = image })
}

func TestCanaryStepsPromoteInPlace(t *testing.T) {
	cs, ro := start(t, 5, setWeight(40), pause())
	get(t, cs)
	stable := cs.Status.CurrentRevision
	if got := selects(t, cs.Namespace, "web-stable"); got != stable {
		t.Fatalf("stable service selects %q, want %q", got, stable)
	}
	_, before := revisions(t, cs)

	setImage(t, cs, "app:2")
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhasePaused)
	get(t, cs)
	canary := cs.Status.UpdateRevision
	counts, _ := revisions(t, cs)
	if counts[canary] != 2 || counts[stable] != 3 {
		t.Fatalf("at the pause: %v, want 2 on %s and 3 on %s", counts, canary, stable)
	}
	if ro.Status.CanaryRevision != canary || ptr.Deref(ro.Status.CurrentStepIndex, -1) != 1 || ro.Status.DesiredWeight != 40 {
		t.Fatalf("status at the pause: %+v", ro.Status)
	}
	if s, c := selects(t, cs.Namespace, "web-stable"), selects(t, cs.Namespace, "web-canary"); s != stable || c != canary {
		t.Fatalf("services select %s/%s, want %s/%s", s, c, stable, canary)
	}
	if c := meta.FindStatusCondition(ro.Status.Conditions, rolloutsv1alpha1.ConditionPaused); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("Paused condition %+v", c)
	}
	// The pause holds.
	time.Sleep(time.Second)
	if counts, _ := revisions(t, cs); counts[canary] != 2 {
		t.Fatalf("pods moved during an indefinite pause: %v", counts)
	}

	action(t, ro, rolloutsv1alpha1.ActionPromote)
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseHealthy)
	counts, after := revisions(t, cs)
	if counts[canary] != 5 || ro.Status.StableRevision != canary || ro.Status.CanaryRevision != "" {
		t.Fatalf("after promotion: pods %v, status %+v", counts, ro.Status)
	}
	if fmt.Sprint(sortedKeys(before)) != fmt.Sprint(sortedKeys(after)) {
		t.Fatalf("pods were recreated, not updated in place: %v -> %v", sortedKeys(before), sortedKeys(after))
	}
	if s := selects(t, cs.Namespace, "web-stable"); s != canary {
		t.Fatalf("stable service selects %s after promotion, want %s", s, canary)
	}
	if _, ok := ro.Annotations[rolloutsv1alpha1.AnnotationAction]; ok {
		t.Fatal("the handled action was not removed")
	}
	for _, c := range []string{rolloutsv1alpha1.ConditionReady, rolloutsv1alpha1.ConditionCompleted} {
		if cond := meta.FindStatusCondition(ro.Status.Conditions, c); cond == nil || cond.Status != metav1.ConditionTrue {
			t.Fatalf("condition %s: %+v", c, cond)
		}
	}
}

func TestAbortReturnsPodsInPlaceAndRetry(t *testing.T) {
	cs, ro := start(t, 4, setWeight(50), pause())
	get(t, cs)
	stable := cs.Status.CurrentRevision
	_, before := revisions(t, cs)
	setImage(t, cs, "app:2")
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhasePaused)

	action(t, ro, rolloutsv1alpha1.ActionAbort)
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseDegraded)
	testenv.Eventually(t, "every pod back on the stable revision", func() (bool, string) {
		counts, _ := revisions(t, cs)
		return counts[stable] == 4, fmt.Sprint(counts)
	})
	_, after := revisions(t, cs)
	for name, uid := range before {
		if after[name] != uid {
			t.Fatalf("pod %s was recreated by the abort", name)
		}
	}
	get(t, ro)
	if c := meta.FindStatusCondition(ro.Status.Conditions, rolloutsv1alpha1.ConditionAborted); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("Aborted condition %+v", c)
	}
	if c := meta.FindStatusCondition(ro.Status.Conditions, rolloutsv1alpha1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("Stalled condition %+v (kstatus must report an aborted release as failed)", c)
	}
	get(t, cs)
	if cs.Spec.Template.Spec.Containers[0].Image != "app:2" {
		t.Fatal("the abort changed the workload's template")
	}

	action(t, ro, rolloutsv1alpha1.ActionRetry)
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhasePaused)
	if counts, _ := revisions(t, cs); counts[cs.Status.UpdateRevision] != 2 {
		t.Fatalf("after retry: %v", counts)
	}
}

func TestDeletedRolloutHandsTheWorkloadBack(t *testing.T) {
	cs, ro := start(t, 2, setWeight(50), pause())
	get(t, cs)
	if _, ok := cs.Annotations[appsv1alpha1.AnnotationRolloutControl]; !ok {
		t.Fatal("the rollout did not take control of the workload")
	}
	if err := k8s.Delete(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "control annotation removed", func() (bool, string) {
		get(t, cs)
		_, ok := cs.Annotations[appsv1alpha1.AnnotationRolloutControl]
		return !ok, fmt.Sprint(cs.Annotations)
	})
}

func TestValidation(t *testing.T) {
	ns := testenv.Namespace(t, k8s, "ro-")
	cases := []struct {
		name string
		mod  func(*rolloutsv1alpha1.Rollout)
		want []string
	}{
		{"two fields in a step", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.Strategy.Canary.Steps = []rolloutsv1alpha1.CanaryStep{{SetWeight: ptr.To[int32](10), Pause: &rolloutsv1alpha1.PauseStep{}}}
		}, []string{"steps[0]", "exactly one of setWeight, pause, setCanaryScale, setHeaderRoute, setMirrorRoute or analysis"}},
		{"header route without a router", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.Strategy.Canary.Steps = []rolloutsv1alpha1.CanaryStep{{SetHeaderRoute: &rolloutsv1alpha1.SetHeaderRoute{Name: "beta"}}}
		}, []string{"spec.strategy.canary", "need trafficRouting"}},
		{"match naming a header and a cookie", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.Strategy.Canary.TrafficRouting = &rolloutsv1alpha1.TrafficRouting{GatewayAPI: &rolloutsv1alpha1.GatewayAPIRouting{HTTPRoutes: []rolloutsv1alpha1.RouteRef{{Name: "r"}}}}
			r.Spec.Strategy.Canary.Steps = []rolloutsv1alpha1.CanaryStep{{SetHeaderRoute: &rolloutsv1alpha1.SetHeaderRoute{Name: "beta",
				Match: []rolloutsv1alpha1.RouteMatch{{HeaderName: "X-Beta", CookieName: "beta", Value: rolloutsv1alpha1.StringMatch{Exact: "1"}}}}}}
		}, []string{"match[0]", "exactly one of headerName or cookieName"}},
		{"value with exact and regex", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.Strategy.Canary.TrafficRouting = &rolloutsv1alpha1.TrafficRouting{GatewayAPI: &rolloutsv1alpha1.GatewayAPIRouting{HTTPRoutes: []rolloutsv1alpha1.RouteRef{{Name: "r"}}}}
			r.Spec.Strategy.Canary.Steps = []rolloutsv1alpha1.CanaryStep{{SetMirrorRoute: &rolloutsv1alpha1.SetMirrorRoute{Name: "m",
				Match: []rolloutsv1alpha1.RouteMatch{{HeaderName: "X-Beta", Value: rolloutsv1alpha1.StringMatch{Exact: "1", Regex: "1"}}}}}}
		}, []string{"value", "exactly one of exact, prefix or regex"}},
		{"mirror percentage above 100", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.Strategy.Canary.TrafficRouting = &rolloutsv1alpha1.TrafficRouting{GatewayAPI: &rolloutsv1alpha1.GatewayAPIRouting{HTTPRoutes: []rolloutsv1alpha1.RouteRef{{Name: "r"}}}}
			r.Spec.Strategy.Canary.Steps = []rolloutsv1alpha1.CanaryStep{{SetMirrorRoute: &rolloutsv1alpha1.SetMirrorRoute{Name: "m", Percentage: ptr.To[int32](101)}}}
		}, []string{"setMirrorRoute.percentage", "100"}},
		{"weight above 100", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.Strategy.Canary.Steps = []rolloutsv1alpha1.CanaryStep{setWeight(150)}
		}, []string{"steps[0].setWeight", "100"}},
		{"unsupported target", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.TargetRef = rolloutsv1alpha1.TargetRef{APIVersion: "batch/v1", Kind: "Job", Name: "x"}
		}, []string{"spec.targetRef", "CloneSet, StatefulSet or DaemonSet"}},
		{"trackConfigs on a Deployment", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.TargetRef = rolloutsv1alpha1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}
			r.Spec.TrackConfigs = true
		}, []string{"spec.trackConfigs", "needs a CloneSet, StatefulSet or DaemonSet target"}},
		{"no strategy", func(r *rolloutsv1alpha1.Rollout) { r.Spec.Strategy.Canary = nil }, []string{"spec.strategy", "exactly one of strategy.canary or strategy.blueGreen"}},
		{"blue-green on a StatefulSet", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.TargetRef.Kind = "StatefulSet"
			r.Spec.Strategy = rolloutsv1alpha1.RolloutStrategy{BlueGreen: &rolloutsv1alpha1.BlueGreenStrategy{ActiveService: "a"}}
		}, []string{"spec.strategy.blueGreen", "needs a CloneSet or Deployment target"}},
		{"blue-green without an active service", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.Strategy = rolloutsv1alpha1.RolloutStrategy{BlueGreen: &rolloutsv1alpha1.BlueGreenStrategy{}}
		}, []string{"activeService"}},
		{"canary scale without a router", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.Strategy.Canary.Steps = []rolloutsv1alpha1.CanaryStep{{SetCanaryScale: &rolloutsv1alpha1.SetCanaryScale{Replicas: ptr.To[int32](1)}}}
		}, []string{"spec.strategy.canary", "setCanaryScale, setHeaderRoute and setMirrorRoute need trafficRouting"}},
		{"scale with two fields", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.Strategy.Canary.TrafficRouting = &rolloutsv1alpha1.TrafficRouting{GatewayAPI: &rolloutsv1alpha1.GatewayAPIRouting{HTTPRoutes: []rolloutsv1alpha1.RouteRef{{Name: "r"}}}}
			r.Spec.Strategy.Canary.Steps = []rolloutsv1alpha1.CanaryStep{{SetCanaryScale: &rolloutsv1alpha1.SetCanaryScale{Replicas: ptr.To[int32](1), Weight: ptr.To[int32](5)}}}
		}, []string{"setCanaryScale", "exactly one of replicas, weight or matchTrafficWeight"}},
		{"gateway API without routes", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.Strategy.Canary.TrafficRouting = &rolloutsv1alpha1.TrafficRouting{GatewayAPI: &rolloutsv1alpha1.GatewayAPIRouting{}}
		}, []string{"gatewayAPI", "at least one route"}},
		{"analysis step without templates", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.Strategy.Canary.Steps = []rolloutsv1alpha1.CanaryStep{{Analysis: &rolloutsv1alpha1.RolloutAnalysis{}}}
		}, []string{"steps[0].analysis.templates"}},
		{"analysis arg with a value and valueFrom", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.Strategy.Canary.Steps = []rolloutsv1alpha1.CanaryStep{{Analysis: &rolloutsv1alpha1.RolloutAnalysis{
				Templates: []rolloutsv1alpha1.AnalysisTemplateRef{{TemplateName: "t"}},
				Args:      []rolloutsv1alpha1.Argument{{Name: "svc", Value: ptr.To("x"), ValueFrom: &rolloutsv1alpha1.ArgumentValueFrom{PodTemplateHashValue: ptr.To("Stable")}}}}}}
		}, []string{"args[0]", "at most one of value or valueFrom"}},
		{"canary maxUnavailable above 100%", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.Strategy.Canary.MaxUnavailable = ptr.To(intstr.FromString("120%"))
		}, []string{"spec.strategy.canary.maxUnavailable", "percentage from 0% to 100%"}},
		{"notification with url and urlFrom", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.Notifications = []rolloutsv1alpha1.RolloutNotification{{Name: "chat", Type: rolloutsv1alpha1.NotificationSlack,
				URL: "https://hooks.slack.com/x", URLFrom: &rolloutsv1alpha1.SecretValue{SecretKeyRef: corev1.SecretKeySelector{Key: "url"}}}}
		}, []string{"spec.notifications[0]", "set exactly one of url or urlFrom"}},
		{"notification without a url", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.Notifications = []rolloutsv1alpha1.RolloutNotification{{Name: "chat", Type: rolloutsv1alpha1.NotificationTeams}}
		}, []string{"spec.notifications[0]", "set exactly one of url or urlFrom"}},
		{"notification channel on a webhook", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.Notifications = []rolloutsv1alpha1.RolloutNotification{{Name: "audit", Type: rolloutsv1alpha1.NotificationWebhook,
				URL: "http://audit", Channel: "#x"}}
		}, []string{"spec.notifications[0]", "channel is only for type slack"}},
		{"notification of an unknown trigger", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.Notifications = []rolloutsv1alpha1.RolloutNotification{{Name: "audit", Type: rolloutsv1alpha1.NotificationWebhook,
				URL: "http://audit", On: []rolloutsv1alpha1.NotificationTrigger{"Deployed"}}}
		}, []string{"spec.notifications[0].on[0]", "Unsupported value", "StepCompleted"}},
		{"notification of an unknown type", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.Notifications = []rolloutsv1alpha1.RolloutNotification{{Name: "pager", Type: "pagerduty", URL: "http://pd"}}
		}, []string{"spec.notifications[0].type", "Unsupported value", "slack"}},
		{"notification url not http", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.Notifications = []rolloutsv1alpha1.RolloutNotification{{Name: "audit", Type: rolloutsv1alpha1.NotificationWebhook, URL: "ftp://audit"}}
		}, []string{"spec.notifications[0].url", "must start with http:// or https://"}},
		{"two notifications of one name", func(r *rolloutsv1alpha1.Rollout) {
			n := rolloutsv1alpha1.RolloutNotification{Name: "audit", Type: rolloutsv1alpha1.NotificationWebhook, URL: "http://audit"}
			r.Spec.Notifications = []rolloutsv1alpha1.RolloutNotification{n, n}
		}, []string{"spec.notifications[1]", "Duplicate value"}},
		{"negative pause", func(r *rolloutsv1alpha1.Rollout) {
			r.Spec.Strategy.Canary.Steps = []rolloutsv1alpha1.CanaryStep{{Pause: &rolloutsv1alpha1.PauseStep{Duration: &metav1.Duration{Duration: -time.Second}}}}
		}, []string{"duration", "must not be negative"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ro := newRollout(ns, fmt.Sprintf("bad-%d", i), "web", setWeight(10))
			c.mod(ro)
			err := k8s.Create(context.Background(), ro)
			testenv.AssertInvalid(t, err, c.want...)
		})
	}
	t.Run("targetRef is immutable", func(t *testing.T) {
		ro := newRollout(ns, "immutable", "web", setWeight(10))
		if err := k8s.Create(context.Background(), ro); err != nil {
			t.Fatal(err)
		}
		var err error
		for range 20 { // the controller writes too (finalizer, status): retry conflicts
			get(t, ro)
			ro.Spec.TargetRef.Name = "other"
			if err = k8s.Update(context.Background(), ro); !apierrors.IsConflict(err) {
				break
			}
		}
		testenv.AssertInvalid(t, err, "targetRef is immutable")
	})
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestExampleIsValid: the objects of examples/rollout.yaml and
// examples/analysis.yaml pass the API server's validation (the HTTPRoutes
// need Gateway API CRDs, which the e2e suite installs).
func TestExampleIsValid(t *testing.T) {
	for file, want := range map[string][]string{
		"rollout.yaml":  {"CloneSet", "HTTPRoute", "Rollout"},
		"analysis.yaml": {"AnalysisTemplate", "CloneSet", "HTTPRoute", "Rollout"},
	} {
		raw, err := testenv.Example(file)
		if err != nil {
			t.Fatal(err)
		}
		ns := testenv.Namespace(t, k8s, "ro-")
		var kinds []string
		for _, doc := range strings.Split(string(raw), "\n---\n") {
			var u unstructured.Unstructured
			if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
				t.Fatal(err)
			}
			kinds = append(kinds, u.GetKind())
			if u.GetKind() == "HTTPRoute" {
				continue
			}
			u.SetNamespace(ns)
			if err := k8s.Create(context.Background(), &u, client.DryRunAll); err != nil {
				t.Fatalf("%s: %s %s: %v", file, u.GetKind(), u.GetName(), err)
			}
		}
		sort.Strings(kinds)
		if !slices.Equal(kinds, want) {
			t.Errorf("%s: kinds %v, want %v", file, kinds, want)
		}
	}
}

func TestBlueGreenOnCloneSet(t *testing.T) {
	ns := testenv.Namespace(t, k8s, "ro-")
	kubelet(t, ns)
	cs := newCloneSet(ns, "web", 3)
	ro := &rolloutsv1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: rolloutsv1alpha1.RolloutSpec{
			TargetRef: rolloutsv1alpha1.TargetRef{APIVersion: appsv1alpha1.GroupVersion.String(), Kind: "CloneSet", Name: "web"},
			Strategy: rolloutsv1alpha1.RolloutStrategy{BlueGreen: &rolloutsv1alpha1.BlueGreenStrategy{
				ActiveService: "web-active", PreviewService: "web-preview",
				AutoPromotionEnabled: ptr.To(false), ScaleDownDelaySeconds: ptr.To[int32](2)}},
		},
	}
	objs := []client.Object{cs, ro}
	for _, name := range []string{"web-active", "web-preview"} {
		objs = append(objs, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}})
	}
	for _, o := range objs {
		if err := k8s.Create(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseHealthy)
	get(t, cs)
	blue := cs.Status.CurrentRevision
	_, bluePods := revisions(t, cs)

	setImage(t, cs, "app:2")
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhasePaused)
	get(t, cs)
	green := cs.Status.UpdateRevision
	counts, _ := revisions(t, cs)
	if counts[blue] != 3 || counts[green] != 3 {
		t.Fatalf("preview: pods %v, want 3 blue and 3 green", counts)
	}
	if a, p := selects(t, ns, "web-active"), selects(t, ns, "web-preview"); a != blue || p != green {
		t.Fatalf("before promotion active %s preview %s, want %s %s", a, p, blue, green)
	}

	action(t, ro, rolloutsv1alpha1.ActionPromote)
	testenv.Eventually(t, "active service on green", func() (bool, string) {
		s := selects(t, ns, "web-active")
		return s == green, s
	})
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseHealthy)
	counts, _ = revisions(t, cs)
	if counts[green] != 3 || counts[blue] != 0 {
		t.Fatalf("after the scale-down delay: pods %v", counts)
	}
	_, after := revisions(t, cs)
	for name := range bluePods {
		if _, ok := after[name]; ok {
			t.Fatalf("blue pod %s still exists", name)
		}
	}
	get(t, ro)
	if ro.Status.StableRevision != green || ro.Status.ScaleDownRevision != "" {
		t.Fatalf("status %+v", ro.Status)
	}
}

func TestTargetRecreatedStartsAfresh(t *testing.T) {
	cs, ro := start(t, 2, setWeight(50), pause())
	if err := k8s.Delete(context.Background(), cs); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "TargetNotFound", func() (bool, string) {
		get(t, ro)
		c := meta.FindStatusCondition(ro.Status.Conditions, rolloutsv1alpha1.ConditionStalled)
		return c != nil && c.Reason == rolloutsv1alpha1.ReasonTargetNotFound && ro.Status.StableRevision == "", ro.Status.Message
	})
	fresh := newCloneSet(cs.Namespace, "web", 2)
	fresh.Spec.Template.Spec.Containers[0].Image = "app:9"
	if err := k8s.Create(context.Background(), fresh); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseHealthy)
	get(t, fresh)
	if ro.Status.StableRevision != fresh.Status.CurrentRevision {
		t.Fatalf("stable %s, want the new workload's %s", ro.Status.StableRevision, fresh.Status.CurrentRevision)
	}
}
