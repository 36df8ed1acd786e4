package rollout_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/target"
	"github.com/drover-dev/drover/internal/testenv"
)

// envtest runs no kube-controller-manager: these tests create the
// Deployment's first ReplicaSet themselves, and replicaSetsRun plays the
// ReplicaSet controller (every ReplicaSet's pods exist and are ready as
// soon as it asks for them) and the Deployment controller's status
// (observedGeneration). The Deployment controller's adoption at promotion
// is played by adopt; test/e2e/rollout checks the real one.

const podTemplateHash = appsv1.DefaultDeploymentUniqueLabelKey

func newDeployment(ns, name string, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1",
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
			},
		},
	}
}

// startDeployment creates a Deployment of n pods with its first
// ReplicaSet (as the Deployment controller would), and a Rollout of it;
// it waits until the Rollout is Healthy and returns the ReplicaSet.
func startDeployment(t *testing.T, ro *rolloutsv1alpha1.Rollout, n int32) (*appsv1.Deployment, *appsv1.ReplicaSet) {
	t.Helper()
	ns := ro.Namespace
	d := newDeployment(ns, "web", n)
	if err := k8s.Create(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	hash := target.TemplateHash(&d.Spec.Template, nil)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web-" + hash, Namespace: ns,
			Labels:          map[string]string{"app": "web", podTemplateHash: hash},
			Annotations:     map[string]string{"deployment.kubernetes.io/revision": "1", "deployment.kubernetes.io/desired-replicas": strconv.Itoa(int(n))},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))}},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(n),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", podTemplateHash: hash}},
			Template: *d.Spec.Template.DeepCopy(),
		},
	}
	rs.Spec.Template.Labels[podTemplateHash] = hash
	if err := k8s.Create(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	replicaSetsRun(t, ns)
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseHealthy)
	if ro.Status.StableRevision != hash {
		t.Fatalf("stable revision %q, want the ReplicaSet's %q", ro.Status.StableRevision, hash)
	}
	get(t, d)
	if !d.Spec.Paused || d.Annotations[target.AnnotationPausedByRollout] != ro.Name {
		t.Fatalf("the Deployment is not paused by the rollout: paused %v annotations %v", d.Spec.Paused, d.Annotations)
	}
	return d, rs
}

func deploymentRollout(ns string, steps ...rolloutsv1alpha1.CanaryStep) *rolloutsv1alpha1.Rollout {
	ro := newRollout(ns, "web", "web", steps...)
	ro.Spec.TargetRef = rolloutsv1alpha1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}
	return ro
}

// replicaSetsRun plays, until the test ends, the ReplicaSet controller
// (a ReplicaSet's status reports its spec's replicas, all ready and
// available) and the status of the Deployment controller (it observes
// every generation).
func replicaSetsRun(t *testing.T, ns string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			var rss appsv1.ReplicaSetList
			if err := k8s.List(ctx, &rss, client.InNamespace(ns)); err == nil {
				for i := range rss.Items {
					r := &rss.Items[i]
					n := ptr.Deref(r.Spec.Replicas, 1)
					st := &r.Status
					if st.ObservedGeneration != r.Generation || st.Replicas != n || st.ReadyReplicas != n || st.AvailableReplicas != n {
						r.Status = appsv1.ReplicaSetStatus{ObservedGeneration: r.Generation, Replicas: n, FullyLabeledReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
						_ = k8s.Status().Update(ctx, r)
					}
				}
			}
			var ds appsv1.DeploymentList
			if err := k8s.List(ctx, &ds, client.InNamespace(ns)); err == nil {
				for i := range ds.Items {
					if d := &ds.Items[i]; d.Status.ObservedGeneration != d.Generation {
						d.Status.ObservedGeneration = d.Generation
						_ = k8s.Status().Update(ctx, d)
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
}

func replicaSet(t *testing.T, ns, name string) *appsv1.ReplicaSet {
	t.Helper()
	var rs appsv1.ReplicaSet
	err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &rs)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return &rs
}

func controller(rs *appsv1.ReplicaSet) string {
	if ref := metav1.GetControllerOf(rs); ref != nil {
		return ref.Kind + "/" + ref.Name
	}
	return "none"
}

func setDeploymentImage(t *testing.T, d *appsv1.Deployment, image string) string {
	t.Helper()
	testenv.Update(t, k8s, d, func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = image })
	get(t, d)
	return target.TemplateHash(&d.Spec.Template, nil)
}

func selectsHash(t *testing.T, ns, svc string) string {
	t.Helper()
	var s corev1.Service
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: svc}, &s); err != nil {
		t.Fatal(err)
	}
	return s.Spec.Selector[podTemplateHash]
}

// adopt plays the Deployment controller's adoption of an orphan
// ReplicaSet matching its template: it becomes the Deployment's new
// ReplicaSet, saturated, and the old one is scaled to 0.
func adopt(t *testing.T, d *appsv1.Deployment, rs, old *appsv1.ReplicaSet) {
	t.Helper()
	testenv.Update(t, k8s, rs, func(r *appsv1.ReplicaSet) {
		r.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))}
		r.Annotations["deployment.kubernetes.io/revision"] = "2"
	})
	testenv.Update(t, k8s, old, func(r *appsv1.ReplicaSet) { r.Spec.Replicas = ptr.To[int32](0) })
}

func TestDeploymentCanaryPromotes(t *testing.T) {
	ns := testenv.Namespace(t, k8s, "ro-deploy-")
	ro := deploymentRollout(ns, setWeight(25), pause())
	d, stable := startDeployment(t, ro, 4)
	v1 := stable.Labels[podTemplateHash]

	v2 := setDeploymentImage(t, d, "app:2")
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhasePaused)
	canary := replicaSet(t, ns, "web-"+v2)
	if canary == nil {
		t.Fatalf("no canary ReplicaSet web-%s", v2)
	}
	if controller(canary) != "Rollout/web" || *canary.Spec.Replicas != 1 || canary.Spec.Template.Spec.Containers[0].Image != "app:2" ||
		canary.Spec.Selector.MatchLabels[podTemplateHash] != v2 || canary.Spec.Selector.MatchLabels["app"] != "web" {
		t.Fatalf("canary ReplicaSet: controller %s replicas %d selector %v", controller(canary), *canary.Spec.Replicas, canary.Spec.Selector.MatchLabels)
	}
	if s := replicaSet(t, ns, stable.Name); *s.Spec.Replicas != 4 || controller(s) != "Deployment/web" {
		t.Fatalf("stable ReplicaSet: replicas %d controller %s, want the Deployment's 4", *s.Spec.Replicas, controller(s))
	}
	if ro.Status.StableRevision != v1 || ro.Status.CanaryRevision != v2 || ptr.Deref(ro.Status.CurrentStepIndex, -1) != 1 ||
		ro.Status.CanaryReadyReplicas != 1 || ro.Status.StableReadyReplicas != 3 {
		t.Fatalf("status at the pause: %+v", ro.Status)
	}
	if s, c := selectsHash(t, ns, "web-stable"), selectsHash(t, ns, "web-canary"); s != v1 || c != v2 {
		t.Fatalf("services select %s/%s, want %s/%s", s, c, v1, v2)
	}
	get(t, d)
	if !d.Spec.Paused || d.Spec.Template.Spec.Containers[0].Image != "app:2" {
		t.Fatalf("Deployment paused %v image %s", d.Spec.Paused, d.Spec.Template.Spec.Containers[0].Image)
	}
	ctl, ok, err := appsv1alpha1.ParseRolloutControl(d.Annotations)
	if !ok || err != nil || ctl.CanaryRevision != v2 || ctl.CanaryReplicas != 1 || ctl.Rollout != "web" {
		t.Fatalf("control %+v %v", ctl, err)
	}

	// Promotion: the canary grows to 4 beside the stable 4, then is
	// handed to the Deployment (no owner).
	action(t, ro, rolloutsv1alpha1.ActionPromote)
	testenv.Eventually(t, "the canary ReplicaSet handed over", func() (bool, string) {
		canary = replicaSet(t, ns, canary.Name)
		return canary != nil && len(canary.OwnerReferences) == 0 && *canary.Spec.Replicas == 4,
			fmt.Sprintf("%+v", canary)
	})
	if canary.Annotations["deployment.kubernetes.io/desired-replicas"] != "4" {
		t.Fatalf("the handed-over ReplicaSet lacks the desired-replicas annotation the Deployment controller needs: %v", canary.Annotations)
	}
	// The hand-over is written before the status of the same reconcile.
	testenv.Eventually(t, "the rollout stable on "+v2, func() (bool, string) {
		get(t, ro)
		return ro.Status.StableRevision == v2, ro.Status.StableRevision
	})
	adopt(t, d, canary, stable)
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseHealthy)
	if ro.Status.StableRevision != v2 || ro.Status.CanaryRevision != "" {
		t.Fatalf("after adoption: %+v", ro.Status)
	}
	if s := selectsHash(t, ns, "web-stable"); s != v2 {
		t.Fatalf("stable service selects %s, want %s", s, v2)
	}
	get(t, d)
	if !d.Spec.Paused {
		t.Fatal("the Deployment was unpaused")
	}
}

func TestDeploymentAbortAndRelease(t *testing.T) {
	ns := testenv.Namespace(t, k8s, "ro-deploy-")
	ro := deploymentRollout(ns, setWeight(50), pause())
	d, stable := startDeployment(t, ro, 2)
	v2 := setDeploymentImage(t, d, "app:2")
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhasePaused)
	if c := replicaSet(t, ns, "web-"+v2); c == nil || *c.Spec.Replicas != 1 {
		t.Fatalf("canary ReplicaSet %+v", c)
	}

	action(t, ro, rolloutsv1alpha1.ActionAbort)
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseDegraded)
	testenv.Eventually(t, "the canary ReplicaSet deleted", func() (bool, string) {
		c := replicaSet(t, ns, "web-"+v2)
		return c == nil, fmt.Sprintf("%+v", c)
	})
	get(t, d)
	if !d.Spec.Paused || d.Spec.Template.Spec.Containers[0].Image != "app:2" {
		t.Fatalf("after the abort: paused %v image %s", d.Spec.Paused, d.Spec.Template.Spec.Containers[0].Image)
	}
	if s := replicaSet(t, ns, stable.Name); *s.Spec.Replicas != 2 {
		t.Fatalf("stable ReplicaSet replicas %d", *s.Spec.Replicas)
	}

	// Retry: a new canary ReplicaSet.
	action(t, ro, rolloutsv1alpha1.ActionRetry)
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhasePaused)
	if c := replicaSet(t, ns, "web-"+v2); c == nil || *c.Spec.Replicas != 1 || controller(c) != "Rollout/web" {
		t.Fatalf("canary ReplicaSet after retry %+v", c)
	}

	// Deleting the Rollout hands the Deployment back: unpaused, no
	// annotation, the unfinished canary deleted.
	if err := k8s.Delete(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the Deployment handed back", func() (bool, string) {
		get(t, d)
		_, ctl := d.Annotations[appsv1alpha1.AnnotationRolloutControl]
		_, by := d.Annotations[target.AnnotationPausedByRollout]
		return !d.Spec.Paused && !ctl && !by, fmt.Sprintf("paused %v annotations %v", d.Spec.Paused, d.Annotations)
	})
	testenv.Eventually(t, "the canary ReplicaSet deleted", func() (bool, string) {
		c := replicaSet(t, ns, "web-"+v2)
		return c == nil || c.DeletionTimestamp != nil, fmt.Sprintf("%+v", c)
	})
}

func TestBlueGreenOnDeployment(t *testing.T) {
	ns := testenv.Namespace(t, k8s, "ro-deploy-")
	for _, name := range []string{"web-active", "web-preview"} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
		if err := k8s.Create(context.Background(), svc); err != nil {
			t.Fatal(err)
		}
	}
	ro := deploymentRollout(ns)
	ro.Spec.Strategy = rolloutsv1alpha1.RolloutStrategy{BlueGreen: &rolloutsv1alpha1.BlueGreenStrategy{
		ActiveService: "web-active", PreviewService: "web-preview",
		AutoPromotionEnabled: ptr.To(false), ScaleDownDelaySeconds: ptr.To[int32](2)}}
	d, blue := startDeployment(t, ro, 3)
	v1 := blue.Labels[podTemplateHash]

	v2 := setDeploymentImage(t, d, "app:2")
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhasePaused)
	green := replicaSet(t, ns, "web-"+v2)
	if green == nil || *green.Spec.Replicas != 3 || controller(green) != "Rollout/web" {
		t.Fatalf("preview ReplicaSet %+v", green)
	}
	if a, p := selectsHash(t, ns, "web-active"), selectsHash(t, ns, "web-preview"); a != v1 || p != v2 {
		t.Fatalf("active %s preview %s, want %s %s", a, p, v1, v2)
	}

	action(t, ro, rolloutsv1alpha1.ActionPromote)
	testenv.Eventually(t, "active service on green", func() (bool, string) {
		s := selectsHash(t, ns, "web-active")
		return s == v2, s
	})
	// The old pods stay for the scale-down delay: green is still the
	// Rollout's, then handed over.
	if g := replicaSet(t, ns, green.Name); controller(g) != "Rollout/web" {
		t.Fatalf("green handed over before the scale-down delay: %s", controller(g))
	}
	testenv.Eventually(t, "green handed over after the scale-down delay", func() (bool, string) {
		g := replicaSet(t, ns, green.Name)
		return len(g.OwnerReferences) == 0, controller(g)
	})
	adopt(t, d, green, blue)
	waitPhase(t, ro, rolloutsv1alpha1.RolloutPhaseHealthy)
	if ro.Status.StableRevision != v2 {
		t.Fatalf("status %+v", ro.Status)
	}
}
