package e2e

// Sign-in that withstands guessing and revokes what it should: throttling
// and lockout per account and per client address, bounded input,
// revocation on logout and on account changes, refresh-token rotation.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// trustLoopback makes the server believe X-Forwarded-For from the test
// (the loopback proxy), so each request can claim its own client address.
func trustLoopback() mcrtest.Option {
	return mcrtest.WithConfig("server.trusted_proxies", `["127.0.0.1/32", "::1/128"]`)
}

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

// noThrottle turns sign-in throttling off, for tests of other things that
// use wrong passwords on purpose.
func noThrottle() []mcrtest.Option {
	return []mcrtest.Option{
		mcrtest.WithConfig("identity.login_backoff_after", "0"), mcrtest.WithConfig("identity.login_lockout_after", "0"),
		mcrtest.WithConfig("identity.login_ip_backoff_after", "0"), mcrtest.WithConfig("identity.login_ip_lockout_after", "0"),
	}
}

// TestSignInLockout: per-account lockout (30 wrong passwords; the right
// one refused until an admin unlocks; login_locked audited), per-address
// throttling across many usernames, and neither touching another account
// from another address. Every sign-in path answers 429 with Retry-After.
func TestSignInLockout(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t, trustLoopback(),
		// Backoff off so the counts below are exact (the backoff curve is
		// unit-tested in package throttle); lockout after 10 per account,
		// 25 per address, for an hour.
		mcrtest.WithConfig("identity.login_backoff_after", "0"), mcrtest.WithConfig("identity.login_lockout_after", "10"),
		mcrtest.WithConfig("identity.login_ip_backoff_after", "0"), mcrtest.WithConfig("identity.login_ip_lockout_after", "25"),
		mcrtest.WithConfig("identity.login_lockout_duration", `"1h"`))
	srv.AddUser(t, "alice", "alice-password-1", "user", "human")
	srv.AddUser(t, "bob", "bob-password-1", "user", "human")
	srv.AddUser(t, "carol", "carol-password-1", "user", "human")
	admin := srv.Login(t, "admin", mcrtest.AdminPassword)

	// 30 wrong passwords for alice from one address.
	var statuses []int
	for range 30 {
		resp := loginFrom(t, srv, "203.0.113.1", "alice", "wrong-password")
		code, body := drain(t, resp)
		statuses = append(statuses, code)
		if code == http.StatusTooManyRequests {
			ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
			if err != nil || ra < 3000 || ra > 3600 {
				t.Fatalf("429 with Retry-After %q, want the lockout's ~3600 s", resp.Header.Get("Retry-After"))
			}
			var e struct{ Error string }
			if json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
				t.Fatalf("429 body %q is not {\"error\"}", body)
			}
		}
	}
	for i, code := range statuses {
		want := http.StatusUnauthorized
		if i >= 10 {
			want = http.StatusTooManyRequests
		}
		if code != want {
			t.Fatalf("attempt %d: %d, want %d (all: %v)", i+1, code, want, statuses)
		}
	}
	// The right password, from another address, on every path: refused
	// without being checked.
	if code, body := drain(t, loginFrom(t, srv, "203.0.113.2", "alice", "alice-password-1")); code != http.StatusTooManyRequests {
		t.Fatalf("right password during lockout at /v1/auth/login: %d %s", code, body)
	}
	resp := basicFrom(t, srv, "203.0.113.2", "alice", "alice-password-1")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("/v2/token 429 without Retry-After")
	}
	expectOCIError(t, resp, http.StatusTooManyRequests, "TOOMANYREQUESTS")
	req := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-password-1"}, "service": {"mcr"}}
	expectOCIError(t, tokenPOST(t, srv, req), http.StatusTooManyRequests, "TOOMANYREQUESTS")

	locked := auditOf(t, srv, admin, "login_locked", "alice")
	if len(locked) != 1 || locked[0].IP != "203.0.113.1" || locked[0].Details["key"] != "account" {
		t.Fatalf("login_locked rows for alice: %+v, want one, from 203.0.113.1, key account", locked)
	}
	if fails := auditOf(t, srv, admin, "login_fail", "alice"); len(fails) != 10 {
		t.Errorf("%d login_fail rows for alice, want 10: refused attempts must not check (or record) a password", len(fails))
	}

	// Bob, from elsewhere, is unaffected.
	if code, body := drain(t, loginFrom(t, srv, "198.51.100.7", "bob", "bob-password-1")); code != http.StatusOK {
		t.Fatalf("bob from another address: %d %s", code, body)
	}

	// Many usernames from one address: the address is locked after 25.
	for i := range 25 {
		if code, _ := drain(t, loginFrom(t, srv, "203.0.113.9", fmt.Sprintf("spray-%d", i), "wrong-password")); code != http.StatusUnauthorized {
			t.Fatalf("spray %d: %d, want 401", i, code)
		}
	}
	if code, _ := drain(t, basicFrom(t, srv, "203.0.113.9", "carol", "carol-password-1")); code != http.StatusTooManyRequests {
		t.Fatalf("carol from the spraying address: %d, want 429", code)
	}
	if got := auditOf(t, srv, admin, "login_locked", ""); len(got) != 2 {
		t.Errorf("login_locked rows: %+v, want alice's and the address's", got)
	}
	if code, _ := drain(t, basicFrom(t, srv, "203.0.113.10", "carol", "carol-password-1")); code != http.StatusOK {
		t.Fatalf("carol from another address: %d, want 200", code)
	}

	// An admin unlocks alice (mcrctl, through /v1): the right password works.
	r := ctlRun(t, "", nil, "account", "unlock", "alice", "--addr", srv.URL, "--ca-cert", srv.CACert, "--token", admin)
	r.want(t, 0, "mcrctl account unlock", "unlocked alice")
	if code, body := drain(t, loginFrom(t, srv, "203.0.113.2", "alice", "alice-password-1")); code != http.StatusOK {
		t.Fatalf("alice after unlock: %d %s", code, body)
	}
	if len(auditOf(t, srv, admin, "account_unlocked", "admin")) != 1 {
		t.Error("no account_unlocked audit row")
	}
	// Only admins unlock.
	bob := srv.Login(t, "bob", "bob-password-1")
	expectStatus(t, srv.Do(t, http.MethodPost, "/v1/accounts/alice/unlock", bob, nil), http.StatusForbidden)
}

// TestSignInFlood: 500 wrong passwords for one account, sent concurrently
// from many addresses, cost a handful of bcrypt checks, and a manifest GET
// during the flood answers within a second.
func TestSignInFlood(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t, trustLoopback()) // default limits
	srv.AddUser(t, "victim", "victim-password-1", "user", "human")
	const repo = "flood/app"
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, srv, repo+":v1"), img, remoteOpts(t, srv, adminAuth(), nil)...); err != nil {
		t.Fatal(err)
	}
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	pull := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:"+repo+":pull")

	// What one bcrypt check costs on this machine, now.
	hash, err := bcrypt.GenerateFromPassword([]byte("x-password"), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 3 {
		_ = bcrypt.CompareHashAndPassword(hash, []byte("wrong"))
	}
	perCheck := time.Since(start) / 3

	const n, workers = 500, 16
	var sent, refused atomic.Int64
	var wg sync.WaitGroup
	halfway := make(chan struct{})
	var once sync.Once
	floodStart := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := sent.Add(1)
				if i > n {
					return
				}
				if i == n/2 {
					once.Do(func() { close(halfway) })
				}
				ip := fmt.Sprintf("198.51.100.%d", (int(i)+w)%50+1)
				resp := loginFrom(t, srv, ip, "victim", "wrong-password")
				code, _ := drain(t, resp)
				switch code {
				case http.StatusTooManyRequests:
					refused.Add(1)
				case http.StatusUnauthorized:
				default:
					t.Errorf("flood request: status %d", code)
				}
			}
		}()
	}
	<-halfway
	getStart := time.Now()
	expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/manifests/"+digest.String(), pull, nil,
		"Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"), http.StatusOK)
	getTook := time.Since(getStart)
	wg.Wait()
	took := time.Since(floodStart)
	t.Logf("flood: %d wrong passwords in %s (%d refused unchecked); one bcrypt check %s, so %d checks would take %s; manifest GET during the flood %s",
		n, took.Round(time.Millisecond), refused.Load(), perCheck.Round(time.Millisecond), n, (perCheck * n).Round(time.Millisecond), getTook.Round(time.Millisecond))
	if took > perCheck*n/5 {
		t.Errorf("flood took %s, not well under %d × bcrypt (%s)", took, n, perCheck*n)
	}
	if getTook > time.Second {
		t.Errorf("manifest GET during the flood took %s, want < 1 s", getTook)
	}
	admin := srv.Login(t, "admin", mcrtest.AdminPassword)
	if fails := auditOf(t, srv, admin, "login_fail", "victim"); len(fails) > 10 {
		t.Errorf("%d passwords of victim were checked, want at most the lockout threshold (10)", len(fails))
	}
}

// TestSignInInputBounds: oversize usernames and passwords are refused with
// 400 before anything is hashed, logged or audited.
func TestSignInInputBounds(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	huge := strings.Repeat("u", 1<<20)
	b, _ := json.Marshal(map[string]string{"username": huge, "password": "whatever-password"})
	resp := srv.Do(t, http.MethodPost, "/v1/auth/login", "", b, "Content-Type", "application/json")
	if code, body := drain(t, resp); code != http.StatusBadRequest || !strings.Contains(body, `"error"`) {
		t.Fatalf("1 MB username at /v1/auth/login: %d %s", code, body)
	}
	expectOCIError(t, tokenPOST(t, srv, url.Values{"grant_type": {"password"}, "username": {huge}, "password": {"x-password"}}),
		http.StatusBadRequest, "UNSUPPORTED")
	// In a Basic header: 100 KB gets to the handler (400); 1 MB is over
	// the server's header limit and never does (431).
	expectOCIError(t, tokenGET(t, srv, strings.Repeat("u", 100<<10), "x-password", "", nil), http.StatusBadRequest, "UNSUPPORTED")
	hreq, err := http.NewRequest(http.MethodGet, srv.URL+"/v2/token?service=mcr", nil)
	if err != nil {
		t.Fatal(err)
	}
	hreq.SetBasicAuth(huge, "x-password")
	if hresp, err := srv.Client().Do(hreq); err == nil {
		// HTTP/1.1 answers 431; HTTP/2 closes the connection (GOAWAY).
		if code, _ := drain(t, hresp); code != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("1 MB Basic header: %d, want 431", code)
		}
	}
	// A password over the bound, and a flood of scopes.
	long := strings.Repeat("p", 2000)
	b, _ = json.Marshal(map[string]string{"username": "admin", "password": long})
	expectStatus(t, srv.Do(t, http.MethodPost, "/v1/auth/login", "", b, "Content-Type", "application/json"), http.StatusBadRequest)
	expectOCIError(t, tokenGET(t, srv, "admin", mcrtest.AdminPassword, "", url.Values{"scope": {strings.Repeat("repository:a/b:pull ", 2000)}}),
		http.StatusBadRequest, "UNSUPPORTED")
	// A /v1 body over the general bound.
	admin := srv.Login(t, "admin", mcrtest.AdminPassword)
	big := []byte(`{"priority":1,"effect":"allow","actions":["registry:pull"],"description":"` + strings.Repeat("d", 2<<20) + `"}`)
	if code, _ := drain(t, srv.Do(t, http.MethodPost, "/v1/policy/rules", admin, big, "Content-Type", "application/json")); code != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MB policy body: %d, want 413", code)
	}

	// A wrong password with a long (but allowed) username is audited,
	// bounded; nothing longer than the bound reached the audit log or the
	// server's log.
	drain(t, srv.Do(t, http.MethodPost, "/v1/auth/login", "", mustJSON(t, map[string]string{"username": strings.Repeat("v", 256), "password": "wrong-password"}),
		"Content-Type", "application/json"))
	st, page, raw := audGet(t, srv, admin, "n=1000")
	if st != http.StatusOK {
		t.Fatalf("audit: %d %s", st, raw)
	}
	for _, e := range page.Events {
		if len(e.Actor) > 256 || len(e.IP) > 256 {
			t.Errorf("audit row %d holds %d bytes of actor", e.ID, len(e.Actor))
		}
	}
	for _, line := range strings.Split(srv.Output.String(), "\n") {
		if len(line) > 4096 {
			t.Errorf("server log line of %d bytes: %.200s…", len(line), line)
		}
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// creds are the three kinds of token an account can hold.
type creds struct {
	access, session, refresh string
}

func credsOf(t *testing.T, srv *mcrtest.Server, user, pass, repo string) creds {
	t.Helper()
	c := creds{access: srv.Token(t, user, pass, "repository:"+repo+":pull"), session: srv.Login(t, user, pass)}
	tr := decodeToken(t, tokenPOST(t, srv, url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass},
		"service": {"mcr"}, "access_type": {"offline"}}))
	c.refresh = tr.RefreshToken
	if c.refresh == "" {
		t.Fatal("no refresh token")
	}
	return c
}

// check asserts that each token works (ok) or is refused, on its next use.
func (c creds) check(t *testing.T, srv *mcrtest.Server, repo string, ok bool, what string) {
	t.Helper()
	want := func(good int) int {
		if ok {
			return good
		}
		return http.StatusUnauthorized
	}
	if code, _ := drain(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list", c.access, nil)); code != want(http.StatusOK) {
		t.Errorf("%s: access token on /v2: %d, want %d", what, code, want(http.StatusOK))
	}
	if code, _ := drain(t, srv.Do(t, http.MethodGet, "/v1/repositories", c.session, nil)); code != want(http.StatusOK) {
		t.Errorf("%s: session token on /v1: %d, want %d", what, code, want(http.StatusOK))
	}
	resp := tokenPOST(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {c.refresh}, "service": {"mcr"}})
	if code, _ := drain(t, resp); code != want(http.StatusOK) {
		t.Errorf("%s: refresh token: %d, want %d", what, code, want(http.StatusOK))
	}
}

// TestSignInRevocation: logout ends the session's refresh tokens; deleting,
// disabling, changing the password or the role of an account, or an admin
// revoking its tokens, makes its access, session and refresh tokens fail
// on their next use.
func TestSignInRevocation(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	const repo = "revoke/app"
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, srv, repo+":v1"), img, remoteOpts(t, srv, adminAuth(), nil)...); err != nil {
		t.Fatal(err)
	}

	t.Run("logout", func(t *testing.T) {
		srv.AddUser(t, "lou", "lou-password-1", "user", "human")
		session := srv.Login(t, "lou", "lou-password-1")
		tr := decodeToken(t, tokenGET(t, srv, "", "", session, url.Values{"scope": {"repository:" + repo + ":pull"}, "offline_token": {"true"}}))
		if tr.RefreshToken == "" {
			t.Fatal("no refresh token from the session")
		}
		other := credsOf(t, srv, "lou", "lou-password-1", repo) // minted without that session
		expectStatus(t, srv.Do(t, http.MethodPost, "/v1/auth/logout", session, nil), http.StatusNoContent)
		expectOCIError(t, tokenPOST(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "service": {"mcr"}}),
			http.StatusUnauthorized, "UNAUTHORIZED")
		other.check(t, srv, repo, true, "tokens of another session after logout")
	})

	mcrsrv := func(t *testing.T, stdin string, args ...string) {
		t.Helper()
		if out, err := srv.Run(t, stdin, append(args, "--config", srv.ConfigPath)...); err != nil {
			t.Fatalf("mcrsrv %v: %v\n%s", args, err, out)
		}
	}
	admin := srv.Login(t, "admin", mcrtest.AdminPassword)
	for _, tc := range []struct {
		change func(t *testing.T, user string)
		after  func(t *testing.T, user string) // what still or now works
		name   string
	}{
		{func(t *testing.T, u string) { mcrsrv(t, "", "user", "delete", "--username", u) }, func(t *testing.T, u string) {
			expectStatus(t, loginFrom(t, srv, "127.0.0.1", u, u+"-password-1"), http.StatusUnauthorized)
		}, "delete"},
		{func(t *testing.T, u string) { mcrsrv(t, "", "user", "disable", "--username", u) }, func(t *testing.T, u string) {
			expectStatus(t, loginFrom(t, srv, "127.0.0.1", u, u+"-password-1"), http.StatusUnauthorized)
			mcrsrv(t, "", "user", "enable", "--username", u)
			fresh := credsOf(t, srv, u, u+"-password-1", repo)
			fresh.check(t, srv, repo, true, "new tokens after enable")
		}, "disable"},
		{func(t *testing.T, u string) { mcrsrv(t, "new-password-9\n", "user", "passwd", "--username", u) }, func(t *testing.T, u string) {
			expectStatus(t, loginFrom(t, srv, "127.0.0.1", u, u+"-password-1"), http.StatusUnauthorized)
			credsOf(t, srv, u, "new-password-9", repo).check(t, srv, repo, true, "tokens of the new password")
		}, "passwd"},
		{func(t *testing.T, u string) { mcrsrv(t, "", "user", "role", "--username", u, "--role", "admin") }, func(t *testing.T, u string) {
			tr := decodeToken(t, tokenGET(t, srv, u, u+"-password-1", "", url.Values{"scope": {"repository:" + repo + ":delete"}}))
			if !strings.Contains(tr.Scope, "delete") {
				t.Errorf("promoted account not granted delete: %q", tr.Scope)
			}
		}, "role"},
		{func(t *testing.T, u string) {
			ctlRun(t, "", nil, "account", "revoke", u, "--addr", srv.URL, "--ca-cert", srv.CACert, "--token", admin).
				want(t, 0, "mcrctl account revoke", "revoked every token of "+u)
		}, func(t *testing.T, u string) {
			credsOf(t, srv, u, u+"-password-1", repo).check(t, srv, repo, true, "tokens minted after the revocation")
			if len(auditOf(t, srv, admin, "tokens_revoked", "admin")) != 1 {
				t.Error("no tokens_revoked audit row")
			}
		}, "admin revoke"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user := strings.ReplaceAll(tc.name, " ", "") + "user"
			srv.AddUser(t, user, user+"-password-1", "user", "human")
			c := credsOf(t, srv, user, user+"-password-1", repo)
			c.check(t, srv, repo, true, "before "+tc.name)
			// The check above put every token in the server's caches.
			c = credsOf(t, srv, user, user+"-password-1", repo)
			if code, _ := drain(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list", c.access, nil)); code != http.StatusOK {
				t.Fatalf("fresh access token: %d", code)
			}
			tc.change(t, user)
			c.check(t, srv, repo, false, "after "+tc.name)
			tc.after(t, user)
		})
	}
}

// TestSignInMCIASThrottled: MCIAS-backed sign-ins are throttled the same
// way, and a locked account's attempts never reach MCIAS; a lockout ends
// by itself after login_lockout_duration.
func TestSignInMCIASThrottled(t *testing.T) {
	t.Parallel()
	fake, srv := startMCIAS(t,
		mcrtest.WithConfig("identity.login_backoff_after", "0"), mcrtest.WithConfig("identity.login_lockout_after", "3"),
		mcrtest.WithConfig("identity.login_lockout_duration", `"2s"`))
	fake.AddUser("dora", "dora-password-1", "human", "user")
	for i := range 3 {
		if code, _ := drain(t, tokenGET(t, srv, "dora", "wrong-password", "", nil)); code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d, want 401", i+1, code)
		}
	}
	calls := fake.LoginCalls()
	resp := tokenGET(t, srv, "dora", "dora-password-1", "", nil)
	retry, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	expectOCIError(t, resp, http.StatusTooManyRequests, "TOOMANYREQUESTS")
	b, _ := json.Marshal(map[string]string{"username": "dora", "password": "dora-password-1"})
	expectStatus(t, srv.Do(t, http.MethodPost, "/v1/auth/login", "", b, "Content-Type", "application/json"), http.StatusTooManyRequests)
	if n := fake.LoginCalls(); n != calls {
		t.Errorf("%d sign-ins of a locked account reached MCIAS", n-calls)
	}
	if retry < 1 || retry > 2 {
		t.Fatalf("Retry-After %d, want 1-2 s", retry)
	}
	// Poll (the condition, not a fixed wait) until the lockout has ended.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := drain(t, tokenGET(t, srv, "dora", "dora-password-1", "", nil))
		if code == http.StatusOK {
			break
		}
		if code != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("after the lockout: %d, want 429 until it ends, then 200", code)
		}
		<-time.After(100 * time.Millisecond)
	}
}
