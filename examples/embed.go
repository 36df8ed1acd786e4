// Package examples embeds the example manifests so the CLI (playground)
// can apply them from anywhere.
package examples

import _ "embed"

//go:embed cloneset.yaml
var cloneSet []byte

//go:embed rollout.yaml
var rollout []byte

// CloneSet returns examples/cloneset.yaml.
func CloneSet() []byte { return append([]byte(nil), cloneSet...) }

// Rollout returns examples/rollout.yaml: the CloneSet web, its HTTPRoute
// and the canary Rollout web.
func Rollout() []byte { return append([]byte(nil), rollout...) }
