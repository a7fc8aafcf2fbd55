package mcias

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/internal/ttlcache"
	"git.wntrmute.dev/kyle/mcr/test/fakemcias"
)

type mciasTestClock struct {
	t  time.Time
	mu sync.Mutex
}

func (c *mciasTestClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *mciasTestClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type mciasFixture struct {
	fake  *fakemcias.Server
	clock *mciasTestClock
	p     *Provider
	logs  *mciasLogSink
	sub   string // alice's subject
}

// newMCIASFixture starts a fake MCIAS with users alice (human, user) and
// ci-bot (system, user+admin) and an MCIAS provider that trusts its CA file,
// both running on one fake clock.
func newMCIASFixture(t *testing.T, mod func(*Options)) *mciasFixture {
	t.Helper()
	f := &mciasFixture{
		fake:  fakemcias.New(t),
		clock: &mciasTestClock{t: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)},
		logs:  &mciasLogSink{},
	}
	f.fake.SetNow(f.clock.Now)
	f.sub = f.fake.AddUser("alice", "alice-pw", identity.AccountHuman, identity.RoleUser)
	f.fake.AddUser("ci-bot", "bot-pw", identity.AccountSystem, identity.RoleUser, identity.RoleAdmin)
	opts := Options{
		ServerURL:   f.fake.URL() + "/",
		CACertFile:  f.fake.CACertFile(t),
		ServiceName: "mcr",
		Tags:        []string{"env:test", "tier:registry"},
		Now:         f.clock.Now,
		Logger:      slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&opts)
	}
	p, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.p = p
	return f
}

// mciasLogSink collects log output from concurrent goroutines.
type mciasLogSink struct {
	buf bytes.Buffer
	mu  sync.Mutex
}

func (l *mciasLogSink) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(b)
}

func (l *mciasLogSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (f *mciasFixture) logText() string { return f.logs.String() }

func TestMCIASName(t *testing.T) {
	f := newMCIASFixture(t, nil)
	if f.p.Name() != "mcias" {
		t.Fatalf("Name() = %q", f.p.Name())
	}
}

func TestMCIASLoginSuccess(t *testing.T) {
	f := newMCIASFixture(t, nil)
	ctx := context.Background()

	sess, err := f.p.Login(ctx, "alice", "alice-pw")
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if sess.Token == "" {
		t.Fatal("empty token")
	}
	if want := f.clock.Now().Add(fakemcias.DefaultTokenTTL); !sess.ExpiresAt.Equal(want) {
		t.Fatalf("ExpiresAt = %v, want %v", sess.ExpiresAt, want)
	}
	want := identity.Principal{Subject: f.sub, Username: "alice", AccountType: identity.AccountHuman, Roles: []string{identity.RoleUser}}
	if sess.Principal.Subject != want.Subject || sess.Principal.Username != want.Username ||
		sess.Principal.AccountType != want.AccountType || !slices.Equal(sess.Principal.Roles, want.Roles) {
		t.Fatalf("identity.Principal = %+v, want %+v", sess.Principal, want)
	}
	last := f.fake.LastLogin()
	if last.Username != "alice" || last.ServiceName != "mcr" || !slices.Equal(last.Tags, []string{"env:test", "tier:registry"}) {
		t.Fatalf("login request carried %+v", last)
	}
	if n := f.fake.ValidateCalls(); n != 1 {
		t.Fatalf("login made %d validate calls, want 1", n)
	}
	// The login's validation is cached: the first request with the token
	// does not go back to MCIAS.
	p, err := f.p.Validate(ctx, sess.Token)
	if err != nil || p.Subject != f.sub {
		t.Fatalf("Validate after login: %+v, %v", p, err)
	}
	if n := f.fake.ValidateCalls(); n != 1 {
		t.Fatalf("validate calls = %d, want 1 (cache hit)", n)
	}

	// A system account with several roles.
	sess, err = f.p.Login(ctx, "ci-bot", "bot-pw")
	if err != nil {
		t.Fatalf("Login ci-bot: %v", err)
	}
	if sess.Principal.AccountType != identity.AccountSystem || !sess.Principal.IsAdmin() || !sess.Principal.HasRole(identity.RoleUser) {
		t.Fatalf("ci-bot principal = %+v", sess.Principal)
	}
}

func TestMCIASLoginEmptyTags(t *testing.T) {
	f := newMCIASFixture(t, func(o *Options) { o.Tags = nil })
	if _, err := f.p.Login(context.Background(), "alice", "alice-pw"); err != nil {
		t.Fatal(err)
	}
	if last := f.fake.LastLogin(); last.Tags == nil || len(last.Tags) != 0 {
		t.Fatalf("tags = %#v, want [] (sent as an empty array)", last.Tags)
	}
}

func TestMCIASLoginFailure(t *testing.T) {
	f := newMCIASFixture(t, nil)
	for _, tc := range []struct {
		name, user, pass string
		wantCall         bool
	}{
		{"wrong password", "alice", "wrong", true},
		{"unknown user", "mallory", "alice-pw", true},
		{"other user's password", "ci-bot", "alice-pw", true},
		{"empty password", "alice", "", false},
		{"empty username", "", "alice-pw", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.fake.LoginCalls()
			sess, err := f.p.Login(context.Background(), tc.user, tc.pass)
			if !errors.Is(err, identity.ErrInvalidCredentials) || errors.Is(err, identity.ErrUnavailable) {
				t.Fatalf("Login = %+v, %v; want identity.ErrInvalidCredentials", sess, err)
			}
			if called := f.fake.LoginCalls() > before; called != tc.wantCall {
				t.Fatalf("MCIAS called = %v, want %v", called, tc.wantCall)
			}
		})
	}
}

func TestMCIASValidate(t *testing.T) {
	f := newMCIASFixture(t, nil)
	good := f.fake.IssueToken("alice")
	revoked := f.fake.IssueToken("alice")
	f.fake.Revoke(revoked)
	f.fake.SetTokenTTL(-time.Second)
	expired := f.fake.IssueToken("alice")

	for _, tc := range []struct {
		name    string
		wantErr error
		token   string
	}{
		{"valid", nil, good},
		{"revoked", identity.ErrInvalidCredentials, revoked},
		{"expired", identity.ErrInvalidCredentials, expired},
		{"unknown", identity.ErrInvalidCredentials, "not-a-token"},
		{"empty", identity.ErrInvalidCredentials, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := f.p.Validate(context.Background(), tc.token)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || p != nil {
					t.Fatalf("Validate = %+v, %v; want %v", p, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if p.Subject != f.sub || p.Username != "alice" || p.AccountType != identity.AccountHuman || !slices.Equal(p.Roles, []string{identity.RoleUser}) {
				t.Fatalf("identity.Principal = %+v", p)
			}
		})
	}
}

func TestMCIASValidateCache(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		// run validates tok (after one priming validation at t0) and
		// reports the expected outcome.
		run       func(t *testing.T, f *mciasFixture, tok string)
		name      string
		wantCalls int
	}{
		{
			name: "hit within TTL",
			run: func(t *testing.T, f *mciasFixture, tok string) {
				f.clock.Advance(29 * time.Second)
				mciasMustValidate(t, f, tok)
			},
			wantCalls: 1,
		},
		{
			name: "miss after TTL",
			run: func(t *testing.T, f *mciasFixture, tok string) {
				f.clock.Advance(30 * time.Second)
				mciasMustValidate(t, f, tok)
			},
			wantCalls: 2,
		},
		{
			name: "revocation seen after TTL",
			run: func(t *testing.T, f *mciasFixture, tok string) {
				f.fake.Revoke(tok)
				f.clock.Advance(10 * time.Second)
				mciasMustValidate(t, f, tok) // still cached
				f.clock.Advance(21 * time.Second)
				if _, err := f.p.Validate(ctx, tok); !errors.Is(err, identity.ErrInvalidCredentials) {
					t.Fatalf("revoked after TTL: %v", err)
				}
			},
			wantCalls: 2,
		},
		{
			name: "roles refreshed after TTL",
			run: func(t *testing.T, f *mciasFixture, tok string) {
				f.fake.SetRoles("alice", identity.RoleGuest)
				if p := mciasMustValidate(t, f, tok); !p.HasRole(identity.RoleUser) {
					t.Fatalf("cached roles = %v", p.Roles)
				}
				f.clock.Advance(31 * time.Second)
				if p := mciasMustValidate(t, f, tok); !slices.Equal(p.Roles, []string{identity.RoleGuest}) {
					t.Fatalf("refreshed roles = %v", p.Roles)
				}
			},
			wantCalls: 2,
		},
		{
			name: "caller cannot mutate the cache",
			run: func(t *testing.T, f *mciasFixture, tok string) {
				p := mciasMustValidate(t, f, tok)
				p.Roles[0] = identity.RoleAdmin
				p.Username = "root"
				if p := mciasMustValidate(t, f, tok); p.IsAdmin() || p.Username != "alice" {
					t.Fatalf("cache mutated through returned principal: %+v", p)
				}
			},
			wantCalls: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newMCIASFixture(t, nil)
			tok := f.fake.IssueToken("alice")
			mciasMustValidate(t, f, tok)
			tc.run(t, f, tok)
			if n := f.fake.ValidateCalls(); n != tc.wantCalls {
				t.Fatalf("validate calls = %d, want %d", n, tc.wantCalls)
			}
		})
	}
}

func TestMCIASCacheNeverOutlivesToken(t *testing.T) {
	f := newMCIASFixture(t, nil)
	f.fake.SetTokenTTL(10 * time.Second) // shorter than the 30 s cache TTL
	tok := f.fake.IssueToken("alice")
	mciasMustValidate(t, f, tok)
	f.clock.Advance(9 * time.Second)
	mciasMustValidate(t, f, tok)
	if n := f.fake.ValidateCalls(); n != 1 {
		t.Fatalf("validate calls = %d, want 1", n)
	}
	f.clock.Advance(time.Second)
	if _, err := f.p.Validate(context.Background(), tok); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("expired token: %v, want identity.ErrInvalidCredentials", err)
	}
	if n := f.fake.ValidateCalls(); n != 2 {
		t.Fatalf("validate calls = %d, want 2 (cache entry ended with the token)", n)
	}
}

func TestMCIASNegativeCache(t *testing.T) {
	f := newMCIASFixture(t, nil)
	for range 3 {
		if _, err := f.p.Validate(context.Background(), "bogus"); !errors.Is(err, identity.ErrInvalidCredentials) {
			t.Fatalf("bogus token: %v", err)
		}
	}
	if n := f.fake.ValidateCalls(); n != 1 {
		t.Fatalf("validate calls = %d, want 1 (invalid results cached too)", n)
	}
	f.clock.Advance(31 * time.Second)
	if _, err := f.p.Validate(context.Background(), "bogus"); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("bogus token: %v", err)
	}
	if n := f.fake.ValidateCalls(); n != 2 {
		t.Fatalf("validate calls = %d, want 2", n)
	}
}

func TestMCIASDown(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode fakemcias.DownMode
	}{
		{"connections closed", fakemcias.DownClose},
		{"503", fakemcias.Down503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			f := newMCIASFixture(t, nil)
			f.fake.SetDownMode(tc.mode)
			sess, err := f.p.Login(ctx, "alice", "alice-pw")
			if err != nil {
				t.Fatal(err)
			}
			uncached := f.fake.IssueToken("alice")
			if err := f.p.Ping(ctx); err != nil {
				t.Fatalf("Ping while up: %v", err)
			}

			f.fake.SetDown(true)
			f.clock.Advance(20 * time.Second)

			if p, err := f.p.Validate(ctx, sess.Token); err != nil || p.Subject != f.sub {
				t.Fatalf("cached token while down: %+v, %v", p, err)
			}
			if _, err := f.p.Validate(ctx, uncached); !errors.Is(err, identity.ErrUnavailable) || errors.Is(err, identity.ErrInvalidCredentials) {
				t.Fatalf("uncached token while down: %v, want identity.ErrUnavailable", err)
			}
			if _, err := f.p.Login(ctx, "alice", "alice-pw"); !errors.Is(err, identity.ErrUnavailable) {
				t.Fatalf("login while down: %v, want identity.ErrUnavailable", err)
			}
			if err := f.p.Ping(ctx); !errors.Is(err, identity.ErrUnavailable) {
				t.Fatalf("Ping while down: %v, want identity.ErrUnavailable", err)
			}
			// Past the TTL the cached answer is gone: unavailable, not 401.
			f.clock.Advance(11 * time.Second)
			if _, err := f.p.Validate(ctx, sess.Token); !errors.Is(err, identity.ErrUnavailable) {
				t.Fatalf("stale token while down: %v, want identity.ErrUnavailable", err)
			}
			// Failures are not cached: once MCIAS is back, both work.
			f.fake.SetDown(false)
			for _, tok := range []string{sess.Token, uncached} {
				if _, err := f.p.Validate(ctx, tok); err != nil {
					t.Fatalf("after recovery: %v", err)
				}
			}
			if strings.Contains(f.logText(), sess.Token) || strings.Contains(f.logText(), uncached) ||
				strings.Contains(f.logText(), "alice-pw") {
				t.Fatalf("secret in logs:\n%s", f.logText())
			}
			if !strings.Contains(f.logText(), "mcias unavailable") {
				t.Fatalf("outage not logged:\n%s", f.logText())
			}
		})
	}
}

// TestMCIASUnexpectedResponses: anything but a clear answer from MCIAS is
// identity.ErrUnavailable, never a 401.
func TestMCIASUnexpectedResponses(t *testing.T) {
	for _, tc := range []struct {
		handler http.HandlerFunc
		name    string
		badBody bool // the status is 200: Logout and Ping succeed
	}{
		{name: "500", handler: func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) }},
		{name: "502", handler: func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "bad gateway", http.StatusBadGateway) }},
		{name: "429", handler: func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "slow down", http.StatusTooManyRequests) }},
		{name: "redirect", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://elsewhere.invalid"+r.URL.Path, http.StatusTemporaryRedirect)
		}},
		{name: "undecodable body", handler: func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "<html>hello</html>") }, badBody: true},
		{name: "wrong JSON types", handler: func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `{"token":42,"valid":"yes"}`)
		}, badBody: true},
		{name: "no token / no subject", handler: func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `{"valid":true,"expires_at":"2030-01-01T13:00:00Z"}`)
		}, badBody: true},
		{name: "bad expires_at", handler: func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `{"token":"t","valid":true,"sub":"s","expires_at":"tomorrow"}`)
		}, badBody: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newRawMCIAS(t, tc.handler, 0)
			ctx := context.Background()
			if _, err := p.Login(ctx, "alice", "pw"); !errors.Is(err, identity.ErrUnavailable) {
				t.Fatalf("Login: %v, want identity.ErrUnavailable", err)
			}
			if _, err := p.Validate(ctx, "tok"); !errors.Is(err, identity.ErrUnavailable) {
				t.Fatalf("Validate: %v, want identity.ErrUnavailable", err)
			}
			if !tc.badBody {
				if err := p.Logout(ctx, "tok"); !errors.Is(err, identity.ErrUnavailable) {
					t.Fatalf("Logout: %v, want identity.ErrUnavailable", err)
				}
				if err := p.Ping(ctx); !errors.Is(err, identity.ErrUnavailable) {
					t.Fatalf("Ping: %v, want identity.ErrUnavailable", err)
				}
			}
		})
	}
}

func TestMCIASTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	p := newRawMCIAS(t, func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}, 100*time.Millisecond)
	start := time.Now()
	_, err := p.Validate(context.Background(), "tok")
	if !errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("Validate: %v, want identity.ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	if _, err := p.Login(context.Background(), "alice", "pw"); !errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("Login: %v, want identity.ErrUnavailable", err)
	}
}

func TestMCIASCallerCancel(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	p := newRawMCIAS(t, func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.Validate(ctx, "tok"); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("Validate: %v, want identity.ErrUnavailable wrapping the deadline", err)
	}
}

// newRawMCIAS serves handler over TLS and returns a provider trusting it.
func newRawMCIAS(t *testing.T, handler http.HandlerFunc, timeout time.Duration) *Provider {
	t.Helper()
	ts := httptest.NewUnstartedServer(handler)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	p, err := New(Options{
		ServerURL:   ts.URL,
		CACertFile:  mciasWriteCertPEM(t, ts.Certificate()),
		ServiceName: "mcr",
		Timeout:     timeout,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mciasWriteCertPEM(t *testing.T, cert *x509.Certificate) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mciasSelfSignedCA(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "other test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestMCIASCustomCA(t *testing.T) {
	fake := fakemcias.New(t)
	fake.AddUser("alice", "alice-pw", identity.AccountHuman, identity.RoleUser)
	// Every httptest server shares one built-in certificate, so the
	// "another CA" case needs a CA of its own.
	otherCA := mciasSelfSignedCA(t)

	for _, tc := range []struct {
		name   string
		caFile string
		wantOK bool
	}{
		{"with the CA file", fake.CACertFile(t), true},
		{"system roots only", "", false},
		{"another CA", mciasWriteCertPEM(t, otherCA), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(Options{
				ServerURL:   fake.URL(),
				CACertFile:  tc.caFile,
				ServiceName: "mcr",
				Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Login(context.Background(), "alice", "alice-pw")
			if tc.wantOK {
				if err != nil {
					t.Fatalf("Login: %v", err)
				}
				return
			}
			var verr *tls.CertificateVerificationError
			if !errors.Is(err, identity.ErrUnavailable) || !errors.As(err, &verr) {
				t.Fatalf("Login: %v, want identity.ErrUnavailable from a certificate verification failure", err)
			}
		})
	}
}

func TestMCIASRequiresTLS13(t *testing.T) {
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	ts.TLS = &tls.Config{MaxVersion: tls.VersionTLS12}
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	p, err := New(Options{
		ServerURL:   ts.URL,
		CACertFile:  mciasWriteCertPEM(t, ts.Certificate()),
		ServiceName: "mcr",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Ping(context.Background()); !errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("Ping against a TLS 1.2 server: %v, want identity.ErrUnavailable", err)
	}
}

func TestMCIASOptions(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	base := Options{ServerURL: "https://mcias.example:8443", ServiceName: "mcr"}
	for _, tc := range []struct {
		name    string
		mod     func(*Options)
		wantErr string // substring; "" = success
	}{
		{"ok", func(*Options) {}, ""},
		{"missing server_url", func(o *Options) { o.ServerURL = "" }, "server_url is required"},
		{"plain http", func(o *Options) { o.ServerURL = "http://mcias.example" }, "https://"},
		{"no host", func(o *Options) { o.ServerURL = "https:///v1" }, "https://"},
		{"credentials in URL", func(o *Options) { o.ServerURL = "https://u:p@mcias.example" }, "must not carry"},
		{"missing service_name", func(o *Options) { o.ServiceName = " " }, "service_name is required"},
		{"unreadable CA file", func(o *Options) { o.CACertFile = missing }, missing},
		{"CA file without certs", func(o *Options) { o.CACertFile = notPEM }, notPEM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.mod(&o)
			p, err := New(o)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if p.timeout != DefaultTimeout || p.ttl != DefaultCacheTTL {
					t.Fatalf("defaults: timeout %v ttl %v", p.timeout, p.ttl)
				}
				if p.client.Timeout != 10*time.Second {
					t.Fatalf("client timeout %v", p.client.Timeout)
				}
				tr, ok := p.client.Transport.(*http.Transport)
				if !ok || tr.TLSClientConfig == nil || tr.TLSClientConfig.MinVersion != tls.VersionTLS13 {
					t.Fatalf("transport TLS config does not enforce TLS 1.3: %#v", p.client.Transport)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New: %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestMCIASLogout(t *testing.T) {
	ctx := context.Background()
	f := newMCIASFixture(t, nil)
	sess, err := f.p.Login(ctx, "alice", "alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	mciasMustValidate(t, f, sess.Token) // cached
	if err := f.p.Logout(ctx, sess.Token); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if f.fake.TokenValid(sess.Token) {
		t.Fatal("MCIAS still accepts the token after Logout")
	}
	if _, err := f.p.Validate(ctx, sess.Token); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("Validate after Logout: %v, want identity.ErrInvalidCredentials", err)
	}
	if err := f.p.Logout(ctx, sess.Token); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("second Logout: %v, want identity.ErrInvalidCredentials", err)
	}
	if err := f.p.Logout(ctx, ""); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("Logout(\"\"): %v", err)
	}

	// Logout while MCIAS is down fails, and drops the cached validation so
	// the token is not honoured from cache afterwards.
	sess, err = f.p.Login(ctx, "alice", "alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	f.fake.SetDown(true)
	if err := f.p.Logout(ctx, sess.Token); !errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("Logout while down: %v, want identity.ErrUnavailable", err)
	}
	if _, err := f.p.Validate(ctx, sess.Token); !errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("Validate after failed Logout: %v, want identity.ErrUnavailable (cache dropped)", err)
	}
}

func TestMCIASConcurrentValidate(t *testing.T) {
	f := newMCIASFixture(t, nil)
	tok := f.fake.IssueToken("alice")
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := f.p.Validate(context.Background(), tok)
			if err == nil && p.Subject != f.sub {
				err = fmt.Errorf("subject %q", p.Subject)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := f.fake.ValidateCalls(); n != 1 {
		t.Fatalf("validate calls = %d, want 1 (concurrent validations deduplicated)", n)
	}
}

func TestMCIASCacheBounded(t *testing.T) {
	f := newMCIASFixture(t, nil)
	f.p.cache = ttlcache.New[mciasResult](8) // keys are SHA-256 digests by type, never the raw token
	for i := range 50 {
		_, _ = f.p.Validate(context.Background(), fmt.Sprintf("token-%d", i))
		if n := f.p.cache.Len(); n > 8 {
			t.Fatalf("cache holds %d entries, cap 8", n)
		}
	}
}

func TestMCIASCacheSweepsExpired(t *testing.T) {
	f := newMCIASFixture(t, nil)
	for i := range 20 {
		_, _ = f.p.Validate(context.Background(), fmt.Sprintf("old-%d", i))
	}
	f.clock.Advance(time.Minute)
	_, _ = f.p.Validate(context.Background(), "new")
	if n := f.p.cache.Len(); n != 1 {
		t.Fatalf("cache holds %d entries after expiry sweep, want 1", n)
	}
}

func mciasMustValidate(t *testing.T, f *mciasFixture, tok string) *identity.Principal {
	t.Helper()
	p, err := f.p.Validate(context.Background(), tok)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return p
}
