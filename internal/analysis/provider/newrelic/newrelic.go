// Package newrelic measures a metric with an NRQL query through New
// Relic's NerdGraph GraphQL API: POST <base-url-nerdgraph> (default
// https://api.newrelic.com/graphql) with the header API-Key and the query
//
//	query($accountId: Int!, $nrql: Nrql!) { actor { account(id: $accountId) { nrql(query: $nrql) { results } } } }
//
// (the account and the NRQL as GraphQL variables, so no NRQL needs
// escaping). The value is the first result's number when it has exactly
// one numeric field (SELECT percentage(...) ...), else the first result as
// a map for the conditions to pick from (result['count']).
//
// The metric's Secret holds personal-api-key, account-id and optionally
// base-url-nerdgraph (https://api.eu.newrelic.com/graphql for the EU).
package newrelic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/analysis"
)

// Keys of the metric's Secret, and defaults.
const (
	KeyAPIKey      = "personal-api-key"
	KeyAccountID   = "account-id"
	KeyBaseURL     = "base-url-nerdgraph"
	DefaultBaseURL = "https://api.newrelic.com/graphql"
	// Timeout bounds one query.
	Timeout = 30 * time.Second
	// Query is the GraphQL document sent.
	Query   = `query($accountId: Int!, $nrql: Nrql!) { actor { account(id: $accountId) { nrql(query: $nrql) { results } } } }`
	maxBody = 10 << 20
)

// ErrNoData is a query that returned no result.
var ErrNoData = errors.New("query returned no data")

// Provider queries New Relic. Client, when set, sends the requests.
type Provider struct {
	Client *http.Client
}

type request struct {
	Query     string         `json:"query"`
	Variables map[string]any `json:"variables"`
}

// Measure runs the metric's NRQL query.
func (p Provider) Measure(ctx context.Context, m *rolloutsv1alpha1.Metric, env *analysis.Env) (any, error) {
	nr := m.Provider.NewRelic
	if nr == nil {
		return nil, errors.New("metric has no newRelic provider")
	}
	nrql, err := env.Render(ctx, nr.Query)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	secret := nr.SecretRef.Name
	apiKey, err := env.Secret(ctx, secret, KeyAPIKey)
	if err != nil {
		return nil, err
	}
	account, err := env.Secret(ctx, secret, KeyAccountID)
	if err != nil {
		return nil, err
	}
	accountID, err := strconv.ParseInt(strings.TrimSpace(account), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("secret %s: %s is not a number", secret, KeyAccountID)
	}
	base, err := env.OptionalSecret(ctx, secret, KeyBaseURL)
	if err != nil {
		return nil, err
	}
	if base == "" {
		base = DefaultBaseURL
	}
	body, err := json.Marshal(request{Query: Query, Variables: map[string]any{"accountId": accountID, "nrql": nrql}})
	if err != nil {
		return nil, fmt.Errorf("encoding the request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("API-Key", apiKey)
	hc := p.Client
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("new relic: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("new relic: reading the answer: %w", err)
	}
	var r struct {
		Data struct {
			Actor struct {
				Account struct {
					Nrql struct {
						Results []map[string]any `json:"results"`
					} `json:"nrql"`
				} `json:"account"`
			} `json:"actor"`
		} `json:"data"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	decodeErr := json.Unmarshal(raw, &r)
	if len(r.Errors) > 0 {
		msgs := make([]string, len(r.Errors))
		for i, e := range r.Errors {
			msgs[i] = e.Message
		}
		return nil, fmt.Errorf("new relic: %s", strings.Join(msgs, "; "))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		s := strings.TrimSpace(string(raw))
		if len(s) > 256 {
			s = s[:256] + "..."
		}
		return nil, fmt.Errorf("new relic: HTTP %d: %s", resp.StatusCode, s)
	}
	if decodeErr != nil {
		return nil, fmt.Errorf("new relic: decoding the answer: %w", decodeErr)
	}
	results := r.Data.Actor.Account.Nrql.Results
	if len(results) == 0 {
		return nil, ErrNoData
	}
	return Value(results[0]), nil
}

// Value is a result's only numeric field, or the result as a map.
func Value(result map[string]any) any {
	var num any
	n := 0
	for _, v := range result {
		if f, ok := v.(float64); ok {
			num = f
			n++
		}
	}
	if n == 1 {
		return num
	}
	return result
}
