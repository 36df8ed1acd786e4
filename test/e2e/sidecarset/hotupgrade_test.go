package sidecarset

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/test/e2e/framework"
)

// serving returns the HotUpgrade slot of sidecar name that runs a real
// (not the empty) image and is ready, "" when none does.
func serving(p *corev1.Pod, name, empty string) string {
	for _, slot := range []string{name + "-1", name + "-2"} {
		if s := status(p, slot); s != nil && s.Image != empty && s.State.Running != nil && s.Ready {
			return slot
		}
	}
	return ""
}

// HotUpgrade: the new image starts in the idle slot, and only once it runs
// and is ready does the old slot go back to the empty image. At every pod
// state the API server went through, each pod has a slot serving the
// sidecar; the application container never restarts.
func TestHotUpgradeNeverLeavesThePodWithoutSidecar(t *testing.T) {
	framework.RequireManager(t)
	ns := framework.Namespace(t)
	app := uniq("hot")
	const empty = "example.com/empty:v1"
	sc := sidecar("mesh", "example.com/mesh:v1")
	sc.UpgradeStrategy = &appsv1alpha1.SidecarContainerUpgradeStrategy{Type: appsv1alpha1.HotUpgrade, HotUpgradeEmptyImage: empty}
	ss := newSidecarSet(app, map[string]string{"app": app}, sc)
	ss.Spec.UpdateStrategy.MaxUnavailable = intOrStr(3)
	createSidecarSet(t, ss)
	for i := range 3 {
		createPod(t, appPod(ns, fmt.Sprintf("p%d", i), map[string]string{"app": app}))
	}
	waitStatus(t, ss.Name, all(ready, counters(3, 3, 3, 3)))
	before := listPods(t, ns, map[string]string{"app": app})
	appRestarts := restarts(before, "app")
	for _, p := range before {
		if image(&p, "mesh-1") != "example.com/mesh:v1" || image(&p, "mesh-2") != empty || serving(&p, "mesh", empty) != "mesh-1" {
			t.Fatalf("pod %s slots: %s / %s", p.Name, image(&p, "mesh-1"), image(&p, "mesh-2"))
		}
	}

	check := func(pods map[string]*corev1.Pod) (int, error) {
		for _, p := range pods {
			if p.Labels["app"] != app {
				continue
			}
			if serving(p, "mesh", empty) == "" {
				return 0, fmt.Errorf("pod %s has no serving mesh slot: %+v / %+v", p.Name, status(p, "mesh-1"), status(p, "mesh-2"))
			}
		}
		return 0, nil
	}
	upgrade := func(from, to, slot string) {
		t.Helper()
		w := watchPods(t, ns, check)
		modifySidecarSet(t, ss.Name, func(s *appsv1alpha1.SidecarSet) { s.Spec.Containers[0].Image = to })
		waitStatus(t, ss.Name, all(ready, counters(3, 3, 3, 3)))
		w.done(t)
		for _, p := range listPods(t, ns, map[string]string{"app": app}) {
			other := "mesh-1"
			if slot == "mesh-1" {
				other = "mesh-2"
			}
			if image(&p, slot) != to || image(&p, other) != empty || serving(&p, "mesh", empty) != slot {
				t.Errorf("%s -> %s: pod %s slots %s=%s %s=%s", from, to, p.Name, slot, image(&p, slot), other, image(&p, other))
			}
			if rec, _ := record(&p, ss.Name); rec.HotUpgrade["mesh"] != slot {
				t.Errorf("pod %s records working slot %v", p.Name, rec.HotUpgrade)
			}
			if s := status(&p, "app"); s == nil || s.RestartCount != appRestarts[p.Name] {
				t.Errorf("pod %s: the application container restarted", p.Name)
			}
		}
	}
	upgrade("v1", "example.com/mesh:v2", "mesh-2")
	upgrade("v2", "example.com/mesh:v3", "mesh-1") // and back to the first slot
}
