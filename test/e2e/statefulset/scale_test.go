package statefulset

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/podstate"
	"github.com/drover-dev/drover/test/e2e/framework"
)

// The brief's StatefulSet applies unchanged except apiVersion, with
// kubectl, and runs three ready pods; kubectl wait, get and scale work.
func TestBriefExampleWithKubectl(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	framework.Kubectl(t, "-n", ns, "apply", "--server-side", "-f", filepath.Join(root, "examples", "statefulset.yaml"))
	framework.Kubectl(t, "-n", ns, "wait", "--for=condition=Ready", "asts/database-cluster", "--timeout=90s")
	set := framework.Get(t, &appsv1alpha1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "database-cluster"}})
	ps := pods(t, set)
	if got := strings.Join(names(ps), ","); got != "database-cluster-0,database-cluster-1,database-cluster-2" {
		t.Fatalf("pods %s", got)
	}
	for _, p := range ps {
		if !podstate.IsReady(&p) || p.Spec.Hostname != p.Name || p.Spec.Subdomain != "db-headless" ||
			p.Labels[appsv1.StatefulSetPodNameLabel] != p.Name || p.Spec.Containers[0].Image != "postgres:16" {
			t.Errorf("pod %s: ready %v hostname %q subdomain %q labels %v", p.Name, podstate.IsReady(&p), p.Spec.Hostname, p.Spec.Subdomain, p.Labels)
		}
	}
	if set.Status.LabelSelector != "apps.drover.dev/statefulset=database-cluster" || set.Status.ReadyReplicas != 3 {
		t.Fatalf("status %+v", set.Status)
	}
	out := framework.Kubectl(t, "-n", ns, "get", "asts", "database-cluster")
	for _, col := range []string{"DESIRED", "CURRENT", "UPDATED", "READY", "AVAILABLE", "STATUS", "AGE"} {
		if !strings.Contains(out, col) {
			t.Fatalf("printer columns lack %s:\n%s", col, out)
		}
	}
	// The scale subresource: kubectl scale (and HPA) work although the
	// example has no selector.
	framework.Kubectl(t, "-n", ns, "scale", "asts/database-cluster", "--replicas=4")
	framework.Kubectl(t, "-n", ns, "wait", "--for=jsonpath={.status.availableReplicas}=4", "asts/database-cluster", "--timeout=90s")
	waitNames(t, set, "database-cluster-0", "database-cluster-1", "database-cluster-2", "database-cluster-3")
}

// OrderedReady creates pod n+1 only once pod n is Running and Ready, and
// scales down from the highest ordinal, one pod at a time.
func TestOrderedReadyScaleUpAndDown(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	log := watchPods(t, ns)
	// kwok's stages take half a second to make a pod ready, so a
	// controller that did not wait would be caught creating the next one.
	set := framework.Create(t, newSet(ns, "ordered", 4))
	waitReady(t, set)
	framework.Modify(t, set, func(s *appsv1alpha1.StatefulSet) { s.Spec.Replicas = ptr.To[int32](1) })
	waitNames(t, set, "ordered-0")
	waitReady(t, set)
	log.Stop()

	var created, terminated []string
	err := log.replay(0, func(ev podEvent, before map[string]*corev1.Pod) error {
		n := ordinal(ev.pod)
		prev := before[ev.pod.Name]
		switch {
		case ev.typ == watch.Added:
			created = append(created, ev.pod.Name)
			if n > 0 {
				if p := before["ordered-"+strconv.Itoa(n-1)]; p == nil || !podstate.IsReady(p) {
					return errors.New("created before the previous ordinal was ready")
				}
			}
		case ev.pod.DeletionTimestamp != nil && (prev == nil || prev.DeletionTimestamp == nil):
			terminated = append(terminated, ev.pod.Name)
			for name, p := range before {
				if name != ev.pod.Name && p.DeletionTimestamp != nil {
					return fmt.Errorf("terminated while %s was terminating", name)
				}
				if ordinal(p) > n {
					return fmt.Errorf("terminated before the higher ordinal %s", name)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(created, ","); got != "ordered-0,ordered-1,ordered-2,ordered-3" {
		t.Errorf("creation order %s", got)
	}
	if got := strings.Join(terminated, ","); got != "ordered-3,ordered-2,ordered-1" {
		t.Errorf("scale-down order %s", got)
	}
}

// Parallel creates every pod without waiting for any to be ready.
func TestParallelDoesNotWait(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	set := framework.Create(t, newSet(ns, "par", 3, parallel, func(s *appsv1alpha1.StatefulSet) {
		s.Spec.Template.Annotations = map[string]string{"kwok.drover.dev/ready": "false"}
	}))
	waitNames(t, set, "par-0", "par-1", "par-2")
	for _, p := range pods(t, set) {
		if podstate.IsReady(&p) {
			t.Fatalf("pod %s is ready: the probe annotation should keep it not ready", p.Name)
		}
	}
	framework.Eventually(t, timeout, func() error {
		cur := framework.Get(t, set)
		c := condition(cur, appsv1alpha1.ConditionReady)
		if cur.Status.Replicas != 3 || c == nil || c.Status != metav1.ConditionFalse {
			return fmt.Errorf("a set of 3 unready pods: Ready %+v, status %+v", c, cur.Status)
		}
		return nil
	})
	// The same spec with OrderedReady stops at the first pod.
	ordered := framework.Create(t, newSet(ns, "ord", 3, func(s *appsv1alpha1.StatefulSet) {
		s.Spec.Template.Annotations = map[string]string{"kwok.drover.dev/ready": "false"}
	}))
	waitNames(t, ordered, "ord-0")
	framework.Eventually(t, timeout, func() error {
		c := condition(framework.Get(t, ordered), appsv1alpha1.ConditionReady)
		if c == nil || !strings.Contains(c.Message, "waiting for pod ord-0 to become available") {
			return fmt.Errorf("Ready condition does not say what it waits for: %+v", c)
		}
		return nil
	})
	if got := names(pods(t, ordered)); len(got) != 1 {
		t.Fatalf("OrderedReady went past an unready pod: %v", got)
	}
}

// ordinals.start numbers the pods; reserving a live ordinal deletes its
// pod and creates the next free ordinal (OrderedReady: the new pod first).
func TestOrdinalsStartAndReserve(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	set := framework.Create(t, newSet(ns, "res", 3, func(s *appsv1alpha1.StatefulSet) {
		s.Spec.Ordinals = &appsv1alpha1.StatefulSetOrdinals{Start: 5}
	}))
	waitNames(t, set, "res-5", "res-6", "res-7")
	waitReady(t, set)
	log := watchPods(t, ns)
	framework.Modify(t, set, func(s *appsv1alpha1.StatefulSet) {
		s.Spec.ReserveOrdinals = []intstr.IntOrString{intstr.FromInt32(6), intstr.FromString("8-9")}
	})
	waitNames(t, set, "res-5", "res-7", "res-10")
	cur := waitReady(t, set)
	log.Stop()
	if cur.Status.Replicas != 3 || cur.Status.AvailableReplicas != 3 {
		t.Fatalf("status %+v", cur.Status)
	}
	// res-10 was created and ready before res-6 started terminating.
	err := log.replay(0, func(ev podEvent, before map[string]*corev1.Pod) error {
		if ev.pod.Name == "res-6" && ev.pod.DeletionTimestamp != nil {
			if p := before["res-10"]; p == nil || !podstate.IsReady(p) {
				return errors.New("the reserved pod went before its replacement was ready")
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func claimTemplate(s *appsv1alpha1.StatefulSet) {
	s.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{{
		ObjectMeta: metav1.ObjectMeta{Name: "data"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}}
}

// onNode binds the pods to a node: claims stay unbound without a
// provisioner, and a bound pod skips the scheduler's volume check.
func onNode(node string) option {
	return func(s *appsv1alpha1.StatefulSet) { s.Spec.Template.Spec.NodeName = node }
}

// claimOf returns the claim a pod mounts as volume name.
func claimOf(p *corev1.Pod, name string) string {
	for _, v := range p.Spec.Volumes {
		if v.Name == name && v.PersistentVolumeClaim != nil {
			return v.PersistentVolumeClaim.ClaimName
		}
	}
	return ""
}

func waitClaims(t *testing.T, ns string, want ...string) map[string]string {
	t.Helper()
	var got map[string]string
	framework.Eventually(t, timeout, func() error {
		got = framework.ClaimUIDs(t, ns)
		if len(got) != len(want) {
			return fmt.Errorf("claims %v, want %v", got, want)
		}
		for _, w := range want {
			if _, ok := got[w]; !ok {
				return fmt.Errorf("claims %v, want %v", got, want)
			}
		}
		return nil
	})
	return got
}

// Claims outlive their pods: an update that recreates every pod keeps
// them, and so does a deleted pod. With Retain they survive a scale-down
// and the set's deletion.
func TestClaimsKeptAcrossUpdatesAndRecreation(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	set := framework.Create(t, newSet(ns, "keep", 2, parallel, claimTemplate, onNode(framework.FirstNode(t))))
	first := waitReady(t, set)
	before := framework.ClaimUIDs(t, ns)
	oldPods := pods(t, set)
	framework.Modify(t, set, setEnv("recreate"))
	cur := waitReady(t, set)
	for i, p := range pods(t, set) {
		if p.UID == oldPods[i].UID || rev(&p) != cur.Status.UpdateRevision {
			t.Fatalf("pod %s was not recreated at the update revision", p.Name)
		}
		if claim := claimOf(&p, "data"); claim != "data-"+p.Name {
			t.Fatalf("pod %s mounts claim %q as volume data", p.Name, claim)
		}
	}
	if after := framework.ClaimUIDs(t, ns); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("claims replaced by the update: %v -> %v", before, after)
	}
	if first.Status.UpdateRevision == cur.Status.UpdateRevision {
		t.Fatal("no new revision")
	}
	// Retain (default): scale-down and deletion keep every claim.
	framework.Modify(t, set, func(s *appsv1alpha1.StatefulSet) { s.Spec.Replicas = ptr.To[int32](1) })
	waitNames(t, set, "keep-0")
	if err := framework.Client().Delete(context.Background(), cur); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, timeout, func() error {
		if ps := pods(t, set); len(ps) > 0 {
			return fmt.Errorf("pods left: %v", names(ps))
		}
		return nil
	})
	if after := framework.ClaimUIDs(t, ns); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("Retain: claims %v -> %v", before, after)
	}
}

// persistentVolumeClaimRetentionPolicy Delete: the cluster's garbage
// collector removes the claims of scaled-away pods (whenScaled) and all
// claims with the set (whenDeleted), through the owner references Drover
// sets as the native controller does.
func TestClaimRetentionDelete(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	set := framework.Create(t, newSet(ns, "ret", 3, parallel, claimTemplate, onNode(framework.FirstNode(t)), func(s *appsv1alpha1.StatefulSet) {
		s.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1alpha1.StatefulSetPersistentVolumeClaimRetentionPolicy{
			WhenDeleted: appsv1alpha1.DeletePersistentVolumeClaimRetentionPolicyType,
			WhenScaled:  appsv1alpha1.DeletePersistentVolumeClaimRetentionPolicyType,
		}
	}))
	waitReady(t, set)
	kept := waitClaims(t, ns, "data-ret-0", "data-ret-1", "data-ret-2")
	framework.Modify(t, set, func(s *appsv1alpha1.StatefulSet) { s.Spec.Replicas = ptr.To[int32](1) })
	waitNames(t, set, "ret-0")
	left := waitClaims(t, ns, "data-ret-0")
	if left["data-ret-0"] != kept["data-ret-0"] {
		t.Fatal("the kept pod's claim was replaced")
	}
	cur := waitReady(t, set)
	if err := framework.Client().Delete(context.Background(), cur); err != nil {
		t.Fatal(err)
	}
	waitClaims(t, ns)
	if err := framework.Client().Get(context.Background(), client.ObjectKeyFromObject(cur), &appsv1alpha1.StatefulSet{}); !apierrors.IsNotFound(err) {
		t.Fatalf("set still there: %v", err)
	}
}

// HPA drives the set through the scale subresource; it needs the selector
// that status.labelSelector reports, here without spec.selector.
func TestHPAScalesWithoutSelector(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	set := framework.Create(t, newSet(ns, "hpa", 1, parallel))
	waitReady(t, set)
	framework.CreateHPA(t, ns, "StatefulSet", "hpa", 3, 5)
	framework.Eventually(t, 2*timeout, func() error {
		cur := framework.Get(t, set)
		if ptr.Deref(cur.Spec.Replicas, 0) != 3 || cur.Status.AvailableReplicas != 3 {
			return fmt.Errorf("replicas %d, available %d", ptr.Deref(cur.Spec.Replicas, 0), cur.Status.AvailableReplicas)
		}
		return nil
	})
	waitNames(t, set, "hpa-0", "hpa-1", "hpa-2")
}

// minReadySeconds: a pod counts as available only after being ready that
// long, and OrderedReady creates the next pod only then.
func TestMinReadySeconds(t *testing.T) {
	t.Parallel()
	ns := framework.Namespace(t)
	const minReady = 2
	log := watchPods(t, ns)
	set := framework.Create(t, newSet(ns, "slow", 2, func(s *appsv1alpha1.StatefulSet) { s.Spec.MinReadySeconds = minReady }))
	framework.Eventually(t, timeout, func() error {
		cur := framework.Get(t, set)
		if cur.Status.ReadyReplicas == 1 && cur.Status.AvailableReplicas == 0 {
			return nil // seen: ready but not yet available
		}
		return fmt.Errorf("status %+v", cur.Status)
	})
	waitReady(t, set)
	log.Stop()
	var readyAt time.Time
	err := log.replay(0, func(ev podEvent, before map[string]*corev1.Pod) error {
		if ev.pod.Name == "slow-0" && podstate.IsReady(ev.pod) && readyAt.IsZero() {
			readyAt = podstate.ReadySince(ev.pod)
		}
		if ev.typ == watch.Added && ev.pod.Name == "slow-1" {
			if readyAt.IsZero() {
				return errors.New("slow-1 created before slow-0 was ready")
			}
			if wait := ev.pod.CreationTimestamp.Sub(readyAt); wait < minReady*time.Second-time.Second {
				// Timestamps have second precision: allow one second.
				return fmt.Errorf("slow-1 created %s after slow-0 became ready, minReadySeconds %d", wait, minReady)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
