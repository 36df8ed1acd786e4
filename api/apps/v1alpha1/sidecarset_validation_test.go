package v1alpha1_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	"github.com/drover-dev/drover/internal/testenv"
)

func validSidecarSet(name string) *appsv1alpha1.SidecarSet {
	return &appsv1alpha1.SidecarSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1alpha1.SidecarSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Containers: []appsv1alpha1.SidecarContainer{{
				Container: corev1.Container{Name: "proxy", Image: "proxy:1"},
			}},
		},
	}
}

// The brief's example applies unchanged (but for apiVersion), and the
// container-level upgradeStrategy it carries survives the round trip.
func TestSidecarSetExampleApplies(t *testing.T) {
	u, err := testenv.ExampleObject("sidecarset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(context.Background(), u); err != nil {
		t.Fatalf("the brief's SidecarSet is refused: %v", err)
	}
	got := &appsv1alpha1.SidecarSet{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: "logging-sidecar"}, got); err != nil {
		t.Fatal(err)
	}
	c := got.Spec.Containers[0]
	if c.UpgradeStrategy == nil || c.UpgradeStrategy.Type != appsv1alpha1.ColdUpgrade ||
		c.UpgradeStrategy.Upgrade == nil || c.UpgradeStrategy.Upgrade.MaxUnavailable.IntValue() != 1 {
		t.Fatalf("upgradeStrategy lost: %+v", c.UpgradeStrategy)
	}
	if c.PodInjectPolicy != appsv1alpha1.BeforeAppContainer {
		t.Errorf("podInjectPolicy default: got %q", c.PodInjectPolicy)
	}
	us := got.Spec.UpdateStrategy
	if us.Type != appsv1alpha1.RollingUpdateSidecarSetStrategyType || us.MaxUnavailable == nil || us.MaxUnavailable.IntValue() != 1 {
		t.Errorf("updateStrategy defaults: got %+v", us)
	}
}

func TestSidecarSetNativeSidecarAccepted(t *testing.T) {
	ss := validSidecarSet("native")
	ss.Spec.Containers = nil
	ss.Spec.InitContainers = []appsv1alpha1.SidecarContainer{{
		Container: corev1.Container{Name: "mesh", Image: "mesh:1", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)},
	}}
	ss.Spec.Containers = []appsv1alpha1.SidecarContainer{{
		Container:       corev1.Container{Name: "agent", Image: "agent:1"},
		UpgradeStrategy: &appsv1alpha1.SidecarContainerUpgradeStrategy{Type: appsv1alpha1.HotUpgrade, HotUpgradeEmptyImage: "empty:1"},
		TransferEnv:     []appsv1alpha1.TransferEnvVar{{SourceContainerName: "app", EnvNames: []string{"A", "B"}}},
	}}
	ss.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"mesh": "on"}}
	if err := k8s.Create(context.Background(), ss); err != nil {
		t.Fatalf("valid SidecarSet refused: %v", err)
	}
}

func TestInvalidSidecarSetsAreRefused(t *testing.T) {
	pct := func(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }
	num := func(i int) *intstr.IntOrString { v := intstr.FromInt(i); return &v }
	hot := func(empty string) *appsv1alpha1.SidecarContainerUpgradeStrategy {
		return &appsv1alpha1.SidecarContainerUpgradeStrategy{Type: appsv1alpha1.HotUpgrade, HotUpgradeEmptyImage: empty}
	}
	cases := []struct {
		name   string
		mutate func(*appsv1alpha1.SidecarSet)
		want   []string
	}{
		{"no containers", func(s *appsv1alpha1.SidecarSet) { s.Spec.Containers = nil },
			[]string{"spec", "at least one entry in containers or initContainers"}},
		{"empty selector", func(s *appsv1alpha1.SidecarSet) { s.Spec.Selector = &metav1.LabelSelector{} },
			[]string{"spec.selector", "would inject every pod"}},
		{"missing image", func(s *appsv1alpha1.SidecarSet) { s.Spec.Containers[0].Image = "" },
			[]string{"spec.containers[0]", "image is required"}},
		{"hot upgrade without empty image", func(s *appsv1alpha1.SidecarSet) { s.Spec.Containers[0].UpgradeStrategy = hot("") },
			[]string{"spec.containers[0].upgradeStrategy.hotUpgradeEmptyImage", "required when type is HotUpgrade"}},
		{"empty image equals image", func(s *appsv1alpha1.SidecarSet) { s.Spec.Containers[0].UpgradeStrategy = hot("proxy:1") },
			[]string{"spec.containers[0].upgradeStrategy.hotUpgradeEmptyImage", "must differ from image"}},
		{"hot upgrade name too long", func(s *appsv1alpha1.SidecarSet) {
			s.Spec.Containers[0].Name = strings.Repeat("p", 62)
			s.Spec.Containers[0].UpgradeStrategy = hot("empty:1")
		}, []string{"spec.containers[0].name", "at most 61 characters"}},
		{"hot upgrade init container", func(s *appsv1alpha1.SidecarSet) {
			s.Spec.InitContainers = []appsv1alpha1.SidecarContainer{{Container: corev1.Container{Name: "i", Image: "i:1"}, UpgradeStrategy: hot("empty:1")}}
		}, []string{"spec.initContainers", "cannot use upgradeStrategy.type HotUpgrade"}},
		{"unknown upgrade type", func(s *appsv1alpha1.SidecarSet) {
			s.Spec.Containers[0].UpgradeStrategy = &appsv1alpha1.SidecarContainerUpgradeStrategy{Type: "WarmUpgrade"}
		}, []string{"spec.containers[0].upgradeStrategy.type", "Unsupported value"}},
		{"unknown inject policy", func(s *appsv1alpha1.SidecarSet) { s.Spec.Containers[0].PodInjectPolicy = "Middle" },
			[]string{"spec.containers[0].podInjectPolicy", "Unsupported value"}},
		{"unknown share policy", func(s *appsv1alpha1.SidecarSet) {
			s.Spec.Containers[0].ShareVolumePolicy = &appsv1alpha1.ShareVolumePolicy{Type: "enabled"}
		}, []string{"spec.containers[0].shareVolumePolicy.type", "Unsupported value"}},
		{"transferEnv without a name", func(s *appsv1alpha1.SidecarSet) {
			s.Spec.Containers[0].TransferEnv = []appsv1alpha1.TransferEnvVar{{SourceContainerName: "app"}}
		}, []string{"spec.containers[0].transferEnv[0]", "exactly one of envName and envNames"}},
		{"transferEnv with both", func(s *appsv1alpha1.SidecarSet) {
			s.Spec.Containers[0].TransferEnv = []appsv1alpha1.TransferEnvVar{{SourceContainerName: "app", EnvName: "A", EnvNames: []string{"B"}}}
		}, []string{"spec.containers[0].transferEnv[0]", "exactly one of envName and envNames"}},
		{"container maxUnavailable zero", func(s *appsv1alpha1.SidecarSet) {
			s.Spec.Containers[0].UpgradeStrategy = &appsv1alpha1.SidecarContainerUpgradeStrategy{Upgrade: &appsv1alpha1.SidecarContainerUpgrade{MaxUnavailable: num(0)}}
		}, []string{"spec.containers[0].upgradeStrategy.upgrade.maxUnavailable", "positive integer or a percentage"}},
		{"unknown strategy", func(s *appsv1alpha1.SidecarSet) { s.Spec.UpdateStrategy.Type = "OnDelete" },
			[]string{"spec.updateStrategy.type", "Unsupported value"}},
		{"negative partition", func(s *appsv1alpha1.SidecarSet) { s.Spec.UpdateStrategy.Partition = num(-1) },
			[]string{"spec.updateStrategy.partition", "non-negative integer or a percentage"}},
		{"zero maxUnavailable", func(s *appsv1alpha1.SidecarSet) { s.Spec.UpdateStrategy.MaxUnavailable = pct("0%") },
			[]string{"spec.updateStrategy.maxUnavailable", "positive integer or a percentage"}},
		{"bad percentage", func(s *appsv1alpha1.SidecarSet) { s.Spec.UpdateStrategy.MaxUnavailable = pct("150%") },
			[]string{"spec.updateStrategy.maxUnavailable"}},
		{"both priority kinds", func(s *appsv1alpha1.SidecarSet) {
			s.Spec.UpdateStrategy.PriorityStrategy = &appsv1alpha1.UpdatePriorityStrategy{
				WeightPriority: []appsv1alpha1.UpdatePriorityWeightTerm{{Weight: 1, MatchSelector: metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}}},
				OrderPriority:  []appsv1alpha1.UpdatePriorityOrderTerm{{OrderedKey: "k"}},
			}
		}, []string{"spec.updateStrategy.priorityStrategy", "mutually exclusive"}},
		{"name too long", func(s *appsv1alpha1.SidecarSet) { s.Name = strings.Repeat("s", 64) },
			[]string{"metadata.name must be at most 63 characters"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ss := validSidecarSet(fmt.Sprintf("invalid-%d", i))
			tc.mutate(ss)
			err := k8s.Create(context.Background(), ss)
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
