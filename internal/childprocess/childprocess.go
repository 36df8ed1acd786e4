// Package childprocess runs a helper program the tests and the playground
// need beside the cluster (Traefik, Prometheus): started in a process group
// of its own, its output kept (the last few KiB) for error messages, waited
// for until an HTTP endpoint answers, and stopped with its whole group.
package childprocess

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

const (
	defaultTailBytes = 8 << 10
	defaultGrace     = 10 * time.Second
	pollInterval     = 100 * time.Millisecond
)

// Spec describes the program to start.
type Spec struct {
	// Name names the program in errors ("traefik").
	Name string
	// Path of the binary.
	Path string
	Args []string
	// Env is the whole environment; nil inherits the test's.
	Env []string
	// Dir is the working directory; "" is the current one.
	Dir string
	// Log receives the program's stdout and stderr besides the kept tail;
	// nil keeps only the tail.
	Log io.Writer
	// TailBytes is how much of the output LogTail keeps; 0 means 8 KiB.
	TailBytes int
	// Grace is how long Stop waits after SIGTERM before SIGKILL; 0 means
	// 10 s.
	Grace time.Duration
}

// Process is a started program. Its methods are safe for concurrent use.
type Process struct {
	name     string
	cmd      *exec.Cmd
	tail     *tailBuffer
	grace    time.Duration
	exited   chan struct{} // closed when the process has been waited for
	waitErr  error         // set before exited is closed
	stopOnce sync.Once
	stopErr  error
}

// Start starts the program in a new process group. The process outlives
// no context: only Stop (or its own exit) ends it.
func Start(spec Spec) (*Process, error) {
	tailBytes := spec.TailBytes
	if tailBytes <= 0 {
		tailBytes = defaultTailBytes
	}
	grace := spec.Grace
	if grace <= 0 {
		grace = defaultGrace
	}
	p := &Process{name: spec.Name, tail: &tailBuffer{max: tailBytes}, grace: grace, exited: make(chan struct{})}
	out := io.Writer(p.tail)
	if spec.Log != nil {
		out = io.MultiWriter(spec.Log, p.tail)
	}
	p.cmd = exec.Command(spec.Path, spec.Args...)
	p.cmd.Env = spec.Env
	p.cmd.Dir = spec.Dir
	p.cmd.Stdout = out
	p.cmd.Stderr = out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", spec.Name, spec.Path, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// WaitHTTP polls url until it answers 200 OK, the process exits, or
// timeout (or ctx) ends. Its errors carry the end of the program's output.
func (p *Process) WaitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		last = get(ctx, hc, url)
		if last == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s: exited before it was ready (%v); end of its log:\n%s", p.name, p.waitErr, p.tail.String())
		case <-ctx.Done():
			return fmt.Errorf("%s: not ready (last: %v): %w; end of its log:\n%s", p.name, last, ctx.Err(), p.tail.String())
		case <-time.After(pollInterval):
		}
	}
}

func get(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// Pid is the process id (and process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// LogTail is the end of the program's output.
func (p *Process) LogTail() string { return p.tail.String() }

// Exited is closed when the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Stop ends the process group (SIGTERM, SIGKILL after the grace period)
// and waits for the process. It is idempotent.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() { p.stopErr = p.stop() })
	return p.stopErr
}

func (p *Process) stop() error {
	pgid := p.cmd.Process.Pid // Setpgid: the group id is the leader's pid
	select {
	case <-p.exited:
	default:
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(p.grace):
		}
	}
	// Whatever the leader left behind in its group, and the leader itself
	// if SIGTERM was not enough.
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%s: kill process group %d: %w", p.name, pgid, err)
	}
	select {
	case <-p.exited:
	case <-time.After(p.grace):
		return fmt.Errorf("%s: process %d still running after SIGKILL", p.name, pgid)
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
