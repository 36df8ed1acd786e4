package analysis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

// Keys of the Secrets that HTTPAuthentication names.
const (
	KeyUsername = "username"
	KeyPassword = "password"
	KeyCACert   = "ca.crt"
	KeyTLSCert  = "tls.crt"
	KeyTLSKey   = "tls.key"
)

// HTTPClient returns a client for a metric's provider: TLS (a CA bundle,
// a client certificate, insecureSkipVerify) and authentication (a bearer
// token, basic credentials) from Secrets, and headers (templated, values
// possibly from Secrets) on every request. The caller bounds each request
// with its context.
func (e *Env) HTTPClient(ctx context.Context, auth *rolloutsv1alpha1.HTTPAuthentication, headers []rolloutsv1alpha1.HTTPHeader) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// The client lives for one measurement: no idle connection outlives it.
	tr.DisableKeepAlives = true
	hdr := http.Header{}
	for _, h := range headers {
		var val string
		var err error
		switch {
		case h.ValueFrom != nil:
			ref := h.ValueFrom.SecretKeyRef
			val, err = e.Vars.Secret(ctx, ref.Name, ref.Key, ptrDeref(ref.Optional))
		case h.Value != nil:
			val, err = e.Render(ctx, *h.Value)
		}
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", h.Name, err)
		}
		hdr.Add(h.Name, val)
	}
	var basicUser, basicPass string
	if auth != nil {
		switch {
		case auth.Bearer != nil:
			ref := auth.Bearer.SecretKeyRef
			tok, err := e.Secret(ctx, ref.Name, ref.Key)
			if err != nil {
				return nil, fmt.Errorf("authentication.bearer: %w", err)
			}
			hdr.Set("Authorization", "Bearer "+tok)
		case auth.Basic != nil:
			var err error
			if basicUser, err = e.Secret(ctx, auth.Basic.SecretName, KeyUsername); err != nil {
				return nil, fmt.Errorf("authentication.basic: %w", err)
			}
			if basicPass, err = e.Secret(ctx, auth.Basic.SecretName, KeyPassword); err != nil {
				return nil, fmt.Errorf("authentication.basic: %w", err)
			}
		}
		if t := auth.TLS; t != nil {
			cfg, err := e.tlsConfig(ctx, t)
			if err != nil {
				return nil, fmt.Errorf("authentication.tls: %w", err)
			}
			tr.TLSClientConfig = cfg
		}
	}
	rt := &headerTransport{next: tr, header: hdr, user: basicUser, pass: basicPass, basic: auth != nil && auth.Basic != nil}
	return &http.Client{Transport: rt}, nil
}

func (e *Env) tlsConfig(ctx context.Context, t *rolloutsv1alpha1.TLSConfig) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // the user's explicit choice
	if t.CASecretName == "" {
		return cfg, nil
	}
	ca, err := e.OptionalSecret(ctx, t.CASecretName, KeyCACert)
	if err != nil {
		return nil, err
	}
	if ca != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(ca)) {
			return nil, fmt.Errorf("secret %s: key %s holds no PEM certificate", t.CASecretName, KeyCACert)
		}
		cfg.RootCAs = pool
	}
	crt, err := e.OptionalSecret(ctx, t.CASecretName, KeyTLSCert)
	if err != nil {
		return nil, err
	}
	key, err := e.OptionalSecret(ctx, t.CASecretName, KeyTLSKey)
	if err != nil {
		return nil, err
	}
	switch {
	case crt != "" && key != "":
		pair, err := tls.X509KeyPair([]byte(crt), []byte(key))
		if err != nil {
			// The parse error may quote the key: say only what is wrong.
			return nil, fmt.Errorf("secret %s: keys %s and %s are not a certificate and its key", t.CASecretName, KeyTLSCert, KeyTLSKey)
		}
		cfg.Certificates = []tls.Certificate{pair}
	case crt != "" || key != "":
		return nil, errors.New("secret " + t.CASecretName + ": a client certificate needs both " + KeyTLSCert + " and " + KeyTLSKey)
	}
	return cfg, nil
}

// headerTransport adds headers and basic credentials to every request.
type headerTransport struct {
	next       http.RoundTripper
	header     http.Header
	basic      bool
	user, pass string
}

func (t *headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	for k, vs := range t.header {
		req.Header.Del(k)
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if t.basic {
		req.SetBasicAuth(t.user, t.pass)
	}
	return t.next.RoundTrip(req)
}
