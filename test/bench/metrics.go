package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/kubernetes"
)

// sample is one time series of a scrape: its labels and value. Histograms
// and summaries appear as two samples, <name>_sum and <name>_count.
type sample struct {
	labels map[string]string
	value  float64
}

// scrape is a parsed Prometheus text exposition, by metric name.
type scrape map[string][]sample

// parseMetrics parses the Prometheus text format.
func parseMetrics(r io.Reader) (scrape, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parsing metrics: %w", err)
	}
	out := scrape{}
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			labels := make(map[string]string, len(m.GetLabel()))
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[name] = append(out[name], sample{labels, m.GetCounter().GetValue()})
			case dto.MetricType_GAUGE:
				out[name] = append(out[name], sample{labels, m.GetGauge().GetValue()})
			case dto.MetricType_UNTYPED:
				out[name] = append(out[name], sample{labels, m.GetUntyped().GetValue()})
			case dto.MetricType_HISTOGRAM:
				out[name+"_sum"] = append(out[name+"_sum"], sample{labels, m.GetHistogram().GetSampleSum()})
				out[name+"_count"] = append(out[name+"_count"], sample{labels, float64(m.GetHistogram().GetSampleCount())})
			case dto.MetricType_SUMMARY:
				out[name+"_sum"] = append(out[name+"_sum"], sample{labels, m.GetSummary().GetSampleSum()})
				out[name+"_count"] = append(out[name+"_count"], sample{labels, float64(m.GetSummary().GetSampleCount())})
			}
		}
	}
	return out, nil
}

// sum adds the samples of name whose labels satisfy match (nil matches all).
func (s scrape) sum(name string, match func(map[string]string) bool) float64 {
	var total float64
	for _, x := range s[name] {
		if match == nil || match(x.labels) {
			total += x.value
		}
	}
	return total
}

// by groups the samples of name that satisfy match by the values of keys.
func (s scrape) by(name string, match func(map[string]string) bool, keys ...string) map[string]float64 {
	out := map[string]float64{}
	for _, x := range s[name] {
		if match != nil && !match(x.labels) {
			continue
		}
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = x.labels[k]
		}
		out[strings.Join(parts, " ")] += x.value
	}
	return out
}

func labelIn(key string, values ...string) func(map[string]string) bool {
	return func(l map[string]string) bool {
		for _, v := range values {
			if l[key] == v {
				return true
			}
		}
		return false
	}
}

func and(fs ...func(map[string]string) bool) func(map[string]string) bool {
	return func(l map[string]string) bool {
		for _, f := range fs {
			if !f(l) {
				return false
			}
		}
		return true
	}
}

// Write verbs as the API server labels them in apiserver_request_total, and
// HTTP methods as client-go labels them in rest_client_requests_total.
var (
	apiserverWriteVerbs = []string{"POST", "PUT", "PATCH", "DELETE", "APPLY"}
	clientWriteMethods  = []string{"POST", "PUT", "PATCH", "DELETE"}
)

func isAPIServerWrite(l map[string]string) bool { return labelIn("verb", apiserverWriteVerbs...)(l) }
func isPodResource(l map[string]string) bool {
	return l["resource"] == "pods" && (l["group"] == "" || l["group"] == "core")
}
func isClientWrite(l map[string]string) bool { return labelIn("method", clientWriteMethods...)(l) }

// apiWrites is what one scrape of the API server says about writes.
type apiWrites struct {
	Total float64            // every write request, any resource
	Pods  float64            // writes to pods and their subresources
	Break map[string]float64 // pod writes by "verb subresource"
	Other map[string]float64 // other writes by "verb resource subresource"
}

func apiServerWrites(s scrape) apiWrites {
	const name = "apiserver_request_total"
	return apiWrites{
		Total: s.sum(name, isAPIServerWrite),
		Pods:  s.sum(name, and(isAPIServerWrite, isPodResource)),
		Break: s.by(name, and(isAPIServerWrite, isPodResource), "verb", "subresource"),
		Other: s.by(name, and(isAPIServerWrite, func(l map[string]string) bool { return !isPodResource(l) }), "verb", "resource", "subresource"),
	}
}

func (a apiWrites) minus(b apiWrites) apiWrites {
	out := apiWrites{Total: a.Total - b.Total, Pods: a.Pods - b.Pods, Break: map[string]float64{}, Other: map[string]float64{}}
	for k, v := range a.Break {
		if d := v - b.Break[k]; d != 0 {
			out.Break[k] = d
		}
	}
	for k, v := range a.Other {
		if d := v - b.Other[k]; d != 0 {
			out.Other[k] = d
		}
	}
	return out
}

// otherBreakdown renders Other as "PATCH clonesets/status 80, PUT leases 310".
func (a apiWrites) otherBreakdown() string {
	keys := make([]string, 0, len(a.Other))
	for k := range a.Other {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return a.Other[keys[i]] > a.Other[keys[j]] || (a.Other[keys[i]] == a.Other[keys[j]] && keys[i] < keys[j])
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		f := strings.Fields(k)
		name := f[0] + " " + f[1]
		if len(f) > 2 {
			name += "/" + f[2]
		}
		parts = append(parts, fmt.Sprintf("%s %.0f", name, a.Other[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// breakdown renders Break as "PATCH status: 3000, POST binding: 1000".
func (a apiWrites) breakdown() string {
	keys := make([]string, 0, len(a.Break))
	for k := range a.Break {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		name := strings.TrimSpace(k)
		if strings.HasSuffix(k, " ") { // no subresource
			name = strings.TrimSpace(k) + " pods"
		} else {
			f := strings.Fields(k)
			name = f[0] + " pods/" + f[1]
		}
		parts = append(parts, fmt.Sprintf("%s %.0f", name, a.Break[k]))
	}
	return strings.Join(parts, ", ")
}

// scrapeAPIServer reads the API server's /metrics with the admin client.
func scrapeAPIServer(ctx context.Context, cs kubernetes.Interface) (scrape, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	body, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").Stream(ctx)
	if err != nil {
		return nil, fmt.Errorf("scraping API server metrics: %w", err)
	}
	defer body.Close()
	return parseMetrics(body)
}

// scrapeHTTP reads a plain-HTTP /metrics endpoint (the manager's).
func scrapeHTTP(ctx context.Context, addr string) (scrape, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping %s: %s", addr, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// managerStats is what one scrape of the manager's /metrics says.
type managerStats struct {
	Writes         float64 // rest_client_requests_total, write methods
	WritesByMethod map[string]float64
	Reads          float64 // GET (and LIST/WATCH starts)
	Reconciles     float64 // controller_runtime_reconcile_total, all controllers
	ReconcileErrs  float64
	ReconcileSecs  float64 // controller_runtime_reconcile_time_seconds_sum
	QueueAdds      float64 // workqueue_adds_total, all controllers
	QueueWaitSecs  float64 // workqueue_queue_duration_seconds_sum
	QueueWaitCount float64
	QueueDepth     float64 // workqueue_depth, all controllers (gauge)
	HeapInuse      float64 // go_memstats_heap_inuse_bytes (gauge)
	// By controller: reconciles and seconds spent in them.
	ReconcilesBy    map[string]float64
	ReconcileSecsBy map[string]float64
}

func managerStatsFrom(s scrape) managerStats {
	// Every controller's reconciles and queues: a row exercises one
	// workload kind, the others idle.
	var all func(map[string]string) bool
	return managerStats{
		Writes:          s.sum("rest_client_requests_total", isClientWrite),
		WritesByMethod:  s.by("rest_client_requests_total", isClientWrite, "method"),
		Reads:           s.sum("rest_client_requests_total", labelIn("method", "GET")),
		Reconciles:      s.sum("controller_runtime_reconcile_total", all),
		ReconcileErrs:   s.sum("controller_runtime_reconcile_errors_total", all),
		ReconcileSecs:   s.sum("controller_runtime_reconcile_time_seconds_sum", all),
		QueueAdds:       s.sum("workqueue_adds_total", all),
		QueueWaitSecs:   s.sum("workqueue_queue_duration_seconds_sum", all),
		QueueWaitCount:  s.sum("workqueue_queue_duration_seconds_count", all),
		QueueDepth:      s.sum("workqueue_depth", all),
		HeapInuse:       s.sum("go_memstats_heap_inuse_bytes", nil),
		ReconcilesBy:    s.by("controller_runtime_reconcile_total", all, "controller"),
		ReconcileSecsBy: s.by("controller_runtime_reconcile_time_seconds_sum", all, "controller"),
	}
}

func (a managerStats) minus(b managerStats) managerStats {
	out := a
	out.Writes -= b.Writes
	out.Reads -= b.Reads
	out.Reconciles -= b.Reconciles
	out.ReconcileErrs -= b.ReconcileErrs
	out.ReconcileSecs -= b.ReconcileSecs
	out.QueueAdds -= b.QueueAdds
	out.QueueWaitSecs -= b.QueueWaitSecs
	out.QueueWaitCount -= b.QueueWaitCount
	out.WritesByMethod = minusMap(a.WritesByMethod, b.WritesByMethod)
	out.ReconcilesBy = minusMap(a.ReconcilesBy, b.ReconcilesBy)
	out.ReconcileSecsBy = minusMap(a.ReconcileSecsBy, b.ReconcileSecsBy)
	return out
}

// minusMap is a - b by key, without the keys that did not change.
func minusMap(a, b map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range a {
		if d := v - b[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// byController renders reconciles and their time by controller, busiest
// first: "cloneset 635 (8.45 s), rollout 22 (5.07 s)".
func (a managerStats) byController() string {
	keys := make([]string, 0, len(a.ReconcilesBy))
	for k := range a.ReconcilesBy {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		x, y := a.ReconcileSecsBy[keys[i]], a.ReconcileSecsBy[keys[j]]
		return x > y || (x == y && keys[i] < keys[j])
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.0f (%.2f s)", k, a.ReconcilesBy[k], a.ReconcileSecsBy[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
