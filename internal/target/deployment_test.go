package target

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
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

const deployUID = types.UID("deploy-uid")

var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func deployment(image string, replicas int32, ctl string) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: deployUID, Generation: 2},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}},
			},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{}},
		},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 2},
	}
	if ctl != "" {
		d.Annotations = map[string]string{appsv1alpha1.AnnotationRolloutControl: ctl}
	}
	return d
}

// replicaSet is a ReplicaSet at revision hash running image, replicas pods
// of which ready are ready (and available; ready > replicas: pods of a
// scaled-down ReplicaSet still there). owner is "deployment", a
// Rollout's name, or "" for an orphan. age orders creation.
func replicaSet(hash, image string, replicas, ready int32, owner string, revision, age int) *appsv1.ReplicaSet {
	labels := map[string]string{"app": "web", hashLabel: hash}
	r := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web-" + hash, Namespace: "ns", UID: types.UID("rs-" + hash), Generation: 1,
			Labels: labels, CreationTimestamp: metav1.NewTime(epoch.Add(time.Duration(age) * time.Minute))},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", hashLabel: hash}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", hashLabel: hash}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}},
			},
		},
		Status: appsv1.ReplicaSetStatus{ObservedGeneration: 1, Replicas: max(replicas, ready), ReadyReplicas: ready, AvailableReplicas: ready},
	}
	if revision > 0 {
		r.Annotations = map[string]string{annotationRevision: strconv.Itoa(revision)}
	}
	switch owner {
	case "":
	case "deployment":
		r.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: deployUID, Controller: ptr.To(true)}}
	default:
		r.OwnerReferences = []metav1.OwnerReference{{APIVersion: rolloutsv1alpha1.GroupVersion.String(), Kind: "Rollout", Name: owner,
			UID: types.UID("ro-" + owner), Controller: ptr.To(true)}}
	}
	return r
}

func items(rss ...*appsv1.ReplicaSet) []appsv1.ReplicaSet {
	out := make([]appsv1.ReplicaSet, len(rss))
	for i, r := range rss {
		out[i] = *r
	}
	return out
}

func depSummary(w *Workload) string {
	return fmt.Sprintf("caughtUp=%v revs=%s->%s counts=%+v", w.CaughtUp, w.CurrentRevision, w.UpdateRevision, w.Counts)
}

func TestFromDeploymentRevisionsAndCounts(t *testing.T) {
	v2 := TemplateHash(&deployment("app:2", 4, "").Spec.Template, nil)
	canary := func(stableReplicas string) string {
		return `{"rollout":"ro","stableRevision":"h1","canaryRevision":"` + v2 + `","canaryReplicas":1` + stableReplicas + `}`
	}
	cases := []struct {
		name  string
		d     *appsv1.Deployment
		rss   []*appsv1.ReplicaSet
		want  string
		check func(*testing.T, *Workload)
	}{{
		name: "steady: the Deployment's only ReplicaSet",
		d:    deployment("app:1", 4, ""),
		rss:  []*appsv1.ReplicaSet{replicaSet("h1", "app:1", 4, 3, "deployment", 1, 0)},
		want: "caughtUp=true revs=h1->h1 counts={Replicas:4 Ready:3 Updated:4 UpdatedReady:3}",
		check: func(t *testing.T, w *Workload) {
			if w.Kind != KindDeployment || w.RevisionLabel != "pod-template-hash" || w.Replicas != 4 ||
				fmt.Sprint(w.PodLabels) != "map[app:web]" || w.Template.Spec.Containers[0].Image != "app:1" {
				t.Errorf("workload %+v", w)
			}
		},
	}, {
		name: "new template, no canary yet: the update revision is computed, the stable pods count up to replicas-canary",
		d:    deployment("app:2", 4, canary("")),
		rss:  []*appsv1.ReplicaSet{replicaSet("h1", "app:1", 4, 4, "deployment", 1, 0)},
		want: "caughtUp=true revs=h1->" + v2 + " counts={Replicas:3 Ready:3 Updated:0 UpdatedReady:0}",
	}, {
		name: "surge canary: 1 canary pod beside 4 stable ones counts as 1+3",
		d:    deployment("app:2", 4, canary("")),
		rss: []*appsv1.ReplicaSet{replicaSet("h1", "app:1", 4, 4, "deployment", 1, 0),
			replicaSet(v2, "app:2", 1, 1, "ro", 0, 5)},
		want: "caughtUp=true revs=h1->" + v2 + " counts={Replicas:4 Ready:4 Updated:1 UpdatedReady:1}",
	}, {
		name: "stableReplicas in the control (a router, blue-green): the stable side counts up to it",
		d:    deployment("app:2", 4, canary(`,"stableReplicas":4`)),
		rss: []*appsv1.ReplicaSet{replicaSet("h1", "app:1", 4, 4, "deployment", 1, 0),
			replicaSet(v2, "app:2", 4, 2, "ro", 0, 5)},
		want: "caughtUp=true revs=h1->" + v2 + " counts={Replicas:8 Ready:6 Updated:4 UpdatedReady:2}",
	}, {
		name: "promoted, not handed over yet: the old pods, about to go, do not count",
		d:    deployment("app:2", 4, `{"rollout":"ro","stableRevision":"`+v2+`","canaryReplicas":0}`),
		rss: []*appsv1.ReplicaSet{replicaSet("h1", "app:1", 4, 4, "deployment", 1, 0),
			replicaSet(v2, "app:2", 4, 4, "ro", 0, 5)},
		want: "caughtUp=true revs=h1->" + v2 + " counts={Replicas:4 Ready:4 Updated:4 UpdatedReady:4}",
	}, {
		name: "handed over, not adopted yet: the orphan counts as updated",
		d:    deployment("app:2", 4, `{"rollout":"ro","stableRevision":"`+v2+`","canaryReplicas":0}`),
		rss: []*appsv1.ReplicaSet{replicaSet("h1", "app:1", 4, 4, "deployment", 1, 0),
			replicaSet(v2, "app:2", 4, 3, "", 0, 5)},
		want: "caughtUp=true revs=h1->" + v2 + " counts={Replicas:4 Ready:3 Updated:4 UpdatedReady:3}",
	}, {
		name: "the Deployment's own rolling update, unfinished: only the update revision's pods count",
		d:    deployment("app:2", 4, `{"rollout":"ro","stableRevision":"h2","canaryReplicas":0}`),
		rss: []*appsv1.ReplicaSet{replicaSet("h1", "app:1", 2, 2, "deployment", 1, 0),
			replicaSet("h2", "app:2", 3, 3, "deployment", 2, 5)},
		want: "caughtUp=true revs=h2->h2 counts={Replicas:3 Ready:3 Updated:3 UpdatedReady:3}",
	}, {
		name: "adopted by the Deployment: its revision is current",
		d:    deployment("app:2", 4, `{"rollout":"ro","stableRevision":"`+v2+`","canaryReplicas":0}`),
		rss: []*appsv1.ReplicaSet{replicaSet("h1", "app:1", 0, 0, "deployment", 1, 0),
			replicaSet(v2, "app:2", 4, 4, "deployment", 2, 5)},
		want: "caughtUp=true revs=" + v2 + "->" + v2 + " counts={Replicas:4 Ready:4 Updated:4 UpdatedReady:4}",
	}, {
		name: "a replaced canary's pods count until they are gone",
		d:    deployment("app:2", 4, canary("")),
		rss: []*appsv1.ReplicaSet{replicaSet("h1", "app:1", 4, 4, "deployment", 1, 0),
			replicaSet("old-canary", "app:1b", 0, 1, "ro", 0, 3), replicaSet(v2, "app:2", 1, 1, "ro", 0, 5)},
		want: "caughtUp=true revs=h1->" + v2 + " counts={Replicas:5 Ready:5 Updated:1 UpdatedReady:1}",
	}, {
		name: "current: the highest revision with pods; update: the ReplicaSet whose template equals the Deployment's, whatever its hash",
		d:    deployment("app:2", 3, ""),
		rss: []*appsv1.ReplicaSet{replicaSet("h1", "app:1", 0, 0, "deployment", 1, 0),
			replicaSet("h2", "app:2", 0, 0, "deployment", 2, 1),
			replicaSet("h3", "app:3", 3, 3, "deployment", 3, 2),
			replicaSet("h4", "app:4", 0, 0, "deployment", 4, 3)},
		want: "caughtUp=true revs=h3->h2 counts={Replicas:3 Ready:3 Updated:0 UpdatedReady:0}",
	}, {
		name: "ReplicaSets of others are ignored: another Rollout's, orphans of another template",
		d:    deployment("app:2", 4, canary("")),
		rss: []*appsv1.ReplicaSet{replicaSet("h1", "app:1", 4, 4, "deployment", 1, 0),
			replicaSet(v2, "app:2", 2, 2, "other", 0, 5), replicaSet("orphan", "app:3", 2, 2, "", 0, 5)},
		want: "caughtUp=true revs=h1->" + v2 + " counts={Replicas:3 Ready:3 Updated:0 UpdatedReady:0}",
	}, {
		name: "no ReplicaSet yet: not caught up (the Deployment controller creates the first one)",
		d:    deployment("app:1", 4, ""),
		want: "caughtUp=false revs=->" + TemplateHash(&deployment("app:1", 4, "").Spec.Template, nil) + " counts={Replicas:0 Ready:0 Updated:0 UpdatedReady:0}",
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := fromDeployment(c.d, items(c.rss...))
			if got := depSummary(w); got != c.want {
				t.Errorf("\n got  %s\n want %s", got, c.want)
			}
			if c.check != nil {
				c.check(t, w)
			}
		})
	}

	// Not caught up while a status lags its spec.
	d := deployment("app:1", 4, "")
	rs := replicaSet("h1", "app:1", 4, 4, "deployment", 1, 0)
	if w := fromDeployment(d, items(rs)); !w.CaughtUp {
		t.Fatal("not caught up")
	}
	d.Generation = 3
	if fromDeployment(d, items(rs)).CaughtUp {
		t.Error("caught up while the Deployment's status is behind")
	}
	d.Generation = 2
	rs.Generation = 2
	if fromDeployment(d, items(rs)).CaughtUp {
		t.Error("caught up while a ReplicaSet's status is behind")
	}
}

func TestTemplateHash(t *testing.T) {
	a, b := deployment("app:1", 1, "").Spec.Template, deployment("app:2", 1, "").Spec.Template
	ha := TemplateHash(&a, nil)
	if ha != TemplateHash(a.DeepCopy(), nil) || ha == TemplateHash(&b, nil) || ha == TemplateHash(&a, ptr.To[int32](1)) {
		t.Errorf("hash not a function of the template and the collision count: %s %s %s", ha, TemplateHash(&b, nil), TemplateHash(&a, ptr.To[int32](1)))
	}
	if ha == "" || len(ha) > 10 {
		t.Errorf("hash %q", ha)
	}
	if got := replicaSetName("web", "abc"); got != "web-abc" {
		t.Errorf("name %s", got)
	}
}

// world is a fake API with a Rollout "ro" and a Deployment.
type world struct {
	t *testing.T
	c client.Client
}

func newWorld(t *testing.T, objs ...client.Object) *world {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, appsv1alpha1.AddToScheme, rolloutsv1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	ro := &rolloutsv1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "ro", Namespace: "ns", UID: "ro-ro"}}
	return &world{t: t, c: fake.NewClientBuilder().WithScheme(s).WithObjects(append(objs, ro)...).Build()}
}

func (w *world) get() *Workload {
	w.t.Helper()
	wl, err := Get(context.Background(), w.c, "ns", rolloutsv1alpha1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"})
	if err != nil {
		w.t.Fatal(err)
	}
	return wl
}

func (w *world) set(ctl string) {
	w.t.Helper()
	c, ok, err := appsv1alpha1.ParseRolloutControl(map[string]string{appsv1alpha1.AnnotationRolloutControl: ctl})
	if !ok || err != nil {
		w.t.Fatal(err)
	}
	if err := SetControl(context.Background(), w.c, w.get(), &c); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) deployment() *appsv1.Deployment {
	w.t.Helper()
	var d appsv1.Deployment
	if err := w.c.Get(context.Background(), types.NamespacedName{Namespace: "ns", Name: "web"}, &d); err != nil {
		w.t.Fatal(err)
	}
	return &d
}

func (w *world) rs(name string) *appsv1.ReplicaSet {
	w.t.Helper()
	var r appsv1.ReplicaSet
	err := w.c.Get(context.Background(), types.NamespacedName{Namespace: "ns", Name: name}, &r)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		w.t.Fatal(err)
	}
	return &r
}

// status sets a ReplicaSet's status as its controller would: every pod
// there and ready (available) when ready.
func (w *world) status(name string, ready bool) {
	w.t.Helper()
	r := w.rs(name)
	r.Status.ObservedGeneration = r.Generation
	r.Status.Replicas = *r.Spec.Replicas
	r.Status.ReadyReplicas, r.Status.AvailableReplicas = 0, 0
	if ready {
		r.Status.ReadyReplicas, r.Status.AvailableReplicas = r.Status.Replicas, r.Status.Replicas
	}
	if err := w.c.Status().Update(context.Background(), r); err != nil {
		w.t.Fatal(err)
	}
}

func owner(r *appsv1.ReplicaSet) string {
	if ref := metav1.GetControllerOf(r); ref != nil {
		return ref.Kind + "/" + ref.Name
	}
	return "none"
}

func TestSetControlOnDeployment(t *testing.T) {
	d := deployment("app:1", 4, "")
	w := newWorld(t, d, replicaSet("h1", "app:1", 4, 4, "deployment", 1, 0))

	// Steady: the Deployment is paused, by the Rollout.
	w.set(`{"rollout":"ro","stableRevision":"h1","canaryReplicas":0}`)
	got := w.deployment()
	if !got.Spec.Paused || got.Annotations[AnnotationPausedByRollout] != "ro" || got.Annotations[appsv1alpha1.AnnotationRolloutControl] == "" {
		t.Fatalf("steady: paused %v annotations %v", got.Spec.Paused, got.Annotations)
	}

	// A new template: the canary ReplicaSet, owned by the Rollout, named
	// and labelled as the Deployment would, with the Deployment's size
	// annotations (maxSurge 25% of 4 = 1).
	testUpdate(t, w, func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Image = "app:2"
		d.Spec.MinReadySeconds = 3
		d.Spec.Strategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromString("25%"))
	})
	v2 := w.get().UpdateRevision
	ctl := func(n int32) string {
		return fmt.Sprintf(`{"rollout":"ro","stableRevision":"h1","canaryRevision":%q,"canaryReplicas":%d}`, v2, n)
	}
	w.set(ctl(1))
	rs := w.rs("web-" + v2)
	if rs == nil {
		t.Fatal("no canary ReplicaSet")
	}
	if owner(rs) != "Rollout/ro" || *rs.Spec.Replicas != 1 || rs.Spec.MinReadySeconds != 3 ||
		rs.Spec.Template.Labels[hashLabel] != v2 || rs.Spec.Selector.MatchLabels[hashLabel] != v2 || rs.Labels[hashLabel] != v2 ||
		rs.Spec.Selector.MatchLabels["app"] != "web" || rs.Spec.Template.Spec.Containers[0].Image != "app:2" ||
		rs.Annotations[annotationDesiredReplicas] != "4" || rs.Annotations[annotationMaxReplicas] != "5" {
		t.Fatalf("canary ReplicaSet %s: owner %s replicas %d labels %v selector %v annotations %v", rs.Name, owner(rs), *rs.Spec.Replicas,
			rs.Spec.Template.Labels, rs.Spec.Selector.MatchLabels, rs.Annotations)
	}
	w.status(rs.Name, true)
	if c := w.get().Counts; c != (Counts{Replicas: 4, Ready: 4, Updated: 1, UpdatedReady: 1}) {
		t.Fatalf("counts at 1 canary pod: %+v", c)
	}

	// Promotion: every pod on the canary, then steady on it: handed over
	// only once available.
	w.set(ctl(4))
	if rs = w.rs(rs.Name); *rs.Spec.Replicas != 4 {
		t.Fatalf("canary replicas %d, want 4", *rs.Spec.Replicas)
	}
	w.status(rs.Name, false)
	steady := `{"rollout":"ro","stableRevision":"` + v2 + `","canaryReplicas":0}`
	w.set(steady)
	if rs = w.rs(rs.Name); owner(rs) != "Rollout/ro" {
		t.Fatalf("handed over before its pods were available: owner %s", owner(rs))
	}
	w.status(rs.Name, true)
	w.set(steady)
	if rs = w.rs(rs.Name); owner(rs) != "none" || len(rs.OwnerReferences) != 0 {
		t.Fatalf("not handed over: owners %v", rs.OwnerReferences)
	}
	if !w.deployment().Spec.Paused {
		t.Fatal("the Deployment was unpaused at the hand-over")
	}
}

func TestSetControlRetiresAndTakesOver(t *testing.T) {
	d := deployment("app:2", 4, "")
	v2 := TemplateHash(&d.Spec.Template, nil)
	w := newWorld(t, d, replicaSet("h1", "app:1", 4, 4, "deployment", 1, 0), replicaSet(v2, "app:2", 2, 2, "ro", 0, 1))
	abort := fmt.Sprintf(`{"rollout":"ro","stableRevision":"h1","canaryRevision":%q,"canaryReplicas":0,"stableReplicas":4}`, v2)

	// Abort: scaled to 0, deleted once its pods are gone.
	w.set(abort)
	if rs := w.rs("web-" + v2); rs == nil || *rs.Spec.Replicas != 0 {
		t.Fatalf("aborted canary: %+v", rs)
	}
	w.set(abort)
	if w.rs("web-"+v2) == nil {
		t.Fatal("deleted while its pods were still there")
	}
	w.status("web-"+v2, false)
	w.set(abort)
	if rs := w.rs("web-" + v2); rs != nil {
		t.Fatalf("not deleted once empty: %+v", rs.Status)
	}

	// The template set back to a revision the Deployment keeps in its
	// history: its ReplicaSet is taken over for the canary.
	w2 := newWorld(t, deployment("app:0", 4, ""), replicaSet("h0", "app:0", 0, 0, "deployment", 1, 0),
		replicaSet("h1", "app:1", 4, 4, "deployment", 2, 1))
	if got := w2.get(); got.CurrentRevision != "h1" || got.UpdateRevision != "h0" {
		t.Fatalf("revisions %s -> %s", got.CurrentRevision, got.UpdateRevision)
	}
	w2.set(`{"rollout":"ro","stableRevision":"h1","canaryRevision":"h0","canaryReplicas":1}`)
	if rs := w2.rs("web-h0"); owner(rs) != "Rollout/ro" || *rs.Spec.Replicas != 1 || len(rs.OwnerReferences) != 1 {
		t.Fatalf("not taken over: owners %v replicas %d", rs.OwnerReferences, *rs.Spec.Replicas)
	}
}

func TestDeploymentPauseAndRelease(t *testing.T) {
	// A Deployment its user paused: the Rollout does not claim the pause,
	// and leaves it paused when deleted.
	d := deployment("app:1", 2, "")
	d.Spec.Paused = true
	w := newWorld(t, d, replicaSet("h1", "app:1", 2, 2, "deployment", 1, 0))
	w.set(`{"rollout":"ro","stableRevision":"h1","canaryReplicas":0}`)
	if got := w.deployment(); !got.Spec.Paused || got.Annotations[AnnotationPausedByRollout] != "" {
		t.Fatalf("user's pause: paused %v annotations %v", got.Spec.Paused, got.Annotations)
	}
	if err := Release(context.Background(), w.c, w.get(), "ro"); err != nil {
		t.Fatal(err)
	}
	if got := w.deployment(); !got.Spec.Paused || len(got.Annotations) != 0 {
		t.Fatalf("released user-paused Deployment: paused %v annotations %v", got.Spec.Paused, got.Annotations)
	}

	// Paused by the Rollout: unpaused on release; a canary in progress is
	// deleted (the Deployment's own rolling update takes over).
	d = deployment("app:2", 2, "")
	v2 := TemplateHash(&d.Spec.Template, nil)
	w = newWorld(t, d, replicaSet("h1", "app:1", 2, 2, "deployment", 1, 0))
	w.set(fmt.Sprintf(`{"rollout":"ro","stableRevision":"h1","canaryRevision":%q,"canaryReplicas":1}`, v2))
	if w.rs("web-"+v2) == nil || !w.deployment().Spec.Paused {
		t.Fatal("no canary, or not paused")
	}
	if err := Release(context.Background(), w.c, w.get(), "ro"); err != nil {
		t.Fatal(err)
	}
	if got := w.deployment(); got.Spec.Paused || len(got.Annotations) != 0 {
		t.Fatalf("released: paused %v annotations %v", got.Spec.Paused, got.Annotations)
	}
	if w.rs("web-"+v2) != nil {
		t.Fatal("the unfinished canary ReplicaSet was not deleted")
	}
}

func TestDeploymentFinishesItsOwnRollout(t *testing.T) {
	// Paused in the middle of its own rolling update to the stable
	// revision: unpaused until its new ReplicaSet is saturated.
	d := deployment("app:2", 4, "")
	w := newWorld(t, d, replicaSet("h1", "app:1", 2, 2, "deployment", 1, 0), replicaSet("h2", "app:2", 3, 3, "deployment", 2, 1))
	steady := `{"rollout":"ro","stableRevision":"h2","canaryReplicas":0}`
	w.set(steady)
	if w.deployment().Spec.Paused {
		// First pass: it was not paused; it must not be paused now.
		t.Fatal("paused while its rollout to the stable revision is unfinished")
	}
	// Once paused by the Rollout (a later template change) and unfinished
	// again, it is unpaused; once finished, paused again.
	testUpdate(t, w, func(d *appsv1.Deployment) {
		d.Spec.Paused = true
		d.Annotations[AnnotationPausedByRollout] = "ro"
	})
	w.set(steady)
	if w.deployment().Spec.Paused {
		t.Fatal("not unpaused to finish")
	}
	r := w.rs("web-h2")
	r.Spec.Replicas = ptr.To[int32](4)
	r.Annotations[annotationDesiredReplicas] = "4"
	if err := w.c.Update(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	w.status("web-h2", true)
	w.set(steady)
	if !w.deployment().Spec.Paused {
		t.Fatal("not paused again once finished")
	}
}

func testUpdate(t *testing.T, w *world, f func(*appsv1.Deployment)) {
	t.Helper()
	d := w.deployment()
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	f(d)
	if err := w.c.Update(context.Background(), d); err != nil {
		t.Fatal(err)
	}
}
