package demoapp

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// TargetGroup is one entry of Prometheus' http_sd_configs answer.
type TargetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// Target labels that every group carries; a pod label of the same
// (sanitized) name is overridden.
const (
	LabelNamespace = "namespace"
	LabelPod       = "pod"
)

// targetGroups returns one group per pod that podAddresses serves, sorted by
// namespace and name: its addresses, its labels (names sanitized), namespace
// and pod. It is never nil, so that it encodes as [].
func targetGroups(pods []*corev1.Pod) []TargetGroup {
	groups := []TargetGroup{}
	sorted := append([]*corev1.Pod(nil), pods...)
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].Namespace != sorted[j].Namespace {
			return sorted[i].Namespace < sorted[j].Namespace
		}
		return sorted[i].Name < sorted[j].Name
	})
	for _, p := range sorted {
		addrs := podAddresses(p)
		if len(addrs) == 0 {
			continue
		}
		lbls := map[string]string{}
		keys := make([]string, 0, len(p.Labels))
		for k := range p.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys) // deterministic when two names sanitize alike
		for _, k := range keys {
			lbls[sanitizeLabelName(k)] = p.Labels[k]
		}
		lbls[LabelNamespace] = p.Namespace
		lbls[LabelPod] = p.Name
		groups = append(groups, TargetGroup{Targets: sortedKeys(addrs), Labels: lbls})
	}
	return groups
}

// sanitizeLabelName makes a Kubernetes label key a Prometheus label name
// ([a-zA-Z_][a-zA-Z0-9_]*, not starting with the reserved "__"), as
// Prometheus' Kubernetes discovery does: every other character becomes "_".
func sanitizeLabelName(k string) string {
	var b strings.Builder
	for i, r := range k {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_':
			b.WriteRune(r)
		case r >= '0' && r <= '9':
			if i == 0 {
				b.WriteByte('_')
			}
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := b.String()
	if name == "" {
		return "_"
	}
	if strings.HasPrefix(name, "__") {
		name = "label" + name
	}
	return name
}

// sdHandler serves the http_sd target list at /sd.
func (s *Server) sdHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sd", func(w http.ResponseWriter, _ *http.Request) {
		pods, err := s.pods.List(s.selector)
		if err != nil {
			plainError(w, http.StatusInternalServerError, err.Error())
			return
		}
		body, err := json.Marshal(targetGroups(pods))
		if err != nil {
			plainError(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(append(body, '\n'))
	})
	return mux
}
