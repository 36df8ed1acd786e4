package daemonset_test

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/testenv"
)

// The CRD's schema and CEL rules, on the real API server: what a user
// sees even when the manager is down.

func validDaemonSet(ns, name string) *appsv1alpha1.DaemonSet {
	return &appsv1alpha1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1alpha1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "agent"}},
				// A node selector no node carries: the controller has
				// nothing to do for these objects.
				Spec: corev1.PodSpec{NodeSelector: map[string]string{"test.drover.dev/none": "x"},
					Containers: []corev1.Container{{Name: "agent", Image: "agent:1"}}},
			},
		},
	}
}

func TestDefaults(t *testing.T) {
	f := newFixture(t)
	ds := validDaemonSet(f.ns, "defaults")
	if err := k8s.Create(context.Background(), ds); err != nil {
		t.Fatalf("valid DaemonSet refused: %v", err)
	}
	s := ds.Spec
	if s.UpdateStrategy.Type != appsv1alpha1.RollingUpdateDaemonSetStrategyType {
		t.Errorf("updateStrategy.type default: %q", s.UpdateStrategy.Type)
	}
	ru := s.UpdateStrategy.RollingUpdate
	if ru == nil || ru.Type != appsv1alpha1.StandardRollingUpdateType || ru.MaxUnavailable == nil || ru.MaxUnavailable.String() != "1" ||
		ru.MaxSurge == nil || ru.MaxSurge.String() != "0" || ru.Partition != nil || ru.Paused {
		t.Errorf("rollingUpdate defaults: %+v", ru)
	}
	if ptr.Deref(s.RevisionHistoryLimit, -1) != 10 || ptr.Deref(s.ProgressDeadlineSeconds, -1) != 600 {
		t.Errorf("history/progress defaults: %v %v", s.RevisionHistoryLimit, s.ProgressDeadlineSeconds)
	}
}

func TestInvalidSpecsAreRefused(t *testing.T) {
	f := newFixture(t)
	pct := func(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }
	num := func(i int) *intstr.IntOrString { v := intstr.FromInt(i); return &v }
	ru := func(d *appsv1alpha1.DaemonSet) *appsv1alpha1.RollingUpdateDaemonSet {
		if d.Spec.UpdateStrategy.RollingUpdate == nil {
			d.Spec.UpdateStrategy.RollingUpdate = &appsv1alpha1.RollingUpdateDaemonSet{}
		}
		return d.Spec.UpdateStrategy.RollingUpdate
	}
	cases := []struct {
		name   string
		mutate func(*appsv1alpha1.DaemonSet)
		want   []string // substrings of the error: the field and the reason
	}{
		{"both zero", func(d *appsv1alpha1.DaemonSet) { ru(d).MaxUnavailable, ru(d).MaxSurge = num(0), pct("0%") },
			[]string{"spec.updateStrategy.rollingUpdate", "maxUnavailable and maxSurge cannot both be 0"}},
		{"both zero, maxUnavailable as a percentage", func(d *appsv1alpha1.DaemonSet) { ru(d).MaxUnavailable, ru(d).MaxSurge = pct("0%"), num(0) },
			[]string{"spec.updateStrategy.rollingUpdate", "cannot both be 0"}},
		{"bad maxUnavailable", func(d *appsv1alpha1.DaemonSet) { ru(d).MaxUnavailable = pct("120%") },
			[]string{"spec.updateStrategy.rollingUpdate.maxUnavailable", "percentage from 0% to 100%"}},
		{"negative maxSurge", func(d *appsv1alpha1.DaemonSet) { ru(d).MaxSurge = num(-1) },
			[]string{"spec.updateStrategy.rollingUpdate.maxSurge", "non-negative integer"}},
		{"bad partition", func(d *appsv1alpha1.DaemonSet) { ru(d).Partition = pct("half") },
			[]string{"spec.updateStrategy.rollingUpdate.partition"}},
		{"unknown strategy", func(d *appsv1alpha1.DaemonSet) { d.Spec.UpdateStrategy.Type = "Rolling" },
			[]string{"spec.updateStrategy.type", "Unsupported value"}},
		{"unknown rolling update type", func(d *appsv1alpha1.DaemonSet) { ru(d).Type = "InPlaceOnly" },
			[]string{"spec.updateStrategy.rollingUpdate.type", "Unsupported value"}},
		{"negative grace", func(d *appsv1alpha1.DaemonSet) {
			ru(d).InPlaceUpdate = &appsv1alpha1.InPlaceUpdateStrategy{GracePeriodSeconds: -1}
		}, []string{"spec.updateStrategy.rollingUpdate.inPlaceUpdate.gracePeriodSeconds"}},
		{"empty hook", func(d *appsv1alpha1.DaemonSet) {
			d.Spec.Lifecycle = &appsv1alpha1.Lifecycle{PreDelete: &appsv1alpha1.LifecycleHook{MarkPodNotReady: true}}
		}, []string{"spec.lifecycle.preDelete", "needs labelsHandler or finalizersHandler"}},
		{"negative minReadySeconds", func(d *appsv1alpha1.DaemonSet) { d.Spec.MinReadySeconds = -1 },
			[]string{"spec.minReadySeconds"}},
		{"selector not matching labels", func(d *appsv1alpha1.DaemonSet) {
			d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}}
		}, []string{"spec.selector", "must match template.metadata.labels"}},
		{"restartPolicy Never", func(d *appsv1alpha1.DaemonSet) { d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever },
			[]string{"spec.template.spec.restartPolicy", "must be Always"}},
		{"nodeName set", func(d *appsv1alpha1.DaemonSet) { d.Spec.Template.Spec.NodeName = "n1" },
			[]string{"spec.template.spec.nodeName", "must be empty"}},
		{"zero progress deadline", func(d *appsv1alpha1.DaemonSet) { d.Spec.ProgressDeadlineSeconds = ptr.To[int32](0) },
			[]string{"spec.progressDeadlineSeconds"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ds := validDaemonSet(f.ns, fmt.Sprintf("invalid-%d", i))
			tc.mutate(ds)
			testenv.AssertInvalid(t, k8s.Create(context.Background(), ds), tc.want...)
		})
	}
}

func TestSurgeWithoutUnavailableAccepted(t *testing.T) {
	f := newFixture(t)
	ds := validDaemonSet(f.ns, "surge")
	zero, two := intstr.FromInt32(0), intstr.FromString("20%")
	ds.Spec.UpdateStrategy.RollingUpdate = &appsv1alpha1.RollingUpdateDaemonSet{MaxUnavailable: &zero, MaxSurge: &two}
	if err := k8s.Create(context.Background(), ds); err != nil {
		t.Fatalf("maxUnavailable 0 with maxSurge 20%% refused: %v", err)
	}
}

func TestSelectorIsImmutable(t *testing.T) {
	f := newFixture(t)
	ds := validDaemonSet(f.ns, "immutable")
	if err := k8s.Create(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
	// The controller may write the DaemonSet meanwhile: a conflict is
	// tried again on the latest version, the refusal is what is tested.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := &appsv1alpha1.DaemonSet{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(ds), cur); err != nil {
			return err
		}
		cur.Spec.Selector.MatchLabels["extra"] = "x"
		cur.Spec.Template.Labels["extra"] = "x"
		return k8s.Update(context.Background(), cur)
	})
	testenv.AssertInvalid(t, err, "selector is immutable")
}

// TestExampleIsValid: examples/daemonset.yaml decodes strictly and the API
// server accepts it unchanged.
func TestExampleIsValid(t *testing.T) {
	f := newFixture(t)
	raw, err := testenv.Example("daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ds := &appsv1alpha1.DaemonSet{}
	if err := yaml.UnmarshalStrict(raw, ds); err != nil {
		t.Fatalf("the example does not decode strictly: %v", err)
	}
	if ds.APIVersion != appsv1alpha1.GroupVersion.String() || ds.Kind != "DaemonSet" {
		t.Fatalf("the example is a %s %s", ds.APIVersion, ds.Kind)
	}
	ds.Namespace = f.ns
	if err := k8s.Create(context.Background(), ds); err != nil {
		t.Fatalf("the example is refused: %v", err)
	}
}
