package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

func TestRolloutName(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
		err  string
	}{
		{[]string{"web"}, "web", ""},
		{[]string{"rollout/web"}, "web", ""},
		{[]string{"ro", "web"}, "web", ""},
		{[]string{"cloneset/web"}, "", "is not a rollout"},
		{[]string{"cs", "web"}, "", "is not a rollout type"},
		{[]string{"rollout/"}, "", "is not a rollout"},
		{nil, "", "missing the rollout"},
	} {
		got, err := rolloutName(c.args)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v: error %v, want %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%v: %q, %v; want %q", c.args, got, err, c.want)
		}
	}
}

func TestRenderRollout(t *testing.T) {
	start := metav1.NewTime(time.Date(2026, 12, 2, 10, 4, 12, 0, time.UTC))
	ro := &rolloutsv1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: rolloutsv1alpha1.RolloutSpec{
			TargetRef: rolloutsv1alpha1.TargetRef{Kind: "CloneSet", Name: "web"},
			Strategy: rolloutsv1alpha1.RolloutStrategy{Canary: &rolloutsv1alpha1.CanaryStrategy{Steps: []rolloutsv1alpha1.CanaryStep{
				{SetWeight: ptr.To[int32](10)}, {Pause: &rolloutsv1alpha1.PauseStep{}}, {SetWeight: ptr.To[int32](50)},
			}}},
		},
		Status: rolloutsv1alpha1.RolloutStatus{
			Phase: rolloutsv1alpha1.RolloutPhasePaused, Message: "paused at step 1", CurrentStepIndex: ptr.To[int32](1),
			StableRevision: "web-1", CanaryRevision: "web-2", DesiredWeight: 10, VerifiedWeight: ptr.To[int32](10),
			StableReplicas: 9, StableReadyReplicas: 9, CanaryReplicas: 1, CanaryReadyReplicas: 1,
			StableService: "web-stable", CanaryService: "web-canary",
			PauseConditions: []rolloutsv1alpha1.PauseCondition{{Reason: rolloutsv1alpha1.PauseReasonCanaryPauseStep, StartTime: start}},
		},
	}
	var b bytes.Buffer
	RenderRollout(&b, ro)
	for _, want := range []string{
		"Phase:       Paused", "Step:        1/3", "Weight:      10% desired, 10% verified",
		"Stable:      web-1  9/9 ready  (service web-stable)", "Canary:      web-2  1/1 ready  (service web-canary)",
		"Paused:      CanaryPauseStep since 10:04:12, until promoted",
		"✔ 0  setWeight 10%", "▶ 1  pause (until promoted)", "  2  setWeight 50%",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in:\n%s", want, b.String())
		}
	}
}
