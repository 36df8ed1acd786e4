package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cpuTicks parses /proc/<pid>/stat and returns utime+stime in clock ticks
// (the whole thread group, without children).
func cpuTicks(stat []byte) (uint64, error) {
	// The command name (field 2) is in parentheses and may contain spaces
	// and parentheses: the fields we want follow the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat: no ')'")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed stat: %d fields after the command", len(f))
	}
	utime, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	stime, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return utime + stime, nil
}

// memStatus holds the memory lines of /proc/<pid>/status, in bytes.
type memStatus struct {
	RSS, HWM uint64 // VmRSS, VmHWM
}

func parseStatus(r io.Reader) (memStatus, error) {
	var m memStatus
	var seen int
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		var dst *uint64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			dst = &m.RSS
		case strings.HasPrefix(line, "VmHWM:"):
			dst = &m.HWM
		default:
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "kB" {
			return m, fmt.Errorf("unexpected status line %q", line)
		}
		kb, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return m, fmt.Errorf("status line %q: %w", line, err)
		}
		*dst = kb * 1024
		seen++
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if seen < 2 {
		return m, fmt.Errorf("VmRSS/VmHWM not found")
	}
	return m, nil
}

// clockTicks is sysconf(_SC_CLK_TCK), from getconf; 100 (Linux's default)
// when getconf is not available.
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && v > 0 {
			return float64(v)
		}
	}
	return 100
}

// procWatch samples one process's resident memory every interval and keeps
// the maximum since the last reset.
type procWatch struct {
	pid  int
	hz   float64
	mu   sync.Mutex
	peak uint64
	last uint64
	stop chan struct{}
	wg   sync.WaitGroup
	err  error // last sampling error
}

func newProcWatch(pid int, interval time.Duration) *procWatch {
	w := &procWatch{pid: pid, hz: clockTicks(), stop: make(chan struct{})}
	w.sample()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				w.sample()
			}
		}
	}()
	return w
}

func (w *procWatch) sample() {
	m, err := w.mem()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.err = err
		return
	}
	w.last = m.RSS
	if m.RSS > w.peak {
		w.peak = m.RSS
	}
}

func (w *procWatch) mem() (memStatus, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", w.pid))
	if err != nil {
		return memStatus{}, err
	}
	defer f.Close()
	return parseStatus(f)
}

// resetPeak starts a new peak window at the current RSS.
func (w *procWatch) resetPeak() {
	w.sample()
	w.mu.Lock()
	w.peak = w.last
	w.mu.Unlock()
}

// peakRSS is the largest RSS sampled since the last reset.
func (w *procWatch) peakRSS() uint64 {
	w.sample()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peak
}

// rss is the current RSS.
func (w *procWatch) rss() uint64 {
	w.sample()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// hwm is the process-lifetime peak RSS (VmHWM).
func (w *procWatch) hwm() uint64 {
	m, err := w.mem()
	if err != nil {
		return 0
	}
	return m.HWM
}

// cpuSeconds is the process's user+system CPU time so far.
func (w *procWatch) cpuSeconds() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", w.pid))
	if err != nil {
		return 0
	}
	t, err := cpuTicks(b)
	if err != nil {
		return 0
	}
	return float64(t) / w.hz
}

func (w *procWatch) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
