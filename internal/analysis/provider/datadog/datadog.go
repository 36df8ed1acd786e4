// Package datadog measures a metric with a Datadog metrics query, over
// the window [now - interval, now] (5m without an interval):
//
//   - apiVersion v1: GET <address>/api/v1/query?from=<s>&to=<s>&query=<q>;
//     the value is the last non-null point of the series (a list when the
//     query returns several series);
//   - apiVersion v2 (default): POST <address>/api/v2/query/scalar with one
//     metrics query (aggregator "last") named "query1" and the formula
//     "query1"; the value is the formula's number (a list for several
//     groups).
//
// The metric's Secret holds address (default https://api.datadoghq.com),
// api-key and app-key, sent as the headers DD-API-KEY and
// DD-APPLICATION-KEY.
package datadog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/analysis"
)

// Keys of the metric's Secret, and defaults.
const (
	KeyAddress     = "address"
	KeyAPIKey      = "api-key"
	KeyAppKey      = "app-key"
	DefaultAddress = "https://api.datadoghq.com"
	// Timeout bounds one query.
	Timeout = 30 * time.Second
	// Aggregator reduces a v2 query's points to one value.
	Aggregator = "last"
	queryName  = "query1"
	maxBody    = 10 << 20
)

// ErrNoData is a query that matched nothing.
var ErrNoData = errors.New("query returned no data")

// Provider queries Datadog. Client, when set, sends the requests (tests);
// otherwise http.DefaultClient's transport is used.
type Provider struct {
	Client *http.Client
}

// Measure runs the metric's query.
func (p Provider) Measure(ctx context.Context, m *rolloutsv1alpha1.Metric, env *analysis.Env) (any, error) {
	dd := m.Provider.Datadog
	if dd == nil {
		return nil, errors.New("metric has no datadog provider")
	}
	query, err := env.Render(ctx, dd.Query)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	secret := dd.SecretRef.Name
	address, err := env.OptionalSecret(ctx, secret, KeyAddress)
	if err != nil {
		return nil, err
	}
	if address == "" {
		address = DefaultAddress
	}
	apiKey, err := env.Secret(ctx, secret, KeyAPIKey)
	if err != nil {
		return nil, err
	}
	appKey, err := env.Secret(ctx, secret, KeyAppKey)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	to := env.Now
	from := to.Add(-env.Window())
	base := strings.TrimRight(address, "/")
	var req *http.Request
	if dd.APIVersion == "v1" {
		q := url.Values{"from": {strconv.FormatInt(from.Unix(), 10)}, "to": {strconv.FormatInt(to.Unix(), 10)}, "query": {query}}
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?"+q.Encode(), nil)
	} else {
		body, merr := json.Marshal(scalarRequest(query, from, to))
		if merr != nil {
			return nil, fmt.Errorf("encoding the request: %w", merr)
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v2/query/scalar", bytes.NewReader(body))
		if req != nil {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("DD-API-KEY", apiKey)
	req.Header.Set("DD-APPLICATION-KEY", appKey)
	hc := p.Client
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("datadog: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("datadog: reading the answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("datadog: HTTP %d: %s", resp.StatusCode, apiErrors(raw))
	}
	if dd.APIVersion == "v1" {
		return v1Value(raw)
	}
	return v2Value(raw)
}

// The v2 scalar request.
type scalarReq struct {
	Data struct {
		Type       string `json:"type"`
		Attributes struct {
			From     int64               `json:"from"`
			To       int64               `json:"to"`
			Queries  []map[string]string `json:"queries"`
			Formulas []map[string]string `json:"formulas"`
		} `json:"attributes"`
	} `json:"data"`
}

func scalarRequest(query string, from, to time.Time) scalarReq {
	var r scalarReq
	r.Data.Type = "scalar_request"
	r.Data.Attributes.From, r.Data.Attributes.To = from.UnixMilli(), to.UnixMilli()
	r.Data.Attributes.Queries = []map[string]string{{"data_source": "metrics", "query": query, "name": queryName, "aggregator": Aggregator}}
	r.Data.Attributes.Formulas = []map[string]string{{"formula": queryName}}
	return r
}

func v1Value(raw []byte) (any, error) {
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Series []struct {
			Pointlist [][]*float64 `json:"pointlist"`
		} `json:"series"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("datadog: decoding the answer: %w", err)
	}
	if r.Status == "error" || r.Error != "" {
		return nil, fmt.Errorf("datadog: %s", r.Error)
	}
	var vals []float64
	for _, s := range r.Series {
		for i := len(s.Pointlist) - 1; i >= 0; i-- {
			if p := s.Pointlist[i]; len(p) == 2 && p[1] != nil {
				vals = append(vals, *p[1])
				break
			}
		}
	}
	return oneOrList(vals)
}

func v2Value(raw []byte) (any, error) {
	var r struct {
		Data struct {
			Attributes struct {
				Columns []struct {
					Name   string            `json:"name"`
					Type   string            `json:"type"`
					Values []json.RawMessage `json:"values"`
				} `json:"columns"`
			} `json:"attributes"`
		} `json:"data"`
		Errors string `json:"errors"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("datadog: decoding the answer: %w", err)
	}
	if r.Errors != "" {
		return nil, fmt.Errorf("datadog: %s", r.Errors)
	}
	for _, c := range r.Data.Attributes.Columns {
		if c.Type != "number" {
			continue
		}
		var vals []float64
		for _, v := range c.Values {
			var f *float64
			if err := json.Unmarshal(v, &f); err != nil {
				return nil, fmt.Errorf("datadog: column %s: %w", c.Name, err)
			}
			if f != nil {
				vals = append(vals, *f)
			}
		}
		return oneOrList(vals)
	}
	return nil, ErrNoData
}

func oneOrList(vals []float64) (any, error) {
	switch len(vals) {
	case 0:
		return nil, ErrNoData
	case 1:
		return vals[0], nil
	}
	return vals, nil
}

// apiErrors reads Datadog's {"errors": [...]} answer, else the body.
func apiErrors(raw []byte) string {
	var e struct {
		Errors []string `json:"errors"`
	}
	if json.Unmarshal(raw, &e) == nil && len(e.Errors) > 0 {
		return strings.Join(e.Errors, "; ")
	}
	s := strings.TrimSpace(string(raw))
	if len(s) > 256 {
		s = s[:256] + "..."
	}
	return s
}
