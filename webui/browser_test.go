package webui_test

// The browser test drives Debian's Chromium, headless, through
// chromedriver's W3C WebDriver API against real processes: an mcrsrv
// started by mcrtest (TLS, SQLite, local identity) and the mcr-web binary
// pointed at it. Packages: chromium and chromium-driver. Without them the
// test is skipped locally and fails in CI (CI set).

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

func TestMain(m *testing.M) { os.Exit(mcrtest.Main(m)) }

const (
	webElementKey = "element-6066-11e4-a52e-4f735466cecf"
)

// browser is where the test finds Chromium and its WebDriver.
type browser struct{ chromium, chromedriver string }

// needBrowser finds chromium and chromedriver on PATH. Without them the
// test skips, unless running in CI (CI set), where their absence is a
// failure.
func needBrowser(t *testing.T) browser {
	t.Helper()
	var found [2]string
	for i, name := range []string{"chromium", "chromedriver"} {
		p, err := exec.LookPath(name)
		if err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not on PATH; CI must install the Debian packages chromium and chromium-driver", name)
			}
			t.Skipf("%s is not on PATH (apt-get install chromium chromium-driver); skipping the browser test", name)
		}
		found[i] = p
	}
	return browser{chromium: found[0], chromedriver: found[1]}
}

// registryAlias returns a registry host for srv that go-containerregistry
// treats as HTTPS (it assumes 127.0.0.1 speaks plain HTTP) and a transport
// that dials srv for it.
func registryAlias(srv *mcrtest.Server) (string, http.RoundTripper) {
	_, port, _ := net.SplitHostPort(srv.Addr)
	tr := srv.Transport()
	tr.TLSClientConfig.ServerName = "localhost"
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, srv.Addr)
	}
	return "mcr.test:" + port, tr
}

// push writes img to repo:tag as user.
func push(t *testing.T, srv *mcrtest.Server, repoTag, user, pass string, img v1.Image) error {
	t.Helper()
	host, tr := registryAlias(srv)
	ref, err := name.ParseReference(host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return remote.Write(ref, img, remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: user, Password: pass})),
		remote.WithTransport(tr), remote.WithContext(ctx))
}

// startWeb runs the mcr-web binary against srv and waits until it answers.
func startWeb(t *testing.T, srv *mcrtest.Server, env ...string) string {
	t.Helper()
	addr := mcrtest.FreeAddr(t)
	cmd := exec.Command(mcrtest.Binary(t, "mcr-web"), "server", "--config", srv.ConfigPath)
	cmd.Env = append(append(os.Environ(), "MCR_WEB_API_URL="+srv.URL, "MCR_WEB_GRPC_ADDR="+srv.GRPCAddr, "MCR_WEB_LISTEN_ADDR="+addr), env...)
	out := &mcrtest.SafeBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("--- mcr-web output ---\n%s", out.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		select {
		case <-done:
			t.Fatalf("mcr-web exited:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mcr-web did not answer /healthz: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// driver is a minimal W3C WebDriver client for chromedriver.
type driver struct {
	t    *testing.T
	base string // chromedriver URL + /session/<id>
	hc   *http.Client
	shot string // screenshot directory
}

func startDriver(t *testing.T, b browser, shots string) *driver {
	t.Helper()
	port := mcrtest.FreeAddr(t)
	_, p, _ := net.SplitHostPort(port)
	logBuf := &mcrtest.SafeBuffer{}
	cmd := exec.Command(b.chromedriver, "--port="+p, "--allowed-ips=127.0.0.1")
	cmd.Stdout, cmd.Stderr = logBuf, logBuf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromedriver: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	d := &driver{t: t, hc: &http.Client{Timeout: 60 * time.Second}, shot: shots}
	root := "http://127.0.0.1:" + p
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := d.hc.Get(root + "/status")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromedriver did not start: %v\n%s", err, logBuf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName":       "chrome",
		"goog:loggingPrefs": map[string]string{"browser": "ALL"},
		"goog:chromeOptions": map[string]any{
			"binary": b.chromium,
			"args": []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
				"--disable-background-networking", "--disable-component-update", "--disable-sync",
				"--disable-dev-shm-usage", "--window-size=1280,900", "--user-data-dir=" + t.TempDir()},
		},
	}}}
	var sess struct {
		SessionID string `json:"sessionId"`
	}
	d.base = root
	d.call(http.MethodPost, "/session", caps, &sess)
	if sess.SessionID == "" {
		t.Fatalf("chromedriver gave no session\n%s", logBuf.String())
	}
	d.base = root + "/session/" + sess.SessionID
	t.Cleanup(func() {
		req, _ := http.NewRequest(http.MethodDelete, d.base, nil)
		if resp, err := d.hc.Do(req); err == nil {
			resp.Body.Close()
		}
	})
	// No implicit wait: find polls, and count answers at once.
	d.call(http.MethodPost, "/timeouts", map[string]int{"implicit": 0, "pageLoad": 30000}, nil)
	return d
}

// call sends a WebDriver command and decodes its "value".
func (d *driver) call(method, path string, body, out any) {
	d.t.Helper()
	if err := d.try(method, path, body, out); err != nil {
		d.t.Fatalf("webdriver %s %s: %v", method, path, err)
	}
}

func (d *driver) try(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, d.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return fmt.Errorf("status %d: %s", resp.StatusCode, data)
	}
	if resp.StatusCode != 200 {
		var e struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(env.Value, &e)
		return fmt.Errorf("%s: %s", e.Error, firstLine(e.Message))
	}
	if out != nil {
		return json.Unmarshal(env.Value, out)
	}
	return nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func (d *driver) open(u string) {
	d.t.Helper()
	d.call(http.MethodPost, "/url", map[string]string{"url": u}, nil)
}

func (d *driver) currentURL() string {
	d.t.Helper()
	var u string
	d.call(http.MethodGet, "/url", nil, &u)
	return u
}

// find waits up to 20 s for an element matching css.
func (d *driver) find(css string) string {
	d.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var el map[string]string
		err := d.try(http.MethodPost, "/element", map[string]string{"using": "css selector", "value": css}, &el)
		if err == nil {
			return el[webElementKey]
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("find %q on %s: %v\npage:\n%s", css, d.currentURL(), err, d.bodyText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *driver) count(css string) int {
	d.t.Helper()
	var els []map[string]string
	d.call(http.MethodPost, "/elements", map[string]string{"using": "css selector", "value": css}, &els)
	return len(els)
}

func (d *driver) typeInto(css, text string) {
	d.t.Helper()
	id := d.find(css)
	d.call(http.MethodPost, "/element/"+id+"/clear", map[string]any{}, nil)
	d.call(http.MethodPost, "/element/"+id+"/value", map[string]string{"text": text}, nil)
}

func (d *driver) click(css string) {
	d.t.Helper()
	d.call(http.MethodPost, "/element/"+d.find(css)+"/click", map[string]any{}, nil)
}

func (d *driver) text(css string) string {
	d.t.Helper()
	var s string
	d.call(http.MethodGet, "/element/"+d.find(css)+"/text", nil, &s)
	return s
}

func (d *driver) bodyText() string {
	var el map[string]string
	if d.try(http.MethodPost, "/element", map[string]string{"using": "css selector", "value": "body"}, &el) != nil {
		return "(no body)"
	}
	var s string
	_ = d.try(http.MethodGet, "/element/"+el[webElementKey]+"/text", nil, &s)
	return s
}

// textOf reads an element's text without failing the test (elements
// come and go while htmx swaps).
func (d *driver) textOf(css string) (string, bool) {
	var el map[string]string
	if d.try(http.MethodPost, "/element", map[string]string{"using": "css selector", "value": css}, &el) != nil {
		return "", false
	}
	var s string
	if d.try(http.MethodGet, "/element/"+el[webElementKey]+"/text", nil, &s) != nil {
		return "", false
	}
	return s, true
}

// waitText waits until the element's text contains want.
func (d *driver) waitText(css, want string) {
	d.t.Helper()
	d.waitFor(css+" showing "+want, func() bool {
		s, ok := d.textOf(css)
		return ok && strings.Contains(s, want)
	})
}

// waitNoText waits until the element exists and its text no longer
// contains s.
func (d *driver) waitNoText(css, s string) {
	d.t.Helper()
	d.waitFor(css+" without "+s, func() bool {
		txt, ok := d.textOf(css)
		return ok && !strings.Contains(txt, s)
	})
}

func (d *driver) waitFor(what string, cond func() bool) {
	d.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			d.t.Fatalf("timed out waiting for %s on %s; page:\n%s", what, d.currentURL(), d.bodyText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *driver) screenshot(name string) {
	d.t.Helper()
	var b64 string
	d.call(http.MethodGet, "/screenshot", nil, &b64)
	png, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		d.t.Fatal(err)
	}
	p := filepath.Join(d.shot, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		d.t.Fatal(err)
	}
	d.t.Logf("screenshot: %s", p)
}

// screenshotFull grows the window to the page's height for the picture.
func (d *driver) screenshotFull(name string) {
	d.t.Helper()
	var h int
	d.call(http.MethodPost, "/execute/sync", map[string]any{"script": "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight) + 120", "args": []any{}}, &h)
	if h < 900 {
		h = 900
	}
	if h > 4000 {
		h = 4000
	}
	d.call(http.MethodPost, "/window/rect", map[string]int{"width": 1280, "height": h}, nil)
	d.screenshot(name)
	d.call(http.MethodPost, "/window/rect", map[string]int{"width": 1280, "height": 900}, nil)
}

func (d *driver) cookie(name string) string {
	d.t.Helper()
	var c struct {
		Value string `json:"value"`
	}
	d.call(http.MethodGet, "/cookie/"+name, nil, &c)
	return c.Value
}

// consoleErrors returns the browser console's messages since the last
// call that are errors (CSP violations, failed scripts).
func (d *driver) consoleErrors() []string {
	d.t.Helper()
	var entries []struct {
		Level   string `json:"level"`
		Message string `json:"message"`
	}
	if err := d.try(http.MethodPost, "/se/log", map[string]string{"type": "browser"}, &entries); err != nil {
		d.t.Logf("browser log unavailable: %v", err)
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.Level == "SEVERE" || strings.Contains(e.Message, "Content Security Policy") {
			out = append(out, e.Message)
		}
	}
	return out
}

func (d *driver) signIn(web, user, pass string) {
	d.t.Helper()
	d.open(web + "/login")
	d.typeInto("#username", user)
	d.typeInto("#password", pass)
	d.click("#signin")
}

func (d *driver) signOut() {
	d.t.Helper()
	d.click("#signout")
	d.waitText("body", "You are signed out")
}

// screenshotDir is where screenshots go: $MCR_WEB_SCREENSHOTS, or a new
// directory under the system temp dir that outlives the test run so a
// reviewer can look at the pictures.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("MCR_WEB_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	d, err := os.MkdirTemp("", "mcr-web-screenshots-")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBrowser(t *testing.T) {
	b := needBrowser(t)
	if testing.Short() && os.Getenv("CI") == "" {
		t.Skip("browser test skipped in -short mode")
	}
	start := time.Now()
	srv := mcrtest.Start(t, mcrtest.WithHostname("mcr.test")) // the name push() uses
	t.Logf("mcrsrv built and started after %s", time.Since(start).Round(time.Millisecond))
	srv.AddUser(t, "alice", "alice-password-1", "user", "human")
	srv.AddUser(t, "gina", "gina-password-1", "guest", "human")

	app, _ := random.Image(400_000, 3)
	if err := push(t, srv, "team/app:1.0", "admin", mcrtest.AdminPassword, app); err != nil {
		t.Fatalf("push team/app: %v", err)
	}
	tools, _ := random.Image(120_000, 2)
	if err := push(t, srv, "infra/tools:latest", "admin", mcrtest.AdminPassword, tools); err != nil {
		t.Fatalf("push infra/tools: %v", err)
	}
	appDigest, _ := app.Digest()
	t.Logf("images pushed after %s", time.Since(start).Round(time.Millisecond))
	web := startWeb(t, srv)
	d := startDriver(t, b, screenshotDir(t))
	t.Logf("servers and browser up after %s", time.Since(start).Round(time.Millisecond))

	// A guest is refused at sign-in, with the reason.
	d.signIn(web, "gina", "gina-password-1")
	d.waitText("#login-error", "Guest accounts cannot use the web dashboard")
	d.screenshot("signin-guest-refused")
	if !strings.HasSuffix(d.currentURL(), "/login") {
		t.Fatalf("guest sign-in ended on %s, want the sign-in page", d.currentURL())
	}

	// Admin: dashboard with both repositories and the recent pushes.
	d.signIn(web, "admin", mcrtest.AdminPassword)
	d.waitText("#stat-repos", "2")
	d.waitText("#recent-pushes", "team/app")
	d.screenshot("dashboard")

	// Repositories: both listed; the htmx filter narrows the list in place.
	d.open(web + "/repositories")
	d.waitText("#repo-table", "team/app")
	d.waitText("#repo-table", "infra/tools")
	d.typeInto("#repo-filter", "tools")
	d.waitNoText("#repo-results", "team/app")
	d.waitText("#repo-table", "infra/tools")
	if u := d.currentURL(); !strings.Contains(u, "q=tools") {
		t.Errorf("filter did not update the address bar: %s", u)
	}
	d.typeInto("#repo-filter", "team")
	d.waitText("#repo-table", "team/app")
	d.screenshot("repositories")

	// Repository detail, then the manifest with its pull command.
	d.click("a.repo-link")
	d.waitText("#repo-name", "team/app")
	d.waitText("#tags-table", "1.0")
	d.screenshot("repository")
	d.click("#manifests-table a.manifest-link")
	d.waitText("#manifest-digest", appDigest.String())
	pull := d.text("#pull-command")
	if !strings.HasPrefix(pull, "docker pull ") || !strings.HasSuffix(pull, "/team/app@"+appDigest.String()) {
		t.Errorf("pull command = %q", pull)
	}
	if n := d.count("#layers-table tbody tr"); n != 3 {
		t.Errorf("layers table has %d rows, want 3", n)
	}
	d.waitText("#manifest-json", `"schemaVersion": 2`)
	d.screenshotFull("manifest")

	// Policies: create a deny rule for users pushing to team/*.
	d.open(web + "/policies")
	d.typeInto("#rule-priority", "10")
	d.typeInto("#rule-description", "freeze team images")
	d.click("#effect-deny")
	d.click(`#action-registry\:push`)
	d.click("#role-user")
	d.typeInto("#rule-repositories", "team/*")
	d.click("#create-rule")
	d.waitText("#messages", "was created")
	d.waitText("#rules-table", "freeze team images")
	d.screenshotFull("policies")

	// The rule acts at once: alice may not push to team/app, but may
	// push elsewhere.
	denied, _ := random.Image(1000, 1)
	if err := push(t, srv, "team/app:alice", "alice", "alice-password-1", denied); err == nil {
		t.Fatal("alice pushed to team/app despite the deny rule")
	}
	if err := push(t, srv, "alice/scratch:1", "alice", "alice-password-1", denied); err != nil {
		t.Fatalf("alice's push to alice/scratch (no rule) failed: %v", err)
	}

	// The audit log shows the push and the denial.
	d.open(web + "/audit?event_type=manifest_pushed")
	d.waitText("#audit-table", "team/app")
	deadline := time.Now().Add(20 * time.Second)
	for {
		d.open(web + "/audit?event_type=policy_deny")
		if strings.Contains(d.bodyText(), "alice") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the denied push never appeared in the audit log:\n%s", d.bodyText())
		}
		time.Sleep(200 * time.Millisecond)
	}
	d.open(web + "/audit")
	d.waitText("#audit-table", "policy_rule_created")
	d.screenshot("audit")

	// htmx row edits (CSRF token from the page's hx-headers): change the
	// priority in place, then disable the rule with its toggle.
	d.open(web + "/policies")
	d.click(`#rules-table a[href$="/edit"]`)
	d.typeInto(`#rules-table input[name="priority"]`, "15")
	d.click(`#rules-table button[type="submit"].primary`)
	d.waitText("#rules-table", "15")
	if d.count(`#rules-table input[name="priority"]`) != 0 {
		t.Error("the edit form stayed open after saving")
	}
	d.click("#rules-table button.toggle")
	d.waitText("#rules-table .toggle", "off")
	if !strings.Contains(d.currentURL(), "/policies") || d.count("#new-rule") != 1 {
		t.Errorf("htmx row edits left the policies page: %s", d.currentURL())
	}

	// A POST without the CSRF token is refused, even with the session.
	session := d.cookie("mcr_session")
	if session == "" {
		t.Fatal("no mcr_session cookie")
	}
	form := url.Values{"priority": {"5"}, "effect": {"deny"}, "actions": {"registry:pull"}}
	req, _ := http.NewRequest(http.MethodPost, web+"/policies", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "mcr_session", Value: session})
	req.AddCookie(&http.Cookie{Name: "mcr_csrf", Value: d.cookie("mcr_csrf")})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "CSRF") {
		t.Errorf("POST /policies without a CSRF token: status %d, want 403 with a CSRF message", resp.StatusCode)
	}

	// GC page answers (status or "not available").
	d.open(web + "/gc")
	d.waitFor("the GC status or the unavailable notice", func() bool { return d.count("#gc-state")+d.count("#gc-unavailable") > 0 })
	if d.count("#gc-state") > 0 {
		// A dry run through htmx: the status block is swapped in place and
		// polls until the run is over.
		d.click("#gc-dry-run")
		d.click("#gc-run")
		d.waitText("#gc-status", "as a dry run")
		d.waitFor("the dry run to finish", func() bool {
			s, ok := d.textOf("#gc-status")
			return ok && strings.Contains(s, "idle") && strings.Contains(s, "dry run (nothing was deleted)")
		})
	} else {
		t.Log("this mcrsrv has no /v1/gc: the GC page shows the unavailable notice")
	}
	d.screenshot("gc")

	// Deleting a repository takes a typed confirmation.
	d.open(web + "/repositories/alice/scratch")
	d.click("#delete-repo")
	d.typeInto("#confirm-name", "alice/scratc")
	d.click("#confirm-delete")
	d.waitText(".flash.err", "Type the repository name exactly")
	d.typeInto("#confirm-name", "alice/scratch")
	d.click("#confirm-delete")
	d.waitText("#messages", "Repository alice/scratch was deleted")
	d.waitNoText("#repo-results", "alice/scratch")

	// The policy decides what a user sees: denied pulls on infra/*, alice
	// finds infra/tools neither listed nor by its address.
	denyInfra(t, srv, "alice")
	// A user account sees repositories but no policy or audit pages.
	d.signOut()
	d.signIn(web, "alice", "alice-password-1")
	d.waitText("#stat-repos", "1")
	d.open(web + "/repositories")
	d.waitText("#repo-results", "team/app")
	if strings.Contains(d.text("#repo-results"), "infra/tools") {
		t.Error("alice is shown infra/tools, which the policy denies her")
	}
	d.open(web + "/repositories/infra/tools")
	d.waitText("#error-title", "Repository not found")
	nav := d.text("nav.mainnav")
	if strings.Contains(nav, "Policies") || strings.Contains(nav, "Audit") {
		t.Errorf("a user's navigation offers admin pages: %q", nav)
	}
	for _, p := range []string{"/policies", "/audit", "/gc"} {
		d.open(web + p)
		d.waitText("#error-title", "Administrators only")
	}
	d.screenshot("user-forbidden")
	d.open(web + "/repositories/team/app")
	if d.count("#delete-repo") != 0 {
		t.Error("a user is offered repository deletion")
	}
	d.signOut()

	// Signed out, pages send the browser to sign in.
	d.open(web + "/repositories")
	d.waitText("h1", "Sign in")
	// Expected failures (403 pages, the forged POST) log as errors too; a
	// CSP violation or a script error does not belong on any page.
	for _, m := range d.consoleErrors() {
		if strings.Contains(m, "Content Security Policy") || strings.Contains(m, ".js") && !strings.Contains(m, "status of 4") {
			t.Errorf("browser console: %s", m)
		} else {
			t.Logf("browser console (expected): %s", m)
		}
	}
	// mcr-web reached the admin API over gRPC (web.grpc_addr): mcrsrv
	// logged the calls.
	for _, m := range []string{"/mcr.v1.AdminService/Login", "/mcr.v1.RegistryService/ListRepositories",
		"/mcr.v1.RegistryService/GetRepository", "/mcr.v1.PolicyService/CreatePolicyRule", "/mcr.v1.AuditService/ListAuditEvents"} {
		if !strings.Contains(srv.Output.String(), m) {
			t.Errorf("mcrsrv logged no gRPC call %s: mcr-web did not use the gRPC API", m)
		}
	}
	t.Logf("browser test took %s", time.Since(start).Round(time.Millisecond))
}

// denyInfra adds a rule denying user pulls of infra/* (through /v1, as
// an operator would).
func denyInfra(t *testing.T, srv *mcrtest.Server, user string) {
	t.Helper()
	out, err := srv.Run(t, "", "user", "list", "--config", srv.ConfigPath)
	if err != nil {
		t.Fatalf("user list: %v\n%s", err, out)
	}
	sub := ""
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[0] == user {
			sub = f[3]
		}
	}
	body, _ := json.Marshal(map[string]any{"priority": 5, "effect": "deny", "subject_uuid": sub,
		"actions": []string{"registry:pull"}, "repositories": []string{"infra/*"}})
	resp := srv.Do(t, http.MethodPost, "/v1/policy/rules", srv.Login(t, "admin", mcrtest.AdminPassword), body, "Content-Type", "application/json")
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("deny rule: %d", resp.StatusCode)
	}
}
