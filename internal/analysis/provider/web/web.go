// Package web measures a metric with an HTTP request whose JSON answer is
// the measurement: the whole document, or what jsonPath
// (k8s.io/client-go/util/jsonpath) selects in it. Numbers are float64;
// bools, strings, maps and lists are passed as they are to the metric's
// conditions. A status other than 2xx is an error.
package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"k8s.io/client-go/util/jsonpath"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/analysis"
)

// DefaultTimeout bounds a request without a timeout.
const DefaultTimeout = 10 * time.Second

// maxBody bounds the answer read.
const maxBody = 10 << 20

// Provider sends the metric's request.
type Provider struct{}

// Measure sends the request and selects the value.
func (Provider) Measure(ctx context.Context, m *rolloutsv1alpha1.Metric, env *analysis.Env) (any, error) {
	w := m.Provider.Web
	if w == nil {
		return nil, errors.New("metric has no web provider")
	}
	u, err := env.Render(ctx, w.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	body, err := env.Render(ctx, w.Body)
	if err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	method := w.Method
	if method == "" {
		method = http.MethodGet
	}
	hc, err := env.HTTPClient(ctx, w.Authentication, w.Headers)
	if err != nil {
		return nil, err
	}
	timeout := DefaultTimeout
	if w.Timeout != nil && w.Timeout.Duration > 0 {
		timeout = w.Timeout.Duration
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("building the request: %w", err)
	}
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, u, resp.StatusCode, snippet(raw))
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("the answer is not JSON (%v): %s", err, snippet(raw))
	}
	if w.JSONPath == "" {
		return doc, nil
	}
	return Select(w.JSONPath, doc)
}

// Select returns what a JSONPath expression selects in doc: one value as
// it is, several as a list. "$.a.b" is read as "{$.a.b}".
func Select(path string, doc any) (any, error) {
	expr := strings.TrimSpace(path)
	if !strings.HasPrefix(expr, "{") {
		expr = "{" + expr + "}"
	}
	jp := jsonpath.New("metric")
	if err := jp.Parse(expr); err != nil {
		return nil, fmt.Errorf("jsonPath %q: %w", path, err)
	}
	results, err := jp.FindResults(doc)
	if err != nil {
		return nil, fmt.Errorf("jsonPath %q: %w", path, err)
	}
	var vals []any
	for _, rs := range results {
		for _, r := range rs {
			if r.IsValid() && r.CanInterface() {
				vals = append(vals, r.Interface())
			} else {
				vals = append(vals, nil)
			}
		}
	}
	switch len(vals) {
	case 0:
		return nil, fmt.Errorf("jsonPath %q selected nothing", path)
	case 1:
		return vals[0], nil
	}
	return vals, nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 256 {
		s = s[:256] + "..."
	}
	return s
}
