package statefulset_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/revision"
)

func dataClaims(s *appsv1alpha1.StatefulSet) {
	s.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: map[string]string{"tier": "storage"}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}}
}

func claim(t *testing.T, ns, name string) *corev1.PersistentVolumeClaim {
	t.Helper()
	c := &corev1.PersistentVolumeClaim{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, c); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		t.Fatal(err)
	}
	return c
}

func TestOrderedCreationIdentityAndClaims(t *testing.T) {
	ns := namespace(t)
	set := create(t, newSet(ns, "db", 3, dataClaims, func(s *appsv1alpha1.StatefulSet) {
		s.Spec.ServiceName = "db-headless"
		s.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	}))
	eventually(t, "pod db-0", namesAre(t, set, "db-0"))
	// OrderedReady: db-1 waits for db-0 to be Running and Ready.
	time.Sleep(500 * time.Millisecond)
	if got := names(pods(t, set)); !slices.Equal(got, []string{"db-0"}) {
		t.Fatalf("OrderedReady created %v before db-0 was ready", got)
	}
	p := pods(t, set)[0]
	cur := get(t, set)
	wantLabels := map[string]string{
		appsv1alpha1.LabelStatefulSet:  "db",
		appsv1alpha1.LabelWorkload:     "StatefulSet",
		appsv1.StatefulSetPodNameLabel: "db-0",
		appsv1.PodIndexLabel:           "0",
		revision.LabelRevisionHash:     cur.Status.UpdateRevision,
	}
	for k, v := range wantLabels {
		if p.Labels[k] != v {
			t.Errorf("label %s=%q, want %q (labels %v)", k, p.Labels[k], v, p.Labels)
		}
	}
	if p.Spec.Hostname != "db-0" || p.Spec.Subdomain != "db-headless" {
		t.Errorf("hostname %q subdomain %q", p.Spec.Hostname, p.Spec.Subdomain)
	}
	if len(p.Spec.Volumes) != 1 || p.Spec.Volumes[0].PersistentVolumeClaim == nil || p.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != "data-db-0" {
		t.Errorf("the claim template's volume must replace the template's: %+v", p.Spec.Volumes)
	}
	if !inplace.HasGate(&p) || inplace.GateStatus(&p) != corev1.ConditionTrue {
		t.Errorf("readiness gate missing or not open: %+v", p.Spec.ReadinessGates)
	}
	if !metav1.IsControlledBy(&p, cur) {
		t.Errorf("pod not controlled by the set: %+v", p.OwnerReferences)
	}
	c := claim(t, ns, "data-db-0")
	if c == nil || c.Labels["tier"] != "storage" || c.Labels[appsv1alpha1.LabelStatefulSet] != "db" || len(c.OwnerReferences) != 0 {
		t.Fatalf("claim data-db-0: %+v", c)
	}
	if cur.Status.LabelSelector != appsv1alpha1.LabelStatefulSet+"=db" {
		t.Errorf("status.labelSelector %q", cur.Status.LabelSelector)
	}

	kubelet(t, ns)
	eventually(t, "3 pods", namesAre(t, set, "db-0", "db-1", "db-2"))
	ready := waitReady(t, set)
	if ready.Status.ReadyReplicas != 3 || ready.Status.CurrentReplicas != 3 || ready.Status.UpdatedReplicas != 3 ||
		ready.Status.CurrentRevision != ready.Status.UpdateRevision {
		t.Fatalf("status %+v", ready.Status)
	}
	for _, o := range []string{"1", "2"} {
		if claim(t, ns, "data-db-"+o) == nil {
			t.Errorf("claim data-db-%s missing", o)
		}
	}
}

func TestRecreatedPodKeepsItsClaimsAndName(t *testing.T) {
	ns := namespace(t)
	kubelet(t, ns)
	set := create(t, newSet(ns, "keep", 2, parallel, dataClaims))
	waitReady(t, set)
	before := claim(t, ns, "data-keep-1")
	victim := pods(t, set)[1]
	if err := k8s.Delete(context.Background(), &victim); err != nil {
		t.Fatal(err)
	}
	eventually(t, "keep-1 recreated", func() (bool, string) {
		ps := pods(t, set)
		return len(ps) == 2 && ps[1].UID != victim.UID, fmt.Sprint(names(ps))
	})
	waitReady(t, set)
	if after := claim(t, ns, "data-keep-1"); after == nil || after.UID != before.UID {
		t.Fatalf("the recreated pod must mount the same claim: before %v after %v", before.UID, after)
	}
}

func TestClaimRetentionOwnerReferences(t *testing.T) {
	ns := namespace(t)
	kubelet(t, ns)
	set := create(t, newSet(ns, "ret", 3, parallel, dataClaims, func(s *appsv1alpha1.StatefulSet) {
		s.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1alpha1.StatefulSetPersistentVolumeClaimRetentionPolicy{
			WhenDeleted: appsv1alpha1.DeletePersistentVolumeClaimRetentionPolicyType,
			WhenScaled:  appsv1alpha1.DeletePersistentVolumeClaimRetentionPolicyType,
		}
	}))
	cur := waitReady(t, set)
	owners := func(name string) string {
		c := claim(t, ns, name)
		if c == nil {
			return "gone"
		}
		var out []string
		for _, r := range c.OwnerReferences {
			out = append(out, r.Kind+"/"+r.Name)
		}
		return strings.Join(out, ",")
	}
	for _, o := range []string{"0", "1", "2"} {
		if got := owners("data-ret-" + o); got != "StatefulSet/ret" {
			t.Errorf("whenDeleted Delete: claim %s owners %q, want the set", o, got)
		}
	}
	podUIDs := map[string]string{}
	for _, p := range pods(t, set) {
		podUIDs[p.Name] = string(p.UID)
	}
	// Scaling down hands the claims of the removed pods to those pods, so
	// the garbage collector deletes them together (envtest runs none: the
	// references are what is checked here; the e2e test sees them go).
	modify(t, cur, func(s *appsv1alpha1.StatefulSet) { s.Spec.Replicas = ptr.To[int32](1) })
	eventually(t, "scaled to 1", namesAre(t, set, "ret-0"))
	for _, o := range []string{"1", "2"} {
		c := claim(t, ns, "data-ret-"+o)
		if c == nil || len(c.OwnerReferences) != 1 || c.OwnerReferences[0].Kind != "Pod" || string(c.OwnerReferences[0].UID) != podUIDs["ret-"+o] {
			t.Errorf("whenScaled Delete: claim of ret-%s must be owned by its pod only: %+v", o, c)
		}
	}
	if got := owners("data-ret-0"); got != "StatefulSet/ret" {
		t.Errorf("the kept pod's claim owners %q", got)
	}
	// Scaling up again before the collector ran gives the claims back to
	// the set: the stale pod reference must not take the new pod's volume.
	modify(t, cur, func(s *appsv1alpha1.StatefulSet) { s.Spec.Replicas = ptr.To[int32](2) })
	eventually(t, "claim of ret-1 owned by the set again", func() (bool, string) {
		got := owners("data-ret-1")
		return got == "StatefulSet/ret", got
	})
}

func TestReserveOrdinalsAndStart(t *testing.T) {
	ns := namespace(t)
	kubelet(t, ns)
	set := create(t, newSet(ns, "res", 3, parallel, func(s *appsv1alpha1.StatefulSet) {
		s.Spec.Ordinals = &appsv1alpha1.StatefulSetOrdinals{Start: 2}
		s.Spec.ReserveOrdinals = []intstr.IntOrString{intstr.FromInt32(3)}
	}))
	eventually(t, "ordinals 2 4 5", namesAre(t, set, "res-2", "res-4", "res-5"))
	waitReady(t, set)
	// Reserving a live ordinal deletes its pod and takes the next free one.
	modify(t, set, func(s *appsv1alpha1.StatefulSet) {
		s.Spec.ReserveOrdinals = []intstr.IntOrString{intstr.FromInt32(3), intstr.FromString("4-5")}
	})
	eventually(t, "ordinals 2 6 7", namesAre(t, set, "res-2", "res-6", "res-7"))
	cur := waitReady(t, set)
	if cur.Status.Replicas != 3 {
		t.Fatalf("status %+v", cur.Status)
	}
	if p := pods(t, set)[1]; p.Labels[appsv1.PodIndexLabel] != "6" {
		t.Errorf("pod-index label %q", p.Labels[appsv1.PodIndexLabel])
	}
}

func TestInPlaceOnlyRefusesAndTouchesNothing(t *testing.T) {
	ns := namespace(t)
	kubelet(t, ns)
	set := create(t, newSet(ns, "only", 2, rolling(func(r *appsv1alpha1.RollingUpdateStatefulSetStrategy) {
		r.PodUpdatePolicy = appsv1alpha1.InPlaceOnlyStatefulSetPodUpdatePolicy
	})))
	waitReady(t, set)
	before := pods(t, set)
	modify(t, set, func(s *appsv1alpha1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Args = []string{"--verbose"} })
	var cur *appsv1alpha1.StatefulSet
	eventually(t, "InPlaceUpdateBlocked", func() (bool, string) {
		cur = get(t, set)
		c := condition(cur, appsv1alpha1.ConditionInPlaceUpdateBlocked)
		return c != nil && c.Status == metav1.ConditionTrue, fmt.Sprintf("%+v", cur.Status.Conditions)
	})
	c := condition(cur, appsv1alpha1.ConditionInPlaceUpdateBlocked)
	for _, w := range []string{"updateStrategy.rollingUpdate.podUpdatePolicy", "spec.containers[0].args"} {
		if !strings.Contains(c.Message, w) {
			t.Errorf("condition message %q does not name %s", c.Message, w)
		}
	}
	if s := condition(cur, appsv1alpha1.ConditionStalled); s == nil || s.Status != metav1.ConditionTrue {
		t.Errorf("Stalled: %+v", s)
	}
	after := pods(t, set)
	for i := range before {
		if after[i].UID != before[i].UID || after[i].Labels[revision.LabelRevisionHash] != before[i].Labels[revision.LabelRevisionHash] {
			t.Fatalf("pod %s was touched", before[i].Name)
		}
	}
	// An image change goes in place.
	modify(t, set, func(s *appsv1alpha1.StatefulSet) {
		s.Spec.Template.Spec.Containers[0].Args = nil
		s.Spec.Template.Spec.Containers[0].Image = "db:2"
	})
	cur = waitReady(t, set)
	for i, p := range pods(t, set) {
		if p.UID != before[i].UID || p.Spec.Containers[0].Image != "db:2" || p.Labels[revision.LabelRevisionHash] != cur.Status.UpdateRevision {
			t.Errorf("pod %s not updated in place: %s %s", p.Name, p.Spec.Containers[0].Image, p.Labels[revision.LabelRevisionHash])
		}
	}
}

func TestPartitionAndPause(t *testing.T) {
	ns := namespace(t)
	kubelet(t, ns)
	set := create(t, newSet(ns, "part", 4, parallel, rolling(func(r *appsv1alpha1.RollingUpdateStatefulSetStrategy) {
		r.Partition = ptr.To(intstr.FromString("50%"))
		r.MaxUnavailable = ptr.To(intstr.FromInt32(2))
	})))
	first := waitReady(t, set)
	oldRev := first.Status.UpdateRevision
	modify(t, set, func(s *appsv1alpha1.StatefulSet) {
		s.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "V", Value: "2"}}
	})
	cur := waitReady(t, set)
	newRev := cur.Status.UpdateRevision
	revs := map[string]string{}
	for _, p := range pods(t, set) {
		revs[p.Name] = p.Labels[revision.LabelRevisionHash]
	}
	want := map[string]string{"part-0": oldRev, "part-1": oldRev, "part-2": newRev, "part-3": newRev}
	if fmt.Sprint(revs) != fmt.Sprint(want) {
		t.Fatalf("partition 50%% of 4: revisions %v, want %v", revs, want)
	}
	if cur.Status.CurrentRevision != oldRev || cur.Status.CurrentReplicas != 2 || cur.Status.UpdatedReplicas != 2 || cur.Status.ExpectedUpdatedReplicas != 2 {
		t.Fatalf("status %+v", cur.Status)
	}
	// Paused: scaling and replacing a lost pod go on; then lowering the
	// partition moves no running pod. The partition is lowered only once
	// the lost pod and the new one exist, so each rule is seen on its own.
	modify(t, set, func(s *appsv1alpha1.StatefulSet) {
		s.Spec.UpdateStrategy.RollingUpdate.Paused = true
		s.Spec.Replicas = ptr.To[int32](5)
	})
	lost := pods(t, set)[0]
	if err := k8s.Delete(context.Background(), &lost); err != nil {
		t.Fatal(err)
	}
	eventually(t, "5 pods, part-0 back", func() (bool, string) {
		ps := pods(t, set)
		return len(ps) == 5 && ps[0].UID != lost.UID, fmt.Sprint(names(ps))
	})
	modify(t, set, func(s *appsv1alpha1.StatefulSet) { s.Spec.UpdateStrategy.RollingUpdate.Partition = nil })
	eventually(t, "paused status", func() (bool, string) {
		cur = get(t, set)
		c := condition(cur, appsv1alpha1.ConditionReady)
		return cur.Status.ObservedGeneration == cur.Generation && cur.Status.AvailableReplicas == 5 && c != nil && c.Reason == appsv1alpha1.ReasonPaused,
			fmt.Sprintf("%+v", cur.Status)
	})
	// part-0 came back below the partition (old); part-4 was created at
	// the update revision; lowering the partition while paused moved
	// neither part-0 nor part-1.
	for _, p := range pods(t, set) {
		want := newRev
		if p.Name == "part-0" || p.Name == "part-1" {
			want = oldRev
		}
		if p.Labels[revision.LabelRevisionHash] != want {
			t.Errorf("paused: %s on %s, want %s", p.Name, p.Labels[revision.LabelRevisionHash], want)
		}
	}
	if cur.Status.UpdatedReplicas != 3 || cur.Status.CurrentReplicas != 2 || cur.Status.ExpectedUpdatedReplicas != 5 {
		t.Errorf("paused status %+v", cur.Status)
	}
	// Resumed: every pod moves.
	modify(t, set, func(s *appsv1alpha1.StatefulSet) { s.Spec.UpdateStrategy.RollingUpdate.Paused = false })
	cur = waitReady(t, set)
	if cur.Status.UpdatedReplicas != 5 || cur.Status.CurrentRevision != newRev {
		t.Fatalf("resumed status %+v", cur.Status)
	}
}

func TestUserSelectorAndAdoption(t *testing.T) {
	ns := namespace(t)
	kubelet(t, ns)
	set := create(t, newSet(ns, "web", 0, func(s *appsv1alpha1.StatefulSet) {
		s.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
		s.Spec.Template.Labels = map[string]string{"app": "web"}
	}))
	cur := waitReady(t, set)
	if cur.Status.LabelSelector != "app=web" {
		t.Errorf("status.labelSelector %q", cur.Status.LabelSelector)
	}
	// An orphan named like a member, matching the selector and on the
	// update revision is adopted and kept, as the native controller does
	// (one on another revision would be adopted and then updated).
	orphan := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: ns, Labels: map[string]string{
			"app": "web", appsv1alpha1.LabelWorkload: "StatefulSet", revision.LabelRevisionHash: cur.Status.UpdateRevision}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "db:1"}}},
	}
	if err := k8s.Create(context.Background(), orphan); err != nil {
		t.Fatal(err)
	}
	modify(t, set, func(s *appsv1alpha1.StatefulSet) { s.Spec.Replicas = ptr.To[int32](2) })
	eventually(t, "web-0 adopted, web-1 created", namesAre(t, set, "web-0", "web-1"))
	cur = waitReady(t, set)
	ps := pods(t, set)
	if ps[0].UID != orphan.UID || !metav1.IsControlledBy(&ps[0], cur) {
		t.Fatalf("orphan web-0 not adopted: %v %+v", ps[0].UID, ps[0].OwnerReferences)
	}
}

func TestRepairsMissingReadinessGate(t *testing.T) {
	ns := namespace(t)
	set := create(t, newSet(ns, "gate", 1))
	eventually(t, "gate-0 with its gate open", func() (bool, string) {
		ps := pods(t, set)
		return len(ps) == 1 && inplace.GateStatus(&ps[0]) == corev1.ConditionTrue, fmt.Sprint(names(ps))
	})
	// A manager stopped between creating a pod and opening its gate leaves
	// the gate without a condition: the next reconcile opens it.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p := pods(t, set)[0]
		p.Status.Conditions = nil
		return k8s.Status().Update(context.Background(), &p)
	})
	if err != nil {
		t.Fatal(err)
	}
	modify(t, set, func(s *appsv1alpha1.StatefulSet) { s.Annotations = map[string]string{"poke": "1"} })
	eventually(t, "gate open again", func() (bool, string) {
		p := pods(t, set)[0]
		return inplace.GateStatus(&p) == corev1.ConditionTrue, string(inplace.GateStatus(&p))
	})
}
