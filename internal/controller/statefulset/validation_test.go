package statefulset_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/testenv"
)

// The API server refuses invalid specs through the CRD's schema and CEL
// rules, with messages that name the field, even with the manager down.

func TestDefaults(t *testing.T) {
	ns := namespace(t)
	set := newSet(ns, "defaults", 1, rolling(func(*appsv1alpha1.RollingUpdateStatefulSetStrategy) {}))
	if err := k8s.Create(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	s := set.Spec
	ru := s.UpdateStrategy.RollingUpdate
	switch {
	case s.PodManagementPolicy != appsv1alpha1.OrderedReadyPodManagement:
		t.Errorf("podManagementPolicy default %q", s.PodManagementPolicy)
	case s.UpdateStrategy.Type != appsv1alpha1.RollingUpdateStatefulSetStrategyType:
		t.Errorf("updateStrategy.type default %q", s.UpdateStrategy.Type)
	case ru.PodUpdatePolicy != appsv1alpha1.ReCreateStatefulSetPodUpdatePolicy:
		t.Errorf("podUpdatePolicy default %q", ru.PodUpdatePolicy)
	case ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 1:
		t.Errorf("maxUnavailable default %v", ru.MaxUnavailable)
	case ptr.Deref(s.RevisionHistoryLimit, -1) != 10 || ptr.Deref(s.ProgressDeadlineSeconds, -1) != 600:
		t.Errorf("history/progress defaults %v %v", s.RevisionHistoryLimit, s.ProgressDeadlineSeconds)
	case s.Selector != nil:
		t.Errorf("an omitted selector must stay omitted: %v", s.Selector)
	}
}

func TestInvalidSpecsAreRefused(t *testing.T) {
	ns := namespace(t)
	pct := func(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }
	num := func(i int) *intstr.IntOrString { v := intstr.FromInt(i); return &v }
	ru := func(f func(*appsv1alpha1.RollingUpdateStatefulSetStrategy)) func(*appsv1alpha1.StatefulSet) {
		return rolling(f)
	}
	cases := []struct {
		name   string
		mutate func(*appsv1alpha1.StatefulSet)
		want   []string // substrings of the error: the field and the reason
	}{
		{"negative replicas", func(s *appsv1alpha1.StatefulSet) { s.Spec.Replicas = ptr.To[int32](-1) },
			[]string{"spec.replicas"}},
		{"reserved ordinal not a range", func(s *appsv1alpha1.StatefulSet) {
			s.Spec.ReserveOrdinals = []intstr.IntOrString{intstr.FromInt(1), intstr.FromString("3..5")}
		}, []string{"spec.reserveOrdinals", `ranges "a-b"`}},
		{"reserved range backwards", func(s *appsv1alpha1.StatefulSet) {
			s.Spec.ReserveOrdinals = []intstr.IntOrString{intstr.FromString("5-3")}
		}, []string{"spec.reserveOrdinals", "a <= b"}},
		{"negative reserved ordinal", func(s *appsv1alpha1.StatefulSet) {
			s.Spec.ReserveOrdinals = []intstr.IntOrString{intstr.FromInt(-2)}
		}, []string{"spec.reserveOrdinals", "non-negative"}},
		{"negative start", func(s *appsv1alpha1.StatefulSet) { s.Spec.Ordinals = &appsv1alpha1.StatefulSetOrdinals{Start: -1} },
			[]string{"spec.ordinals.start"}},
		{"unknown policy", func(s *appsv1alpha1.StatefulSet) { s.Spec.PodManagementPolicy = "Random" },
			[]string{"spec.podManagementPolicy", "Unsupported value"}},
		{"unknown update type", func(s *appsv1alpha1.StatefulSet) { s.Spec.UpdateStrategy.Type = "Rolling" },
			[]string{"spec.updateStrategy.type", "Unsupported value"}},
		{"unknown pod update policy", ru(func(r *appsv1alpha1.RollingUpdateStatefulSetStrategy) { r.PodUpdatePolicy = "InPlace" }),
			[]string{"spec.updateStrategy.rollingUpdate.podUpdatePolicy", "Unsupported value"}},
		{"rollingUpdate with OnDelete", func(s *appsv1alpha1.StatefulSet) {
			s.Spec.UpdateStrategy = appsv1alpha1.StatefulSetUpdateStrategy{Type: appsv1alpha1.OnDeleteStatefulSetStrategyType,
				RollingUpdate: &appsv1alpha1.RollingUpdateStatefulSetStrategy{Paused: true}}
		}, []string{"spec.updateStrategy.rollingUpdate", "only allowed with updateStrategy.type RollingUpdate"}},
		{"negative partition", ru(func(r *appsv1alpha1.RollingUpdateStatefulSetStrategy) { r.Partition = num(-1) }),
			[]string{"spec.updateStrategy.rollingUpdate.partition", "non-negative integer or a percentage"}},
		{"partition over 100%", ru(func(r *appsv1alpha1.RollingUpdateStatefulSetStrategy) { r.Partition = pct("150%") }),
			[]string{"spec.updateStrategy.rollingUpdate.partition"}},
		{"maxUnavailable 0", func(s *appsv1alpha1.StatefulSet) {
			parallel(s)
			rolling(func(r *appsv1alpha1.RollingUpdateStatefulSetStrategy) { r.MaxUnavailable = num(0) })(s)
		}, []string{"spec.updateStrategy.rollingUpdate.maxUnavailable", "positive integer"}},
		{"maxUnavailable above 1 with OrderedReady", ru(func(r *appsv1alpha1.RollingUpdateStatefulSetStrategy) { r.MaxUnavailable = num(3) }),
			[]string{"spec.updateStrategy.rollingUpdate.maxUnavailable", "needs podManagementPolicy Parallel"}},
		{"unorderedUpdate with OrderedReady", ru(func(r *appsv1alpha1.RollingUpdateStatefulSetStrategy) {
			r.UnorderedUpdate = &appsv1alpha1.StatefulSetUnorderedUpdateStrategy{}
		}), []string{"spec.updateStrategy.rollingUpdate.unorderedUpdate", "needs podManagementPolicy Parallel"}},
		{"both priority kinds", func(s *appsv1alpha1.StatefulSet) {
			parallel(s)
			rolling(func(r *appsv1alpha1.RollingUpdateStatefulSetStrategy) {
				r.UnorderedUpdate = &appsv1alpha1.StatefulSetUnorderedUpdateStrategy{PriorityStrategy: &appsv1alpha1.UpdatePriorityStrategy{
					WeightPriority: []appsv1alpha1.UpdatePriorityWeightTerm{{Weight: 1, MatchSelector: metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}}},
					OrderPriority:  []appsv1alpha1.UpdatePriorityOrderTerm{{OrderedKey: "k"}},
				}}
			})(s)
		}, []string{"spec.updateStrategy.rollingUpdate.unorderedUpdate.priorityStrategy", "mutually exclusive"}},
		{"minReadySeconds over 300", ru(func(r *appsv1alpha1.RollingUpdateStatefulSetStrategy) { r.MinReadySeconds = ptr.To[int32](301) }),
			[]string{"spec.updateStrategy.rollingUpdate.minReadySeconds"}},
		{"bad retention", func(s *appsv1alpha1.StatefulSet) {
			s.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1alpha1.StatefulSetPersistentVolumeClaimRetentionPolicy{WhenScaled: "Keep"}
		}, []string{"spec.persistentVolumeClaimRetentionPolicy.whenScaled", "Unsupported value"}},
		{"selector not matching labels", func(s *appsv1alpha1.StatefulSet) {
			s.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}
		}, []string{"spec.selector", "must match template.metadata.labels"}},
		{"empty hook", func(s *appsv1alpha1.StatefulSet) {
			s.Spec.Lifecycle = &appsv1alpha1.Lifecycle{PreDelete: &appsv1alpha1.LifecycleHook{MarkPodNotReady: true}}
		}, []string{"spec.lifecycle.preDelete", "needs labelsHandler or finalizersHandler"}},
		{"name too long", func(s *appsv1alpha1.StatefulSet) { s.Name = strings.Repeat("n", 53) },
			[]string{"metadata.name", "at most 52 characters"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			set := newSet(ns, fmt.Sprintf("invalid-%d", i), 1)
			tc.mutate(set)
			testenv.AssertInvalid(t, k8s.Create(context.Background(), set), tc.want...)
		})
	}
}

func TestValidSpecsAreAccepted(t *testing.T) {
	ns := namespace(t)
	set := newSet(ns, strings.Repeat("v", 52), 2, parallel, rolling(func(r *appsv1alpha1.RollingUpdateStatefulSetStrategy) {
		r.MaxUnavailable = ptr.To(intstr.FromString("50%"))
		r.Partition = ptr.To(intstr.FromInt32(1))
		r.UnorderedUpdate = &appsv1alpha1.StatefulSetUnorderedUpdateStrategy{PriorityStrategy: &appsv1alpha1.UpdatePriorityStrategy{
			OrderPriority: []appsv1alpha1.UpdatePriorityOrderTerm{{OrderedKey: "shard"}},
		}}
	}), func(s *appsv1alpha1.StatefulSet) {
		s.Spec.ReserveOrdinals = []intstr.IntOrString{intstr.FromInt(0), intstr.FromString("3-5"), intstr.FromString("7-7")}
	})
	if err := k8s.Create(context.Background(), set); err != nil {
		t.Fatalf("valid spec refused: %v", err)
	}
}

func TestImmutableFields(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	withSelector := newSet(ns, "sel", 1, func(s *appsv1alpha1.StatefulSet) {
		s.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "sel"}}
		s.Spec.Template.Labels = map[string]string{"app": "sel"}
		s.Spec.ServiceName = "sel"
	})
	if err := k8s.Create(ctx, withSelector); err != nil {
		t.Fatal(err)
	}
	without := create(t, newSet(ns, "nosel", 1))
	cases := []struct {
		name   string
		set    *appsv1alpha1.StatefulSet
		mutate func(*appsv1alpha1.StatefulSet)
		want   string
	}{
		{"selector changed", withSelector, func(s *appsv1alpha1.StatefulSet) {
			s.Spec.Selector.MatchLabels["x"] = "y"
			s.Spec.Template.Labels["x"] = "y"
		}, "selector is immutable"},
		{"selector added", without, func(s *appsv1alpha1.StatefulSet) {
			s.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}
			s.Spec.Template.Labels = map[string]string{"app": "x"}
		}, "selector is immutable"},
		{"serviceName changed", withSelector, func(s *appsv1alpha1.StatefulSet) { s.Spec.ServiceName = "other" }, "serviceName is immutable"},
		{"serviceName removed", withSelector, func(s *appsv1alpha1.StatefulSet) { s.Spec.ServiceName = "" }, "serviceName is immutable"},
		{"podManagementPolicy changed", without, parallel, "podManagementPolicy is immutable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Retried on conflicts with the controller's status writes.
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				cur := get(t, tc.set)
				tc.mutate(cur)
				return k8s.Update(ctx, cur)
			})
			testenv.AssertInvalid(t, err, tc.want)
		})
	}
}

func TestScaleSubresource(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	set := create(t, newSet(ns, "scale", 1, parallel))
	scale := &autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: 3}}
	if err := k8s.SubResource("scale").Update(ctx, set, client.WithSubResourceBody(scale)); err != nil {
		t.Fatalf("scale subresource: %v", err)
	}
	eventually(t, "3 pods", namesAre(t, set, "scale-0", "scale-1", "scale-2"))
	eventually(t, "scale status", func() (bool, string) {
		got := &autoscalingv1.Scale{}
		if err := k8s.SubResource("scale").Get(ctx, set, got); err != nil {
			return false, err.Error()
		}
		// HPA reads the selector from here.
		return got.Status.Replicas == 3 && got.Status.Selector == appsv1alpha1.LabelStatefulSet+"=scale", fmt.Sprintf("%+v", got.Status)
	})
}

// The brief's StatefulSet applies unchanged except apiVersion.
func TestExampleApplies(t *testing.T) {
	raw, err := testenv.Example("statefulset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set := &appsv1alpha1.StatefulSet{}
	if err := yaml.Unmarshal(raw, set); err != nil {
		t.Fatal(err)
	}
	set.Namespace = namespace(t)
	kubelet(t, set.Namespace)
	if err := k8s.Create(context.Background(), set); err != nil {
		t.Fatalf("the example is refused: %v", err)
	}
	cur := waitReady(t, set)
	if cur.Status.ReadyReplicas != 3 {
		t.Fatalf("status %+v", cur.Status)
	}
	for _, p := range pods(t, set) {
		if p.Spec.Subdomain != "db-headless" || p.Spec.Containers[0].Image != "postgres:16" {
			t.Errorf("pod %s: subdomain %q image %q", p.Name, p.Spec.Subdomain, p.Spec.Containers[0].Image)
		}
	}
}
