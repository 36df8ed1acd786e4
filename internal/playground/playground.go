// Package playground runs `drover playground`: a local control plane with
// simulated (kwok) nodes, Drover's CRDs, the Drover manager in process, the
// demo CloneSet from examples/cloneset.yaml and the canary demo of
// examples/rollout.yaml (a Rollout whose traffic an out-of-cluster Traefik
// splits between pods that an in-process demo app answers for), until its
// context ends. Then it removes everything it started.
package playground

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/drover-dev/drover/internal/demoapp"
	"github.com/drover-dev/drover/internal/freeport"
	"github.com/drover-dev/drover/internal/kwokcluster"
	"github.com/drover-dev/drover/internal/manager"
	"github.com/drover-dev/drover/internal/promserver"
	"github.com/drover-dev/drover/internal/traefik"
)

const (
	// DefaultNodes is the number of simulated nodes.
	DefaultNodes = 4
	// DemoNamespace and DemoName identify the demo CloneSet.
	DemoNamespace = "default"
	DemoName      = "web-frontend"

	defaultReadyTimeout = 5 * time.Minute
	managerStopTimeout  = 30 * time.Second
	clusterStopTimeout  = 2 * time.Minute
	fieldOwner          = "drover-playground"
)

// Options configure Run.
type Options struct {
	// BinDir holds kube-apiserver, kube-controller-manager, kube-scheduler,
	// etcd, kwok, kwokctl and traefik (without traefik the playground runs
	// without its canary demo). "" looks in $DROVER_BIN_DIR, then in the
	// repository's bin/ (found from the working directory or from the
	// running executable) and the running executable's directory.
	BinDir string
	// WorkDir is the parent of the playground's directory (which holds the
	// cluster and the logs); "" is the system's temporary directory.
	WorkDir string
	// Name is the cluster name; "" picks a unique drover-playground-<hex>.
	Name string
	// Nodes is the number of simulated nodes; 0 means DefaultNodes.
	Nodes int
	// Out receives progress and the guide; nil discards them.
	Out io.Writer
	// KeepOnExit leaves the cluster (and the playground directory) in place
	// when ctx ends; the in-process manager stops regardless.
	KeepOnExit bool
	// NoBuild never runs hack/build-tools.sh for missing binaries.
	NoBuild bool
	// CLI is how the guide spells the drover CLI ("kubectl drover",
	// "bin/drover", ...); "" means "kubectl drover".
	CLI string
	// ReadyTimeout bounds the wait for the demo CloneSet to be Ready, and
	// that for the canary demo's Rollout to be Healthy; 0 means 5 minutes.
	ReadyTimeout time.Duration
	// Ready, when set, is called once the demo CloneSet is Ready, the
	// canary demo's Rollout Healthy (or the canary demo skipped) and the
	// guide printed.
	Ready func(Env)
	// Reaper, when set, is the command (argv) of a watchdog that cleans up
	// if this process dies without doing so (SIGKILL, crash): Run appends
	// "--dir DIR --parent-pid PID" and starts it in its own session; it
	// must call Reap. The drover CLI passes its hidden reaper command.
	Reaper []string
}

// Env describes a running playground.
type Env struct {
	// Kubeconfig is the path of an admin kubeconfig for the cluster.
	Kubeconfig string
	// ClusterName is the kwok cluster's name; every process of the cluster
	// has it (or Dir) on its command line.
	ClusterName string
	// Dir is the playground's directory: the cluster's files and the logs.
	// It is removed on exit unless Options.KeepOnExit.
	Dir string
	// ManagerLog is the file the in-process manager (and the demo app
	// server) logs to.
	ManagerLog string
	// GatewayURL is the URL of the Gateway GatewayName that Traefik serves
	// (http://127.0.0.1:PORT), in front of the canary demo's HTTPRoute; ""
	// when the canary demo is off (Traefik or the Gateway API CRDs could
	// not be set up).
	GatewayURL string
	// PrometheusURL is the URL of the analysis demo's Prometheus; "" when
	// the analysis demo is off.
	PrometheusURL string
}

// Run starts the playground and blocks until ctx ends (SIGINT/SIGTERM in
// the CLI), then stops the manager, deletes the cluster and removes the
// playground's directory. A cancelled ctx is a normal stop, not an error,
// even before the playground was ready.
func Run(ctx context.Context, o Options) (err error) {
	if o.Nodes == 0 {
		o.Nodes = DefaultNodes
	}
	if o.Nodes < 0 || o.Nodes > kwokcluster.MaxNodes {
		return fmt.Errorf("playground: nodes must be between 1 and %d, got %d", kwokcluster.MaxNodes, o.Nodes)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.CLI == "" {
		o.CLI = "kubectl drover"
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = defaultReadyTimeout
	}
	if o.Name == "" {
		if o.Name, err = randomName(); err != nil {
			return err
		}
	}
	s := &session{o: o, p: &printer{w: o.Out}}
	return s.run(ctx)
}

// session is one run of the playground: what it started, for cleanup.
type session struct {
	o         Options
	p         *printer
	binDir    string
	env       Env
	logs      *logFile
	kwokLog   *logFile
	cluster   *kwokcluster.Cluster
	reaper    *exec.Cmd
	mgrCancel context.CancelFunc
	mgrDone   chan error
	ready     bool

	// The canary demo (canary.go).
	prepCancel context.CancelFunc
	prepDone   chan gatewayPrep
	traefik    *traefik.Traefik
	traefikLog *logFile
	demoCancel context.CancelFunc
	demoDone   chan error
	demo       *demoapp.Server

	// The analysis demo (analysis.go).
	prom            *promserver.Server
	promLog         *logFile
	analysisTraffic *traffic
	bgCtx           context.Context
	bgCancel        context.CancelFunc
	bg              sync.WaitGroup
}

func (s *session) run(ctx context.Context) (err error) {
	o, p := s.o, s.p
	start := time.Now()

	s.binDir, err = findBinDir(ctx, o, p)
	if err != nil {
		if ctx.Err() != nil {
			p.printf("interrupted\n")
			return nil
		}
		return err
	}
	p.printf("[1/7] control plane binaries: %s\n", s.binDir)

	dir, err := os.MkdirTemp(o.WorkDir, "drover-playground-")
	if err != nil {
		return fmt.Errorf("playground: creating the work directory: %w", err)
	}
	if abs, aerr := filepath.Abs(dir); aerr == nil {
		dir = abs
	}
	s.env = Env{ClusterName: o.Name, Dir: dir, ManagerLog: filepath.Join(dir, "manager.log")}
	defer func() {
		cerr := s.cleanup()
		if ctx.Err() != nil && !s.ready && err != nil {
			// Interrupted while starting: a normal stop, not a failure.
			p.printf("interrupted before the playground was ready\n")
			err = nil
		}
		err = errors.Join(err, cerr)
	}()
	if len(o.Reaper) > 0 {
		if s.reaper, err = startReaper(o.Reaper, dir); err != nil {
			return err
		}
	}
	if s.logs, err = openLog(s.env.ManagerLog); err != nil {
		return err
	}
	if s.kwokLog, err = openLog(filepath.Join(dir, "kwokctl.log")); err != nil {
		return err
	}
	if s.traefikLog, err = openLog(filepath.Join(dir, "traefik.log")); err != nil {
		return err
	}
	if s.promLog, err = openLog(filepath.Join(dir, "prometheus.log")); err != nil {
		return err
	}
	// controller-runtime and client-go log through process-wide loggers;
	// the first logger set wins, which is this one in the drover CLI.
	logger := zap.New(zap.WriteTo(s.logs))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)

	p.printf("[2/7] starting kwok cluster %s with %d simulated nodes ... ", o.Name, o.Nodes)
	t := time.Now()
	s.cluster, err = kwokcluster.Start(ctx, kwokcluster.Options{
		Name: o.Name, BinDir: s.binDir, WorkDir: dir, Nodes: o.Nodes, Log: s.kwokLog,
	})
	if err != nil {
		p.printf("failed\n")
		return fmt.Errorf("playground: starting the cluster (kwokctl log: %s): %w", s.kwokLog.path, err)
	}
	s.env.Kubeconfig = s.cluster.KubeconfigPath()
	p.printf("done (%s)\n", since(t))

	cfg, err := s.cluster.RESTConfig()
	if err != nil {
		return err
	}
	c, err := newClient(cfg)
	if err != nil {
		return err
	}

	p.printf("[3/7] installing Drover CRDs ... ")
	t = time.Now()
	n, err := installCRDs(ctx, c)
	if err != nil {
		p.printf("failed\n")
		return err
	}
	p.printf("%d established (%s)\n", n, since(t))
	// The canary demo's Gateway API CRDs, Traefik and Gateway are set up
	// while steps 4 and 5 run (not during step 3: the API server is slow
	// to establish CRDs while it processes others); step 6 waits for them.
	s.startGatewayPrep(ctx, c)

	p.printf("[4/7] starting the Drover manager in this process ... ")
	mo := manager.Defaults()
	ports, err := freeport.Loopback(3)
	if err != nil {
		return err
	}
	mo.MetricsAddr = fmt.Sprintf("127.0.0.1:%d", ports[0])
	mo.ProbeAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
	mo.LeaderElect = false
	// SidecarSet injection: the API server calls the in-process webhook
	// by URL (its certificate names localhost).
	mo.Webhook.BindAddress = fmt.Sprintf("127.0.0.1:%d", ports[2])
	mo.Webhook.URL = fmt.Sprintf("https://localhost:%d", ports[2])
	mo.Webhook.CertDir = filepath.Join(s.env.Dir, "webhook-certs")
	mo.Webhook.CertSecret = types.NamespacedName{Namespace: corev1.NamespaceDefault, Name: "drover-webhook-cert"}
	mo.Webhook.ExcludeNamespaces = []string{metav1.NamespaceSystem}
	mgr, err := manager.New(cfg, mo)
	if err != nil {
		p.printf("failed\n")
		return fmt.Errorf("playground: %w", err)
	}
	mgrCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.mgrCancel = cancel
	s.mgrDone = make(chan error, 1)
	go func() { s.mgrDone <- mgr.Start(mgrCtx) }()
	p.printf("metrics on %s, probes on %s\n", mo.MetricsAddr, mo.ProbeAddr)

	p.printf("[5/7] deploying CloneSet %s/%s ... ", DemoNamespace, DemoName)
	t = time.Now()
	if err := applyDemo(ctx, c); err != nil {
		p.printf("failed\n")
		return err
	}
	replicas, err := waitDemoReady(ctx, c, o.ReadyTimeout, s.mgrDone)
	if err != nil {
		p.printf("failed\n")
		return fmt.Errorf("%w (manager log: %s)", err, s.env.ManagerLog)
	}
	p.printf("%d/%d pods ready (%s)\n", replicas, replicas, since(t))

	p.printf("[6/7] canary demo: Traefik, Gateway %s/%s, Rollout %s/%s (examples/rollout.yaml) ... ",
		CanaryNamespace, GatewayName, CanaryNamespace, CanaryName)
	t = time.Now()
	url, canaryPods, err := s.startCanary(ctx, cfg, c, logger)
	var skipped errCanarySkipped
	switch {
	case err == nil:
		s.env.GatewayURL = url
		p.printf("gateway %s, Rollout Healthy, %d/%d pods ready (%s)\n", url, canaryPods, canaryPods, since(t))
	case errors.As(err, &skipped) && ctx.Err() == nil:
		logger.Error(err, "canary demo skipped")
		p.printf("skipped, the rest of the playground works: %s\n", firstLine(err))
	default:
		p.printf("failed\n")
		return err
	}

	p.printf("[7/7] analysis demo: Prometheus, Rollout %s/%s (examples/analysis.yaml) for host %s ... ", CanaryNamespace, AnalysisName, AnalysisHost)
	t = time.Now()
	analysisOn := false
	switch {
	case s.env.GatewayURL == "":
		p.printf("skipped: it needs the canary demo's gateway\n")
	default:
		prom, err := s.startAnalysisDemo(ctx, c, s.env.GatewayURL)
		switch {
		case err == nil:
			s.env.PrometheusURL = prom.URL()
			analysisOn = true
			p.printf("Prometheus %s, Rollout Healthy (%s)\n", prom.URL(), since(t))
		case errors.As(err, &skipped) && ctx.Err() == nil:
			logger.Error(err, "analysis demo skipped")
			p.printf("skipped, the rest of the playground works: %s\n", firstLine(err))
		default:
			p.printf("failed\n")
			return err
		}
	}

	s.ready = true
	printGuide(p, o, s.env, o.Nodes, since(start))
	if o.Ready != nil {
		o.Ready(s.env)
	}
	if analysisOn {
		s.goBackground(func(bg context.Context) {
			ctx, cancel := context.WithCancel(bg)
			defer cancel()
			s.playAnalysisStories(ctx, c)
		})
	}

	select {
	case <-ctx.Done():
		p.printf("\nstopping the playground ...\n")
		return nil
	case merr := <-s.mgrDone:
		s.mgrDone <- merr // cleanup waits for it
		return fmt.Errorf("playground: the manager stopped unexpectedly (log: %s): %v", s.env.ManagerLog, merr)
	}
}

// cleanup stops what run started, in reverse order: Traefik and the demo
// app server, the manager, then the cluster (unless kept), then the
// directory; and checks that no process of the cluster (or Traefik) is
// left.
func (s *session) cleanup() error {
	p, env := s.p, s.env
	errs := s.stopCanary()
	if s.mgrCancel != nil {
		s.mgrCancel()
		select {
		case merr := <-s.mgrDone:
			if merr != nil && !errors.Is(merr, context.Canceled) {
				errs = append(errs, fmt.Errorf("playground: manager: %w", merr))
			}
			p.printf("  manager stopped\n")
		case <-time.After(managerStopTimeout):
			errs = append(errs, fmt.Errorf("playground: the manager did not stop within %s", managerStopTimeout))
		}
	}
	closeLogs := func() {
		for _, l := range []*logFile{s.logs, s.kwokLog, s.traefikLog, s.promLog} {
			if l != nil {
				l.Close()
			}
		}
	}
	if s.o.KeepOnExit && s.ready && s.cluster != nil {
		closeLogs()
		p.printf("  cluster %s left running (--keep): export KUBECONFIG=%s\n", env.ClusterName, env.Kubeconfig)
		p.printf("  no manager reconciles it now; to run one (make build): KUBECONFIG=%s bin/drover-manager --metrics-bind-address=0 --health-probe-bind-address=0\n",
			env.Kubeconfig)
		p.printf("  delete it with: KWOK_WORKDIR=%s %s --name %s delete cluster --kubeconfig=%s && rm -rf %s\n",
			filepath.Join(env.Dir, env.ClusterName), filepath.Join(s.binDir, "kwokctl"), env.ClusterName,
			filepath.Join(env.Dir, "unused-kubeconfig.yaml"), env.Dir)
		s.stopReaper()
		return errors.Join(errs...)
	}
	if s.cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), clusterStopTimeout)
		err := s.cluster.Stop(ctx)
		cancel()
		if err != nil {
			errs = append(errs, err)
		} else {
			p.printf("  cluster %s deleted\n", env.ClusterName)
		}
	}
	closeLogs()
	if err := os.RemoveAll(env.Dir); err != nil {
		errs = append(errs, fmt.Errorf("playground: removing %s: %w", env.Dir, err))
	}
	s.stopReaper()
	if left := kwokcluster.Processes(env.Dir); len(left) > 0 {
		errs = append(errs, fmt.Errorf("playground: processes %v of cluster %s are still running", left, env.ClusterName))
	} else if len(errs) == 0 {
		p.printf("  %s removed; nothing left running\n", env.Dir)
	}
	return errors.Join(errs...)
}

// stopReaper ends the watchdog: cleanup has been done (or the cluster is
// deliberately kept).
func (s *session) stopReaper() {
	if s.reaper == nil || s.reaper.Process == nil {
		return
	}
	_ = s.reaper.Process.Kill()
	_ = s.reaper.Wait()
	s.reaper = nil
}

// printer serialises writes to Out.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) printf(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, a...)
}

// logFile is a log file that drops writes once closed: the process-wide
// loggers may outlive the playground.
type logFile struct {
	mu     sync.Mutex
	path   string
	f      *os.File
	closed bool
}

func openLog(path string) (*logFile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("playground: %w", err)
	}
	return &logFile{path: path, f: f}, nil
}

func (l *logFile) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return len(b), nil
	}
	return l.f.Write(b)
}

func (l *logFile) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		_ = l.f.Close()
	}
}

func randomName() (string, error) {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("playground: random name: %w", err)
	}
	return "drover-playground-" + hex.EncodeToString(b), nil
}

func since(t time.Time) time.Duration {
	return time.Since(t).Round(100 * time.Millisecond)
}
