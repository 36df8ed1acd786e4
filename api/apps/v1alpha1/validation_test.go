package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/testenv"
)

var k8s client.Client

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, func(c client.Client) { k8s = c }))
}

func validCloneSet(name string) *appsv1alpha1.CloneSet {
	return &appsv1alpha1.CloneSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1alpha1.CloneSetSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx:1.25"}}},
			},
		},
	}
}

func TestDefaults(t *testing.T) {
	cs := validCloneSet("defaults")
	if err := k8s.Create(context.Background(), cs); err != nil {
		t.Fatalf("valid CloneSet refused: %v", err)
	}
	s := cs.Spec
	if s.UpdateStrategy.Type != appsv1alpha1.ReCreateCloneSetUpdateStrategyType {
		t.Errorf("updateStrategy.type default: got %q", s.UpdateStrategy.Type)
	}
	if s.UpdateStrategy.MaxUnavailable == nil || s.UpdateStrategy.MaxUnavailable.String() != "20%" {
		t.Errorf("maxUnavailable default: got %v", s.UpdateStrategy.MaxUnavailable)
	}
	if s.UpdateStrategy.MaxSurge == nil || s.UpdateStrategy.MaxSurge.IntValue() != 0 {
		t.Errorf("maxSurge default: got %v", s.UpdateStrategy.MaxSurge)
	}
	if ptr.Deref(s.RevisionHistoryLimit, -1) != 10 || ptr.Deref(s.ProgressDeadlineSeconds, -1) != 600 {
		t.Errorf("history/progress defaults: got %v %v", s.RevisionHistoryLimit, s.ProgressDeadlineSeconds)
	}
}

func TestInvalidSpecsAreRefused(t *testing.T) {
	pct := func(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }
	num := func(i int) *intstr.IntOrString { v := intstr.FromInt(i); return &v }
	cases := []struct {
		name   string
		mutate func(*appsv1alpha1.CloneSet)
		want   []string // substrings of the error: the field and the reason
	}{
		{"negative replicas", func(c *appsv1alpha1.CloneSet) { c.Spec.Replicas = ptr.To[int32](-1) },
			[]string{"spec.replicas", "greater than or equal to 0"}},
		{"negative partition", func(c *appsv1alpha1.CloneSet) { c.Spec.UpdateStrategy.Partition = num(-2) },
			[]string{"spec.updateStrategy.partition", "non-negative integer or a percentage"}},
		{"bad percentage", func(c *appsv1alpha1.CloneSet) { c.Spec.UpdateStrategy.MaxUnavailable = pct("120%") },
			[]string{"spec.updateStrategy.maxUnavailable", "percentage from 0% to 100%"}},
		{"not a percentage", func(c *appsv1alpha1.CloneSet) { c.Spec.UpdateStrategy.MaxSurge = pct("ten") },
			[]string{"spec.updateStrategy.maxSurge"}},
		{"bad scale maxUnavailable", func(c *appsv1alpha1.CloneSet) { c.Spec.ScaleStrategy.MaxUnavailable = pct("-1%") },
			[]string{"spec.scaleStrategy.maxUnavailable"}},
		{"both zero", func(c *appsv1alpha1.CloneSet) {
			c.Spec.UpdateStrategy.MaxUnavailable = num(0)
			c.Spec.UpdateStrategy.MaxSurge = pct("0%")
		}, []string{"spec.updateStrategy", "cannot both be 0"}},
		{"both priority kinds", func(c *appsv1alpha1.CloneSet) {
			c.Spec.UpdateStrategy.PriorityStrategy = &appsv1alpha1.UpdatePriorityStrategy{
				WeightPriority: []appsv1alpha1.UpdatePriorityWeightTerm{{Weight: 10, MatchSelector: metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}}},
				OrderPriority:  []appsv1alpha1.UpdatePriorityOrderTerm{{OrderedKey: "k"}},
			}
		}, []string{"spec.updateStrategy.priorityStrategy", "mutually exclusive"}},
		{"selector not matching labels", func(c *appsv1alpha1.CloneSet) {
			c.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}}
		}, []string{"spec.selector", "must match template.metadata.labels"}},
		{"selector expression not matching", func(c *appsv1alpha1.CloneSet) {
			c.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpExists}}}
		}, []string{"spec.selector", "matchExpressions must match"}},
		{"unknown strategy", func(c *appsv1alpha1.CloneSet) { c.Spec.UpdateStrategy.Type = "Rolling" },
			[]string{"spec.updateStrategy.type", "Unsupported value"}},
		{"negative grace", func(c *appsv1alpha1.CloneSet) {
			c.Spec.UpdateStrategy.InPlaceUpdate = &appsv1alpha1.InPlaceUpdateStrategy{GracePeriodSeconds: -1}
		}, []string{"spec.updateStrategy.inPlaceUpdate.gracePeriodSeconds"}},
		{"empty hook", func(c *appsv1alpha1.CloneSet) {
			c.Spec.Lifecycle = &appsv1alpha1.Lifecycle{PreDelete: &appsv1alpha1.LifecycleHook{MarkPodNotReady: true}}
		}, []string{"spec.lifecycle.preDelete", "needs labelsHandler or finalizersHandler"}},
		{"negative minReadySeconds", func(c *appsv1alpha1.CloneSet) { c.Spec.MinReadySeconds = -5 },
			[]string{"spec.minReadySeconds"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cs := validCloneSet(fmt.Sprintf("invalid-%d", i))
			tc.mutate(cs)
			err := k8s.Create(context.Background(), cs)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want Invalid, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestSelectorMatchExpressionsAccepted(t *testing.T) {
	cs := validCloneSet("expr")
	cs.Spec.Template.Labels["tier"] = "front"
	cs.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{
		{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"front", "back"}},
		{Key: "legacy", Operator: metav1.LabelSelectorOpDoesNotExist},
	}
	if err := k8s.Create(context.Background(), cs); err != nil {
		t.Fatalf("matching expressions refused: %v", err)
	}
}

func TestSelectorIsImmutable(t *testing.T) {
	ctx := context.Background()
	cs := validCloneSet("immutable")
	if err := k8s.Create(ctx, cs); err != nil {
		t.Fatal(err)
	}
	cs.Spec.Selector.MatchLabels["extra"] = "x"
	cs.Spec.Template.Labels["extra"] = "x"
	err := k8s.Update(ctx, cs)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "selector is immutable") {
		t.Fatalf("want selector is immutable, got %v", err)
	}
}

func TestScaleSubresource(t *testing.T) {
	ctx := context.Background()
	cs := validCloneSet("scale")
	if err := k8s.Create(ctx, cs); err != nil {
		t.Fatal(err)
	}
	scale := &autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: 7}}
	if err := k8s.SubResource("scale").Update(ctx, cs, client.WithSubResourceBody(scale)); err != nil {
		t.Fatalf("scale subresource: %v", err)
	}
	got := &appsv1alpha1.CloneSet{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(cs), got); err != nil {
		t.Fatal(err)
	}
	if *got.Spec.Replicas != 7 {
		t.Fatalf("scale did not set replicas: %d", *got.Spec.Replicas)
	}
}
