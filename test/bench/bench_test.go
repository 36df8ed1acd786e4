package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const apiserverText = `# HELP apiserver_request_total [STABLE] Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 1000
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="binding",verb="POST",version="v1"} 1000
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 2500
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="LIST",version="v1"} 77
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="WATCH",version="v1"} 5
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 400
apiserver_request_total{code="200",component="apiserver",dry_run="",group="apps.drover.dev",resource="clonesets",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 20
apiserver_request_total{code="200",component="apiserver",dry_run="",group="apiextensions.k8s.io",resource="customresourcedefinitions",scope="resource",subresource="",verb="APPLY",version="v1"} 5
# HELP apiserver_request_duration_seconds [STABLE] Response latency.
# TYPE apiserver_request_duration_seconds histogram
apiserver_request_duration_seconds_bucket{component="apiserver",verb="POST",le="0.1"} 1
apiserver_request_duration_seconds_bucket{component="apiserver",verb="POST",le="+Inf"} 2
apiserver_request_duration_seconds_sum{component="apiserver",verb="POST"} 0.5
apiserver_request_duration_seconds_count{component="apiserver",verb="POST"} 2
`

func TestAPIServerWrites(t *testing.T) {
	s, err := parseMetrics(strings.NewReader(apiserverText))
	if err != nil {
		t.Fatal(err)
	}
	w := apiServerWrites(s)
	if w.Pods != 4503 {
		t.Errorf("pod writes = %v, want 4503 (POST, POST binding, PATCH status; not LIST/WATCH)", w.Pods)
	}
	if w.Total != 4503+400+20+5 {
		t.Errorf("total writes = %v, want %v", w.Total, 4503+400+20+5)
	}
	if got := w.Break["PATCH status"]; got != 2503 {
		t.Errorf("PATCH status = %v, want 2503 (both codes)", got)
	}
	if got, want := w.breakdown(), "PATCH pods/status 2503, POST pods 1000, POST pods/binding 1000"; got != want {
		t.Errorf("breakdown = %q, want %q", got, want)
	}
	if got, want := w.otherBreakdown(), "PUT leases 400, PATCH clonesets/status 20, APPLY customresourcedefinitions 5"; got != want {
		t.Errorf("other breakdown = %q, want %q", got, want)
	}
	if got := s.sum("apiserver_request_duration_seconds_count", nil); got != 2 {
		t.Errorf("histogram count = %v, want 2", got)
	}
	if got := s.sum("apiserver_request_duration_seconds_sum", nil); got != 0.5 {
		t.Errorf("histogram sum = %v, want 0.5", got)
	}

	before := apiWrites{Total: 100, Pods: 90, Break: map[string]float64{"PATCH status": 3, "POST ": 1000}}
	d := w.minus(before)
	if d.Pods != 4413 || d.Total != 4828 || d.Break["PATCH status"] != 2500 {
		t.Errorf("minus = %+v", d)
	}
	if _, ok := d.Break["POST "]; ok {
		t.Errorf("unchanged series should be dropped from the breakdown: %v", d.Break)
	}
}

const managerText = `# HELP rest_client_requests_total Number of HTTP requests, partitioned by status code, method, and host.
# TYPE rest_client_requests_total counter
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="GET"} 12
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="PATCH"} 2000
rest_client_requests_total{code="201",host="127.0.0.1:6443",method="POST"} 1000
rest_client_requests_total{code="409",host="127.0.0.1:6443",method="PUT"} 4
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="DELETE"} 1
# TYPE controller_runtime_reconcile_total counter
controller_runtime_reconcile_total{controller="cloneset",result="success"} 40
controller_runtime_reconcile_total{controller="cloneset",result="requeue_after"} 2
controller_runtime_reconcile_total{controller="statefulset",result="success"} 9
# TYPE controller_runtime_reconcile_time_seconds histogram
controller_runtime_reconcile_time_seconds_bucket{controller="cloneset",le="+Inf"} 42
controller_runtime_reconcile_time_seconds_sum{controller="cloneset"} 12.5
controller_runtime_reconcile_time_seconds_count{controller="cloneset"} 42
# TYPE workqueue_depth gauge
workqueue_depth{controller="cloneset",name="cloneset"} 3
# TYPE workqueue_adds_total counter
workqueue_adds_total{controller="cloneset",name="cloneset"} 50
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 2.097152e+07
`

func TestManagerStats(t *testing.T) {
	s, err := parseMetrics(strings.NewReader(managerText))
	if err != nil {
		t.Fatal(err)
	}
	m := managerStatsFrom(s)
	if m.Writes != 3005 {
		t.Errorf("writes = %v, want 3005 (PATCH+POST+PUT+DELETE, any code)", m.Writes)
	}
	if m.Reads != 12 || m.Reconciles != 51 || m.ReconcileSecs != 12.5 || m.QueueDepth != 3 || m.QueueAdds != 50 {
		t.Errorf("stats = %+v", m)
	}
	if m.HeapInuse != 20971520 {
		t.Errorf("heap = %v", m.HeapInuse)
	}
	if got, want := m.byController(), "cloneset 42 (12.50 s), statefulset 9 (0.00 s)"; got != want {
		t.Errorf("byController = %q, want %q", got, want)
	}
	d := m.minus(managerStats{Writes: 5, WritesByMethod: map[string]float64{"PATCH": 2000}, ReconcilesBy: map[string]float64{"cloneset": 40}})
	if got, want := d.byController(), "cloneset 2 (12.50 s), statefulset 9 (0.00 s)"; got != want {
		t.Errorf("minus byController = %q, want %q", got, want)
	}
	if d.Writes != 3000 || methods(d.WritesByMethod) != "POST 1000, PUT 4, DELETE 1" {
		t.Errorf("minus: writes %v by method %q", d.Writes, methods(d.WritesByMethod))
	}
}

func TestParseMetricsError(t *testing.T) {
	if _, err := parseMetrics(strings.NewReader("not a metric line {{{\n")); err == nil {
		t.Fatal("want an error for malformed input")
	}
}

func TestCPUTicks(t *testing.T) {
	// A command name with spaces and parentheses; utime 1234, stime 567.
	stat := "4242 (drover (mgr) x) S 1 4242 4242 0 -1 4194560 5000 0 0 0 1234 567 0 0 20 0 12 0 100 800000000 9000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	got, err := cpuTicks([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if got != 1801 {
		t.Errorf("ticks = %d, want 1801", got)
	}
	if _, err := cpuTicks([]byte("4242 (x S 1")); err == nil {
		t.Error("want an error without ')'")
	}
	if _, err := cpuTicks([]byte("4242 (x) S 1 2")); err == nil {
		t.Error("want an error for a short line")
	}
}

func TestParseStatus(t *testing.T) {
	status := `Name:	drover-manager
Umask:	0022
State:	S (sleeping)
VmPeak:	 1300000 kB
VmSize:	 1290000 kB
VmHWM:	   65536 kB
VmRSS:	   40960 kB
RssAnon:	   30000 kB
Threads:	12
`
	m, err := parseStatus(strings.NewReader(status))
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS != 40960*1024 || m.HWM != 65536*1024 {
		t.Errorf("got %+v", m)
	}
	if mib(m.RSS) != 40 {
		t.Errorf("mib = %v", mib(m.RSS))
	}
	if _, err := parseStatus(strings.NewReader("Name:\tx\n")); err == nil {
		t.Error("want an error without VmRSS")
	}
}

func TestProcWatchSelf(t *testing.T) {
	w := newProcWatch(selfPid(), 10*time.Millisecond)
	defer w.close()
	if w.rss() == 0 || w.peakRSS() < w.rss()/2 || w.hwm() == 0 {
		t.Errorf("rss %d peak %d hwm %d", w.rss(), w.peakRSS(), w.hwm())
	}
	if cpu := w.cpuSeconds(); cpu < 0 || math.IsNaN(cpu) {
		t.Errorf("cpu = %v", cpu)
	}
}

func TestRowVerdictAndTable(t *testing.T) {
	r := &row{scenario: "x", wall: 3 * time.Second, baseline: 2 * time.Second, clientWrites: 3, apiPodWrites: 5, apiAllWrites: math.NaN(), cpu: 1, peakRSS: 40}
	if got := r.ratio(); got != 1.5 {
		t.Errorf("ratio = %v", got)
	}
	if r.verdict() != "—" {
		t.Errorf("no checks: %q", r.verdict())
	}
	r.checks = []check{{"a", true}, {"b failed", false}}
	if got := r.verdict(); got != "**FAIL** (b failed)" {
		t.Errorf("verdict = %q", got)
	}
	table := markdownTable([]*row{r})
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "| ---") {
		t.Fatalf("table:\n%s", table)
	}
	if !strings.Contains(lines[2], "| 1.50 ") {
		t.Errorf("row: %s", lines[2])
	}
}

func selfPid() int { return os.Getpid() }

func TestCrashSummary(t *testing.T) {
	log := `{"level":"info","msg":"starting"}
fatal error: concurrent map writes

goroutine 42848 [running]:
internal/runtime/maps.fatal({0x17b2f2e?, 0x5753b9?})
	/usr/local/go/src/runtime/panic.go:1181 +0x18
github.com/drover-dev/drover/internal/controller/cloneset.(*templates).template(0x4a3153f8a60, {0x4a3156744b0, 0x11})
	/work/main/internal/controller/cloneset/sync.go:58 +0x9b
github.com/drover-dev/drover/internal/controller/cloneset.(*templates).changeTo(0x4a3153f8a60, {0x4a3156744b0, 0x11})
	/work/main/internal/controller/cloneset/sync.go:69 +0x185
`
	path := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "fatal error: concurrent map writes in internal/controller/cloneset.(*templates).template (internal/controller/cloneset/sync.go:58)"
	if got := crashSummary(path); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
