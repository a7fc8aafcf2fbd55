package webui_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// TestBehindTLSProxy runs mcr-web as it runs behind a TLS-terminating
// proxy: plain HTTP, web.secure_cookies = true, the proxy (loopback) in
// web.trusted_proxies, mcr-web (loopback) in mcrsrv's
// server.trusted_proxies. Cookies are Secure, HSTS is sent, and sign-ins
// are throttled and audited by the browser's address, not mcr-web's.
func TestBehindTLSProxy(t *testing.T) {
	srv := mcrtest.Start(t,
		mcrtest.WithConfig("server.trusted_proxies", `["127.0.0.1/32"]`),
		mcrtest.WithConfig("identity.login_backoff_after", "0"), mcrtest.WithConfig("identity.login_lockout_after", "2"))
	srv.AddUser(t, "wendy", "wendy-password-1", "user", "human")
	base := startWeb(t, srv, "MCR_WEB_SECURE_COOKIES=true", "MCR_WEB_TRUSTED_PROXIES=127.0.0.1/32")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	resp, err := noRedirect.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS with web.secure_cookies = true")
	}
	var csrf *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "mcr_csrf" {
			csrf = c
		}
	}
	if csrf == nil || !csrf.Secure || !csrf.HttpOnly {
		t.Fatalf("CSRF cookie %+v, want Secure and HttpOnly", csrf)
	}

	// The browser (203.0.113.77 says the proxy) signs in with a wrong
	// password until the account is locked; the third try is refused 429.
	signIn := func(pass string) (int, string, *http.Response) {
		t.Helper()
		form := url.Values{"username": {"wendy"}, "password": {pass}, "csrf_token": {csrf.Value}}
		req, _ := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", "203.0.113.77")
		req.AddCookie(&http.Cookie{Name: csrf.Name, Value: csrf.Value}) // a browser sends it: the page is HTTPS to it
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b), resp
	}
	for range 2 {
		if code, _, _ := signIn("wrong-password"); code != http.StatusUnauthorized {
			t.Fatalf("wrong password through mcr-web: %d, want 401", code)
		}
	}
	code, body, r := signIn("wendy-password-1")
	if code != http.StatusTooManyRequests || !strings.Contains(body, "Too many failed sign-ins") || r.Header.Get("Retry-After") == "" {
		t.Fatalf("right password while locked, through mcr-web: %d, Retry-After %q", code, r.Header.Get("Retry-After"))
	}

	admin := srv.Login(t, "admin", mcrtest.AdminPassword)
	aresp := srv.Do(t, http.MethodGet, "/v1/audit?event_type=login_locked", admin, nil)
	defer aresp.Body.Close()
	var page struct {
		Events []struct {
			Actor string `json:"actor"`
			IP    string `json:"ip"`
		} `json:"events"`
	}
	if err := json.NewDecoder(aresp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 || page.Events[0].Actor != "wendy" || page.Events[0].IP != "203.0.113.77" {
		t.Fatalf("login_locked rows %+v, want wendy from the browser's address 203.0.113.77", page.Events)
	}

	// After an admin unlock, the sign-in succeeds with a Secure session
	// cookie.
	if u := srv.Do(t, http.MethodPost, "/v1/accounts/wendy/unlock", admin, nil); u.StatusCode != http.StatusOK {
		t.Fatalf("unlock: %d", u.StatusCode)
	}
	code, _, r = signIn("wendy-password-1")
	if code != http.StatusSeeOther {
		t.Fatalf("sign-in after unlock: %d, want 303", code)
	}
	var session *http.Cookie
	for _, c := range r.Cookies() {
		if c.Name == "mcr_session" {
			session = c
		}
	}
	if session == nil || !session.Secure || !session.HttpOnly {
		t.Fatalf("session cookie %+v, want Secure and HttpOnly", session)
	}
}
