// Command bench measures Drover's CloneSet controller against a plain
// client on a kwok cluster and prints a table (`make bench`).
//
// It starts one control plane with simulated nodes (internal/kwokcluster),
// first measures what the API server itself allows — a plain client-go
// clientset issuing, at high concurrency, the same writes Drover issues
// (create + open readiness gate per pod; close gate, patch image, open gate
// per in-place update) — then runs bin/drover-manager with its default
// settings and times a CloneSet scaling 0 → N and updating all N pods in
// place at maxUnavailable 100% and 20%. It times a Rollout releasing a
// new image of an N-pod CloneSet in canary steps 20% → 50% → 100%
// (-skip-canary leaves it out, -canary-only runs nothing else). Finally it
// scales to 10 CloneSets (10 × N pods), lets the manager idle and checks
// that pods Drover does not own cost it no memory.
//
// Per row it reports the wall time, the ratio to the plain client's time
// plus the simulated kubelet's delay, the manager's own write requests per
// pod (its rest_client_requests_total), every client's writes to pods per
// pod (the API server's apiserver_request_total, which includes the
// simulated kubelet and the scheduler), the manager's CPU seconds
// (/proc/<pid>/stat) and its peak RSS (/proc/<pid>/status, sampled every
// 100 ms).
//
// Usage:
//
//	go build -o bin/drover-manager ./cmd/drover-manager
//	go run ./test/bench [-pods 1000] [-skip-10k] [-o docs-table.md]
//	go run ./test/bench -canary-only [-canary-pods 1000]
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/drover-dev/drover/internal/kwokcluster"
)

// The simulated kubelet's latencies (config/kwok): a pod starts 1 s after it
// is bound; a container whose image changed restarts after 1 s and is ready
// 500 ms later.
const (
	startDelay   = time.Second
	restartDelay = 1500 * time.Millisecond

	// Targets from the issue, as ratios to the plain client measured in
	// the same run.
	maxTimeRatio      = 1.5
	maxWritesPerPod   = 3.1
	maxRSS1kMiB       = 64
	maxIdleRSS10kMiB  = 100
	maxForeignGrowMiB = 4
)

type options struct {
	pods        int
	nodes       int
	workers     int
	clonesets   int
	foreign     int
	skip10k     bool
	skipKinds   bool
	out         string
	binDir      string
	managerPath string
	idle        time.Duration
	settle      time.Duration
	strict      bool
	trace       bool

	// The canary row (a Rollout releasing a new image in steps).
	skipCanary           bool
	canaryOnly           bool
	canaryPods           int
	canaryMaxUnavailable string
}

func main() {
	var o options
	flag.IntVar(&o.pods, "pods", 1000, "pods per CloneSet (and in the plain-client baseline)")
	flag.IntVar(&o.nodes, "nodes", 50, "simulated nodes for the first rows (more are added for the 10-CloneSet row)")
	flag.IntVar(&o.workers, "baseline-concurrency", 100, "parallel requests of the plain client")
	flag.IntVar(&o.clonesets, "clonesets", 10, "CloneSets in the idle row")
	flag.IntVar(&o.foreign, "foreign-pods", 0, "pods not owned by Drover created for the memory check (0: 2 × -pods)")
	flag.BoolVar(&o.skip10k, "skip-10k", false, "skip the 10-CloneSet idle row")
	flag.BoolVar(&o.skipKinds, "skip-kinds", false, "skip the StatefulSet, DaemonSet, BroadcastJob and SidecarSet rows")
	flag.StringVar(&o.out, "o", "", "also write the machine, table and details as markdown to this file")
	flag.StringVar(&o.binDir, "bin", "", "directory of the control-plane binaries (default <repo>/bin)")
	flag.StringVar(&o.managerPath, "manager", "", "drover-manager binary (default <repo>/bin/drover-manager)")
	flag.DurationVar(&o.idle, "idle", 15*time.Second, "idle window of the 10-CloneSet row")
	flag.DurationVar(&o.settle, "settle", 2*time.Second, "pause after each row before the closing metrics scrape, so trailing writes are counted")
	flag.BoolVar(&o.strict, "strict", false, "exit 1 when a target is missed")
	flag.BoolVar(&o.trace, "trace", false, "sample the manager's reconciles and the pods' progress every second during the Drover rows and print the timelines (adds a /metrics scrape a second to the manager's CPU)")
	flag.BoolVar(&o.skipCanary, "skip-canary", false, "skip the Rollout canary row (20% → 50% → 100%)")
	flag.BoolVar(&o.canaryOnly, "canary-only", false, "run only the Rollout canary row (no baseline, no other rows)")
	flag.IntVar(&o.canaryPods, "canary-pods", 0, "replicas of the CloneSet of the canary row (0: -pods)")
	flag.StringVar(&o.canaryMaxUnavailable, "canary-max-unavailable", "100%", "maxUnavailable of the canary row's CloneSet (an int or a percentage)")
	flag.Parse()
	if o.foreign == 0 {
		o.foreign = 2 * o.pods
	}
	if o.canaryPods == 0 {
		o.canaryPods = o.pods
	}
	if o.canaryOnly && o.skipCanary {
		fmt.Fprintln(os.Stderr, "-canary-only and -skip-canary exclude each other")
		os.Exit(2)
	}
	os.Exit(run(o))
}

func run(o options) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := &bench{o: o}

	// A signal cancels the run, which then unwinds: a cluster still
	// starting is stopped by kwokcluster.Start itself, a running one and
	// the manager by cleanup. A second signal, or a run that does not
	// unwind within two minutes, forces cleanup and exits.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	var interrupted atomic.Bool
	go func() {
		select {
		case sig := <-sigs:
			interrupted.Store(true)
			logf("%v received: stopping the manager and the cluster", sig)
			cancel()
		case <-done:
			return
		}
		select {
		case <-done:
		case <-sigs:
			b.cleanup()
			os.Exit(130)
		case <-time.After(2 * time.Minute):
			b.cleanup()
			os.Exit(130)
		}
	}()
	defer close(done)
	defer b.cleanup()

	err := b.run(ctx)
	if interrupted.Load() {
		b.cleanup()
		return 130
	}
	b.report()
	if err != nil {
		logf("bench failed: %v", err)
		if b.mgr != nil {
			logf("manager log: %s", b.mgr.logPath)
		}
		return 1
	}
	if o.strict {
		for _, r := range b.rows {
			if strings.Contains(r.verdict(), "FAIL") {
				return 1
			}
		}
	}
	return 0
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// bench is one run.
type bench struct {
	o       options
	workDir string
	machine machine

	cluster *kwokcluster.Cluster
	cs      kubernetes.Interface // plain client: no client-side rate limit
	cl      client.Client
	mgr     *manager
	watch   *procWatch

	rows    []*row
	notes   []string
	crashes []string
	// The plain client's write phases: the references of the Drover rows.
	scaleRef, updateRef time.Duration
	// ... and their times until every pod was Ready.
	scaleReadyRef, updateReadyRef time.Duration
	// unconverged: the manager kept crashing and left the first CloneSet
	// mid-update.
	unconverged bool

	cleanOnce sync.Once
	mu        sync.Mutex
}

func (b *bench) cleanup() {
	b.cleanOnce.Do(func() {
		b.mu.Lock()
		mgr, watch, cluster := b.mgr, b.watch, b.cluster
		b.mu.Unlock()
		if watch != nil {
			watch.close()
		}
		if mgr != nil {
			mgr.stop()
		}
		if cluster != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := cluster.Stop(ctx); err != nil {
				logf("stop cluster: %v", err)
			}
		}
	})
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.Contains(string(data), "module github.com/drover-dev/drover\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run from inside the drover repository")
		}
		dir = parent
	}
}

func (b *bench) run(ctx context.Context) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if b.o.binDir == "" {
		b.o.binDir = filepath.Join(root, "bin")
	}
	if b.o.managerPath == "" {
		b.o.managerPath = filepath.Join(root, "bin", "drover-manager")
	}
	if _, err := os.Stat(b.o.managerPath); err != nil {
		return fmt.Errorf("%s: %w (go build -o bin/drover-manager ./cmd/drover-manager)", b.o.managerPath, err)
	}
	b.machine = describeMachine(b.o.managerPath)
	b.machine.Commit = repoCommit(root)
	if b.o.managerPath != filepath.Join(root, "bin", "drover-manager") {
		b.machine.Drover += " (" + b.o.managerPath + ")"
	}
	b.workDir, err = os.MkdirTemp("", "drover-bench-")
	if err != nil {
		return err
	}
	logf("work dir %s; %d pods per CloneSet", b.workDir, b.o.pods)

	// kwokLog stays open until the process ends: the cluster's Stop (in
	// cleanup) still writes kwokctl's output to it.
	kwokLog, err := os.Create(filepath.Join(b.workDir, "kwokctl.log"))
	if err != nil {
		return err
	}
	start := time.Now()
	cluster, err := kwokcluster.Start(ctx, kwokcluster.Options{BinDir: b.o.binDir, Nodes: b.o.nodes, Log: kwokLog})
	if err != nil {
		return fmt.Errorf("start cluster (log %s): %w", kwokLog.Name(), err)
	}
	b.mu.Lock()
	b.cluster = cluster
	b.mu.Unlock()
	logf("cluster %s with %d nodes up in %s", cluster.Name(), b.o.nodes, time.Since(start).Round(100*time.Millisecond))

	cfg, err := cluster.RESTConfig()
	if err != nil {
		return err
	}
	plain := rest.CopyConfig(cfg)
	plain.QPS, plain.Burst = -1, 0
	if b.cs, err = kubernetes.NewForConfig(plain); err != nil {
		return err
	}
	if v, err := b.cs.Discovery().ServerVersion(); err == nil {
		b.machine.KubeVersion = v.GitVersion
	}
	if b.cl, err = newClient(plain); err != nil {
		return err
	}
	if err := installCRDs(ctx, b.cl); err != nil {
		return err
	}

	if b.o.canaryOnly {
		if err := b.startManager(ctx); err != nil {
			return err
		}
		if err := b.canaryRows(ctx); err != nil {
			return err
		}
		b.notes = append(b.notes, fmt.Sprintf("manager lifetime peak RSS (VmHWM): %.1f MiB", mib(b.watch.hwm())))
		return nil
	}
	if err := b.baseline(ctx); err != nil {
		return err
	}
	if err := b.startManager(ctx); err != nil {
		return err
	}
	if err := b.droverRows(ctx); err != nil {
		return err
	}
	if !b.o.skipKinds {
		if err := b.kindRows(ctx); err != nil {
			return err
		}
	}
	if !b.o.skipCanary {
		if err := b.canaryRows(ctx); err != nil {
			return err
		}
	}
	if !b.o.skip10k {
		if err := b.idleRows(ctx); err != nil {
			return err
		}
	}
	if err := b.foreignRow(ctx); err != nil {
		return err
	}
	b.notes = append(b.notes, fmt.Sprintf("manager lifetime peak RSS (VmHWM): %.1f MiB", mib(b.watch.hwm())))
	return nil
}

func (b *bench) startManager(ctx context.Context) error {
	mgr, err := startManager(ctx, b.o.managerPath, b.cluster.KubeconfigPath(), filepath.Join(b.workDir, "drover-manager.log"))
	if err != nil {
		return err
	}
	b.mu.Lock()
	if b.watch != nil {
		b.watch.close()
	}
	b.mgr = mgr
	b.watch = newProcWatch(mgr.pid(), 100*time.Millisecond)
	b.mu.Unlock()
	logf("manager pid %d, metrics %s, log %s; RSS after start %.1f MiB", mgr.pid(), mgr.metricsAddr, mgr.logPath, mib(b.watch.rss()))
	return nil
}

// snapshot is the state of the counters at one instant.
type snapshot struct {
	api    apiWrites
	mgr    managerStats
	hasMgr bool
	cpu    float64
}

func (b *bench) snap(ctx context.Context) (snapshot, error) {
	var s snapshot
	sc, err := scrapeAPIServer(ctx, b.cs)
	if err != nil {
		return s, err
	}
	s.api = apiServerWrites(sc)
	if b.mgr != nil {
		if !b.mgr.running() {
			return s, fmt.Errorf("drover-manager exited (log %s):\n%s", b.mgr.logPath, logTail(b.mgr.logPath, 3000))
		}
		ms, err := scrapeHTTP(ctx, b.mgr.metricsAddr)
		if err != nil {
			return s, err
		}
		s.mgr, s.hasMgr = managerStatsFrom(ms), true
		s.cpu = b.watch.cpuSeconds()
	}
	return s, nil
}

// measurement brackets one row: counters before and after, wall time.
type measurement struct {
	b      *bench
	before snapshot
	start  time.Time
}

func (b *bench) begin(ctx context.Context) (*measurement, error) {
	s, err := b.snap(ctx)
	if err != nil {
		return nil, err
	}
	if b.watch != nil {
		b.watch.resetPeak()
	}
	return &measurement{b: b, before: s, start: time.Now()}, nil
}

// finish waits the settle time, takes the closing snapshot and fills the
// row's counters (per pod: divided by pods).
func (m *measurement) finish(ctx context.Context, r *row, pods int) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(m.b.o.settle):
	}
	after, err := m.b.snap(ctx)
	if err != nil {
		return err
	}
	n := float64(pods)
	d := after.api.minus(m.before.api)
	r.apiPodWrites = d.Pods / n
	r.apiAllWrites = d.Total / n
	r.notes = append(r.notes, fmt.Sprintf("API server writes (all clients): %.0f to pods (%s), %.0f in total; other resources: %s", d.Pods, d.breakdown(), d.Total, d.otherBreakdown()))
	if !after.hasMgr || !m.before.hasMgr {
		r.cpu, r.peakRSS = math.NaN(), math.NaN()
		if !r.plainClient {
			r.clientWrites = math.NaN()
		}
		return nil
	}
	md := after.mgr.minus(m.before.mgr)
	r.clientWrites = md.Writes / n
	r.cpu = after.cpu - m.before.cpu
	r.peakRSS = mib(m.b.watch.peakRSS())
	avgWait := 0.0
	if md.QueueWaitCount > 0 {
		avgWait = md.QueueWaitSecs / md.QueueWaitCount
	}
	r.notes = append(r.notes, fmt.Sprintf(
		"manager: %.0f writes (%s), %.0f GETs; %.0f reconciles (%.0f errors) taking %.2f s in total; %.0f queue adds, mean queue wait %.3f s; heap in use %.1f MiB",
		md.Writes, methods(md.WritesByMethod), md.Reads, md.Reconciles, md.ReconcileErrs, md.ReconcileSecs,
		md.QueueAdds, avgWait, after.mgr.HeapInuse/(1<<20)))
	return nil
}

func methods(m map[string]float64) string {
	var parts []string
	for _, k := range clientWriteMethods {
		if v := m[k]; v != 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f", k, v))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// timeout for waiting on n pods: generous, the machine is shared.
func podTimeout(n int) time.Duration {
	return 5*time.Minute + time.Duration(n)*100*time.Millisecond
}

func (b *bench) add(r *row) {
	b.rows = append(b.rows, r)
	logf("%s: %.2f s, verdict %s", r.scenario, r.wall.Seconds(), r.verdict())
}

func (b *bench) report() {
	if len(b.rows) == 0 {
		return
	}
	var md strings.Builder
	md.WriteString("Machine:\n\n")
	md.WriteString(b.machine.markdown())
	md.WriteString("\n")
	md.WriteString(markdownTable(b.rows))
	md.WriteString("\nDetails:\n\n")
	for _, r := range b.rows {
		fmt.Fprintf(&md, "- %s\n", r.scenario)
		for _, n := range r.notes {
			fmt.Fprintf(&md, "  - %s\n", n)
		}
	}
	for _, n := range b.notes {
		fmt.Fprintf(&md, "- %s\n", n)
	}
	for _, c := range b.crashes {
		fmt.Fprintf(&md, "- **manager crash** during %s\n", c)
	}
	fmt.Println()
	fmt.Print(md.String())
	if b.o.out != "" {
		if err := os.WriteFile(b.o.out, []byte(md.String()), 0o644); err != nil {
			logf("write %s: %v", b.o.out, err)
		} else {
			logf("wrote %s", b.o.out)
		}
	}
}
