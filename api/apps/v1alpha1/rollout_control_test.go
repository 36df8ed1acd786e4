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
