// Command crdpatch bounds the sizes of Kubernetes' own types embedded in
// Drover's CRDs (label maps and selectors), which controller-gen cannot
// annotate, so that the CEL rules that read them fit the API server's cost
// budget. The bounds match what the API server already enforces on labels:
// at most 63 characters per value, 317 per key (253 prefix + "/" + 63).
//
// Usage: crdpatch FILE...
package main

import (
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

const (
	maxLabels        = 128
	maxExpressions   = 32
	maxValues        = 64
	maxLabelValueLen = 63
	maxLabelKeyLen   = 317
	// maxOrdinalRangeLen is the length of "123456789-123456789".
	maxOrdinalRangeLen = 19
)

func main() {
	for _, path := range os.Args[1:] {
		if err := patchFile(path); err != nil {
			fmt.Fprintf(os.Stderr, "crdpatch: %s: %v\n", path, err)
			os.Exit(1)
		}
	}
}

func patchFile(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var crd map[string]any
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		return err
	}
	for _, v := range list(get(crd, "spec", "versions")) {
		spec := get(v, "schema", "openAPIV3Schema", "properties", "spec", "properties")
		// Only the fields Drover's CEL rules read are bounded.
		walk(get(spec, "selector"), "selector")
		walk(get(spec, "template", "properties", "metadata", "properties", "labels"), "labels")
		// StatefulSet reserveOrdinals: integers or "a-b" ranges of two
		// 9-digit numbers (controller-gen puts no maxLength on an
		// int-or-string).
		if items, ok := get(spec, "reserveOrdinals", "items").(map[string]any); ok {
			items["maxLength"] = maxOrdinalRangeLen
		}
	}
	out, err := yaml.Marshal(crd)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte("---\n"), out...), 0o644)
}

// walk visits a schema node and its children and bounds label maps and
// selector expressions.
func walk(node any, name string) {
	m, ok := node.(map[string]any)
	if !ok {
		return
	}
	props, _ := m["properties"].(map[string]any)
	switch {
	case name == "labels" || name == "matchLabels":
		boundMap(m)
	case name == "matchExpressions" && props == nil:
		m["maxItems"] = maxExpressions
		if items, ok := m["items"].(map[string]any); ok {
			ip, _ := items["properties"].(map[string]any)
			if key, ok := ip["key"].(map[string]any); ok {
				key["maxLength"] = maxLabelKeyLen
			}
			if op, ok := ip["operator"].(map[string]any); ok {
				op["maxLength"] = 16
			}
			if vals, ok := ip["values"].(map[string]any); ok {
				vals["maxItems"] = maxValues
				if vi, ok := vals["items"].(map[string]any); ok {
					vi["maxLength"] = maxLabelValueLen
				}
			}
		}
	}
	for k, p := range props {
		walk(p, k)
	}
	if items, ok := m["items"]; ok {
		walk(items, "")
	}
	if ap, ok := m["additionalProperties"].(map[string]any); ok {
		walk(ap, "")
	}
}

func boundMap(m map[string]any) {
	if m["type"] != "object" {
		return
	}
	m["maxProperties"] = maxLabels
	if ap, ok := m["additionalProperties"].(map[string]any); ok {
		ap["maxLength"] = maxLabelValueLen
	}
}

func get(node any, path ...string) any {
	for _, p := range path {
		m, ok := node.(map[string]any)
		if !ok {
			return nil
		}
		node = m[p]
	}
	return node
}

func list(node any) []any {
	l, _ := node.([]any)
	return l
}
