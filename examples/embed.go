// Package examples embeds the example manifests so the CLI (playground)
// can apply them from anywhere.
package examples

import _ "embed"

//go:embed cloneset.yaml
var cloneSet []byte

// CloneSet returns examples/cloneset.yaml.
func CloneSet() []byte { return append([]byte(nil), cloneSet...) }
