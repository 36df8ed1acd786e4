package framework

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/freeport"
)

const (
	managerReadyTimeout = time.Minute
	managerStopTimeout  = 15 * time.Second
)

// ManagerProcess is drover-manager running as a subprocess against the
// suite's cluster. Each Start picks new free ports for metrics and health
// probes; the log file is appended to across restarts.
type ManagerProcess struct {
	path       string
	kubeconfig string
	logPath    string
	extraArgs  []string
	extraEnv   []string
	disabled   string // why the manager is not available, "" when it is

	mu          sync.Mutex
	cmd         *exec.Cmd
	exited      chan struct{}
	exitErr     error
	metricsAddr string
	healthAddr  string
	// webhookPort is chosen once and kept across restarts, so the
	// MutatingWebhookConfiguration the manager wrote stays valid while it
	// is stopped (a selected pod is then refused, not sent elsewhere).
	webhookPort int
	// started: a start succeeded (the webhook's port is then fixed).
	started bool
}

// Available reports whether the manager can be started, and if not, why.
func (m *ManagerProcess) Available() (bool, string) {
	return m.disabled == "", m.disabled
}

// Require skips the test when the manager is not available (binary not
// built, or Options.NoManager) and fails it when the manager is not running.
func (m *ManagerProcess) Require(t testing.TB) {
	t.Helper()
	if ok, why := m.Available(); !ok {
		t.Skipf("drover-manager not available: %s", why)
	}
	if !m.Running() {
		t.Fatalf("drover-manager is not running (log: %s)", m.logPath)
	}
}

// LogPath is the file the manager's stdout and stderr go to.
func (m *ManagerProcess) LogPath() string { return m.logPath }

// MetricsAddr is the metrics bind address of the running manager.
func (m *ManagerProcess) MetricsAddr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.metricsAddr
}

// WebhookAddr is the address the manager's admission webhook listens on
// (kept across restarts; "" before the first Start).
func (m *ManagerProcess) WebhookAddr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.webhookPort == 0 {
		return ""
	}
	return "127.0.0.1:" + strconv.Itoa(m.webhookPort)
}

// HealthAddr is the health probe bind address of the running manager.
func (m *ManagerProcess) HealthAddr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.healthAddr
}

// Running reports whether the manager process is alive.
func (m *ManagerProcess) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// Pid is the manager's process id, 0 when not running.
func (m *ManagerProcess) Pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// errPortTaken: a port picked for the manager was taken by another
// process between picking and binding (suites run in parallel).
var errPortTaken = errors.New("a port picked for the manager was taken meanwhile")

// Start starts the manager and waits until its health endpoint answers
// and its webhook server listens. A manager that exits because a port it
// was given was taken meanwhile is started again on fresh ports (the
// webhook's port is kept once a start succeeded: the cluster's webhook
// configuration names it). Starting a running manager is an error.
func (m *ManagerProcess) Start() error {
	if m.disabled != "" {
		return fmt.Errorf("manager not available: %s", m.disabled)
	}
	if m.Running() {
		return errors.New("manager already running")
	}
	var err error
	for range 4 {
		if err = m.start(); !errors.Is(err, errPortTaken) {
			return err
		}
		m.mu.Lock()
		if !m.started {
			m.webhookPort = 0
		}
		m.mu.Unlock()
		time.Sleep(500 * time.Millisecond)
	}
	return err
}

func (m *ManagerProcess) start() error {
	ports, err := freeport.Loopback(3)
	if err != nil {
		return err
	}
	m.mu.Lock()
	if m.webhookPort == 0 {
		m.webhookPort = ports[2]
	}
	webhookPort := m.webhookPort
	m.mu.Unlock()
	metrics := "127.0.0.1:" + strconv.Itoa(ports[0])
	health := "127.0.0.1:" + strconv.Itoa(ports[1])
	logFile, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("manager log: %w", err)
	}
	defer logFile.Close()
	fmt.Fprintf(logFile, "==== %s starting %s\n", time.Now().Format(time.RFC3339Nano), m.path)

	args := append([]string{
		"--kubeconfig", m.kubeconfig,
		"--metrics-bind-address", metrics,
		"--health-probe-bind-address", health,
		"--leader-elect=false",
		// The SidecarSet injection webhook, reached by the API server on
		// loopback; its certificate names localhost.
		"--webhook-bind-address", "127.0.0.1:" + strconv.Itoa(webhookPort),
		"--webhook-url", "https://localhost:" + strconv.Itoa(webhookPort),
		"--webhook-cert-dir", filepath.Join(filepath.Dir(m.logPath), "webhook-certs"),
	}, m.extraArgs...)
	// The manager outlives no test run: Stop, the suite's teardown or its
	// watchdog (which finds it by the kubeconfig path on its command line)
	// ends it.
	cmd := exec.Command(m.path, args...)
	cmd.Env = append(append(os.Environ(), "KUBECONFIG="+m.kubeconfig), m.extraEnv...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start manager %s: %w", m.path, err)
	}
	exited := make(chan struct{})
	m.mu.Lock()
	m.cmd, m.exited, m.exitErr = cmd, exited, nil
	m.metricsAddr, m.healthAddr = metrics, health
	m.mu.Unlock()
	go func() {
		err := cmd.Wait()
		m.mu.Lock()
		m.exitErr = err
		m.mu.Unlock()
		close(exited)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), managerReadyTimeout)
	defer cancel()
	err = waitHealthy(ctx, health, exited)
	if err == nil {
		// The webhook server binds after the probes answer.
		err = waitListening(ctx, "127.0.0.1:"+strconv.Itoa(webhookPort), exited)
	}
	if err != nil {
		_ = m.Stop()
		recent := logTail(m.logPath, 64<<10)
		if i := strings.LastIndex(recent, "==== "); i >= 0 && strings.Contains(recent[i:], "address already in use") {
			err = fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return fmt.Errorf("manager not healthy (log %s): %w\n%s", m.logPath, err, logTail(m.logPath, 3000))
	}
	m.mu.Lock()
	m.started = true
	m.mu.Unlock()
	return nil
}

// waitListening waits until addr accepts connections, or the manager exits.
func waitListening(ctx context.Context, addr string, exited <-chan struct{}) error {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			_ = conn.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("manager exited before listening on %s", addr)
		case <-ctx.Done():
			return fmt.Errorf("%w (not listening on %s: %v)", ctx.Err(), addr, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop sends SIGTERM, waits for the manager to exit (SIGKILL after a grace
// period). Stopping a stopped manager does nothing.
func (m *ManagerProcess) Stop() error {
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return nil
	case <-time.After(managerStopTimeout):
	}
	_ = cmd.Process.Kill()
	<-exited
	return fmt.Errorf("manager did not exit within %s of SIGTERM; killed", managerStopTimeout)
}

func waitHealthy(ctx context.Context, addr string, exited <-chan struct{}) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		for _, path := range []string{"/readyz", "/healthz"} {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
			if err != nil {
				return fmt.Errorf("health request: %w", err)
			}
			resp, err := hc.Do(req)
			if err != nil {
				last = err.Error()
				continue
			}
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", path, resp.Status)
		}
		select {
		case <-exited:
			return fmt.Errorf("manager exited during start-up (last probe: %s)", last)
		case <-ctx.Done():
			return fmt.Errorf("%w (last probe: %s)", ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func logTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	s := string(data)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return strings.TrimSpace(s)
}
