package rollout_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/podstate"
	"github.com/drover-dev/drover/internal/target"
	"github.com/drover-dev/drover/test/e2e/framework"
)

// TestDeploymentCanaryHandsOverWithoutRestarts releases v2 of a 4-pod
// apps/v1 Deployment through a Rollout without a traffic router, with the
// real kube-controller-manager's Deployment and ReplicaSet controllers:
//
//   - the Rollout pauses the Deployment; its first ReplicaSet (the
//     Deployment controller's) bears the name Drover computes;
//   - at setWeight 25 the canary is a ReplicaSet of the Rollout with 1 pod of
//     v2 beside the Deployment's 4 pods of v1 (a surge canary);
//   - promoted, the canary ReplicaSet grows to 4 and is handed over: the
//     still paused Deployment adopts it and scales its old ReplicaSet to 0.
//     No pod of v2 is deleted or replaced, and the Deployment is never
//     unpaused;
//   - deleting the Rollout unpauses the Deployment, which has nothing left to
//     do: no pod changes.
func TestDeploymentCanaryHandsOverWithoutRestarts(t *testing.T) {
	t.Parallel()
	framework.RequireManager(t)
	ctx, c := context.Background(), framework.Client()
	ns := framework.Namespace(t)
	const n = 4
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](n),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: imageV1,
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: podPort}}}}},
			},
		},
	}
	ro := &rolloutsv1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: rolloutsv1alpha1.RolloutSpec{
			TargetRef: rolloutsv1alpha1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			Strategy: rolloutsv1alpha1.RolloutStrategy{Canary: &rolloutsv1alpha1.CanaryStrategy{
				Steps: []rolloutsv1alpha1.CanaryStep{setWeight(25), pauseUntilPromoted()},
			}},
		},
	}
	dw := watchDeployment(t, ns, "web")
	framework.Create(t, d)
	framework.Create(t, ro)
	t.Cleanup(func() {
		if t.Failed() {
			dumpDeployment(t, ns)
			t.Logf("Deployment history:\n%s", dw)
		}
	})

	// Healthy on v1, the Deployment paused by the Rollout.
	var v1 string
	waitDeployRollout(t, ro, "Healthy on v1", func(ro *rolloutsv1alpha1.Rollout, d *appsv1.Deployment, rss []appsv1.ReplicaSet) error {
		if len(rss) != 1 {
			return fmt.Errorf("want the Deployment's first ReplicaSet only, got %s", describeRSs(rss))
		}
		v1 = rss[0].Labels[appsv1.DefaultDeploymentUniqueLabelKey]
		if err := healthyOn(ro, v1, n); err != nil {
			return err
		}
		if !d.Spec.Paused || d.Annotations[target.AnnotationPausedByRollout] != ro.Name {
			return fmt.Errorf("deployment not paused by the rollout: paused %v annotations %v", d.Spec.Paused, d.Annotations)
		}
		return deployPodsOn(ns, map[string]int{v1: n})
	})
	d = framework.Get(t, d)
	if want := "web-" + target.TemplateHash(&d.Spec.Template, d.Status.CollisionCount); "web-"+v1 != want {
		t.Errorf("the Deployment controller named its ReplicaSet web-%s, Drover computes %s for the same template", v1, want)
	}
	t.Logf("%s Healthy on %s; the Deployment is paused by the Rollout", now(), v1)

	// v2: the canary ReplicaSet, 1 pod, beside the 4 stable ones.
	framework.Modify(t, d, func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = imageV2 })
	d = framework.Get(t, d)
	v2 := target.TemplateHash(&d.Spec.Template, d.Status.CollisionCount)
	waitDeployRollout(t, ro, "paused at step 1 with 1 canary pod", func(ro *rolloutsv1alpha1.Rollout, d *appsv1.Deployment, rss []appsv1.ReplicaSet) error {
		st := ro.Status
		if st.ObservedGeneration != ro.Generation || st.Phase != rolloutsv1alpha1.RolloutPhasePaused || ptr.Deref(st.CurrentStepIndex, -1) != 1 ||
			st.StableRevision != v1 || st.CanaryRevision != v2 || st.CanaryReadyReplicas != 1 {
			return fmt.Errorf("want Paused at step 1 with 1 canary pod of %s ready; %s", v2, summary(ro))
		}
		if !d.Spec.Paused {
			return fmt.Errorf("deployment not paused")
		}
		stable, canary := findRS(rss, v1), findRS(rss, v2)
		if stable == nil || canary == nil {
			return fmt.Errorf("want ReplicaSets of %s and %s: %s", v1, v2, describeRSs(rss))
		}
		if owner(canary) != "Rollout/web" || *canary.Spec.Replicas != 1 || canary.Status.ReadyReplicas != 1 || canary.Name != "web-"+v2 {
			return fmt.Errorf("want the canary ReplicaSet web-%s, the Rollout's, with 1 ready pod: %s", v2, describeRSs(rss))
		}
		if owner(stable) != "Deployment/web" || *stable.Spec.Replicas != n || stable.Status.ReadyReplicas != n {
			return fmt.Errorf("want the Deployment's stable ReplicaSet at %d ready pods: %s", n, describeRSs(rss))
		}
		return deployPodsOn(ns, map[string]int{v1: n, v2: 1})
	})
	t.Logf("%s paused at step 1: 1 pod of %s beside %d of %s", now(), v2, n, v1)
	firstCanary := podUIDsOn(t, ns, v2)

	// Every v2 pod from now on: none may be deleted or replaced.
	var mu sync.Mutex
	seen := map[string]string{}
	rec := framework.RecordPods(t, ns, func(ev framework.PodEvent, _ map[string]*corev1.Pod) error {
		if ev.Pod.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != v2 {
			return nil
		}
		if ev.Type == watch.Deleted || ev.Pod.DeletionTimestamp != nil {
			return fmt.Errorf("pod %s of %s deleted", ev.Pod.Name, v2)
		}
		if rc := framework.ContainerStatus(ev.Pod, "app").RestartCount; rc != 0 {
			return fmt.Errorf("pod %s of %s restarted %d times", ev.Pod.Name, v2, rc)
		}
		return nil
	}, func(ev framework.PodEvent) {
		if ev.Pod.Labels[appsv1.DefaultDeploymentUniqueLabelKey] == v2 {
			mu.Lock()
			seen[ev.Pod.Name] = string(ev.Pod.UID)
			mu.Unlock()
		}
	})

	promote(t, ro)
	waitDeployRollout(t, ro, "Healthy on v2, handed to the Deployment", func(ro *rolloutsv1alpha1.Rollout, d *appsv1.Deployment, rss []appsv1.ReplicaSet) error {
		if err := healthyOn(ro, v2, n); err != nil {
			return err
		}
		stable, canary := findRS(rss, v1), findRS(rss, v2)
		if canary == nil || owner(canary) != "Deployment/web" || *canary.Spec.Replicas != n || canary.Status.ReadyReplicas != n {
			return fmt.Errorf("want web-%s the Deployment's with %d ready pods: %s", v2, n, describeRSs(rss))
		}
		if stable == nil || *stable.Spec.Replicas != 0 || stable.Status.Replicas != 0 {
			return fmt.Errorf("want the old ReplicaSet at 0: %s", describeRSs(rss))
		}
		if st := d.Status; st.ObservedGeneration != d.Generation || st.UpdatedReplicas != n || st.Replicas != n || st.AvailableReplicas != n {
			return fmt.Errorf("deployment status %+v", st)
		}
		return deployPodsOn(ns, map[string]int{v2: n})
	})
	t.Logf("%s Healthy on %s; the Deployment adopted web-%s", now(), v2, v2)
	rec.Stop()
	rec.AssertNoViolations(t)
	end := podUIDsOn(t, ns, v2)
	mu.Lock()
	if len(seen) != n || fmt.Sprint(seen) != fmt.Sprint(end) {
		t.Errorf("pods of %s seen since the pause %v, at the end %v: want the same %d", v2, seen, end, n)
	}
	mu.Unlock()
	for name, uid := range firstCanary {
		if end[name] != uid {
			t.Errorf("the first canary pod %s (uid %s) is gone: %v", name, uid, end)
		}
	}
	d = framework.Get(t, d)
	if !d.Spec.Paused {
		t.Error("the Deployment is not paused after the promotion")
	}
	if got := dw.unpausedAfterPause(); got != "" {
		t.Errorf("the Deployment was unpaused during the release: %s", got)
	}
	rs := framework.Get(t, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-" + v2}})
	t.Logf("adopted ReplicaSet web-%s: revision %s, desired-replicas %s, owners %v", v2,
		rs.Annotations["deployment.kubernetes.io/revision"], rs.Annotations["deployment.kubernetes.io/desired-replicas"], rs.OwnerReferences)
	t.Logf("the Deployment as watched:\n%s", dw)
	logEvents(t, ns, "Deployment")
	for _, l := range managerLines(ns, 20) {
		if strings.Contains(l, "error") {
			t.Logf("manager: %s", l)
		}
	}

	// Deleting the Rollout hands the Deployment back; it has nothing to do.
	if err := c.Delete(ctx, ro); err != nil {
		t.Fatal(err)
	}
	framework.WaitFor(t, rolloutTimeout, d, func(d *appsv1.Deployment) error {
		if _, ok := d.Annotations[target.AnnotationPausedByRollout]; d.Spec.Paused || ok || d.Annotations[appsv1alpha1.AnnotationRolloutControl] != "" {
			return fmt.Errorf("want the Deployment unpaused, without the rollout's annotations: paused %v annotations %v", d.Spec.Paused, d.Annotations)
		}
		if d.Status.ObservedGeneration != d.Generation || d.Status.UpdatedReplicas != n || d.Status.AvailableReplicas != n {
			return fmt.Errorf("deployment status %+v", d.Status)
		}
		return nil
	})
	time.Sleep(2 * time.Second) // the Deployment controller had its chance to move pods
	if after := podUIDsOn(t, ns, v2); fmt.Sprint(after) != fmt.Sprint(end) {
		t.Errorf("pods changed once the Deployment was handed back: %v -> %v", end, after)
	}
}

func now() string { return time.Now().Format("15:04:05.000") }

func promote(t *testing.T, ro *rolloutsv1alpha1.Rollout) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, rolloutsv1alpha1.AnnotationAction, rolloutsv1alpha1.ActionPromote)
	if err := framework.Client().Patch(context.Background(), ro.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s promote", now())
}

// healthyOn says why the Rollout is not Healthy on rev with n stable pods
// ready; nil if it is.
func healthyOn(ro *rolloutsv1alpha1.Rollout, rev string, n int32) error {
	st := ro.Status
	if st.ObservedGeneration != ro.Generation || st.Phase != rolloutsv1alpha1.RolloutPhaseHealthy || st.StableRevision != rev ||
		st.CanaryRevision != "" || st.StableReadyReplicas != n || ro.Annotations[rolloutsv1alpha1.AnnotationAction] != "" {
		return fmt.Errorf("want Healthy on %s with %d pods ready; %s", rev, n, summary(ro))
	}
	return nil
}

// waitDeployRollout polls the Rollout, its Deployment and the
// Deployment's namespace's ReplicaSets until ok accepts them.
func waitDeployRollout(t *testing.T, ro *rolloutsv1alpha1.Rollout, what string, ok func(*rolloutsv1alpha1.Rollout, *appsv1.Deployment, []appsv1.ReplicaSet) error) {
	t.Helper()
	ctx, c := context.Background(), framework.Client()
	err := framework.Poll(ctx, rolloutTimeout, func() error {
		cur := &rolloutsv1alpha1.Rollout{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(ro), cur); err != nil {
			return err
		}
		d := &appsv1.Deployment{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: ro.Spec.TargetRef.Name}, d); err != nil {
			return err
		}
		var rss appsv1.ReplicaSetList
		if err := c.List(ctx, &rss, client.InNamespace(ro.Namespace)); err != nil {
			return err
		}
		return ok(cur, d, rss.Items)
	})
	if err != nil {
		t.Fatalf("waiting for rollout %s to be %s: %v", ro.Name, what, err)
	}
}

func findRS(rss []appsv1.ReplicaSet, hash string) *appsv1.ReplicaSet {
	for i := range rss {
		if rss[i].Labels[appsv1.DefaultDeploymentUniqueLabelKey] == hash {
			return &rss[i]
		}
	}
	return nil
}

func owner(o metav1.Object) string {
	if ref := metav1.GetControllerOf(o); ref != nil {
		return ref.Kind + "/" + ref.Name
	}
	return "none"
}

func describeRSs(rss []appsv1.ReplicaSet) string {
	var b strings.Builder
	for _, r := range rss {
		fmt.Fprintf(&b, "\n  %s owner %s replicas %d status %d/%d ready, %d available, revision %q, gen %d/%d",
			r.Name, owner(&r), ptr.Deref(r.Spec.Replicas, -1), r.Status.Replicas, r.Status.ReadyReplicas, r.Status.AvailableReplicas,
			r.Annotations["deployment.kubernetes.io/revision"], r.Status.ObservedGeneration, r.Generation)
	}
	return b.String()
}

// deployPodsOn says why the namespace's live pods are not exactly want
// (pods per pod-template-hash), all ready; nil if they are.
func deployPodsOn(ns string, want map[string]int) error {
	var list corev1.PodList
	if err := framework.Client().List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		return err
	}
	got := map[string]int{}
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		if !podstate.IsReady(&p) {
			return fmt.Errorf("pod %s not ready", p.Name)
		}
		got[p.Labels[appsv1.DefaultDeploymentUniqueLabelKey]]++
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		return fmt.Errorf("ready pods per revision %v, want %v", got, want)
	}
	return nil
}

// podUIDsOn returns the live pods of revision hash: UID by name.
func podUIDsOn(t *testing.T, ns, hash string) map[string]string {
	t.Helper()
	var list corev1.PodList
	if err := framework.Client().List(context.Background(), &list, client.InNamespace(ns),
		client.MatchingLabels{appsv1.DefaultDeploymentUniqueLabelKey: hash}); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out[p.Name] = string(p.UID)
		}
	}
	return out
}

// deploymentHistory records every version of a Deployment a watch saw.
type deploymentHistory struct {
	mu      sync.Mutex
	entries []string
	paused  bool   // seen paused
	unpause string // first version seen unpaused after a paused one
}

func (h *deploymentHistory) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.entries, "\n")
}

func (h *deploymentHistory) unpausedAfterPause() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.unpause
}

// watchDeployment records the Deployment's versions until the test ends.
func watchDeployment(t *testing.T, ns, name string) *deploymentHistory {
	h := &deploymentHistory{}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := framework.Clientset().AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); w.Stop(); <-done })
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			d, ok := ev.Object.(*appsv1.Deployment)
			if !ok {
				continue
			}
			st := d.Status
			line := fmt.Sprintf("%s %s gen %d/%d paused %v image %s replicas %d updated %d available %d",
				now(), ev.Type, st.ObservedGeneration, d.Generation, d.Spec.Paused, d.Spec.Template.Spec.Containers[0].Image,
				st.Replicas, st.UpdatedReplicas, st.AvailableReplicas)
			h.mu.Lock()
			h.entries = append(h.entries, line)
			if d.Spec.Paused {
				h.paused = true
			} else if h.paused && h.unpause == "" && ev.Type != watch.Deleted {
				h.unpause = line
			}
			h.mu.Unlock()
		}
	}()
	return h
}

// dumpDeployment logs the namespace's Deployment, ReplicaSets, pods, the
// Rollout's and the Deployment's events, and the manager's lines about
// the namespace.
func dumpDeployment(t *testing.T, ns string) {
	ctx, c := context.Background(), framework.Client()
	var ro rolloutsv1alpha1.Rollout
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web"}, &ro); err == nil {
		t.Logf("dump: rollout: %s", summary(&ro))
	}
	var d appsv1.Deployment
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web"}, &d); err == nil {
		t.Logf("dump: deployment paused %v annotations %v status %+v", d.Spec.Paused, d.Annotations, d.Status)
	}
	var rss appsv1.ReplicaSetList
	if err := c.List(ctx, &rss, client.InNamespace(ns)); err == nil {
		t.Logf("dump: replicasets:%s", describeRSs(rss.Items))
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(ns)); err == nil {
		sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
		t.Logf("dump: pods:%s", describePods(pods.Items))
	}
	logEvents(t, ns, "Rollout", "Deployment", "ReplicaSet")
	if lines := managerLines(ns, 60); len(lines) > 0 {
		t.Logf("dump: manager log lines about %s:\n%s", ns, strings.Join(lines, "\n"))
	}
}

// logEvents logs the namespace's events about objects of the kinds, oldest
// first.
func logEvents(t *testing.T, ns string, kinds ...string) {
	var events corev1.EventList
	if err := framework.Client().List(context.Background(), &events, client.InNamespace(ns)); err != nil {
		t.Logf("events: %v", err)
		return
	}
	sort.Slice(events.Items, func(i, j int) bool { return eventTime(&events.Items[i]).Before(eventTime(&events.Items[j])) })
	for _, ev := range events.Items {
		if k := ev.InvolvedObject.Kind; slices.Contains(kinds, k) {
			t.Logf("event %s %s/%s %s: %s", eventTime(&ev).Format("15:04:05.000"), k, ev.InvolvedObject.Name, ev.Reason, ev.Message)
		}
	}
}
