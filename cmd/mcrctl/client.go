package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"git.wntrmute.dev/kyle/mcr/adminapi/apitypes"
	"git.wntrmute.dev/kyle/mcr/config"
	"git.wntrmute.dev/kyle/mcr/grpcclient"
	"git.wntrmute.dev/kyle/mcr/internal/cli"
)

// defaultCACert is trusted when no --ca-cert is given and it exists: the
// certificate of the standard data directory.
const defaultCACert = "/srv/mcr/certs/cert.pem"

// client talks to the admin API.
type client struct {
	base  *url.URL
	http  *http.Client
	token string
	// advice ends a "certificate not trusted" error: the options that
	// pick the certificate, and which one was tried.
	advice string
}

// client builds the backend the global flags select (gRPC with --grpc,
// else REST at --addr); needToken demands a token (from --token or
// $MCR_TOKEN).
func (g *globals) client(needToken bool) (backend, error) {
	if strings.TrimSpace(g.grpcAddr) == "" {
		c, err := g.restClient(needToken)
		if err != nil {
			return nil, err
		}
		return restBackend{c: c}, nil
	}
	addr := strings.TrimSpace(g.grpcAddr)
	if strings.Contains(addr, "://") {
		return nil, cli.Usagef("--grpc %q: want HOST:PORT such as mcr.example.net:9443", g.grpcAddr)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, cli.Usagef("--grpc %q: want HOST:PORT such as mcr.example.net:9443", g.grpcAddr)
	}
	timeout, err := time.ParseDuration(g.timeout)
	if err != nil || timeout <= 0 {
		return nil, cli.Usagef("--timeout %q: want a duration such as 60s", g.timeout)
	}
	tlsCfg, err := g.tlsConfig()
	if err != nil {
		return nil, err
	}
	tok, err := g.bearer(needToken)
	if err != nil {
		return nil, err
	}
	// --timeout bounds each call, as REST's http.Client does.
	c, err := grpcclient.Dial(addr, tlsCfg, grpcclient.CallTimeout(timeout))
	if err != nil {
		return nil, err
	}
	return grpcBackend{c: c, token: tok, advice: g.trustAdvice()}, nil
}

// bearer is the token of --token or $MCR_TOKEN.
func (g *globals) bearer(needToken bool) (string, error) {
	tok := g.token
	if tok == "" {
		tok = os.Getenv("MCR_TOKEN")
	}
	tok = strings.TrimSpace(tok)
	if needToken && tok == "" {
		return "", cli.Usagef("no token: pass --token or set MCR_TOKEN (get one with `mcrctl login`)")
	}
	return tok, nil
}

// restClient is the /v1 client of --addr.
func (g *globals) restClient(needToken bool) (*client, error) {
	raw := strings.TrimSpace(g.addr)
	if !g.addrSet {
		if cfg, err := g.serverConfig(); err != nil {
			return nil, err
		} else if cfg != nil {
			if a := addrFromConfig(cfg); a != "" {
				raw = a
			}
		}
	}
	if raw == "" {
		return nil, cli.Usagef("--addr is empty")
	}
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, cli.Usagef("--addr %q: want a URL such as https://mcr.example.net:8443", g.addr)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	timeout, err := time.ParseDuration(g.timeout)
	if err != nil || timeout <= 0 {
		return nil, cli.Usagef("--timeout %q: want a duration such as 60s", g.timeout)
	}
	tlsCfg, err := g.tlsConfig()
	if err != nil {
		return nil, err
	}
	def, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return nil, errors.New("http.DefaultTransport is not an *http.Transport")
	}
	tr := def.Clone()
	tr.TLSClientConfig = tlsCfg
	tok, err := g.bearer(needToken)
	if err != nil {
		return nil, err
	}
	return &client{base: u, http: &http.Client{Transport: tr, Timeout: timeout}, token: tok, advice: g.trustAdvice()}, nil
}

// serverConfig reads --config (the server's mcr.toml) once.
func (g *globals) serverConfig() (*config.Config, error) {
	if g.configPath == "" {
		return nil, nil
	}
	cfg, err := config.Load(g.configPath)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	return cfg, nil
}

// addrFromConfig is https://HOST:PORT of the server's listen address
// (localhost for a wildcard or loopback host).
func addrFromConfig(cfg *config.Config) string {
	host, port, err := net.SplitHostPort(cfg.Server.ListenAddr)
	if err != nil {
		return ""
	}
	switch host {
	case "", "0.0.0.0", "::", "127.0.0.1", "::1":
		host = "localhost"
	}
	return "https://" + net.JoinHostPort(host, port)
}

// caCertFile picks the certificate to trust: --ca-cert, else
// $MCR_CA_CERT (the flag's default), else --config's server.tls_cert, else
// the standard data directory's certificate when readable.
func (g *globals) caCertFile() (string, error) {
	if g.caCert != "" {
		g.caFrom = "--ca-cert/$MCR_CA_CERT"
		return g.caCert, nil
	}
	cfg, err := g.serverConfig()
	if err != nil {
		return "", err
	}
	if cfg != nil && cfg.Server.TLSCert != "" {
		g.caFrom = "--config " + g.configPath + " (server.tls_cert)"
		return cfg.Server.TLSCert, nil
	}
	// On the registry host itself (the runbook's `mcrctl status --addr
	// https://localhost:8443`), trust the certificate `mcrsrv init` wrote.
	if f, err := os.Open(defaultCACert); err == nil {
		_ = f.Close()
		g.caFrom = defaultCACert
		return defaultCACert, nil
	}
	return "", nil
}

// tlsConfig trusts the certificate caCertFile picks in addition to the
// system roots.
func (g *globals) tlsConfig() (*tls.Config, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	caCert, err := g.caCertFile()
	if err != nil {
		return nil, err
	}
	if caCert != "" {
		pem, err := os.ReadFile(caCert)
		if err != nil {
			return nil, fmt.Errorf("CA certificate (%s): %w", g.caFrom, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA certificate %s (%s): no PEM certificate found", caCert, g.caFrom)
		}
		tlsCfg.RootCAs = pool
	}
	return tlsCfg, nil
}

// trustAdvice is the end of every "certificate not trusted" message.
func (g *globals) trustAdvice() string {
	tried := "only the system roots were tried"
	if g.caFrom != "" {
		tried = "tried " + g.caFrom
	}
	return "trust it with --ca-cert FILE, $MCR_CA_CERT, or --config mcr.toml (uses the server's server.tls_cert; after `make run`: --config srv/mcr.toml); " + tried
}

// apiError is a non-2xx answer.
type apiError struct {
	Message string
	Status  int
}

func (e *apiError) Error() string {
	switch e.Status {
	case http.StatusUnauthorized:
		return "authentication failed: " + e.Message + " (get a new token with `mcrctl login`; pass it with --token or MCR_TOKEN)"
	case http.StatusForbidden:
		return "permission denied: " + e.Message
	case http.StatusNotFound:
		return "not found: " + e.Message
	case http.StatusConflict:
		return e.Message
	}
	return fmt.Sprintf("server answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// do sends a request and decodes a JSON answer into out (when non-nil). It
// returns the raw body too (for --json).
func (c *client) do(ctx context.Context, method, path string, query url.Values, body any, out any) ([]byte, error) {
	u := *c.base
	u.Path += path
	if query != nil {
		u.RawQuery = query.Encode()
	}
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case []byte:
			rd = bytes.NewReader(b)
		default:
			buf, err := json.Marshal(body)
			if err != nil {
				return nil, err
			}
			rd = bytes.NewReader(buf)
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "mcrctl/"+version)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, explainTransport(c.base, err, c.advice)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer from %s: %w", c.base.Host, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e apitypes.Error
		msg := strings.TrimSpace(string(raw))
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return raw, &apiError{Status: resp.StatusCode, Message: msg}
	}
	if out != nil && len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return raw, fmt.Errorf("unexpected answer from %s%s: %w", c.base.Host, path, err)
		}
	}
	return raw, nil
}

// explainTransport turns connection and TLS failures into advice.
func explainTransport(base *url.URL, err error, advice string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var certInv x509.CertificateInvalidError
	var recHdr tls.RecordHeaderError
	var opErr *net.OpError
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &unknownCA):
		return fmt.Errorf("TLS: the certificate of %s is not signed by a trusted CA; %s", base.Host, advice)
	case errors.As(err, &hostErr):
		return fmt.Errorf("TLS: the certificate of %s is not valid for %q (%w); use the host name the certificate names in --addr", base.Host, base.Hostname(), hostErr)
	case errors.As(err, &certInv):
		return fmt.Errorf("TLS: the certificate of %s is invalid: %w", base.Host, certInv)
	case errors.As(err, &recHdr):
		return fmt.Errorf("TLS: %s did not answer with TLS (is it plain HTTP? try http:// in --addr): %w", base.Host, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot connect to %s: connection refused (is mcrsrv running? check --addr)", base.Host)
	case errors.As(err, &dnsErr):
		return fmt.Errorf("cannot resolve %s: %w (check --addr)", base.Hostname(), dnsErr)
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return fmt.Errorf("%s did not answer in time (--timeout): %w", base.Host, err)
	case errors.As(err, &opErr):
		return fmt.Errorf("cannot connect to %s: %w (check --addr)", base.Host, opErr)
	}
	if strings.Contains(err.Error(), "tls:") || strings.Contains(err.Error(), "x509:") {
		return fmt.Errorf("TLS handshake with %s failed: %w", base.Host, err)
	}
	return fmt.Errorf("request to %s failed: %w", base.Host, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// printValue writes v as indented JSON.
func (g *globals) printValue(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = g.stdout.Write(append(b, '\n'))
	return err
}

// humanBytes formats a size for tables.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
