package webui

import (
	"bytes"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

var testKey = bytes.Repeat([]byte{7}, 32)

// env is a web UI in front of a fake API, and a cookie-keeping client.
type env struct {
	t    *testing.T
	api  *fakeAPI
	ui   *Server
	web  *httptest.Server
	jar  *cookiejar.Jar
	hc   *http.Client
	base *url.URL
}

func newEnv(t *testing.T, mod ...func(*Options)) *env {
	t.Helper()
	api, apiSrv := newFakeAPI(t)
	opts := Options{APIURL: apiSrv.URL, SessionKey: testKey, RegistryHost: "registry.example:8443", Version: "test"}
	for _, m := range mod {
		m(&opts)
	}
	ui, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(ui)
	t.Cleanup(web.Close)
	jar, _ := cookiejar.New(nil)
	base, _ := url.Parse(web.URL)
	return &env{t: t, api: api, ui: ui, web: web, jar: jar, base: base, hc: &http.Client{
		Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type resp struct {
	header http.Header
	body   string
	status int
}

func (e *env) do(req *http.Request) resp {
	e.t.Helper()
	r, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{r.Header, string(b), r.StatusCode}
}

func (e *env) get(path string, header ...string) resp {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.web.URL+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return e.do(req)
}

func (e *env) cookie(name string) string {
	for _, c := range e.jar.Cookies(e.base) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// post sends a form with the CSRF token from the cookie (unless the form
// already has one or noCSRF is set in it).
func (e *env) post(path string, form url.Values, header ...string) resp {
	e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if form.Get("noCSRF") != "" {
		form.Del("noCSRF")
	} else if form.Get(csrfField) == "" {
		form.Set(csrfField, e.cookie(csrfCookie))
	}
	req, _ := http.NewRequest(http.MethodPost, e.web.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return e.do(req)
}

// login signs in through the form.
func (e *env) login(user, pass string) resp {
	e.t.Helper()
	e.get("/login")
	return e.post("/login", url.Values{"username": {user}, "password": {pass}})
}

func (e *env) loginOK(user, pass string) {
	e.t.Helper()
	r := e.login(user, pass)
	if r.status != http.StatusSeeOther {
		e.t.Fatalf("sign-in as %s: status %d\n%s", user, r.status, r.body)
	}
}

func want(t *testing.T, r resp, status int, substrings ...string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d\n%s", r.status, status, r.body)
	}
	for _, s := range substrings {
		if !strings.Contains(r.body, s) {
			t.Fatalf("body lacks %q\n%s", s, r.body)
		}
	}
}

func lacks(t *testing.T, r resp, substrings ...string) {
	t.Helper()
	for _, s := range substrings {
		if strings.Contains(r.body, s) {
			t.Fatalf("body unexpectedly has %q\n%s", s, r.body)
		}
	}
}

var (
	inlineScript = regexp.MustCompile(`<script(?:\s[^>]*)?>`)
	inlineEvent  = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
	styleAttr    = regexp.MustCompile(`(?i)\sstyle\s*=`)
)

// checkNoInline fails on markup the CSP would block: inline scripts,
// event-handler attributes, style attributes.
func checkNoInline(t *testing.T, page string, body string) {
	t.Helper()
	for _, tag := range inlineScript.FindAllString(body, -1) {
		if !strings.Contains(tag, "src=") {
			t.Errorf("%s: inline script %s", page, tag)
		}
	}
	if m := inlineEvent.FindString(body); m != "" {
		t.Errorf("%s: event handler attribute %q", page, m)
	}
	if m := styleAttr.FindString(body); m != "" {
		t.Errorf("%s: style attribute %q", page, m)
	}
}

func TestSecurityHeadersAndNoInlineScript(t *testing.T) {
	e := newEnv(t)
	r := e.get("/login")
	want(t, r, 200, "Sign in to MCR")
	csp := r.header.Get("Content-Security-Policy")
	for _, s := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, s) {
			t.Errorf("CSP %q lacks %q", csp, s)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP allows unsafe code: %q", csp)
	}
	for h, v := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"} {
		if got := r.header.Get(h); got != v {
			t.Errorf("%s = %q, want %q", h, got, v)
		}
	}
	if r.header.Get("Strict-Transport-Security") != "" {
		t.Error("HSTS sent over plain HTTP")
	}
	e.loginOK("admin", "admin-pw")
	e.api.gcRunning = true
	for _, p := range []string{"/login", "/", "/repositories", "/repositories/team/app", "/repositories/team/app/-/manifests/" + appDigest,
		"/repositories/team/app/-/delete", "/policies", "/audit", "/gc", "/nope"} {
		r := e.get(p)
		if r.status >= 500 {
			t.Errorf("%s: status %d", p, r.status)
		}
		checkNoInline(t, p, r.body)
		if r.header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: no X-Frame-Options", p)
		}
	}
}

func TestStaticAssetsEmbedded(t *testing.T) {
	e := newEnv(t)
	for path, ctype := range map[string]string{"/static/htmx.min.js": "javascript", "/static/app.js": "javascript",
		"/static/style.css": "text/css", "/static/favicon.svg": "image/svg+xml"} {
		r := e.get(path)
		want(t, r, 200)
		if !strings.Contains(r.header.Get("Content-Type"), ctype) {
			t.Errorf("%s: Content-Type %q", path, r.header.Get("Content-Type"))
		}
		if len(r.body) < 100 {
			t.Errorf("%s: only %d bytes", path, len(r.body))
		}
	}
	if r := e.get("/static/htmx.min.js"); !strings.Contains(r.body, "htmx") {
		t.Error("htmx.min.js is not htmx")
	}
	want(t, e.get("/healthz"), 200, "ok")
}

func TestSignInFlow(t *testing.T) {
	e := newEnv(t)
	r := e.get("/repositories?q=x")
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/login?next=") {
		t.Fatalf("signed-out page: status %d Location %q", r.status, r.header.Get("Location"))
	}
	e.get("/login")
	r = e.post("/login", url.Values{"username": {"admin"}, "password": {"admin-pw"}, "next": {"/repositories?q=team"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/repositories?q=team" {
		t.Fatalf("sign-in: status %d Location %q\n%s", r.status, r.header.Get("Location"), r.body)
	}
	var sess *http.Cookie
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == sessionCookie {
			sess = c
		}
	}
	if sess == nil {
		t.Fatal("no session cookie")
	}
	if !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Secure {
		t.Errorf("session cookie HttpOnly=%v SameSite=%v Secure=%v; want HttpOnly, Strict, not Secure over HTTP", sess.HttpOnly, sess.SameSite, sess.Secure)
	}
	if strings.Contains(sess.Value, "tok-admin") {
		t.Error("the API token is readable in the session cookie")
	}
	// An open redirect is refused.
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example", "/\t/evil.example", "/login?next=//x"} {
		if got := safeNext(next); got != "/" {
			t.Errorf("safeNext(%q) = %q", next, got)
		}
	}
	if got := safeNext("/audit?event_type=login_ok"); got != "/audit?event_type=login_ok" {
		t.Errorf("safeNext kept %q", got)
	}
	want(t, e.get("/"), 200, "Dashboard", "Recent pushes", "team/app")
	// Signed in, /login goes to the dashboard.
	if r := e.get("/login"); r.status != http.StatusSeeOther {
		t.Errorf("/login while signed in: %d", r.status)
	}
}

func TestSignInErrors(t *testing.T) {
	e := newEnv(t)
	want(t, e.login("admin", "wrong"), http.StatusUnauthorized, "Wrong username or password")
	want(t, e.login("", ""), http.StatusBadRequest, "Enter your username and password")
	r := e.login("gina", "gina-pw")
	want(t, r, http.StatusForbidden, "Guest accounts cannot use the web dashboard")
	if e.cookie(sessionCookie) != "" {
		t.Error("a guest got a session")
	}
	e.api.mu.Lock()
	revoked := 0
	for tok, u := range e.api.tokens {
		if u == "gina" && e.api.revoked[tok] {
			revoked++
		}
	}
	e.api.mu.Unlock()
	if revoked != 1 {
		t.Errorf("the guest's token was not revoked (%d)", revoked)
	}
	// No CSRF token: the form is shown again.
	want(t, e.post("/login", url.Values{"username": {"admin"}, "password": {"admin-pw"}, csrfField: {"forged.token"}}),
		http.StatusForbidden, "sign-in form expired")
}

func TestSecureCookiesOverTLS(t *testing.T) {
	api, apiSrv := newFakeAPI(t)
	_ = api
	ui, err := New(Options{APIURL: apiSrv.URL, SessionKey: testKey, Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewTLSServer(ui)
	defer web.Close()
	hc := web.Client()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	r, err := hc.Get(web.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.Header.Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS over TLS")
	}
	var csrf string
	for _, c := range r.Cookies() {
		if c.Name == csrfCookie {
			csrf = c.Value
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("CSRF cookie Secure=%v HttpOnly=%v SameSite=%v", c.Secure, c.HttpOnly, c.SameSite)
			}
		}
	}
	form := url.Values{"username": {"admin"}, "password": {"admin-pw"}, csrfField: {csrf}}
	req, _ := http.NewRequest(http.MethodPost, web.URL+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: csrfCookie, Value: csrf})
	r, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	found := false
	for _, c := range r.Cookies() {
		if c.Name == sessionCookie {
			found = true
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("session cookie Secure=%v HttpOnly=%v SameSite=%v", c.Secure, c.HttpOnly, c.SameSite)
			}
		}
	}
	if !found {
		t.Fatalf("no session cookie after sign-in over TLS (status %d)", r.StatusCode)
	}
}

func TestTamperedOrForeignSession(t *testing.T) {
	e := newEnv(t)
	e.loginOK("admin", "admin-pw")
	v := e.cookie(sessionCookie)
	b := []byte(v)
	b[len(b)/2] ^= 1
	e.jar.SetCookies(e.base, []*http.Cookie{{Name: sessionCookie, Value: string(b), Path: "/"}})
	if r := e.get("/"); r.status != http.StatusSeeOther {
		t.Errorf("tampered session: status %d", r.status)
	}
	other, _ := newSealer(bytes.Repeat([]byte{9}, 32))
	forged, _ := other.seal(&Session{ID: "x", Token: "tok-admin-0", Username: "admin", Roles: []string{"admin"}, Expires: time.Now().Add(time.Hour)})
	e.jar.SetCookies(e.base, []*http.Cookie{{Name: sessionCookie, Value: forged, Path: "/"}})
	if r := e.get("/"); r.status != http.StatusSeeOther {
		t.Errorf("session sealed with another key: status %d", r.status)
	}
}

func TestExpiredTokenSendsToSignIn(t *testing.T) {
	e := newEnv(t)
	e.loginOK("admin", "admin-pw")
	e.api.mu.Lock()
	for tok := range e.api.tokens {
		e.api.revoked[tok] = true
	}
	e.api.mu.Unlock()
	r := e.get("/repositories")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/login?expired=1" {
		t.Fatalf("API 401: status %d Location %q", r.status, r.header.Get("Location"))
	}
	if e.cookie(sessionCookie) != "" {
		t.Error("session cookie not cleared")
	}
	want(t, e.get("/login?expired=1"), 200, "Your session has expired")

	// htmx requests are redirected with HX-Redirect.
	e.loginOK("admin", "admin-pw")
	e.api.mu.Lock()
	for tok := range e.api.tokens {
		e.api.revoked[tok] = true
	}
	e.api.mu.Unlock()
	r = e.get("/repositories?q=x", "HX-Request", "true", "HX-Target", "repo-results")
	if r.header.Get("HX-Redirect") != "/login?expired=1" {
		t.Errorf("htmx + API 401: HX-Redirect %q", r.header.Get("HX-Redirect"))
	}
}

func TestSessionExpiresWithToken(t *testing.T) {
	now := time.Now()
	e := newEnv(t, func(o *Options) { o.Now = func() time.Time { return now } })
	e.loginOK("admin", "admin-pw")
	want(t, e.get("/"), 200)
	now = now.Add(9 * time.Hour) // the fake's tokens last 8 h
	if r := e.get("/"); r.status != http.StatusSeeOther {
		t.Errorf("after the token's expiry: status %d", r.status)
	}
}

func TestCSRFRequiredOnEveryPost(t *testing.T) {
	e := newEnv(t)
	e.loginOK("admin", "admin-pw")
	create := url.Values{"priority": {"5"}, "effect": {"deny"}, "actions": {"registry:pull"}}
	noTok := url.Values{"noCSRF": {"1"}}
	for k, v := range create {
		noTok[k] = v
	}
	for _, p := range []string{"/policies", "/gc", "/repositories/team/app/-/delete", "/logout"} {
		r := e.post(p, url.Values{"noCSRF": {"1"}, "priority": {"5"}, "effect": {"deny"}, "actions": {"registry:pull"}, "confirm": {"team/app"}})
		want(t, r, http.StatusForbidden, "CSRF")
	}
	// A token signed for another session does not do either.
	foreign := e.ui.sealer.csrfToken("another-session")
	e.jar.SetCookies(e.base, []*http.Cookie{{Name: csrfCookie, Value: foreign, Path: "/"}})
	want(t, e.post("/policies", url.Values{csrfField: {foreign}, "priority": {"5"}, "effect": {"deny"}, "actions": {"registry:pull"}}), http.StatusForbidden, "CSRF")
	// A token that differs from the cookie is refused.
	e.get("/policies") // fresh, valid cookie
	want(t, e.post("/policies", url.Values{csrfField: {e.ui.sealer.csrfToken(sessionID(t, e))}, "priority": {"5"}, "effect": {"deny"}, "actions": {"registry:pull"}}),
		http.StatusForbidden, "CSRF")
	if len(e.api.rules) != 0 || len(e.api.deleted) != 0 || e.api.gcRunning {
		t.Fatal("a request without a valid CSRF token changed something")
	}
	// The header (htmx) is accepted.
	r := e.post("/policies", create, csrfHeader, e.cookie(csrfCookie))
	if r.status != http.StatusSeeOther {
		t.Fatalf("POST with the CSRF header: %d\n%s", r.status, r.body)
	}
}

func sessionID(t *testing.T, e *env) string {
	var s Session
	if err := e.ui.sealer.open(e.cookie(sessionCookie), &s); err != nil {
		t.Fatal(err)
	}
	return s.ID
}

func TestSignOut(t *testing.T) {
	e := newEnv(t)
	e.loginOK("admin", "admin-pw")
	r := e.post("/logout", nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/login?out=1" {
		t.Fatalf("sign-out: %d %q", r.status, r.header.Get("Location"))
	}
	if e.cookie(sessionCookie) != "" {
		t.Error("session cookie kept")
	}
	e.api.mu.Lock()
	for tok := range e.api.tokens {
		if !e.api.revoked[tok] {
			t.Errorf("token %s not revoked", tok)
		}
	}
	e.api.mu.Unlock()
	if r := e.get("/"); r.status != http.StatusSeeOther {
		t.Errorf("after sign-out: %d", r.status)
	}
}

func TestDashboard(t *testing.T) {
	e := newEnv(t)
	e.loginOK("admin", "admin-pw")
	r := e.get("/")
	want(t, r, 200, `id="stat-repos">2<`, "1.2 MiB", "Recent pushes", "sha256:111111111111")
	if q := e.api.auditQueries[len(e.api.auditQueries)-1]; q.Get("event_type") != "manifest_pushed" {
		t.Errorf("dashboard audit query %v", q)
	}

	u := newEnv(t)
	u.loginOK("alice", "alice-pw")
	r = u.get("/")
	want(t, r, 200, "Recently pushed repositories", "team/app")
	lacks(t, r, "Recent pushes", `href="/policies"`, `href="/audit"`)
	if len(u.api.auditQueries) != 0 {
		t.Error("the dashboard read the audit log for a non-admin")
	}

	empty := newEnv(t)
	empty.api.repos = map[string]*RepoDetail{}
	empty.loginOK("admin", "admin-pw")
	want(t, empty.get("/"), 200, "No images yet", "docker push registry.example:8443/")
}

func TestRepositories(t *testing.T) {
	e := newEnv(t)
	e.loginOK("alice", "alice-pw")
	r := e.get("/repositories")
	want(t, r, 200, "team/app", "infra/tools", "1.2 MiB", "2.0 KiB", "<html")
	// htmx filter: only the results block.
	r = e.get("/repositories?q=tools", "HX-Request", "true", "HX-Target", "repo-results")
	want(t, r, 200, `id="repo-results"`, "infra/tools")
	lacks(t, r, "team/app", "<html")
	if q := e.api.repoQueries[len(e.api.repoQueries)-1]; q.Get("q") != "tools" {
		t.Errorf("filter not passed to the API: %v", q)
	}
	want(t, e.get("/repositories?q=nothing-like-this"), 200, "No repository matches")

	// Pagination: 30 more repositories make two pages.
	for i := 0; i < 30; i++ {
		n := "bulk/r" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		e.api.repos[n] = &RepoDetail{RepoSummary: RepoSummary{Name: n}}
	}
	r = e.get("/repositories")
	want(t, r, 200, "Page 1 of 2", `href="/repositories?page=2"`)
	r = e.get("/repositories?page=2")
	want(t, r, 200, "Page 2 of 2", "team/app", "← Previous")
	if q := e.api.repoQueries[len(e.api.repoQueries)-1]; q.Get("offset") != "25" || q.Get("n") != "25" {
		t.Errorf("page 2 query %v", q)
	}
	want(t, e.get("/repositories?page=9"), 200, "No more repositories")

	none := newEnv(t)
	none.api.repos = map[string]*RepoDetail{}
	none.loginOK("alice", "alice-pw")
	want(t, none.get("/repositories"), 200, "No repositories yet", "docker push registry.example:8443/team/app:1.0")
}

func TestRepositoryDetail(t *testing.T) {
	e := newEnv(t)
	e.loginOK("admin", "admin-pw")
	r := e.get("/repositories/team/app")
	want(t, r, 200, "team/app", "1.0", "sha256:111111111111", "OCI image manifest", "700 B", "1 referrer",
		"docker pull registry.example:8443/team/app:1.0", `href="/repositories/team/app/-/delete"`)
	want(t, e.get("/repositories/no/such"), http.StatusNotFound, "Repository not found", "no/such")
	want(t, e.get("/repositories/Bad..Name"), http.StatusBadRequest, "Invalid repository name")
	want(t, e.get("/repositories/team/app/-/nope"), http.StatusNotFound)

	u := newEnv(t)
	u.loginOK("alice", "alice-pw")
	r = u.get("/repositories/team/app")
	want(t, r, 200, "team/app")
	lacks(t, r, "Delete repository")
	want(t, u.get("/repositories/team/app/-/delete"), http.StatusForbidden, "Only administrators")
}

func TestManifestDetail(t *testing.T) {
	e := newEnv(t)
	e.loginOK("alice", "alice-pw")
	r := e.get("/repositories/team/app/-/manifests/" + appDigest)
	want(t, r, 200,
		"docker pull registry.example:8443/team/app@"+appDigest,
		"docker pull registry.example:8443/team/app:1.0",
		`id="layers-table"`, "977 KiB", "228 KiB", "1.2 MiB in total",
		`&#34;schemaVersion&#34;: 2`, // pretty-printed, escaped
		"application/vnd.dev.cosign.signature", "sha256:222222222222")
	// The referrer links back to its subject.
	want(t, e.get("/repositories/team/app/-/manifests/"+sigDigest), 200, "Refers to", appDigest)
	want(t, e.get("/repositories/team/app/-/manifests/sha256:9999999999999999999999999999999999999999999999999999999999999999"),
		http.StatusNotFound, "Manifest not found")
	want(t, e.get("/repositories/team/app/-/manifests/not-a-digest"), http.StatusBadRequest, "Invalid digest")
	want(t, e.get("/repositories/none/here/-/manifests/"+appDigest), http.StatusNotFound, "Repository not found")
	e.api.registryDown = true
	want(t, e.get("/repositories/team/app/-/manifests/"+appDigest), 200, "could not be loaded", "storage unavailable", "docker pull")
}

func TestRepositoryDelete(t *testing.T) {
	e := newEnv(t)
	e.loginOK("admin", "admin-pw")
	want(t, e.get("/repositories/team/app/-/delete"), 200, "Delete team/app?", "1 tag</strong>", "2 manifests")
	r := e.post("/repositories/team/app/-/delete", url.Values{"confirm": {"team/ap"}})
	want(t, r, http.StatusUnprocessableEntity, "Type the repository name exactly")
	if len(e.api.deleted) != 0 {
		t.Fatal("deleted without confirmation")
	}
	r = e.post("/repositories/team/app/-/delete", url.Values{"confirm": {"team/app"}})
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/repositories?done=repo-deleted") {
		t.Fatalf("delete: %d %q", r.status, r.header.Get("Location"))
	}
	if len(e.api.deleted) != 1 || e.api.deleted[0] != "team/app" {
		t.Fatalf("deleted %v", e.api.deleted)
	}
	want(t, e.get(r.header.Get("Location")), 200, "Repository team/app was deleted")
	want(t, e.post("/repositories/team/app/-/delete", url.Values{"confirm": {"team/app"}}), http.StatusNotFound, "Repository not found")

	u := newEnv(t)
	u.loginOK("alice", "alice-pw")
	want(t, u.post("/repositories/team/app/-/delete", url.Values{"confirm": {"team/app"}}), http.StatusForbidden, "Administrators only")
	if len(u.api.deleted) != 0 {
		t.Fatal("a user deleted a repository")
	}
}

func TestPolicies(t *testing.T) {
	u := newEnv(t)
	u.loginOK("alice", "alice-pw")
	want(t, u.get("/policies"), http.StatusForbidden, "Administrators only")
	want(t, u.post("/policies", url.Values{"priority": {"1"}, "effect": {"deny"}, "actions": {"registry:pull"}}), http.StatusForbidden)

	e := newEnv(t)
	e.loginOK("admin", "admin-pw")
	want(t, e.get("/policies"), 200, "No stored rules", "New rule", "Built-in rules")

	// Malformed forms come back with the error and the values kept.
	r := e.post("/policies", url.Values{"priority": {"abc"}, "effect": {"deny"}, "description": {"keep me"}, "actions": {"registry:push"}})
	want(t, r, http.StatusUnprocessableEntity, "Priority must be a whole number", `value="keep me"`, `value="registry:push" id="action-registry:push" checked`)
	want(t, e.post("/policies", url.Values{"priority": {"3"}, "effect": {"deny"}}), http.StatusUnprocessableEntity, "at least one action")
	want(t, e.post("/policies", url.Values{"priority": {"3"}, "effect": {"maybe"}, "actions": {"registry:push"}}), http.StatusUnprocessableEntity, "allows or denies")
	want(t, e.post("/policies", url.Values{"priority": {"3"}, "effect": {"deny"}, "actions": {"registry:fly"}}), http.StatusUnprocessableEntity, "unknown action")
	want(t, e.post("/policies", url.Values{"priority": {"3"}, "effect": {"deny"}, "actions": {"registry:push"}, "repositories": {"/abs"}}),
		http.StatusUnprocessableEntity, "The registry rejected the rule", "must not start with")
	if len(e.api.rules) != 0 {
		t.Fatal("an invalid form created a rule")
	}

	r = e.post("/policies", url.Values{"priority": {"10"}, "effect": {"deny"}, "description": {"freeze team"}, "actions": {"registry:push", "registry:delete"},
		"roles": {"user"}, "account_types": {"human"}, "repositories": {"team/*, prod/*"}, "enabled": {"1"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("create: %d\n%s", r.status, r.body)
	}
	rule := e.api.rules[1]
	if rule == nil || rule.Priority != 10 || rule.Effect != "deny" || !rule.Enabled || len(rule.Actions) != 2 ||
		strings.Join(rule.Repositories, "|") != "team/*|prod/*" || rule.Roles[0] != "user" || rule.AccountTypes[0] != "human" {
		t.Fatalf("created rule %+v", rule)
	}
	want(t, e.get(r.header.Get("Location")), 200, "Policy rule #1 was created", "freeze team", "registry:delete", "prod/*")

	hx := []string{"HX-Request", "true", "HX-Target", "rule-1"}
	// Toggle (htmx): the row comes back disabled.
	r = e.post("/policies/1/toggle", url.Values{"enabled": {"false"}}, hx...)
	want(t, r, 200, `id="rule-1"`, "is-disabled", `aria-checked="false"`)
	lacks(t, r, "<html")
	if e.api.rules[1].Enabled {
		t.Fatal("toggle did not disable")
	}
	want(t, e.post("/policies/1/toggle", url.Values{"enabled": {"maybe"}}), http.StatusBadRequest)
	// Toggle without htmx redirects back.
	if r := e.post("/policies/1/toggle", url.Values{"enabled": {"true"}}); r.status != http.StatusSeeOther || !e.api.rules[1].Enabled {
		t.Fatalf("plain toggle: %d enabled=%v", r.status, e.api.rules[1].Enabled)
	}

	// Edit priority and description.
	want(t, e.get("/policies/1/edit", hx...), 200, `name="priority"`, `value="10"`, `value="freeze team"`)
	want(t, e.get("/policies/1/edit"), 200, "<html", `value="freeze team"`) // no-JS fallback: whole page
	want(t, e.post("/policies/1", url.Values{"priority": {"0"}, "description": {"x"}}, hx...), http.StatusUnprocessableEntity, "Priority must be", `value="0"`)
	r = e.post("/policies/1", url.Values{"priority": {"20"}, "description": {"freeze team images"}}, hx...)
	want(t, r, 200, "freeze team images", ">20<")
	if e.api.rules[1].Priority != 20 {
		t.Fatal("priority not updated")
	}
	want(t, e.get("/policies/1", hx...), 200, "freeze team images")

	// Delete with a confirm step.
	want(t, e.get("/policies/1/delete", hx...), 200, "Delete rule #1", "cannot be undone")
	want(t, e.get("/policies/1/delete"), 200, "<html", "Delete rule #1")
	r = e.post("/policies/1/delete", nil, hx...)
	want(t, r, 200)
	if strings.TrimSpace(r.body) != "" || len(e.api.rules) != 0 {
		t.Fatalf("htmx delete: body %q rules %d", r.body, len(e.api.rules))
	}
	want(t, e.get("/policies/1/edit"), http.StatusNotFound, "Rule not found")
	want(t, e.post("/policies/1/delete", nil), http.StatusNotFound, "no policy rule #1")
	want(t, e.get("/policies/abc/edit"), http.StatusNotFound, "not a policy rule id")
}

func TestAudit(t *testing.T) {
	u := newEnv(t)
	u.loginOK("alice", "alice-pw")
	want(t, u.get("/audit"), http.StatusForbidden, "Administrators only")

	e := newEnv(t)
	e.loginOK("admin", "admin-pw")
	r := e.get("/audit")
	want(t, r, 200, "policy_deny", "manifest_pushed", "login_ok", "alice", "OCI image manifest", "700 B",
		`href="/audit?actor_id=`+aliceSubID+`"`)

	r = e.get("/audit?event_type=manifest_pushed&repository=team/app&actor_id=admin-sub&since=2026-01-02&until=2026-01-31")
	want(t, r, 200, "manifest_pushed", `value="team/app"`, "Reset")
	q := e.api.auditQueries[len(e.api.auditQueries)-1]
	if q.Get("event_type") != "manifest_pushed" || q.Get("repository") != "team/app" || q.Get("actor_id") != "admin-sub" ||
		q.Get("since") != "2026-01-02T00:00:00Z" || q.Get("until") != "2026-01-31T23:59:59.999999999Z" {
		t.Errorf("audit query %v", q)
	}

	want(t, e.get("/audit?since=yesterday"), http.StatusBadRequest, "must be a date")
	want(t, e.get("/audit?since=2026-02-01&until=2026-01-01"), http.StatusBadRequest, "must not be before")
	want(t, e.get("/audit?event_type=bogus"), http.StatusBadRequest, "unknown event type")
	want(t, e.get("/audit?event_type=gc_started"), 200, "No events match this filter")

	// Paging: 120 events make a "Load older events" link with the cursor.
	for i := int64(100); i < 220; i++ {
		e.api.events = append([]AuditEvent{{ID: i, Time: time.Now(), Type: "manifest_pulled", Repository: "team/app"}}, e.api.events...)
	}
	r = e.get("/audit")
	want(t, r, 200, "Load older events", "before=")
	m := regexp.MustCompile(`href="(/audit\?before=\d+)"`).FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no load-more link\n%s", r.body)
	}
	r = e.get(m[1], "HX-Request", "true", "HX-Target", "")
	want(t, r, 200, "manifest_pulled")
	lacks(t, r, "<html", "<table")
	if q := e.api.auditQueries[len(e.api.auditQueries)-1]; q.Get("before") == "" {
		t.Errorf("before not passed: %v", q)
	}
	// The htmx filter answers the results block only.
	r = e.get("/audit?event_type=policy_deny", "HX-Request", "true", "HX-Target", "audit-results")
	want(t, r, 200, `id="audit-results"`, "policy_deny")
	lacks(t, r, "<html", "manifest_pulled")
	want(t, e.get("/audit?before=-4"), http.StatusBadRequest, "cursor is not valid")
}

func TestGC(t *testing.T) {
	e := newEnv(t)
	e.loginOK("admin", "admin-pw")
	r := e.get("/gc")
	want(t, r, 200, "Run garbage collection now", `id="gc-state">idle`, "No collection has run")
	lacks(t, r, "every 2s")

	r = e.post("/gc", nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/gc?done=gc-started&name=7" {
		t.Fatalf("start GC: %d %q", r.status, r.header.Get("Location"))
	}
	r = e.get("/gc?done=gc-started&name=7")
	want(t, r, 200, "Garbage collection started (run 7)", "running", `hx-trigger="every 2s"`, "disabled")
	if got := e.api.gcRequests; len(got) != 1 || got[0] != "/v1/gc " {
		t.Errorf("GC requests %q; want one POST /v1/gc without a body", got)
	}
	want(t, e.post("/gc", nil), http.StatusConflict, "already running")
	want(t, e.post("/gc", nil, "HX-Request", "true", "HX-Target", "gc-status"), http.StatusConflict, `id="gc-status"`, "already running")

	e.api.gcRunning = false
	started, completed := time.Now().Add(-time.Minute), time.Now().Add(-50*time.Second)
	e.api.gcLast = &GCRun{ID: 7, Kind: "gc", Started: started, Completed: &completed,
		BlobsRemoved: 12, BytesFreed: 50 << 20, ManifestsRemoved: 2, Actor: "admin"}
	r = e.get("/gc/status", "HX-Request", "true", "HX-Target", "gc-status")
	want(t, r, 200, `id="gc-status"`, "#7 · gc · started by admin", "50.0 MiB", ">12<", "took 10s")
	lacks(t, r, "every 2s", "<html", "not yet")

	// A run in progress has no completion time yet.
	e.api.gcLast = &GCRun{ID: 8, Kind: "gc", Started: started}
	want(t, e.get("/gc"), 200, "#8 · gc", "not yet")

	// Dry run and reconcile send the options.
	want(t, e.post("/gc", url.Values{"mode": {"gc"}, "dry_run": {"1"}, "remove_untagged": {"1"}}), 200, "as a dry run")
	e.api.gcRunning = false
	want(t, e.post("/gc", url.Values{"mode": {"reconcile"}}, "HX-Request", "true", "HX-Target", "gc-status"), 200, "Storage reconciliation started")
	if got := e.api.gcRequests[len(e.api.gcRequests)-2:]; got[0] != `/v1/gc {"dry_run":true,"remove_untagged":true}` || got[1] != "/v1/gc/reconcile " {
		t.Errorf("GC requests %q", got)
	}

	e.api.gcAvailable = false
	want(t, e.get("/gc"), 200, "GC not available on this server")
	want(t, e.post("/gc", nil), 200, "GC not available on this server")

	u := newEnv(t)
	u.loginOK("alice", "alice-pw")
	want(t, u.get("/gc"), http.StatusForbidden, "Administrators only")
}

// TestGCRunDecoding decodes GET /v1/gc/status as mcrsrv sends it: a
// numeric id, started/completed times, completed absent while running.
func TestGCRunDecoding(t *testing.T) {
	var st GCStatus
	js := `{"running":false,"last_run":{"id":1,"kind":"gc","started":"2026-01-02T03:04:05Z","completed":"2026-01-02T03:04:15Z","blobs_removed":0,"bytes_freed":10,"manifests_removed":0,"dry_run":false,"remove_untagged":false}}`
	if err := jsonUnmarshal([]byte(js), &st); err != nil {
		t.Fatal(err)
	}
	if g := st.LastRun; g == nil || g.ID != 1 || g.Completed == nil || g.Duration() != 10*time.Second || g.BytesFreed != 10 {
		t.Errorf("%s → %+v", js, g)
	}
	st = GCStatus{}
	js = `{"running":true,"last_run":{"id":2,"kind":"reconcile","started":"2026-01-02T03:04:05Z","blobs_removed":0,"bytes_freed":0,"manifests_removed":0,"dry_run":false,"remove_untagged":false}}`
	if err := jsonUnmarshal([]byte(js), &st); err != nil {
		t.Fatal(err)
	}
	if g := st.LastRun; g == nil || g.ID != 2 || g.Completed != nil || !g.Running() {
		t.Errorf("%s → %+v", js, g)
	}
}

func TestErrorPages(t *testing.T) {
	e := newEnv(t)
	e.loginOK("admin", "admin-pw")
	want(t, e.get("/no/such/page"), http.StatusNotFound, "Page not found", "/no/such/page")
	// htmx errors go to the message area.
	r := e.get("/repositories/no/such", "HX-Request", "true", "HX-Target", "main")
	want(t, r, http.StatusNotFound, "Repository not found")
	if r.header.Get("HX-Retarget") != "#messages" {
		t.Errorf("HX-Retarget %q", r.header.Get("HX-Retarget"))
	}

	// mcrsrv down: sign-in and pages say so.
	down := newEnv(t)
	down.loginOK("admin", "admin-pw")
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	down.ui.api, _ = NewClient(closedURL, &http.Client{Timeout: 2 * time.Second}, "mcr")
	want(t, down.get("/repositories"), http.StatusBadGateway, "Registry unreachable", closedURL)
	fresh := newEnv(t)
	fresh.ui.api = down.ui.api
	want(t, fresh.login("admin", "admin-pw"), http.StatusBadGateway, "cannot reach the registry")
}

func TestNewValidatesOptions(t *testing.T) {
	if _, err := New(Options{APIURL: "localhost:8443", SessionKey: testKey}); err == nil {
		t.Error("an API URL without a scheme was accepted")
	}
	if _, err := New(Options{APIURL: "https://localhost:8443", SessionKey: []byte("short")}); err == nil {
		t.Error("a short session key was accepted")
	}
}

func TestFormat(t *testing.T) {
	for n, w := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 150 << 30: "150 GiB", 3 << 40: "3.0 TiB"} {
		if got := humanSize(n); got != w {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, w)
		}
	}
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for d, w := range map[time.Duration]string{time.Second: "just now", 45 * time.Second: "45 seconds ago", time.Minute: "1 minute ago",
		3 * time.Hour: "3 hours ago", 49 * time.Hour: "2 days ago", 60 * 24 * time.Hour: "2 months ago", 800 * 24 * time.Hour: "2 years ago",
		-2 * time.Hour: "in 2 hours"} {
		if got := relTime(now.Add(-d), now); got != w {
			t.Errorf("relTime(-%s) = %q, want %q", d, got, w)
		}
	}
	if relTime(time.Time{}, now) != "never" || relTime(time.Unix(0, 0), now) != "never" {
		t.Error("zero time is not never")
	}
	h := string(timeHTML(now.Add(-time.Hour), now))
	if !strings.Contains(h, `title="2026-05-01 11:00:00 UTC"`) || !strings.Contains(h, "1 hour ago") {
		t.Errorf("timeHTML = %s", h)
	}
	if shortDigest(appDigest) != "sha256:111111111111" || shortDigest("x") != "x" {
		t.Error("shortDigest")
	}
	if splitList(" a, b\nc ,,") == nil || strings.Join(splitList(" a, b\nc ,,"), "|") != "a|b|c" {
		t.Error("splitList")
	}
	name, sub := splitRepoPath("team/app/-/manifests/sha256:abc")
	if name != "team/app" || sub != "manifests/sha256:abc" {
		t.Errorf("splitRepoPath = %q %q", name, sub)
	}
}
