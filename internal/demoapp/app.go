package demoapp

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
)

// Environment variables of a pod's first container that configure its answers.
const (
	EnvErrorRate = "ERROR_RATE"
	EnvLatencyMS = "LATENCY_MS"
)

// Response is the JSON body of a pod's answer.
type Response struct {
	Pod     string `json:"pod"`
	Version string `json:"version"`
	Image   string `json:"image"`
}

// Response headers of a pod's answer.
const (
	HeaderPod     = "X-Pod"
	HeaderVersion = "X-Version"
)

// appConfig is what a pod's answer depends on, read from the pod.
type appConfig struct {
	pod     string
	image   string
	version string
	errors  errorRate
	latency time.Duration
}

// appConfigOf reads the answer's configuration from the pod's first
// container: the image it runs (its status' image once it has one, so that
// an in-place change shows when the container has restarted with it, else
// the spec's) and its ERROR_RATE and LATENCY_MS variables. Unparsable values
// count as unset.
func appConfigOf(p *corev1.Pod) appConfig {
	cfg := appConfig{pod: p.Name}
	if len(p.Spec.Containers) == 0 {
		return cfg
	}
	c := &p.Spec.Containers[0]
	cfg.image = c.Image
	for _, st := range p.Status.ContainerStatuses {
		if st.Name == c.Name && st.Image != "" {
			cfg.image = st.Image
		}
	}
	cfg.version = imageVersion(cfg.image)
	for _, e := range c.Env {
		switch e.Name {
		case EnvErrorRate:
			cfg.errors = parseErrorRate(e.Value)
		case EnvLatencyMS:
			if ms, err := strconv.ParseFloat(strings.TrimSpace(e.Value), 64); err == nil && ms > 0 && ms < math.MaxInt64/float64(time.Millisecond) {
				cfg.latency = time.Duration(ms * float64(time.Millisecond))
			}
		}
	}
	return cfg
}

// imageVersion is the tag of an image reference ("registry:5000/app:v2" ->
// "v2"), or the whole reference when it has none.
func imageVersion(image string) string {
	ref := image
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	slash := strings.LastIndexByte(ref, '/')
	if colon := strings.LastIndexByte(ref, ':'); colon > slash && colon < len(ref)-1 {
		return ref[colon+1:]
	}
	return image
}

// errorRate is a failure fraction in parts per million, so that the
// failures of a request count are exact integers.
type errorRate uint64

const ppm = 1_000_000

func parseErrorRate(s string) errorRate {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || f <= 0 {
		return 0
	}
	if f >= 1 {
		return ppm
	}
	return errorRate(math.Round(f * ppm))
}

// fails tells whether request number n (from 1) fails: those where
// floor(n·rate) grows. Any k consecutive requests then contain
// floor(k·rate) or ceil(k·rate) failures, and exactly k·rate when that is
// an integer.
func (r errorRate) fails(n uint64) bool {
	if r == 0 || n == 0 {
		return false
	}
	return n*uint64(r)/ppm > (n-1)*uint64(r)/ppm
}

// app answers a pod's requests.
type app struct {
	pod      func() *corev1.Pod // the pod's latest version
	metrics  *podMetrics
	clock    clock.Clock
	requests atomic.Uint64 // requests answered or being answered, /metrics excluded
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/metrics" {
		a.metrics.handler.ServeHTTP(w, r)
		return
	}
	start := a.clock.Now()
	pod := a.pod()
	if pod == nil {
		plainError(w, http.StatusServiceUnavailable, "pod is gone")
		return
	}
	cfg := appConfigOf(pod)
	code := http.StatusOK
	if cfg.errors.fails(a.requests.Add(1)) {
		code = http.StatusInternalServerError
	}
	if cfg.latency > 0 {
		t := a.clock.NewTimer(cfg.latency)
		select {
		case <-t.C():
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	body, err := json.Marshal(Response{Pod: cfg.pod, Version: cfg.version, Image: cfg.image})
	if err != nil { // a struct of strings always marshals
		code = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set(HeaderPod, cfg.pod)
	h.Set(HeaderVersion, cfg.version)
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
	a.metrics.observe(code, r.Method, cfg.version, a.clock.Since(start))
}
