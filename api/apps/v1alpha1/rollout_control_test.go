package v1alpha1_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
)

func TestParseRolloutControlLimits(t *testing.T) {
	parse := func(raw string) (appsv1alpha1.RolloutControl, bool, error) {
		return appsv1alpha1.ParseRolloutControl(map[string]string{appsv1alpha1.AnnotationRolloutControl: raw})
	}
	const head = `{"rollout":"r","stableRevision":"s","canaryReplicas":1`
	ok := []struct {
		name, raw                string
		maxUnavailable, maxSurge *intstr.IntOrString
	}{
		{"neither set", head + `}`, nil, nil},
		{"ints", head + `,"maxUnavailable":3,"maxSurge":0}`, ptr.To(intstr.FromInt32(3)), ptr.To(intstr.FromInt32(0))},
		{"percentages", head + `,"maxUnavailable":"25%","maxSurge":"150%"}`, ptr.To(intstr.FromString("25%")), ptr.To(intstr.FromString("150%"))},
		{"zero percent", head + `,"maxUnavailable":"0%"}`, ptr.To(intstr.FromString("0%")), nil},
	}
	for _, c := range ok {
		t.Run(c.name, func(t *testing.T) {
			got, present, err := parse(c.raw)
			if err != nil || !present {
				t.Fatalf("ParseRolloutControl(%s): present %v, err %v", c.raw, present, err)
			}
			if !equalIntOrString(got.MaxUnavailable, c.maxUnavailable) || !equalIntOrString(got.MaxSurge, c.maxSurge) {
				t.Errorf("maxUnavailable %v maxSurge %v, want %v %v", got.MaxUnavailable, got.MaxSurge, c.maxUnavailable, c.maxSurge)
			}
			// The annotation a Rollout writes reads back the same.
			again, _, err := parse(got.String())
			if err != nil || !equalIntOrString(again.MaxUnavailable, c.maxUnavailable) || !equalIntOrString(again.MaxSurge, c.maxSurge) {
				t.Errorf("round trip through %s: %+v, %v", got.String(), again, err)
			}
		})
	}

	bad := []struct {
		name, raw, field string
	}{
		{"negative maxUnavailable", head + `,"maxUnavailable":-1}`, "maxUnavailable"},
		{"negative maxSurge", head + `,"maxSurge":-2}`, "maxSurge"},
		{"negative percentage", head + `,"maxUnavailable":"-10%"}`, "maxUnavailable"},
		{"string without a percent sign", head + `,"maxSurge":"3"}`, "maxSurge"},
		{"not a number", head + `,"maxUnavailable":"many%"}`, "maxUnavailable"},
		{"fractional percentage", head + `,"maxSurge":"12.5%"}`, "maxSurge"},
		{"empty string", head + `,"maxUnavailable":""}`, "maxUnavailable"},
		{"valid maxUnavailable, malformed maxSurge", head + `,"maxUnavailable":"10%","maxSurge":"%"}`, "maxSurge"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, present, err := parse(c.raw)
			if !present {
				t.Fatalf("ParseRolloutControl(%s): not present", c.raw)
			}
			if err == nil {
				t.Fatalf("ParseRolloutControl(%s): no error", c.raw)
			}
			if !strings.Contains(err.Error(), c.field+":") || !strings.Contains(err.Error(), appsv1alpha1.AnnotationRolloutControl) {
				t.Errorf("error %q does not name the annotation and %s", err, c.field)
			}
		})
	}
}

func equalIntOrString(a, b *intstr.IntOrString) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func TestTargets(t *testing.T) {
	four := int32(4)
	for _, c := range []struct {
		name            string
		ctl             appsv1alpha1.RolloutControl
		replicas        int32
		update          string
		updated, stable int32
	}{
		{"canary of a partition", appsv1alpha1.RolloutControl{StableRevision: "a", CanaryRevision: "b", CanaryReplicas: 1}, 5, "b", 1, 4},
		{"stable revision gets all", appsv1alpha1.RolloutControl{StableRevision: "a", CanaryRevision: "b", CanaryReplicas: 1}, 5, "a", 5, 0},
		{"canary on top of a full stable side", appsv1alpha1.RolloutControl{StableRevision: "a", CanaryRevision: "b", CanaryReplicas: 2, StableReplicas: &four}, 4, "b", 2, 4},
		// Before any release: a new revision gets no pod until the
		// Rollout releases it.
		{"unreleased revision gets no pod", appsv1alpha1.RolloutControl{StableRevision: "a"}, 5, "c", 0, 5},
		// A template changed mid-release: the previous canary's pods move
		// to the newest revision (not deleted and created again), no more.
		{"new revision mid-release takes the canary's pods", appsv1alpha1.RolloutControl{StableRevision: "a", CanaryRevision: "b", CanaryReplicas: 1, StableReplicas: &four}, 5, "c", 1, 4},
		{"new revision after an abort gets no pod", appsv1alpha1.RolloutControl{StableRevision: "a", CanaryRevision: "b", CanaryReplicas: 0}, 5, "c", 0, 5},
	} {
		updated, stable := c.ctl.Targets(c.replicas, c.update)
		if updated != c.updated || stable != c.stable {
			t.Errorf("%s: Targets = %d, %d; want %d, %d", c.name, updated, stable, c.updated, c.stable)
		}
	}
}
