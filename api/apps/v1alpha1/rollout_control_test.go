package v1alpha1_test

import (
	"fmt"
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

func TestParseRolloutControlConfigs(t *testing.T) {
	parse := func(raw string) (appsv1alpha1.RolloutControl, bool, error) {
		return appsv1alpha1.ParseRolloutControl(map[string]string{appsv1alpha1.AnnotationRolloutControl: raw})
	}
	const head = `{"rollout":"r","stableRevision":"s","canaryReplicas":1`
	got, _, err := parse(head + `,"configs":{"ConfigMap/app.config":"app.config-0a1b2c3d4e","Secret/db":"db-5f6a7b8c9d"}}`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"ConfigMap/app.config": "app.config-0a1b2c3d4e", "Secret/db": "db-5f6a7b8c9d"}
	if fmt.Sprint(got.Configs) != fmt.Sprint(want) {
		t.Fatalf("configs %v, want %v", got.Configs, want)
	}
	if again, _, err := parse(got.String()); err != nil || fmt.Sprint(again.Configs) != fmt.Sprint(want) {
		t.Fatalf("round trip through %s: %v, %v", got.String(), again.Configs, err)
	}
	if got, _, err := parse(head + `}`); err != nil || got.Configs != nil {
		t.Fatalf("no configs: %v, %v", got.Configs, err)
	}

	bad := []struct{ name, configs, mention string }{
		{"unknown kind", `{"Pod/x":"x-1"}`, `"Pod/x"`},
		{"no kind", `{"x":"x-1"}`, `"x"`},
		{"empty name", `{"ConfigMap/":"x-1"}`, `"ConfigMap/"`},
		{"name not a DNS subdomain", `{"ConfigMap/Web_Config":"x-1"}`, `"ConfigMap/Web_Config"`},
		{"empty snapshot", `{"Secret/db":""}`, "configs[Secret/db]"},
		{"snapshot not a DNS subdomain", `{"Secret/db":"DB snapshot"}`, "configs[Secret/db]"},
		{"snapshot too long", `{"Secret/db":"` + strings.Repeat("a", 254) + `"}`, "configs[Secret/db]"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, present, err := parse(head + `,"configs":` + c.configs + `}`)
			if !present || err == nil {
				t.Fatalf("present %v, err %v: want an error", present, err)
			}
			if !strings.Contains(err.Error(), c.mention) || !strings.Contains(err.Error(), appsv1alpha1.AnnotationRolloutControl) {
				t.Errorf("error %q does not name the annotation and %s", err, c.mention)
			}
		})
	}
}

func TestConfigKey(t *testing.T) {
	for _, c := range []struct {
		key, kind, name string
		ok              bool
	}{
		{appsv1alpha1.ConfigKey(appsv1alpha1.ConfigKindConfigMap, "web"), "ConfigMap", "web", true},
		{appsv1alpha1.ConfigKey(appsv1alpha1.ConfigKindSecret, "db.creds"), "Secret", "db.creds", true},
		{"configmap/web", "", "", false},
		{"Secret/a/b", "", "", false},
	} {
		kind, name, ok := appsv1alpha1.ParseConfigKey(c.key)
		if kind != c.kind || name != c.name || ok != c.ok {
			t.Errorf("ParseConfigKey(%q) = %q, %q, %v; want %q, %q, %v", c.key, kind, name, ok, c.kind, c.name, c.ok)
		}
	}
}
