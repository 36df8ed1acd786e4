package sidecarset

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/podstate"
	"github.com/drover-dev/drover/internal/revision"
	"github.com/drover-dev/drover/test/e2e/framework"
)

func intOrStr(i int) *intstr.IntOrString { v := intstr.FromInt(i); return &v }

func listPods(t *testing.T, ns string, sel map[string]string) []corev1.Pod {
	t.Helper()
	var l corev1.PodList
	if err := framework.Client().List(ctx(), &l, client.InNamespace(ns), client.MatchingLabels(sel)); err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// waitStatus waits until the SidecarSet's status, for its current
// generation, satisfies f.
func waitStatus(t *testing.T, name string, f func(appsv1alpha1.SidecarSetStatus) error) *appsv1alpha1.SidecarSet {
	t.Helper()
	var ss *appsv1alpha1.SidecarSet
	framework.Eventually(t, timeout, func() error {
		ss = getSidecarSet(t, name)
		if ss.Status.ObservedGeneration != ss.Generation {
			return fmt.Errorf("status at generation %d, spec %d", ss.Status.ObservedGeneration, ss.Generation)
		}
		return f(ss.Status)
	})
	return ss
}

func counters(matched, updated, ready, updatedReady int32) func(appsv1alpha1.SidecarSetStatus) error {
	return func(s appsv1alpha1.SidecarSetStatus) error {
		if s.MatchedPods != matched || s.UpdatedPods != updated || s.ReadyPods != ready || s.UpdatedReadyPods != updatedReady {
			return fmt.Errorf("status matched/updated/ready/updatedReady %d/%d/%d/%d, want %d/%d/%d/%d",
				s.MatchedPods, s.UpdatedPods, s.ReadyPods, s.UpdatedReadyPods, matched, updated, ready, updatedReady)
		}
		return nil
	}
}

func ready(s appsv1alpha1.SidecarSetStatus) error {
	if c := meta.FindStatusCondition(s.Conditions, appsv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		return fmt.Errorf("Ready condition: %+v", c)
	}
	return nil
}

func all(fs ...func(appsv1alpha1.SidecarSetStatus) error) func(appsv1alpha1.SidecarSetStatus) error {
	return func(s appsv1alpha1.SidecarSetStatus) error {
		for _, f := range fs {
			if err := f(s); err != nil {
				return err
			}
		}
		return nil
	}
}

// restarts returns each pod's restart count of a container.
func restarts(pods []corev1.Pod, container string) map[string]int32 {
	out := map[string]int32{}
	for i := range pods {
		if s := status(&pods[i], container); s != nil {
			out[pods[i].Name] = s.RestartCount
		}
	}
	return out
}

// sidecarUnavailable counts the pods of app that are not ready or in the
// middle of a sidecar upgrade.
func sidecarUnavailable(app string) func(map[string]*corev1.Pod) (int, error) {
	return func(pods map[string]*corev1.Pod) (int, error) {
		n := 0
		for _, p := range pods {
			if p.Labels["app"] != app || p.DeletionTimestamp != nil {
				continue
			}
			if !podstate.IsReady(p) || inplace.InFlightOn(p, inplace.SidecarTrack) {
				n++
			}
		}
		return n, nil
	}
}

// A sidecar image change upgrades running pods in place — CloneSet pods
// (drained through their readiness gate) and bare pods alike — at most
// maxUnavailable at a time, restarting only the sidecar: the application
// containers' restart counts do not move, and the CloneSet's own revision
// is untouched.
func TestColdUpgradeInPlace(t *testing.T) {
	framework.RequireManager(t)
	ns := framework.Namespace(t)
	app := uniq("cold")
	ss := newSidecarSet(app, map[string]string{"app": app}, sidecar("logger", "example.com/logger:v1"))
	ss.Spec.UpdateStrategy.MaxUnavailable = intOrStr(2)
	createSidecarSet(t, ss)

	cs := &appsv1alpha1.CloneSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1alpha1.CloneSetSpec{
			Replicas: ptr.To[int32](4),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:v1"}}},
			},
		},
	}
	if err := framework.Client().Create(ctx(), cs); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		createPod(t, appPod(ns, fmt.Sprintf("bare-%d", i), map[string]string{"app": app}))
	}
	waitStatus(t, ss.Name, all(counters(6, 6, 6, 6), ready))
	before := listPods(t, ns, map[string]string{"app": app})
	appRestarts := restarts(before, "app")
	loggerRestarts := restarts(before, "logger")
	cloneRevisions := map[string]string{}
	for _, p := range before {
		if p.Labels[revision.LabelRevisionHash] != "" {
			cloneRevisions[p.Name] = p.Labels[revision.LabelRevisionHash]
		}
	}
	if len(cloneRevisions) != 4 || len(appRestarts) != 6 {
		t.Fatalf("setup: %d CloneSet pods, %d pods", len(cloneRevisions), len(appRestarts))
	}

	w := watchPods(t, ns, func(pods map[string]*corev1.Pod) (int, error) {
		n, _ := sidecarUnavailable(app)(pods)
		if n > 2 {
			return n, fmt.Errorf("%d pods unavailable, maxUnavailable is 2", n)
		}
		return n, nil
	})
	modifySidecarSet(t, ss.Name, func(s *appsv1alpha1.SidecarSet) { s.Spec.Containers[0].Image = "example.com/logger:v2" })
	latest := waitStatus(t, ss.Name, all(counters(6, 6, 6, 6), ready))
	peak := w.done(t)
	if peak == 0 {
		t.Error("no pod was ever seen being upgraded")
	}

	after := listPods(t, ns, map[string]string{"app": app})
	for _, p := range after {
		if image(&p, "logger") != "example.com/logger:v2" {
			t.Errorf("pod %s runs %s", p.Name, image(&p, "logger"))
		}
		if s := status(&p, "logger"); s == nil || s.Image != "example.com/logger:v2" || s.RestartCount != loggerRestarts[p.Name]+1 {
			t.Errorf("pod %s: logger not restarted once with v2: %+v", p.Name, s)
		}
		if s := status(&p, "app"); s == nil || s.RestartCount != appRestarts[p.Name] {
			t.Errorf("pod %s: the application container restarted (%v -> %v)", p.Name, appRestarts[p.Name], s)
		}
		if rec, _ := record(&p, ss.Name); rec.Hash != latest.Status.LatestRevision {
			t.Errorf("pod %s records revision %s, latest %s", p.Name, rec.Hash, latest.Status.LatestRevision)
		}
		if r, ok := cloneRevisions[p.Name]; ok && p.Labels[revision.LabelRevisionHash] != r {
			t.Errorf("pod %s: the CloneSet revision label moved", p.Name)
		}
		if p.Labels[revision.LabelRevisionHash] != "" && inplace.GateStatus(&p) != corev1.ConditionTrue {
			t.Errorf("pod %s: gate left %s", p.Name, inplace.GateStatus(&p))
		}
	}
	if len(after) != 6 {
		t.Errorf("pods were recreated or lost: %d", len(after))
	}
}

// partition, updateStrategy.selector, paused and NotUpdate each hold pods
// on their old sidecars; status says how many are updated and expected.
func TestUpgradeStrategyControls(t *testing.T) {
	framework.RequireManager(t)
	ns := framework.Namespace(t)
	app := uniq("ctl")
	ss := newSidecarSet(app, map[string]string{"app": app}, sidecar("agent", "example.com/agent:v1"))
	ss.Spec.UpdateStrategy.Partition = intOrStr(2)
	ss.Spec.UpdateStrategy.MaxUnavailable = intOrStr(4)
	createSidecarSet(t, ss)
	for i := range 4 {
		labels := map[string]string{"app": app}
		if i == 0 {
			labels["tier"] = "canary"
		}
		createPod(t, appPod(ns, fmt.Sprintf("p%d", i), labels))
	}
	waitStatus(t, ss.Name, counters(4, 4, 4, 4))
	onImage := func(img string) int {
		n := 0
		for _, p := range listPods(t, ns, map[string]string{"app": app}) {
			if image(&p, "agent") == img && status(&p, "agent") != nil && status(&p, "agent").Image == img {
				n++
			}
		}
		return n
	}

	// partition 2: two of four move.
	modifySidecarSet(t, ss.Name, func(s *appsv1alpha1.SidecarSet) {
		s.Spec.Containers[0].Image = "example.com/agent:v2"
		s.Spec.UpdateStrategy.Paused = true
	})
	st := waitStatus(t, ss.Name, func(s appsv1alpha1.SidecarSetStatus) error {
		if c := meta.FindStatusCondition(s.Conditions, appsv1alpha1.ConditionReady); c == nil || c.Reason != appsv1alpha1.ReasonPaused {
			return fmt.Errorf("Ready: %+v", c)
		}
		return nil
	}).Status
	if st.UpdatedPods != 0 || onImage("example.com/agent:v2") != 0 {
		t.Fatalf("paused: nothing may move (status %d updated)", st.UpdatedPods)
	}
	modifySidecarSet(t, ss.Name, func(s *appsv1alpha1.SidecarSet) { s.Spec.UpdateStrategy.Paused = false })
	waitStatus(t, ss.Name, all(counters(4, 2, 4, 2), ready, func(s appsv1alpha1.SidecarSetStatus) error {
		if s.ExpectedUpdatedPods != 2 {
			return fmt.Errorf("expectedUpdatedPods %d", s.ExpectedUpdatedPods)
		}
		return nil
	}))
	if n := onImage("example.com/agent:v2"); n != 2 {
		t.Fatalf("partition 2 of 4: %d pods on v2", n)
	}

	// selector: only the canary among the rest.
	modifySidecarSet(t, ss.Name, func(s *appsv1alpha1.SidecarSet) {
		s.Spec.UpdateStrategy.Partition = nil
		s.Spec.UpdateStrategy.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "canary"}}
	})
	waitStatus(t, ss.Name, all(ready, func(s appsv1alpha1.SidecarSetStatus) error {
		if s.UpdatedPods < 2 || s.UpdatedPods > 3 {
			return fmt.Errorf("updated %d", s.UpdatedPods)
		}
		return nil
	}))
	canary := getPod(t, ns, "p0")
	if image(canary, "agent") != "example.com/agent:v2" {
		t.Errorf("the selected canary was not upgraded")
	}

	// NotUpdate: a new image reaches no running pod.
	modifySidecarSet(t, ss.Name, func(s *appsv1alpha1.SidecarSet) {
		s.Spec.UpdateStrategy.Selector = nil
		s.Spec.UpdateStrategy.Type = appsv1alpha1.NotUpdateSidecarSetStrategyType
		s.Spec.Containers[0].Image = "example.com/agent:v3"
	})
	waitStatus(t, ss.Name, all(ready, counters(4, 0, 4, 0)))
	if n := onImage("example.com/agent:v3"); n != 0 {
		t.Fatalf("NotUpdate moved %d pods", n)
	}
	// ... but new pods get it.
	createPod(t, appPod(ns, "late", map[string]string{"app": app}))
	if image(getPod(t, ns, "late"), "agent") != "example.com/agent:v3" {
		t.Error("a pod created after the change must get the new sidecar")
	}
	// Back to RollingUpdate: everyone converges.
	modifySidecarSet(t, ss.Name, func(s *appsv1alpha1.SidecarSet) {
		s.Spec.UpdateStrategy.Type = appsv1alpha1.RollingUpdateSidecarSetStrategyType
	})
	waitStatus(t, ss.Name, all(ready, counters(5, 5, 5, 5)))
	if n := onImage("example.com/agent:v3"); n != 5 {
		t.Errorf("%d of 5 pods on v3", n)
	}
}

// The brief's per-container upgrade.maxUnavailable caps the pods upgraded
// at once below updateStrategy.maxUnavailable.
func TestContainerMaxUnavailable(t *testing.T) {
	framework.RequireManager(t)
	ns := framework.Namespace(t)
	app := uniq("cap")
	sc := sidecar("fluent-bit", "example.com/fluent-bit:3.0")
	sc.UpgradeStrategy = &appsv1alpha1.SidecarContainerUpgradeStrategy{Type: appsv1alpha1.ColdUpgrade,
		Upgrade: &appsv1alpha1.SidecarContainerUpgrade{MaxUnavailable: intOrStr(1)}}
	ss := newSidecarSet(app, map[string]string{"app": app}, sc)
	ss.Spec.UpdateStrategy.MaxUnavailable = intOrStr(4)
	createSidecarSet(t, ss)
	for i := range 4 {
		createPod(t, appPod(ns, fmt.Sprintf("p%d", i), map[string]string{"app": app}))
	}
	waitStatus(t, ss.Name, counters(4, 4, 4, 4))
	w := watchPods(t, ns, func(pods map[string]*corev1.Pod) (int, error) {
		n := 0
		for _, p := range pods {
			if inplace.InFlightOn(p, inplace.SidecarTrack) {
				n++
			}
		}
		if n > 1 {
			return n, fmt.Errorf("%d pods upgrading fluent-bit at once, its upgrade.maxUnavailable is 1", n)
		}
		return n, nil
	})
	modifySidecarSet(t, ss.Name, func(s *appsv1alpha1.SidecarSet) { s.Spec.Containers[0].Image = "example.com/fluent-bit:3.1" })
	waitStatus(t, ss.Name, all(ready, counters(4, 4, 4, 4)))
	if peak := w.done(t); peak != 1 {
		t.Errorf("peak pods in flight %d, want 1", peak)
	}
}

// A native sidecar (init container with restartPolicy Always) is upgraded
// in place like a container: it restarts with its new image while the
// application container keeps running.
func TestNativeSidecarUpgradeInPlace(t *testing.T) {
	framework.RequireManager(t)
	ns := framework.Namespace(t)
	app := uniq("native")
	ss := newSidecarSet(app, map[string]string{"app": app})
	ss.Spec.InitContainers = []appsv1alpha1.SidecarContainer{{Container: corev1.Container{
		Name: "mesh", Image: "example.com/mesh:v1", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}}}
	createSidecarSet(t, ss)
	createPod(t, appPod(ns, "p0", map[string]string{"app": app}))
	createPod(t, appPod(ns, "p1", map[string]string{"app": app}))
	waitStatus(t, ss.Name, all(ready, counters(2, 2, 2, 2)))
	before := listPods(t, ns, map[string]string{"app": app})
	appRestarts, meshRestarts := restarts(before, "app"), restarts(before, "mesh")

	modifySidecarSet(t, ss.Name, func(s *appsv1alpha1.SidecarSet) { s.Spec.InitContainers[0].Image = "example.com/mesh:v2" })
	waitStatus(t, ss.Name, all(ready, counters(2, 2, 2, 2)))
	for _, p := range listPods(t, ns, map[string]string{"app": app}) {
		s := status(&p, "mesh")
		if image(&p, "mesh") != "example.com/mesh:v2" || s == nil || s.Image != "example.com/mesh:v2" || s.RestartCount != meshRestarts[p.Name]+1 {
			t.Errorf("pod %s: native sidecar not restarted with v2: %+v", p.Name, s)
		}
		if a := status(&p, "app"); a == nil || a.RestartCount != appRestarts[p.Name] {
			t.Errorf("pod %s: the application container restarted", p.Name)
		}
	}
}
