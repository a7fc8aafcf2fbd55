package fakemcias

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"
)

type clock struct {
	t  time.Time
	mu sync.Mutex
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func call(t *testing.T, s *Server, method, path string, body any, bearer string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	if len(data) > 0 && resp.Header.Get("Content-Type") == "application/json" {
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("%s %s: body %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, out
}

func login(t *testing.T, s *Server, user, pass string) (int, map[string]any) {
	t.Helper()
	return call(t, s, http.MethodPost, "/v1/auth/login", map[string]any{
		"username": user, "password": pass, "service_name": "mcr", "tags": []string{"env:test", "site:a"},
	}, "")
}

func validate(t *testing.T, s *Server, tok string) map[string]any {
	t.Helper()
	st, out := call(t, s, http.MethodPost, "/v1/token/validate", map[string]string{"token": tok}, "")
	if st != http.StatusOK {
		t.Fatalf("validate status %d", st)
	}
	return out
}

func TestLoginValidateLogout(t *testing.T) {
	s := New(t)
	sub := s.AddUser("alice", "pw", "human", "admin", "user")

	st, out := login(t, s, "alice", "pw")
	if st != http.StatusOK {
		t.Fatalf("login status %d", st)
	}
	tok, _ := out["token"].(string)
	if tok == "" {
		t.Fatal("no token")
	}
	expStr, _ := out["expires_at"].(string)
	exp, err := time.Parse(time.RFC3339, expStr)
	if err != nil || time.Until(exp) < DefaultTokenTTL-time.Minute {
		t.Fatalf("expires_at %v (%v)", out["expires_at"], err)
	}
	if got := s.LastLogin(); got.Username != "alice" || got.ServiceName != "mcr" || !slices.Equal(got.Tags, []string{"env:test", "site:a"}) {
		t.Fatalf("LastLogin = %+v", got)
	}

	v := validate(t, s, tok)
	if v["valid"] != true || v["sub"] != sub || v["username"] != "alice" || v["account_type"] != "human" {
		t.Fatalf("validate = %v", v)
	}
	if roles, _ := v["roles"].([]any); len(roles) != 2 || roles[0] != "admin" || roles[1] != "user" {
		t.Fatalf("roles = %v", v["roles"])
	}
	if s.ValidateCalls() != 1 || s.LoginCalls() != 1 {
		t.Fatalf("calls: validate %d login %d", s.ValidateCalls(), s.LoginCalls())
	}

	if st, _ := call(t, s, http.MethodPost, "/v1/auth/logout", nil, ""); st != http.StatusUnauthorized {
		t.Fatalf("logout without bearer: %d", st)
	}
	if st, _ := call(t, s, http.MethodPost, "/v1/auth/logout", nil, tok); st != http.StatusNoContent {
		t.Fatalf("logout: %d", st)
	}
	if v := validate(t, s, tok); v["valid"] != false || len(v) != 1 {
		t.Fatalf("after logout: %v", v)
	}
	if s.TokenValid(tok) {
		t.Fatal("TokenValid after logout")
	}
}

func TestLoginFailures(t *testing.T) {
	s := New(t)
	s.AddUser("alice", "pw", "human", "user")
	for _, tc := range []struct{ name, user, pass string }{
		{"wrong password", "alice", "nope"},
		{"unknown user", "bob", "pw"},
		{"empty password", "alice", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if st, out := login(t, s, tc.user, tc.pass); st != http.StatusUnauthorized || out["token"] != nil {
				t.Fatalf("status %d body %v", st, out)
			}
		})
	}
	if st, _ := call(t, s, http.MethodPost, "/v1/auth/login", "not an object", ""); st != http.StatusBadRequest {
		t.Fatalf("malformed login: %d", st)
	}
	if st, _ := call(t, s, http.MethodGet, "/v1/auth/login", nil, ""); st != http.StatusMethodNotAllowed {
		t.Fatalf("GET login: %d", st)
	}
}

func TestRevokeExpiryRoles(t *testing.T) {
	s := New(t)
	c := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	s.SetNow(c.Now)
	s.SetTokenTTL(time.Minute)
	s.AddUser("svc", "pw", "system", "user")

	a, b := s.IssueToken("svc"), s.IssueToken("svc")
	if a == b || !s.TokenValid(a) || !s.TokenValid(b) {
		t.Fatal("issued tokens should be distinct and valid")
	}
	s.Revoke(a)
	s.Revoke("never-issued")
	if validate(t, s, a)["valid"] != false {
		t.Fatal("revoked token validates")
	}
	s.SetRoles("svc", "guest")
	if v := validate(t, s, b); v["valid"] != true || v["expires_at"] != "2030-01-01T00:01:00Z" {
		t.Fatalf("validate b = %v", v)
	} else if roles, _ := v["roles"].([]any); len(roles) != 1 || roles[0] != "guest" {
		t.Fatalf("roles after SetRoles = %v", v["roles"])
	}
	c.Advance(time.Minute)
	if validate(t, s, b)["valid"] != false {
		t.Fatal("expired token validates")
	}
	if validate(t, s, "garbage")["valid"] != false {
		t.Fatal("garbage validates")
	}
}

func TestDownModes(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode DownMode
	}{{"close", DownClose}, {"503", Down503}} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(t)
			s.SetDownMode(tc.mode)
			s.SetDown(true)
			resp, err := s.Client().Post(s.URL()+"/v1/token/validate", "application/json", bytes.NewReader([]byte(`{"token":"x"}`)))
			switch tc.mode {
			case DownClose:
				if err == nil {
					resp.Body.Close()
					t.Fatalf("down (close): got status %d, want connection error", resp.StatusCode)
				}
			case Down503:
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusServiceUnavailable {
					t.Fatalf("down (503): status %d", resp.StatusCode)
				}
			}
			if s.ValidateCalls() != 1 {
				t.Fatalf("ValidateCalls = %d, want 1 (attempts while down count)", s.ValidateCalls())
			}
			s.SetDown(false)
			if st, out := call(t, s, http.MethodGet, "/v1/health", nil, ""); st != http.StatusOK || out["status"] != "ok" {
				t.Fatalf("health after recovery: %d %v", st, out)
			}
		})
	}
}

func TestTLSAndCAFile(t *testing.T) {
	s := New(t)
	path := s.CACertFile(t)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatal("CA file holds no certificate")
	}
	get := func(cfg *tls.Config) error {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		defer c.CloseIdleConnections()
		resp, err := c.Get(s.URL() + "/v1/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	if err := get(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}); err != nil {
		t.Fatalf("with CA file: %v", err)
	}
	var unknown x509.UnknownAuthorityError
	if err := get(&tls.Config{MinVersion: tls.VersionTLS13}); !errors.As(err, &unknown) {
		t.Fatalf("without CA: err = %v, want unknown authority", err)
	}
	if err := get(&tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12}); err == nil {
		t.Fatal("TLS 1.2 client accepted, want TLS 1.3 minimum")
	}
}
