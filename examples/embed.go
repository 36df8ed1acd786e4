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

//go:embed analysis.yaml
var analysis []byte

// Analysis returns examples/analysis.yaml: the AnalysisTemplate
// success-rate, the CloneSet shop, its HTTPRoute and the Rollout shop
// whose analysis steps query Prometheus at PrometheusPlaceholder.
func Analysis() []byte { return append([]byte(nil), analysis...) }

// PrometheusPlaceholder is the Prometheus address examples/analysis.yaml
// gives its analysis steps.
const PrometheusPlaceholder = "http://prometheus.monitoring:9090"
