// Package promserver runs a real Prometheus server for end-to-end tests and
// the playground: on a free loopback port, scraping every second the
// targets an http_sd_configs endpoint lists (the demo app's /sd: one group
// per pod, labelled with the pod's labels) and any static targets (a
// gateway's metrics), with its data in a work directory.
//
// The binary is Debian's prometheus (2.42; its build has no Kubernetes
// discovery, hence http_sd), installed by hack/build-tools.sh (make tools)
// and linked as bin/prometheus. Prometheus v0.316.0 built from the module
// proxy works the same way.
package promserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/drover-dev/drover/internal/childprocess"
	"github.com/drover-dev/drover/internal/freeport"
)

const (
	startTimeout = time.Minute
	// DefaultScrapeInterval is how often targets are scraped and the
	// service discovery endpoints read, unless Options say otherwise.
	DefaultScrapeInterval = time.Second
)

// Options configures Start.
type Options struct {
	// Binary is the prometheus binary (bin/prometheus after make tools).
	Binary string
	// WorkDir holds the configuration and the TSDB. Its path is on the
	// command line, so a watchdog reaping the processes that mention a
	// directory above it (kwokcluster.Reap) also ends Prometheus. ""
	// uses a temporary directory that Stop removes.
	WorkDir string
	// ScrapeInterval of every job; 0 means DefaultScrapeInterval.
	ScrapeInterval time.Duration
	// SD are http_sd_configs endpoints, one scrape job each (sd-0, ...).
	SD []string
	// Static are static targets (host:port serving /metrics) of one job
	// each, by job name.
	Static map[string]string
	// Log receives Prometheus' own log; nil keeps only its tail.
	Log io.Writer
}

// Server is a running Prometheus.
type Server struct {
	proc       *childprocess.Process
	port       int
	workDir    string
	ownWorkDir bool
}

// Start writes the configuration, starts Prometheus and waits until it is
// ready. On error nothing is left running.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Binary == "" {
		return nil, errors.New("promserver: Options.Binary is required")
	}
	bin, err := filepath.Abs(opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("promserver: binary: %w", err)
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("promserver: binary missing (run make tools: it installs Debian's prometheus): %w", err)
	}
	cfg, err := Config(opts)
	if err != nil {
		return nil, err
	}
	s := &Server{}
	if opts.WorkDir == "" {
		if s.workDir, err = os.MkdirTemp("", "drover-prometheus-"); err != nil {
			return nil, fmt.Errorf("promserver: temp dir: %w", err)
		}
		s.ownWorkDir = true
	} else {
		s.workDir, err = filepath.Abs(opts.WorkDir)
		if err == nil {
			err = os.MkdirAll(s.workDir, 0o755)
		}
		if err != nil {
			return nil, fmt.Errorf("promserver: work dir: %w", err)
		}
	}
	cfgPath := filepath.Join(s.workDir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		s.removeWorkDir()
		return nil, fmt.Errorf("promserver: %w", err)
	}
	ports, err := freeport.Loopback(1)
	if err != nil {
		s.removeWorkDir()
		return nil, fmt.Errorf("promserver: %w", err)
	}
	s.port = ports[0]
	s.proc, err = childprocess.Start(childprocess.Spec{
		Name: "prometheus", Path: bin, Dir: s.workDir, Log: opts.Log, Grace: 5 * time.Second,
		Args: []string{
			"--config.file=" + cfgPath,
			"--storage.tsdb.path=" + filepath.Join(s.workDir, "data"),
			"--storage.tsdb.retention.time=2h",
			"--web.listen-address=" + s.Address(),
			"--log.level=warn",
		},
	})
	if err != nil {
		s.removeWorkDir()
		return nil, err
	}
	if err := s.proc.WaitHTTP(ctx, s.URL()+"/-/ready", startTimeout); err != nil {
		return nil, errors.Join(err, s.Stop())
	}
	return s, nil
}

// Config is the prometheus.yml Start writes for opts.
func Config(opts Options) ([]byte, error) {
	interval := opts.ScrapeInterval
	if interval <= 0 {
		interval = DefaultScrapeInterval
	}
	type sd struct {
		URL             string `json:"url"`
		RefreshInterval string `json:"refresh_interval"`
	}
	type static struct {
		Targets []string `json:"targets"`
	}
	type job struct {
		Name   string   `json:"job_name"`
		SD     []sd     `json:"http_sd_configs,omitempty"`
		Static []static `json:"static_configs,omitempty"`
	}
	var jobs []job
	for i, u := range opts.SD {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return nil, fmt.Errorf("promserver: SD[%d]: %q is not an http(s) URL", i, u)
		}
		jobs = append(jobs, job{Name: "sd-" + strconv.Itoa(i), SD: []sd{{URL: u, RefreshInterval: interval.String()}}})
	}
	names := make([]string, 0, len(opts.Static))
	for name := range opts.Static {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		jobs = append(jobs, job{Name: name, Static: []static{{Targets: []string{opts.Static[name]}}}})
	}
	doc := map[string]any{
		"global": map[string]string{
			"scrape_interval":     interval.String(),
			"evaluation_interval": interval.String(),
			"scrape_timeout":      interval.String(),
		},
		"scrape_configs": jobs,
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("promserver: config: %w", err)
	}
	return b, nil
}

// Address is host:port of the HTTP API.
func (s *Server) Address() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL is the base URL of the HTTP API, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string { return "http://" + s.Address() }

// LogTail is the end of Prometheus' log.
func (s *Server) LogTail() string { return s.proc.LogTail() }

// Stop ends Prometheus and removes a temporary work dir. It is
// idempotent: a test stops it mid-story (provider unreachable) and again
// at cleanup.
func (s *Server) Stop() error {
	defer s.removeWorkDir()
	return s.proc.Stop()
}

func (s *Server) removeWorkDir() {
	if s.ownWorkDir {
		_ = os.RemoveAll(s.workDir)
	}
}
