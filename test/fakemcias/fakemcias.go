// Package fakemcias is a fake MCIAS (Metacircular identity and access
// service) for tests. It implements the client-facing contract of DESIGN §3
// over TLS (httptest) so the mcias identity provider can be exercised end to
// end. It is test code: nothing outside _test.go files may import it, and it
// is never shipped as an identity service.
//
// Endpoints:
//
//	POST /v1/auth/login      {"username","password","service_name","tags"} → 200 {"token","expires_at"} | 401
//	POST /v1/token/validate  {"token"} → 200 {"valid":true,"sub",...} | 200 {"valid":false}
//	POST /v1/auth/logout     Authorization: Bearer <token> → 204 | 401
//	GET  /v1/health          → 200 {"status":"ok"}
package fakemcias

import (
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultTokenTTL is the lifetime of tokens issued unless SetTokenTTL says
// otherwise.
const DefaultTokenTTL = time.Hour

// DownMode is how the server behaves while it is down (SetDown(true)).
type DownMode int

const (
	// DownClose drops every connection without answering, like a crashed
	// or unreachable service. The default.
	DownClose DownMode = iota
	// Down503 answers every request with 503 Service Unavailable.
	Down503
)

// LoginRequest is what the last login request carried (the password is not
// kept).
type LoginRequest struct {
	Username    string
	ServiceName string
	Tags        []string
}

type user struct {
	sub         string
	password    string
	accountType string
	roles       []string
}

type session struct {
	expiresAt time.Time
	username  string
	revoked   bool
}

// Server is a running fake MCIAS.
type Server struct {
	tb testing.TB
	ts *httptest.Server

	// mu guards the fields from here on.
	users         map[string]*user
	tokens        map[string]*session
	now           func() time.Time
	hold          chan struct{} // non-nil: logins wait until it is closed
	lastLogin     LoginRequest
	mu            sync.Mutex
	ttl           time.Duration
	down          bool
	downMode      DownMode
	validateCalls int
	loginCalls    int
	logoutCalls   int
	held          int // logins waiting on hold
}

// New starts a fake MCIAS over TLS (1.3 minimum) and closes it when the
// test ends.
func New(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{
		tb:     tb,
		users:  make(map[string]*user),
		tokens: make(map[string]*session),
		ttl:    DefaultTokenTTL,
		now:    time.Now,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/auth/login", s.handleLogin)
	mux.HandleFunc("POST /v1/token/validate", s.handleValidate)
	mux.HandleFunc("POST /v1/auth/logout", s.handleLogout)
	mux.HandleFunc("GET /v1/health", s.handleHealth)

	s.ts = httptest.NewUnstartedServer(s.gate(mux))
	s.ts.TLS = &tls.Config{MinVersion: tls.VersionTLS13}
	// Handshake failures are expected (tests of clients that lack the CA).
	s.ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.ts.StartTLS()
	tb.Cleanup(s.Close)
	return s
}

// Close shuts the server down. It is safe to call more than once.
func (s *Server) Close() { s.ts.Close() }

// URL is the server's base URL (https://127.0.0.1:port), what MCR's
// mcias.server_url would hold.
func (s *Server) URL() string { return s.ts.URL }

// Certificate is the server's self-signed certificate (its own CA).
func (s *Server) Certificate() *x509.Certificate { return s.ts.Certificate() }

// Client is an HTTP client that trusts the server's certificate.
func (s *Server) Client() *http.Client { return s.ts.Client() }

// CACertFile writes the server's certificate as PEM into a temporary
// directory of tb and returns the file's path (for mcias.ca_cert).
func (s *Server) CACertFile(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "mcias-ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.ts.Certificate().Raw})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatalf("fakemcias: writing CA file: %v", err)
	}
	return path
}

// AddUser creates (or replaces, keeping its subject) an account and returns
// its subject UUID.
func (s *Server) AddUser(username, password, accountType string, roles ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[username]
	if !ok {
		u = &user{sub: newUUID()}
		s.users[username] = u
	}
	u.password = password
	u.accountType = accountType
	u.roles = slices.Clone(roles)
	return u.sub
}

// SetRoles changes an existing account's roles; tokens already issued
// report the new roles on their next validation.
func (s *Server) SetRoles(username string, roles ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.users[username]; ok {
		u.roles = slices.Clone(roles)
	}
}

// IssueToken mints a token for an existing account without a login request
// (for tests that need a bearer token directly). Call it from the test
// goroutine: an unknown username fails the test.
func (s *Server) IssueToken(username string) string {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[username]; !ok {
		s.tb.Fatalf("fakemcias: IssueToken: no user %q", username)
		return ""
	}
	tok, _ := s.issueLocked(username)
	return tok
}

// Revoke revokes a token (as an MCIAS administrator would). Unknown tokens
// are ignored.
func (s *Server) Revoke(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess, ok := s.tokens[token]; ok {
		sess.revoked = true
	}
}

// TokenValid reports whether the server would currently accept token.
func (s *Server) TokenValid(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.liveLocked(token)
	return ok
}

// SetTokenTTL sets the lifetime of tokens issued from now on.
func (s *Server) SetTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ttl = d
}

// SetNow replaces the server's clock (token issue and expiry), so a test
// can share one fake clock between the server and the client under test.
func (s *Server) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now == nil {
		now = time.Now
	}
	s.now = now
}

// SetDown takes the server down (true) or brings it back (false). While
// down every endpoint fails as SetDownMode says (default DownClose).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// SetDownMode chooses how the server fails while down.
func (s *Server) SetDownMode(m DownMode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.downMode = m
}

// ValidateCalls counts validate requests received, including those refused
// while down; tests use it to tell cache hits from round trips.
func (s *Server) ValidateCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.validateCalls
}

// LoginCalls counts login requests received, including those refused while
// down.
func (s *Server) LoginCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loginCalls
}

// LogoutCalls counts logout requests received, including those refused
// while down.
func (s *Server) LogoutCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logoutCalls
}

// LastLogin returns what the most recent well-formed login request carried
// (successful or not).
func (s *Server) LastLogin() LoginRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lastLogin
	l.Tags = slices.Clone(l.Tags)
	return l
}

// HoldLogins makes every login wait until release is called (for tests
// that need a call in flight for as long as they choose); Held reports
// how many are waiting.
func (s *Server) HoldLogins() (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	s.hold = ch
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.hold == ch {
			close(ch)
			s.hold = nil
		}
	}
}

// Held is the number of logins waiting for release (see HoldLogins).
func (s *Server) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// gate counts requests and applies the down state before routing.
func (s *Server) gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		switch r.URL.Path {
		case "/v1/token/validate":
			s.validateCalls++
		case "/v1/auth/login":
			s.loginCalls++
		case "/v1/auth/logout":
			s.logoutCalls++
		}
		down, mode, hold := s.down, s.downMode, s.hold
		if hold != nil && r.URL.Path == "/v1/auth/login" {
			s.held++
		}
		s.mu.Unlock()
		if hold != nil && r.URL.Path == "/v1/auth/login" {
			<-hold
			s.mu.Lock()
			s.held--
			s.mu.Unlock()
		}
		if !down {
			next.ServeHTTP(w, r)
			return
		}
		if mode == Down503 {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "service unavailable"})
			return
		}
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler) // closes the connection without logging
	})
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Username    string   `json:"username"`
		Password    string   `json:"password"`
		ServiceName string   `json:"service_name"`
		Tags        []string `json:"tags"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed request"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastLogin = LoginRequest{Username: req.Username, ServiceName: req.ServiceName, Tags: slices.Clone(req.Tags)}
	u, ok := s.users[req.Username]
	if !ok || subtle.ConstantTimeCompare([]byte(u.password), []byte(req.Password)) != 1 {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid credentials"})
		return
	}
	tok, exp := s.issueLocked(req.Username)
	writeJSON(w, http.StatusOK, map[string]string{
		"token":      tok,
		"expires_at": exp.UTC().Format(time.RFC3339),
	})
}

func (s *Server) handleValidate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed request"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.liveLocked(req.Token)
	if !ok {
		writeJSON(w, http.StatusOK, map[string]any{"valid": false})
		return
	}
	u := s.users[sess.username]
	roles := slices.Clone(u.roles)
	if roles == nil {
		roles = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"valid":        true,
		"sub":          u.sub,
		"username":     sess.username,
		"account_type": u.accountType,
		"roles":        roles,
		"expires_at":   sess.expiresAt.UTC().Format(time.RFC3339),
	})
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, live := s.liveLocked(tok)
	if !ok || !live {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid token"})
		return
	}
	sess.revoked = true
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// liveLocked returns the session for an issued, unrevoked, unexpired token
// whose account still exists. s.mu held.
func (s *Server) liveLocked(token string) (*session, bool) {
	sess, ok := s.tokens[token]
	if !ok || sess.revoked || !s.now().Before(sess.expiresAt) {
		return nil, false
	}
	if _, ok := s.users[sess.username]; !ok {
		return nil, false
	}
	return sess, true
}

// issueLocked mints an opaque random token. s.mu held.
func (s *Server) issueLocked(username string) (string, time.Time) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	tok := "fake-mcias." + hex.EncodeToString(b)
	exp := s.now().Add(s.ttl)
	s.tokens[tok] = &session{username: username, expiresAt: exp}
	return tok, exp
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
