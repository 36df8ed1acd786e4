package rollout_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/configsnapshot"
	"github.com/drover-dev/drover/internal/revision"
	"github.com/drover-dev/drover/internal/testenv"
)

// configPods returns, for every live pod of the CloneSet, the ConfigMap
// its volume mounts and the Secret its envFrom reads, as "cm|secret",
// counted; and the same by revision.
func configPods(t *testing.T, cs *appsv1alpha1.CloneSet) (map[string]int, map[string]string) {
	t.Helper()
	counts, byRev := map[string]int{}, map[string]string{}
	for _, p := range testenv.LivePods(t, k8s, cs.Namespace, cs.Spec.Selector.MatchLabels) {
		k := p.Spec.Volumes[0].ConfigMap.Name + "|" + p.Spec.Containers[0].EnvFrom[0].SecretRef.Name
		counts[k]++
		byRev[p.Labels[revision.LabelRevisionHash]] = k
	}
	return counts, byRev
}

func snapshotName(ro *rolloutsv1alpha1.Rollout, obj client.Object) string {
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		return configsnapshot.SnapshotName(o.Name, ro.Name, configsnapshot.ConfigMapContent(o))
	case *corev1.Secret:
		s := o.DeepCopy()
		if s.Type == "" {
			s.Type = corev1.SecretTypeOpaque // the API server's default
		}
		return configsnapshot.SnapshotName(s.Name, ro.Name, configsnapshot.SecretContent(s))
	}
	panic(fmt.Sprintf("%T", obj))
}

func exists(t *testing.T, obj client.Object) bool {
	t.Helper()
	err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

func control(t *testing.T, cs *appsv1alpha1.CloneSet) appsv1alpha1.RolloutControl {
	t.Helper()
	get(t, cs)
	ctl, ok, err := appsv1alpha1.ParseRolloutControl(cs.Annotations)
	if !ok || err != nil {
		t.Fatalf("control annotation: present %v, %v", ok, err)
	}
	return ctl
}

// TestTrackConfigs: with spec.trackConfigs, a change to a ConfigMap or a
// Secret the CloneSet's template references is released through the
// steps as a new revision, without the CloneSet's spec changing; the
// canary's pods reference a snapshot of the new content and the stable
// ones the snapshot of the old; an abort takes every pod back to the old
// snapshot; snapshots nothing uses any more are deleted.
func TestTrackConfigs(t *testing.T) {
	ctx := context.Background()
	ns := testenv.Namespace(t, k8s, "ro-")
	kubelet(t, ns)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-config"}, Data: map[string]string{"level": "info"}}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-secret"}, Data: map[string][]byte{"TOKEN": []byte("one")}}
	cs := newCloneSet(ns, "web", 4)
	cs.Spec.RevisionHistoryLimit = ptr.To[int32](0) // old revisions go as soon as no pod runs them
	cs.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}}}}}
	cs.Spec.Template.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "app-secret"}}}}
	for _, o := range []client.Object{cm, sec, cs} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, "4 pods of the plain template", func() (bool, string) {
		counts, _ := configPods(t, cs)
		return counts["app-config|app-secret"] == 4, fmt.Sprint(counts)
	})
	get(t, cs)
	plain := cs.Status.UpdateRevision

	// Enabling: snapshots, and one release of the template with the
	// references renamed (same content).
	ro := newRollout(ns, "web", "web", setWeight(50), pause())
	ro.Spec.TrackConfigs = true
	if err := k8s.Create(ctx, ro); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhasePaused)
	cm1, sec1 := snapshotName(ro, cm), snapshotName(ro, sec)
	for _, snap := range []client.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: cm1}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sec1}},
	} {
		if !exists(t, snap) {
			t.Fatalf("snapshot %T %s missing", snap, snap.GetName())
		}
		checkSnapshot(t, ro, snap)
	}
	var snapCM corev1.ConfigMap
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: cm1}, &snapCM); err != nil || snapCM.Data["level"] != "info" {
		t.Fatalf("ConfigMap snapshot %v: %v", snapCM.Data, err)
	}
	var snapSec corev1.Secret
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: sec1}, &snapSec); err != nil || string(snapSec.Data["TOKEN"]) != "one" {
		t.Fatalf("Secret snapshot: %v", err)
	}
	wantTracked := fmt.Sprint([]rolloutsv1alpha1.TrackedConfig{{Kind: "ConfigMap", Name: "app-config", Snapshot: cm1}, {Kind: "Secret", Name: "app-secret", Snapshot: sec1}})
	if got := fmt.Sprint(ro.Status.TrackedConfigs); got != wantTracked {
		t.Fatalf("status.trackedConfigs %s, want %s", got, wantTracked)
	}
	if c := meta.FindStatusCondition(ro.Status.Conditions, rolloutsv1alpha1.ConditionConfigsTracked); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("ConfigsTracked %+v", c)
	}
	if ctl := control(t, cs); ctl.Configs["ConfigMap/app-config"] != cm1 || ctl.Configs["Secret/app-secret"] != sec1 || len(ctl.Configs) != 2 {
		t.Fatalf("control configs %v", ctl.Configs)
	}
	if ro.Status.StableRevision != plain || ro.Status.CanaryRevision == plain {
		t.Fatalf("enabling: stable %s canary %s, want stable %s and a new canary", ro.Status.StableRevision, ro.Status.CanaryRevision, plain)
	}
	counts, byRev := configPods(t, cs)
	if counts["app-config|app-secret"] != 2 || counts[cm1+"|"+sec1] != 2 || byRev[ro.Status.CanaryRevision] != cm1+"|"+sec1 {
		t.Fatalf("enabling, at the pause: pods %v by revision %v", counts, byRev)
	}
	action(t, ro, rolloutsv1alpha1.ActionPromote)
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseHealthy)
	testenv.Eventually(t, "every pod on the first snapshots", func() (bool, string) {
		counts, _ := configPods(t, cs)
		return counts[cm1+"|"+sec1] == 4, fmt.Sprint(counts)
	})
	get(t, cs)
	stable, generation := cs.Status.UpdateRevision, cs.Generation
	template := cs.Spec.Template.DeepCopy()

	// A ConfigMap change: a new revision without the CloneSet's spec
	// changing, released through the steps.
	testenv.Update(t, k8s, cm, func(c *corev1.ConfigMap) { c.Data["level"] = "debug" })
	get(t, cm)
	cm2 := snapshotName(ro, cm)
	testenv.Eventually(t, "a release of the new config, paused", func() (bool, string) {
		get(t, ro)
		return ro.Status.Phase == rolloutsv1alpha1.RolloutPhasePaused && ro.Status.CanaryRevision != "" && ro.Status.CanaryRevision != stable,
			fmt.Sprintf("phase %s canary %q: %s", ro.Status.Phase, ro.Status.CanaryRevision, ro.Status.Message)
	})
	get(t, cs)
	if cs.Generation != generation || cs.Spec.Template.Spec.Volumes[0].ConfigMap.Name != "app-config" ||
		cs.Spec.Template.Spec.Containers[0].EnvFrom[0].SecretRef.Name != "app-secret" || !equality.Semantic.DeepEqual(&cs.Spec.Template, template) {
		t.Fatalf("the CloneSet's spec changed: generation %d -> %d", generation, cs.Generation)
	}
	canary := cs.Status.UpdateRevision
	if canary == stable || ro.Status.CanaryRevision != canary || ro.Status.StableRevision != stable {
		t.Fatalf("revisions: CloneSet update %s, rollout stable %s canary %s (stable before %s)", canary, ro.Status.StableRevision, ro.Status.CanaryRevision, stable)
	}
	counts, byRev = configPods(t, cs)
	if counts[cm2+"|"+sec1] != 2 || counts[cm1+"|"+sec1] != 2 || byRev[canary] != cm2+"|"+sec1 || byRev[stable] != cm1+"|"+sec1 {
		t.Fatalf("at the pause: pods %v by revision %v; want 2 canary on %s and 2 stable on %s", counts, byRev, cm2, cm1)
	}

	// Abort: every pod back to the old snapshot.
	action(t, ro, rolloutsv1alpha1.ActionAbort)
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseDegraded)
	testenv.Eventually(t, "every pod back on the old snapshot", func() (bool, string) {
		counts, _ := configPods(t, cs)
		return counts[cm1+"|"+sec1] == 4, fmt.Sprint(counts)
	})
	if !exists(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: cm2}}) {
		t.Fatal("the aborted revision's snapshot was deleted while the workload still releases it")
	}

	// The config set back: the release is dropped, and the aborted
	// content's snapshot, used by no revision any more, is deleted.
	testenv.Update(t, k8s, cm, func(c *corev1.ConfigMap) { c.Data["level"] = "info" })
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseHealthy)
	if ro.Status.StableRevision != stable || ro.Status.CanaryRevision != "" {
		t.Fatalf("after the revert: stable %s canary %s, want %s", ro.Status.StableRevision, ro.Status.CanaryRevision, stable)
	}
	waitGone(t, ro, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: cm2}})

	// A Secret change is released the same way.
	testenv.Update(t, k8s, sec, func(s *corev1.Secret) { s.Data["TOKEN"] = []byte("two") })
	get(t, sec)
	sec2 := snapshotName(ro, sec)
	testenv.Eventually(t, "a release of the new secret, paused", func() (bool, string) {
		get(t, ro)
		return ro.Status.Phase == rolloutsv1alpha1.RolloutPhasePaused && ro.Status.CanaryRevision != "",
			fmt.Sprintf("phase %s canary %q: %s", ro.Status.Phase, ro.Status.CanaryRevision, ro.Status.Message)
	})
	counts, _ = configPods(t, cs)
	if counts[cm1+"|"+sec2] != 2 || counts[cm1+"|"+sec1] != 2 {
		t.Fatalf("secret release at the pause: pods %v, want 2 on %s and 2 on %s", counts, sec2, sec1)
	}
	var snapSec2 corev1.Secret
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: sec2}, &snapSec2); err != nil || string(snapSec2.Data["TOKEN"]) != "two" {
		t.Fatalf("new Secret snapshot: %v", err)
	}
	if strings.Contains(ro.Status.Message, "two") || strings.Contains(fmt.Sprint(ro.Status), "dHdv") {
		t.Fatalf("the Secret's content shows in the Rollout's status: %+v", ro.Status)
	}
	action(t, ro, rolloutsv1alpha1.ActionPromote)
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseHealthy)
	testenv.Eventually(t, "every pod on the new secret", func() (bool, string) {
		counts, _ := configPods(t, cs)
		return counts[cm1+"|"+sec2] == 4, fmt.Sprint(counts)
	})
	// The old secret's snapshot goes once its revision is pruned; the
	// ConfigMap's, still in use, stays.
	waitGone(t, ro, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sec1}})
	if !exists(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: cm1}}) {
		t.Fatalf("snapshot %s, in use, was deleted", cm1)
	}

	// Switching tracking off releases the plain template once more.
	testenv.Update(t, k8s, ro, func(r *rolloutsv1alpha1.Rollout) { r.Spec.TrackConfigs = false })
	testenv.Eventually(t, "a release of the plain template", func() (bool, string) {
		get(t, ro)
		return ro.Status.Phase == rolloutsv1alpha1.RolloutPhasePaused && len(ro.Status.TrackedConfigs) == 0,
			fmt.Sprintf("phase %s tracked %v: %s", ro.Status.Phase, ro.Status.TrackedConfigs, ro.Status.Message)
	})
	if ctl := control(t, cs); len(ctl.Configs) != 0 {
		t.Fatalf("tracking off, control configs %v", ctl.Configs)
	}
	if c := meta.FindStatusCondition(ro.Status.Conditions, rolloutsv1alpha1.ConditionConfigsTracked); c != nil {
		t.Fatalf("tracking off, condition %+v", c)
	}
	counts, _ = configPods(t, cs)
	if counts["app-config|app-secret"] != 2 || counts[cm1+"|"+sec2] != 2 {
		t.Fatalf("tracking off, at the pause: %v", counts)
	}
}

// checkSnapshot: immutable, labelled, owned (not controlled) by the Rollout.
func checkSnapshot(t *testing.T, ro *rolloutsv1alpha1.Rollout, snap client.Object) {
	t.Helper()
	var immutable *bool
	var of string
	switch s := snap.(type) {
	case *corev1.ConfigMap:
		immutable, of = s.Immutable, "app-config"
	case *corev1.Secret:
		immutable, of = s.Immutable, "app-secret"
	}
	if !ptr.Deref(immutable, false) {
		t.Errorf("snapshot %s is not immutable", snap.GetName())
	}
	if l := snap.GetLabels(); l[rolloutsv1alpha1.LabelSnapshotOf] != of || l[rolloutsv1alpha1.LabelRollout] != ro.Name {
		t.Errorf("snapshot %s labels %v", snap.GetName(), l)
	}
	refs := snap.GetOwnerReferences()
	if len(refs) != 1 || refs[0].UID != ro.UID || refs[0].Kind != "Rollout" || ptr.Deref(refs[0].Controller, false) {
		t.Errorf("snapshot %s owners %+v", snap.GetName(), refs)
	}
}

func waitGone(t *testing.T, ro *rolloutsv1alpha1.Rollout, obj client.Object) {
	t.Helper()
	testenv.Eventually(t, fmt.Sprintf("%T %s deleted", obj, obj.GetName()), func() (bool, string) {
		get(t, ro)
		return !exists(t, obj), fmt.Sprintf("rollout %s: %s", ro.Status.Phase, ro.Status.Message)
	})
}

// TestTrackConfigsMissing: a missing optional config is skipped, a
// missing required one is reported (condition ConfigsTracked False) and
// left as the template names it; once it exists it is snapshotted and
// released.
func TestTrackConfigsMissing(t *testing.T) {
	ctx := context.Background()
	ns := testenv.Namespace(t, k8s, "ro-")
	kubelet(t, ns)
	cs := newCloneSet(ns, "web", 2)
	cs.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "opt", VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "opt-config"}, Optional: ptr.To(true)}}}}
	cs.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "password"}}}}
	ro := newRollout(ns, "web", "web") // no steps: straight to promotion
	ro.Spec.TrackConfigs = true
	for _, o := range []client.Object{cs, ro} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, "condition ConfigNotFound", func() (bool, string) {
		get(t, ro)
		c := meta.FindStatusCondition(ro.Status.Conditions, rolloutsv1alpha1.ConditionConfigsTracked)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == rolloutsv1alpha1.ReasonConfigNotFound &&
			strings.Contains(c.Message, "Secret db") && !strings.Contains(c.Message, "opt-config"), fmt.Sprintf("%+v", c)
	})
	want := fmt.Sprint([]rolloutsv1alpha1.TrackedConfig{{Kind: "ConfigMap", Name: "opt-config"}, {Kind: "Secret", Name: "db"}})
	if got := fmt.Sprint(ro.Status.TrackedConfigs); got != want {
		t.Fatalf("trackedConfigs %s, want %s", got, want)
	}
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseHealthy) // nothing mapped: the plain template is stable
	if ctl := control(t, cs); len(ctl.Configs) != 0 {
		t.Fatalf("configs %v with no config existing", ctl.Configs)
	}

	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}, Data: map[string][]byte{"password": []byte("pw")}}
	if err := k8s.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	snap := snapshotName(ro, sec)
	testenv.Eventually(t, "every pod on the secret's snapshot", func() (bool, string) {
		var names []string
		for _, p := range testenv.LivePods(t, k8s, ns, cs.Spec.Selector.MatchLabels) {
			names = append(names, p.Spec.Containers[0].Env[0].ValueFrom.SecretKeyRef.Name)
		}
		sort.Strings(names)
		return fmt.Sprint(names) == fmt.Sprint([]string{snap, snap}), fmt.Sprint(names)
	})
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseHealthy)
	if c := meta.FindStatusCondition(ro.Status.Conditions, rolloutsv1alpha1.ConditionConfigsTracked); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("ConfigsTracked %+v", c)
	}
}
