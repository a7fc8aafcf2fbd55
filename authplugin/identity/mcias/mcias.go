// Package mcias is the identity provider backed by the Metacircular
// identity and access service: logins and token validation over HTTPS,
// results cached by a digest of the token. It depends only on the shared
// identity types — never on distribution.
package mcias

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/internal/ttlcache"
)

// Defaults for the MCIAS client (DESIGN §3).
const (
	DefaultTimeout  = 10 * time.Second
	DefaultCacheTTL = 30 * time.Second

	mciasMaxCacheEntries = 10000
	mciasMaxBody         = 1 << 20
)

// Options configures the MCIAS identity provider.
type Options struct {
	// ServerURL is MCIAS's base URL (https://…), without the /v1 suffix.
	ServerURL string
	// CACertFile, when set, is a PEM file holding the CA certificate(s) that
	// MCIAS's server certificate must chain to. Only those CAs are trusted;
	// when empty the system roots are used.
	CACertFile string
	// ServiceName and Tags (below) are sent with every login so MCIAS can
	// apply its per-service policy.
	ServiceName string
	// HTTPClient replaces the client New builds (tests). When set,
	// CACertFile is ignored: the client's own TLS configuration applies.
	HTTPClient *http.Client
	// Now replaces time.Now for cache expiry (tests).
	Now func() time.Time
	// Logger receives diagnostics (default slog.Default()). Tokens and
	// passwords are never logged.
	Logger *slog.Logger
	// Tags: see ServiceName.
	Tags []string
	// Timeout bounds every request to MCIAS (default 10 s).
	Timeout time.Duration
	// CacheTTL is how long a validation result is cached (default 30 s).
	CacheTTL time.Duration
}

// Provider is the identity provider backed by the Metacircular identity and
// access service. It treats MCIAS tokens as opaque bearer strings and asks
// MCIAS to validate them, caching results by SHA-256(token).
type Provider struct {
	base        string
	serviceName string
	client      *http.Client
	now         func() time.Time
	log         *slog.Logger

	cache     *ttlcache.Cache[mciasResult] // keyed by a digest of the token
	flights   singleflight.Group           // one validate call per token at a time
	nextSweep time.Time                    // when expired cache entries are next swept; guarded by mu

	tags    []string
	timeout time.Duration
	ttl     time.Duration

	mu      sync.Mutex // orders cache writes (and nextSweep) against Logout
	logouts uint64     // bumped by Logout: a validation that raced one is not cached
}

var _ identity.Provider = (*Provider)(nil)

// mciasResult is what MCIAS said about a token.
type mciasResult struct {
	principal *identity.Principal // nil: the token is not valid
	expiresAt time.Time           // the token's own expiry, zero if MCIAS did not say
}

// New builds the MCIAS provider. It enforces TLS 1.3 as the minimum
// protocol version and, when opts.CACertFile is set, trusts only the CAs in
// that file.
func New(opts Options) (*Provider, error) {
	if strings.TrimSpace(opts.ServerURL) == "" {
		return nil, errors.New("mcias: server_url is required")
	}
	u, err := url.Parse(opts.ServerURL)
	if err != nil {
		return nil, fmt.Errorf("mcias: invalid server_url %q: %w", opts.ServerURL, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("mcias: server_url %q must be an https:// URL", opts.ServerURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("mcias: server_url %q must not carry credentials, a query or a fragment", opts.ServerURL)
	}
	if strings.TrimSpace(opts.ServiceName) == "" {
		return nil, errors.New("mcias: service_name is required")
	}

	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ttl := opts.CacheTTL
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}

	client := opts.HTTPClient
	if client == nil {
		tlsCfg := &tls.Config{MinVersion: tls.VersionTLS13}
		if opts.CACertFile != "" {
			pool, err := mciasLoadCAPool(opts.CACertFile)
			if err != nil {
				return nil, err
			}
			tlsCfg.RootCAs = pool
		}
		var tr *http.Transport
		if dt, ok := http.DefaultTransport.(*http.Transport); ok {
			tr = dt.Clone()
		} else {
			tr = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
		}
		tr.TLSClientConfig = tlsCfg
		client = &http.Client{
			Transport: tr,
			Timeout:   timeout,
			// Never follow redirects: a 307/308 would resend the password
			// to wherever MCIAS (or something in front of it) points.
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}

	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return &Provider{
		base:        u.String(),
		serviceName: opts.ServiceName,
		tags:        slices.Clone(opts.Tags),
		client:      client,
		timeout:     timeout,
		ttl:         ttl,
		now:         now,
		log:         logger.With("provider", "mcias"),
		cache:       ttlcache.New[mciasResult](mciasMaxCacheEntries),
	}, nil
}

func mciasLoadCAPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file) // #nosec G304 -- operator-configured path
	if err != nil {
		return nil, fmt.Errorf("mcias: reading ca_cert %s: %w", file, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("mcias: ca_cert %s holds no PEM certificates", file)
	}
	return pool, nil
}

// Name implements identity.Provider.
func (m *Provider) Name() string { return "mcias" }

type mciasLoginRequest struct {
	Username    string   `json:"username"`
	Password    string   `json:"password"`
	ServiceName string   `json:"service_name"`
	Tags        []string `json:"tags"`
}

type mciasLoginResponse struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
}

type mciasValidateRequest struct {
	Token string `json:"token"`
}

type mciasValidateResponse struct {
	Subject     string   `json:"sub"`
	Username    string   `json:"username"`
	AccountType string   `json:"account_type"`
	ExpiresAt   string   `json:"expires_at"`
	Roles       []string `json:"roles"`
	Valid       bool     `json:"valid"`
}

// Login implements identity.Provider: it asks MCIAS for a token, then validates it
// once to learn the principal (the validation is cached, so the first
// request carrying the token does not go back to MCIAS).
func (m *Provider) Login(ctx context.Context, username, password string) (*identity.Session, error) {
	if username == "" || password == "" {
		return nil, fmt.Errorf("mcias login: %w", identity.ErrInvalidCredentials)
	}
	tags := m.tags
	if tags == nil {
		tags = []string{}
	}
	status, body, err := m.do(ctx, http.MethodPost, "/v1/auth/login", mciasLoginRequest{
		Username:    username,
		Password:    password,
		ServiceName: m.serviceName,
		Tags:        tags,
	}, "")
	if err != nil {
		return nil, m.unavailable("login", err)
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		m.log.Debug("mcias rejected login", "username", username, "status", status)
		return nil, fmt.Errorf("mcias login: %w", identity.ErrInvalidCredentials)
	case status < 200 || status > 299:
		return nil, m.unavailable("login", fmt.Errorf("unexpected status %d", status))
	}
	var lr mciasLoginResponse
	if err := json.Unmarshal(body, &lr); err != nil {
		return nil, m.unavailable("login", fmt.Errorf("decoding response: %w", err))
	}
	if lr.Token == "" {
		return nil, m.unavailable("login", errors.New("response carries no token"))
	}
	expiresAt, err := parseMCIASTime(lr.ExpiresAt)
	if err != nil {
		return nil, m.unavailable("login", err)
	}

	res, err := m.validate(ctx, lr.Token)
	if err != nil {
		if errors.Is(err, identity.ErrInvalidCredentials) {
			// MCIAS refused the token it just issued: its fault, not the user's.
			return nil, m.unavailable("login", errors.New("issued token does not validate"))
		}
		return nil, fmt.Errorf("mcias login: %w", err)
	}
	if expiresAt.IsZero() {
		expiresAt = res.expiresAt
	}
	return &identity.Session{
		Token:     lr.Token,
		ExpiresAt: expiresAt,
		Principal: *mciasClonePrincipal(res.principal),
	}, nil
}

// Validate implements identity.Provider. Results, valid and invalid, are cached by
// SHA-256(token) for the cache TTL (never past the token's own expiry), so
// recently seen tokens keep working while MCIAS is unreachable.
func (m *Provider) Validate(ctx context.Context, token string) (*identity.Principal, error) {
	if token == "" {
		return nil, fmt.Errorf("mcias validate: %w", identity.ErrInvalidCredentials)
	}
	res, err := m.validate(ctx, token)
	if err != nil {
		return nil, err
	}
	return mciasClonePrincipal(res.principal), nil
}

// Logout implements identity.Provider: it revokes the token at MCIAS and drops its
// cached validation (replacing it with a cached "revoked" answer).
func (m *Provider) Logout(ctx context.Context, token string) error {
	if token == "" {
		return fmt.Errorf("mcias logout: %w", identity.ErrInvalidCredentials)
	}
	key := mciasTokenKey(token)
	m.forget(key)

	status, _, err := m.do(ctx, http.MethodPost, "/v1/auth/logout", nil, token)
	if err != nil {
		return m.unavailable("logout", err)
	}
	switch {
	case status >= 200 && status <= 299:
		m.mu.Lock()
		m.logouts++ // a validation that raced the logout must not be cached
		m.storeLocked(key, mciasResult{})
		m.mu.Unlock()
		return nil
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fmt.Errorf("mcias logout: %w", identity.ErrInvalidCredentials)
	default:
		return m.unavailable("logout", fmt.Errorf("unexpected status %d", status))
	}
}

// Ping implements identity.Provider: GET /v1/health must answer 2xx.
func (m *Provider) Ping(ctx context.Context) error {
	status, _, err := m.do(ctx, http.MethodGet, "/v1/health", nil, "")
	if err != nil {
		return fmt.Errorf("mcias ping: %w: %w", identity.ErrUnavailable, err)
	}
	if status < 200 || status > 299 {
		return fmt.Errorf("mcias ping: %w: status %d", identity.ErrUnavailable, status)
	}
	return nil
}

// validate answers from the cache or asks MCIAS, with at most one request
// per token in flight (singleflight). A token MCIAS does not accept yields
// an error wrapping identity.ErrInvalidCredentials.
func (m *Provider) validate(ctx context.Context, token string) (mciasResult, error) {
	key := mciasTokenKey(token)
	if res, ok := m.cache.Get(key, m.now()); ok {
		return res, res.err()
	}
	ch := m.flights.DoChan(hex.EncodeToString(key[:]), func() (any, error) {
		// A flight that finished between the lookup above and this one
		// has cached its answer: use it rather than ask again.
		if res, ok := m.cache.Get(key, m.now()); ok {
			return res, res.err()
		}
		m.mu.Lock()
		epoch := m.logouts
		m.mu.Unlock()
		// The flight outlives any one caller's cancellation (others may
		// be waiting on it); m.do bounds it with the request timeout.
		res, err := m.fetch(context.WithoutCancel(ctx), token)
		if err != nil {
			return res, err // failures are not cached
		}
		m.mu.Lock()
		if m.logouts == epoch {
			m.storeLocked(key, res)
		}
		m.mu.Unlock()
		return res, res.err()
	})
	select {
	case r := <-ch:
		res, _ := r.Val.(mciasResult)
		return res, r.Err
	case <-ctx.Done():
		return mciasResult{}, fmt.Errorf("mcias validate: %w: %w", identity.ErrUnavailable, ctx.Err())
	}
}

// fetch asks MCIAS about a token, bypassing the cache. A token MCIAS does
// not accept is a result without a principal and a nil error; err is set
// only when MCIAS gave no usable answer (identity.ErrUnavailable).
func (m *Provider) fetch(ctx context.Context, token string) (mciasResult, error) {
	status, body, err := m.do(ctx, http.MethodPost, "/v1/token/validate", mciasValidateRequest{Token: token}, "")
	if err != nil {
		return mciasResult{}, m.unavailable("validate", err)
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return mciasResult{}, nil // MCIAS refused the token outright
	case status < 200 || status > 299:
		return mciasResult{}, m.unavailable("validate", fmt.Errorf("unexpected status %d", status))
	}
	var vr mciasValidateResponse
	if err := json.Unmarshal(body, &vr); err != nil {
		return mciasResult{}, m.unavailable("validate", fmt.Errorf("decoding response: %w", err))
	}
	if !vr.Valid {
		return mciasResult{}, nil
	}
	if vr.Subject == "" {
		return mciasResult{}, m.unavailable("validate", errors.New("valid token without a subject"))
	}
	expiresAt, err := parseMCIASTime(vr.ExpiresAt)
	if err != nil {
		return mciasResult{}, m.unavailable("validate", err)
	}
	return mciasResult{
		principal: &identity.Principal{
			Subject:     vr.Subject,
			Username:    vr.Username,
			AccountType: vr.AccountType,
			Roles:       slices.Clone(vr.Roles),
		},
		expiresAt: expiresAt,
	}, nil
}

// err is the error a cached or fetched result stands for.
func (r mciasResult) err() error {
	if r.principal == nil {
		return fmt.Errorf("mcias validate: %w", identity.ErrInvalidCredentials)
	}
	return nil
}

// storeLocked caches res under key until the TTL passes or, for a valid
// token, until the token itself expires, whichever is first; expired
// entries are swept at most once per TTL. m.mu held.
func (m *Provider) storeLocked(key [32]byte, res mciasResult) {
	now := m.now()
	until := now.Add(m.ttl)
	if res.principal != nil && !res.expiresAt.IsZero() && res.expiresAt.Before(until) {
		until = res.expiresAt
	}
	if !until.After(now) {
		return
	}
	if !now.Before(m.nextSweep) {
		m.cache.Sweep(now)
		m.nextSweep = now.Add(m.ttl)
	}
	m.cache.Put(key, res, until, now)
}

// forget drops the cached result for key, and detaches a validation in
// flight so its answer is not cached and the next caller asks again.
func (m *Provider) forget(key [32]byte) {
	m.mu.Lock()
	m.logouts++
	m.cache.Delete(key)
	m.mu.Unlock()
	m.flights.Forget(hex.EncodeToString(key[:]))
}

// do sends one request to MCIAS and returns the status and (bounded) body.
func (m *Provider) do(ctx context.Context, method, path string, body any, bearer string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, fmt.Errorf("encoding request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, m.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, mciasMaxBody+1))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("reading response: %w", err)
	}
	if len(data) > mciasMaxBody {
		return resp.StatusCode, nil, errors.New("response body too large")
	}
	return resp.StatusCode, data, nil
}

// unavailable logs and wraps a failure to get an answer from MCIAS. err
// never carries a token or password (only URLs, statuses, decode errors).
func (m *Provider) unavailable(op string, err error) error {
	m.log.Warn("mcias unavailable", "op", op, "err", err)
	return fmt.Errorf("mcias %s: %w: %w", op, identity.ErrUnavailable, err)
}

func parseMCIASTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad expires_at %q: %w", s, err)
	}
	return t, nil
}

func mciasTokenKey(token string) [32]byte { return ttlcache.Key(token) }

func mciasClonePrincipal(p *identity.Principal) *identity.Principal {
	c := *p
	c.Roles = slices.Clone(p.Roles)
	return &c
}
