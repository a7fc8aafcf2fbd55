package e2e

// Sign-in that withstands guessing and revokes what it should: throttling
// and lockout per account and per client address, bounded input,
// revocation on logout and on account changes, refresh-token rotation.

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// auditOf returns the audit rows of one type (and actor, if given), read
// as the admin.
func auditOf(t testing.TB, srv *mcrtest.Server, admin, typ, actor string) []audEvent {
	t.Helper()
	status, page, raw := audGet(t, srv, admin, "event_type="+url.QueryEscape(typ)+"&n=1000")
	if status != http.StatusOK {
		t.Fatalf("GET /v1/audit: %d %s", status, raw)
	}
	var out []audEvent
	for _, e := range page.Events {
		if actor == "" || e.Actor == actor {
			out = append(out, e)
		}
	}
	return out
}

// loginFrom tries /v1/auth/login as if from ip (the server trusts the
// loopback proxy, so X-Forwarded-For names the client).
func loginFrom(t testing.TB, srv *mcrtest.Server, ip, user, pass string) *http.Response {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"username": user, "password": pass})
	return srv.Do(t, http.MethodPost, "/v1/auth/login", "", b, "Content-Type", "application/json", "X-Forwarded-For", ip)
}

// basicFrom asks /v2/token with Basic credentials as if from ip.
func basicFrom(t testing.TB, srv *mcrtest.Server, ip, user, pass string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/v2/token?service=mcr&scope=repository:x/y:pull", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pass)
	req.Header.Set("X-Forwarded-For", ip)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func drain(t testing.TB, resp *http.Response) (int, string) {
	t.Helper()
	return resp.StatusCode, string(readAll(t, resp))
}

var _ = strings.Repeat

// noThrottle turns sign-in throttling off, for tests of other things that
// use wrong passwords on purpose.
func noThrottle() []mcrtest.Option {
	return []mcrtest.Option{
		mcrtest.WithConfig("identity.login_backoff_after", "0"), mcrtest.WithConfig("identity.login_lockout_after", "0"),
		mcrtest.WithConfig("identity.login_ip_backoff_after", "0"), mcrtest.WithConfig("identity.login_ip_lockout_after", "0"),
	}
}
