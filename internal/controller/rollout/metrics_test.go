package rollout

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newMetrics(reg); err != nil {
		t.Fatalf("a second manager in the same process: %v", err)
	}
	ro := &rolloutsv1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}
	ro.Status.ReleaseStartedAt = &metav1.Time{Time: t0}
	d := &decision{status: rolloutsv1alpha1.RolloutStatus{Phase: rolloutsv1alpha1.RolloutPhasePaused,
		CurrentStepIndex: ptr.To[int32](2), DesiredWeight: 40, VerifiedWeight: ptr.To[int32](40)}}
	m.record(ro, d, func() float64 { return float64(t0.Unix() + 95) })
	want := `
# HELP drover_rollout_step Index of the step the Rollout's release is at (-1 when no release is under way).
# TYPE drover_rollout_step gauge
drover_rollout_step{name="web",namespace="shop"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "drover_rollout_step"); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(m.phase.WithLabelValues("shop", "web", "Paused")); v != 1 {
		t.Fatalf("phase Paused = %v", v)
	}
	if v := testutil.ToFloat64(m.weight.WithLabelValues("shop", "web")); v != 40 {
		t.Fatalf("weight = %v", v)
	}
	// The release ends promoted: its duration is observed once.
	d = &decision{status: rolloutsv1alpha1.RolloutStatus{Phase: rolloutsv1alpha1.RolloutPhaseHealthy},
		events: []event{{reason: "Promoted"}}}
	m.record(ro, d, func() float64 { return float64(t0.Unix() + 95) })
	if n := testutil.CollectAndCount(m.release, "drover_rollout_release_duration_seconds"); n != 1 {
		t.Fatalf("release histogram series = %d", n)
	}
	if v := testutil.ToFloat64(m.step.WithLabelValues("shop", "web")); v != -1 {
		t.Fatalf("step after promotion = %v", v)
	}
	m.notified(ro, "chat", true)
	m.notified(ro, "chat", true)
	m.notified(ro, "chat", false)
	want = `
# HELP drover_rollout_notifications_total Notification messages by outcome: delivered, or failed (given up after three attempts, or not sent).
# TYPE drover_rollout_notifications_total counter
drover_rollout_notifications_total{name="web",namespace="shop",notification="chat",result="delivered"} 2
drover_rollout_notifications_total{name="web",namespace="shop",notification="chat",result="failed"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "drover_rollout_notifications_total"); err != nil {
		t.Fatal(err)
	}
	m.forget(ro)
	if n := testutil.CollectAndCount(m.phase); n != 0 {
		t.Fatalf("%d phase series left after forget", n)
	}
	if n := testutil.CollectAndCount(m.notifications); n != 0 {
		t.Fatalf("%d notification series left after forget", n)
	}
}
