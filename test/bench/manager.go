package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/drover-dev/drover/internal/freeport"
)

// manager is drover-manager running as a subprocess with the settings a
// user gets: only the kubeconfig, the listen addresses and leader election
// are set on its command line.
type manager struct {
	cmd         *exec.Cmd
	exited      chan struct{}
	metricsAddr string
	healthAddr  string
	logPath     string
}

func startManager(ctx context.Context, path, kubeconfig, logPath string) (*manager, error) {
	ports, err := freeport.Loopback(3)
	if err != nil {
		return nil, err
	}
	m := &manager{
		metricsAddr: "127.0.0.1:" + strconv.Itoa(ports[0]),
		healthAddr:  "127.0.0.1:" + strconv.Itoa(ports[1]),
		logPath:     logPath,
		exited:      make(chan struct{}),
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("manager log: %w", err)
	}
	defer logFile.Close()
	m.cmd = exec.Command(path,
		"--kubeconfig", kubeconfig,
		"--metrics-bind-address", m.metricsAddr,
		"--health-probe-bind-address", m.healthAddr,
		"--leader-elect=false",
		// Out of cluster, the API server reaches the SidecarSet
		// injection webhook by URL.
		"--webhook-bind-address", "127.0.0.1:"+strconv.Itoa(ports[2]),
		"--webhook-url", "https://localhost:"+strconv.Itoa(ports[2]),
		"--webhook-cert-dir", filepath.Join(filepath.Dir(logPath), "webhook-certs-"+strconv.Itoa(ports[2])),
	)
	m.cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	m.cmd.Stdout = logFile
	m.cmd.Stderr = logFile
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start manager %s: %w", path, err)
	}
	go func() {
		_ = m.cmd.Wait()
		close(m.exited)
	}()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := m.waitHealthy(wctx); err != nil {
		m.stop()
		return nil, fmt.Errorf("manager not healthy (log %s): %w\n%s", logPath, err, logTail(logPath, 3000))
	}
	return m, nil
}

func (m *manager) pid() int { return m.cmd.Process.Pid }

func (m *manager) running() bool {
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and, after 10 s, SIGKILL. It is idempotent.
func (m *manager) stop() {
	if m == nil || m.cmd == nil || m.cmd.Process == nil || !m.running() {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
		return
	case <-time.After(10 * time.Second):
	}
	_ = m.cmd.Process.Kill()
	<-m.exited
}

func (m *manager) waitHealthy(ctx context.Context) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.healthAddr+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := hc.Do(req); err != nil {
			last = err.Error()
		} else {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		}
		select {
		case <-m.exited:
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
