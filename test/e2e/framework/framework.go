// Package framework runs an end-to-end test binary against one real control
// plane with simulated nodes (internal/kwokcluster) and, unless disabled, the
// drover-manager binary as a subprocess.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(framework.Run(m, framework.Options{})) }
//
// and from tests through Client, Config, Cluster, Manager and Namespace.
//
// Environment:
//
//	DROVER_E2E_KEEP=1   keep the cluster (and manager) running after the tests
//	                    and print how to reach it
//	DROVER_MANAGER      path of the manager binary (default <repo>/bin/drover-manager)
//	DROVER_BIN_DIR      directory of the control-plane binaries (default <repo>/bin)
//
// The cluster is torn down when the tests end, on SIGINT/SIGTERM, and — through
// a small watchdog process — even when the test binary dies of a panic or a
// timeout.
package framework

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/drover-dev/drover/internal/kwokcluster"
)

const (
	keepEnv     = "DROVER_E2E_KEEP"
	managerEnv  = "DROVER_MANAGER"
	binDirEnv   = "DROVER_BIN_DIR"
	watchdogEnv = "DROVER_E2E_WATCHDOG_DIR"

	defaultNodes = 4
)

// Options configures Run.
type Options struct {
	// Nodes is the number of simulated nodes; 0 means 4.
	Nodes int
	// NodeCapacityPods is each node's pod capacity; 0 keeps kwok's default (110).
	NodeCapacityPods int
	// NoManager skips starting drover-manager (for suites that test the
	// cluster itself).
	NoManager bool
	// ManagerArgs are appended to the manager's command line.
	ManagerArgs []string
	// ManagerEnv are extra KEY=VALUE environment entries for the manager.
	ManagerEnv []string
	// AddToScheme registers further API types in Client()'s scheme (client-go's
	// built-in types are always registered).
	AddToScheme []func(*runtime.Scheme) error
	// Stages replaces the kwok Stage documents (nil = config/kwok).
	Stages []byte
}

// suite is everything Run sets up for the test binary. A test framework needs
// one process-wide value for TestMain to hand to the tests; this is the only one.
var suite struct {
	mu       sync.Mutex
	ready    bool
	root     string
	workDir  string
	cluster  *kwokcluster.Cluster
	config   *rest.Config
	client   client.Client
	clients  kubernetes.Interface
	scheme   *runtime.Scheme
	manager  *ManagerProcess
	watchdog io.WriteCloser
	torn     bool
}

// Run sets up the cluster (and manager), runs the tests and tears everything
// down. It returns the exit code for os.Exit.
func Run(m *testing.M, opts Options) int {
	if dir := os.Getenv(watchdogEnv); dir != "" {
		return watchdog(dir)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		sig, ok := <-sigs
		if !ok {
			return
		}
		fmt.Fprintf(os.Stderr, "e2e: %v received, tearing down\n", sig)
		cancel()
		teardown(false, true)
		os.Exit(130)
	}()

	if err := setup(ctx, opts); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: setup failed: %v\n", err)
		teardown(false, true)
		return 1
	}
	code := 1
	func() {
		defer func() {
			if r := recover(); r != nil {
				fmt.Fprintf(os.Stderr, "e2e: panic: %v\n", r)
				teardown(false, true)
				panic(r)
			}
		}()
		code = m.Run()
	}()
	if race := managerRaces(); race != "" {
		fmt.Fprintf(os.Stderr, "e2e: the manager reported a data race:\n%s\n", race)
		code = 1
	}
	teardown(os.Getenv(keepEnv) == "1", code != 0)
	return code
}

// managerRaces returns the first data race report in the manager's log
// ("" when none): e2e runs may use a manager built with -race.
func managerRaces() string {
	m := suite.manager
	if m == nil || m.logPath == "" {
		return ""
	}
	b, err := os.ReadFile(m.logPath)
	if err != nil {
		return ""
	}
	i := strings.Index(string(b), "WARNING: DATA RACE")
	if i < 0 {
		return ""
	}
	return string(b[i:min(len(b), i+4000)])
}

func setup(ctx context.Context, opts Options) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	workDir, err := os.MkdirTemp("", "drover-e2e-")
	if err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	suite.mu.Lock()
	suite.root = root
	suite.workDir = workDir
	suite.mu.Unlock()
	fmt.Fprintf(os.Stderr, "e2e: work dir %s\n", workDir)

	if os.Getenv(keepEnv) != "1" {
		if err := startWatchdog(workDir); err != nil {
			return err
		}
	}

	scheme := runtime.NewScheme()
	adders := append([]func(*runtime.Scheme) error{clientgoscheme.AddToScheme}, opts.AddToScheme...)
	for _, add := range adders {
		if err := add(scheme); err != nil {
			return fmt.Errorf("scheme: %w", err)
		}
	}

	binDir := os.Getenv(binDirEnv)
	if binDir == "" {
		binDir = filepath.Join(root, "bin")
	}
	nodes := opts.Nodes
	if nodes == 0 {
		nodes = defaultNodes
	}
	kwokLog, err := os.Create(filepath.Join(workDir, "kwokctl.log"))
	if err != nil {
		return fmt.Errorf("kwokctl log: %w", err)
	}
	start := time.Now()
	cluster, err := kwokcluster.Start(ctx, kwokcluster.Options{
		BinDir:           binDir,
		WorkDir:          workDir,
		Nodes:            nodes,
		NodeCapacityPods: opts.NodeCapacityPods,
		Stages:           opts.Stages,
		Log:              kwokLog,
	})
	if err != nil {
		return fmt.Errorf("start cluster (kwokctl log: %s): %w", kwokLog.Name(), err)
	}
	suite.mu.Lock()
	suite.cluster = cluster
	suite.mu.Unlock()
	fmt.Fprintf(os.Stderr, "e2e: cluster %s with %d nodes up in %s\n", cluster.Name(), nodes, time.Since(start).Round(100*time.Millisecond))

	cfg, err := cluster.RESTConfig()
	if err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	clients, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("clientset: %w", err)
	}
	if err := applyCRDs(ctx, c, filepath.Join(root, "config", "crd", "bases")); err != nil {
		return err
	}

	mgr := &ManagerProcess{
		path:       managerPath(root),
		kubeconfig: cluster.KubeconfigPath(),
		logPath:    filepath.Join(workDir, "drover-manager.log"),
		extraArgs:  opts.ManagerArgs,
		extraEnv:   opts.ManagerEnv,
	}
	suite.mu.Lock()
	suite.config = cfg
	suite.client = c
	suite.clients = clients
	suite.scheme = scheme
	suite.manager = mgr
	suite.ready = true
	suite.mu.Unlock()

	switch {
	case opts.NoManager:
		mgr.disabled = "disabled by Options.NoManager"
	case !fileExists(mgr.path):
		mgr.disabled = fmt.Sprintf("%s does not exist (run make build)", mgr.path)
		fmt.Fprintf(os.Stderr, "e2e: not starting the manager: %s\n", mgr.disabled)
	default:
		if err := mgr.Start(); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "e2e: manager started, log %s\n", mgr.logPath)
	}
	return nil
}

// teardown stops the manager and the cluster (unless keep) exactly once.
// When failed, the kwok component logs are copied next to the manager log
// and the work dir is kept; otherwise it is removed.
func teardown(keep, failed bool) {
	suite.mu.Lock()
	if suite.torn {
		suite.mu.Unlock()
		return
	}
	suite.torn = true
	cluster, mgr, workDir, wd := suite.cluster, suite.manager, suite.workDir, suite.watchdog
	suite.mu.Unlock()

	if keep && cluster != nil {
		fmt.Fprintf(os.Stderr, "e2e: %s=1: leaving cluster %s running\n  export KUBECONFIG=%s\n", keepEnv, cluster.Name(), cluster.KubeconfigPath())
		if mgr != nil && mgr.Running() {
			fmt.Fprintf(os.Stderr, "  manager pid %d, log %s\n", mgr.Pid(), mgr.logPath)
		}
		fmt.Fprintf(os.Stderr, "  stop it: pkill -f %s; rm -rf %s\n", cluster.Name(), workDir)
		if wd != nil {
			_, _ = io.WriteString(wd, "keep\n")
			_ = wd.Close()
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if mgr != nil {
		if err := mgr.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: stop manager: %v\n", err)
		}
	}
	if cluster != nil {
		if failed {
			copyDir(filepath.Join(cluster.Dir(), "logs"), filepath.Join(workDir, "kwok-logs"))
		}
		if err := cluster.Stop(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: stop cluster: %v\n", err)
		}
	}
	if wd != nil {
		_ = wd.Close()
	}
	if workDir == "" {
		return
	}
	if failed {
		if mgr != nil && fileExists(mgr.logPath) {
			fmt.Fprintf(os.Stderr, "e2e: end of %s:\n%s\n", mgr.logPath, logTail(mgr.logPath, 4000))
		}
		var names []string
		entries, _ := os.ReadDir(workDir)
		for _, e := range entries {
			names = append(names, e.Name())
		}
		fmt.Fprintf(os.Stderr, "e2e: logs kept in %s: %s\n", workDir, strings.Join(names, ", "))
		return
	}
	_ = os.RemoveAll(workDir)
}

// startWatchdog re-executes this test binary as a watchdog that waits for
// this process to end (its stdin pipe closes) and then kills whatever is left
// of the cluster under workDir — so a panic, a go test timeout or SIGKILL
// still leaves nothing running.
func startWatchdog(workDir string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), watchdogEnv+"="+workDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	suite.mu.Lock()
	suite.watchdog = stdin
	suite.mu.Unlock()
	return nil
}

func watchdog(dir string) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	if strings.TrimSpace(line) == "keep" {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := 0
	if err := kwokcluster.Reap(ctx, dir); err != nil {
		code = 1
	}
	// Drop the cluster data (directories) but keep the log files.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() && e.Name() != "kwok-logs" {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	return code
}

func requireSuite() {
	if !suite.ready {
		panic("framework: not set up; call framework.Run from TestMain")
	}
}

// Client is a controller-runtime client for the cluster, with client-go's
// scheme plus Options.AddToScheme.
func Client() client.Client {
	suite.mu.Lock()
	defer suite.mu.Unlock()
	requireSuite()
	return suite.client
}

// Clientset is a client-go clientset for the cluster (watches, logs,
// subresources of built-in types).
func Clientset() kubernetes.Interface {
	suite.mu.Lock()
	defer suite.mu.Unlock()
	requireSuite()
	return suite.clients
}

// Scheme is the scheme of Client().
func Scheme() *runtime.Scheme {
	suite.mu.Lock()
	defer suite.mu.Unlock()
	requireSuite()
	return suite.scheme
}

// Config is the admin REST config of the cluster (a copy).
func Config() *rest.Config {
	suite.mu.Lock()
	defer suite.mu.Unlock()
	requireSuite()
	return rest.CopyConfig(suite.config)
}

// Cluster is the running kwok cluster.
func Cluster() *kwokcluster.Cluster {
	suite.mu.Lock()
	defer suite.mu.Unlock()
	requireSuite()
	return suite.cluster
}

// Manager is the drover-manager subprocess (possibly not started: see
// ManagerProcess.Available).
func Manager() *ManagerProcess {
	suite.mu.Lock()
	defer suite.mu.Unlock()
	requireSuite()
	return suite.manager
}

// WorkDir is the suite's directory for logs and scratch files.
func WorkDir() string {
	suite.mu.Lock()
	defer suite.mu.Unlock()
	requireSuite()
	return suite.workDir
}

// RepoRoot walks up from the working directory to the directory holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("repo root: %w", err)
	}
	for {
		if fileExists(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repo root: no go.mod above the working directory")
		}
		dir = parent
	}
}

func managerPath(root string) string {
	if p := os.Getenv(managerEnv); p != "" {
		return p
	}
	return filepath.Join(root, "bin", "drover-manager")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// copyDir copies the regular files of src into dst (best effort, for logs).
func copyDir(src, dst string) {
	entries, err := os.ReadDir(src)
	if err != nil {
		return
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			continue
		}
		_ = os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644)
	}
}
