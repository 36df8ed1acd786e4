package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// machine describes where the bench ran.
type machine struct {
	CPUs        int
	Model       string
	MemTotal    string
	Kernel      string
	GoVersion   string
	KubeVersion string
	Drover      string
	LoadAvg     string // at start
	Date        string
	Commit      string // of the repository the bench runs in
}

// repoCommit is the repository's short commit, marked when tracked or
// untracked files other than the bench's own differ from it.
func repoCommit(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--", ".", ":!test/bench", ":!docs/benchmarks.md").Output()
	if err == nil && len(bytes.TrimSpace(st)) > 0 {
		c += " with uncommitted changes"
	}
	return c
}

func describeMachine(managerPath string) machine {
	m := machine{
		CPUs:      runtime.NumCPU(),
		GoVersion: runtime.Version(),
		Date:      time.Now().UTC().Format("2006-01-02 15:04 UTC"),
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == "MemTotal" {
				var kb int64
				fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb)
				m.MemTotal = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	if out, err := exec.Command(managerPath, "--version").Output(); err == nil {
		m.Drover = strings.TrimSpace(string(bytes.SplitN(out, []byte("\n"), 2)[0]))
	}
	return m
}

func (m machine) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "- CPU: %d × %s\n", m.CPUs, m.Model)
	fmt.Fprintf(&b, "- memory: %s\n", m.MemTotal)
	fmt.Fprintf(&b, "- kernel: Linux %s\n", m.Kernel)
	fmt.Fprintf(&b, "- Go: %s; Kubernetes (kube-apiserver): %s; drover-manager: %s; repository at %s\n", m.GoVersion, m.KubeVersion, m.Drover, m.Commit)
	fmt.Fprintf(&b, "- load average when the run started: %s (the machine is shared)\n", m.LoadAvg)
	fmt.Fprintf(&b, "- date: %s\n", m.Date)
	return b.String()
}
