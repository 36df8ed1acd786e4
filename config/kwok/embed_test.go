package kwok

import (
	"bytes"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

type stage struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		ResourceRef struct {
			Kind string `json:"kind"`
		} `json:"resourceRef"`
		Selector struct {
			MatchExpressions []struct {
				JQ *struct {
					Key      string   `json:"key"`
					Operator string   `json:"operator"`
					Values   []string `json:"values"`
				} `json:"jq"`
			} `json:"matchExpressions"`
		} `json:"selector"`
	} `json:"spec"`
}

// TestPodStagesShareOneState checks what keeps the pod stages from racing
// each other: every pod stage selects on the same jq state expression (its
// last; cheap necessary conditions may come before it), and no state value
// is claimed by two stages. That each prefilter holds whenever its stage's
// state does is checked against kwok itself by test/e2e/stages.
func TestPodStagesShareOneState(t *testing.T) {
	docs := bytes.Split(Stages(), []byte("\n---\n"))
	var key string
	owner := map[string]string{}
	nodeStages := 0
	for _, doc := range docs {
		doc = bytes.TrimPrefix(doc, []byte("---\n"))
		var s stage
		if err := yaml.Unmarshal(doc, &s); err != nil {
			t.Fatalf("invalid YAML: %v\n%s", err, doc)
		}
		if s.Kind != "Stage" {
			t.Fatalf("document %q is a %q, want Stage", s.Metadata.Name, s.Kind)
		}
		switch s.Spec.ResourceRef.Kind {
		case "Node":
			nodeStages++
			continue
		case "Pod":
		default:
			t.Fatalf("stage %s: unexpected resource %q", s.Metadata.Name, s.Spec.ResourceRef.Kind)
		}
		// Cheap prefilters may come first; the shared state expression is
		// the last one.
		exprs := s.Spec.Selector.MatchExpressions
		for _, e := range exprs {
			if e.JQ == nil {
				t.Fatalf("stage %s: want jq expressions only", s.Metadata.Name)
			}
		}
		if len(exprs) == 0 || exprs[len(exprs)-1].JQ.Operator != "In" {
			t.Fatalf("stage %s: want the state as its last expression (jq, In)", s.Metadata.Name)
		}
		state := exprs[len(exprs)-1].JQ
		for _, e := range exprs[:len(exprs)-1] {
			if strings.Contains(e.JQ.Key, "def state") {
				t.Errorf("stage %s: a prefilter must be cheaper than the state expression", s.Metadata.Name)
			}
		}
		if key == "" {
			key = state.Key
		} else if state.Key != key {
			t.Errorf("stage %s: its state expression differs from the other pod stages'", s.Metadata.Name)
		}
		for _, v := range state.Values {
			if !strings.Contains(key, `"`+v+`"`) {
				t.Errorf("stage %s: state %q is never produced", s.Metadata.Name, v)
			}
			if o, ok := owner[v]; ok {
				t.Errorf("state %q selected by both %s and %s", v, o, s.Metadata.Name)
			}
			owner[v] = s.Metadata.Name
		}
	}
	if nodeStages == 0 {
		t.Error("no node stages: kwok would not make nodes Ready")
	}
	for _, want := range []string{"start", "restart", "resize", "probe-fail", "container-ready", "sync", "observe", "complete", "terminate", "delete"} {
		if _, ok := owner[want]; !ok {
			t.Errorf("no stage handles state %q", want)
		}
	}
}
