package statefulset_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/controller/statefulset"
	"github.com/drover-dev/drover/internal/testenv"
)

// These integration tests run the controller against a real API server
// (envtest). There is no kubelet: kubelet() plays its part where a test
// needs running pods. The tests read the API server directly.

var k8s client.Client

func TestMain(m *testing.M) {
	os.Exit(testenv.MainWithManager(m, func(mgr ctrl.Manager) error {
		return statefulset.SetupWithManager(mgr, statefulset.Options{MaxConcurrentReconciles: 2})
	}, func(c client.Client) { k8s = c }))
}

func namespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "sts-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

type option func(*appsv1alpha1.StatefulSet)

// newSet is the brief's shape: no selector, a template without labels.
func newSet(ns, name string, replicas int32, opts ...option) *appsv1alpha1.StatefulSet {
	set := &appsv1alpha1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1alpha1.StatefulSetSpec{
			Replicas: ptr.To(replicas),
			Template: corev1.PodTemplateSpec{
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "db:1"}}},
			},
		},
	}
	for _, o := range opts {
		o(set)
	}
	return set
}

func parallel(s *appsv1alpha1.StatefulSet) {
	s.Spec.PodManagementPolicy = appsv1alpha1.ParallelPodManagement
}

func rolling(f func(*appsv1alpha1.RollingUpdateStatefulSetStrategy)) option {
	return func(s *appsv1alpha1.StatefulSet) {
		if s.Spec.UpdateStrategy.RollingUpdate == nil {
			s.Spec.UpdateStrategy.RollingUpdate = &appsv1alpha1.RollingUpdateStatefulSetStrategy{}
		}
		f(s.Spec.UpdateStrategy.RollingUpdate)
	}
}

func create(t *testing.T, set *appsv1alpha1.StatefulSet) *appsv1alpha1.StatefulSet {
	t.Helper()
	if err := k8s.Create(context.Background(), set); err != nil {
		t.Fatalf("creating StatefulSet: %v", err)
	}
	return set
}

func get(t *testing.T, set *appsv1alpha1.StatefulSet) *appsv1alpha1.StatefulSet {
	t.Helper()
	out := &appsv1alpha1.StatefulSet{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(set), out); err != nil {
		t.Fatal(err)
	}
	return out
}

func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	testenv.Eventually(t, what, cond)
}

// modify applies f to the latest set, retrying on conflicts with the
// controller's status writes.
func modify(t *testing.T, set *appsv1alpha1.StatefulSet, f func(*appsv1alpha1.StatefulSet)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := get(t, set)
		f(cur)
		return k8s.Update(context.Background(), cur)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// pods lists the set's live pods by ordinal name order.
func pods(t *testing.T, set *appsv1alpha1.StatefulSet) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	sel := client.MatchingLabels{appsv1alpha1.LabelStatefulSet: set.Name}
	if set.Spec.Selector != nil {
		sel = set.Spec.Selector.MatchLabels
	}
	if err := k8s.List(context.Background(), &list, client.InNamespace(set.Namespace), sel); err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return len(out[i].Name) < len(out[j].Name) || (len(out[i].Name) == len(out[j].Name) && out[i].Name < out[j].Name)
	})
	return out
}

func names(ps []corev1.Pod) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

func namesAre(t *testing.T, set *appsv1alpha1.StatefulSet, want ...string) func() (bool, string) {
	return func() (bool, string) {
		got := names(pods(t, set))
		return slices.Equal(got, want), fmt.Sprint(got)
	}
}

// kubelet runs the namespace's pods until the test ends (testenv.Kubelet).
func kubelet(t *testing.T, ns string) {
	t.Helper()
	testenv.Kubelet(t, k8s, ns)
}

func waitReady(t *testing.T, set *appsv1alpha1.StatefulSet) *appsv1alpha1.StatefulSet {
	t.Helper()
	var cur *appsv1alpha1.StatefulSet
	eventually(t, "set Ready", func() (bool, string) {
		cur = get(t, set)
		c := meta.FindStatusCondition(cur.Status.Conditions, appsv1alpha1.ConditionReady)
		ok := cur.Status.ObservedGeneration == cur.Generation && c != nil && c.Status == metav1.ConditionTrue
		return ok, fmt.Sprintf("%+v", cur.Status)
	})
	return cur
}

func condition(set *appsv1alpha1.StatefulSet, typ string) *metav1.Condition {
	return meta.FindStatusCondition(set.Status.Conditions, typ)
}
