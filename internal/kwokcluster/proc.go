//go:build unix

package kwokcluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Processes lists the pids (other than this process) whose command line
// contains s, such as a cluster's directory. It reads /proc and returns
// nothing where there is none.
func Processes(s string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(cmdline, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killProcessesMentioning terminates every process whose command line
// contains s (a directory unique to one cluster): SIGTERM first, SIGKILL
// after a grace period, and waits until they are gone.
func killProcessesMentioning(ctx context.Context, s string) error {
	pids := Processes(s)
	if len(pids) == 0 {
		return nil
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(Processes(s)) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	for _, pid := range Processes(s) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline = time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		left := Processes(s)
		if len(left) == 0 {
			return nil
		}
		// A zombie (exited, not yet reaped by its parent) keeps its entry
		// but has an empty command line, so it no longer matches.
		time.Sleep(50 * time.Millisecond)
	}
	if left := Processes(s); len(left) > 0 {
		return fmt.Errorf("kwokcluster: processes %v still running after SIGKILL", left)
	}
	return nil
}
