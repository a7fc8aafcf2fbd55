// Package webui is mcr-web, MCR's web dashboard: server-rendered pages
// (html/template, one base layout) with htmx for partial updates, CSS and
// scripts embedded in the binary. It holds no data of its own and never
// opens the database: everything it shows or changes goes through mcrsrv's
// admin REST API (/v1) and, for manifest bodies, the registry API (/v2)
// with a pull token obtained for the signed-in user.
//
//	srv, err := webui.New(webui.Options{APIURL: "https://localhost:8443", HTTPClient: hc, SessionKey: key})
//	http.ListenAndServe(":8080", srv)
package webui

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"git.wntrmute.dev/kyle/mcr/clientip"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configures the web UI.
type Options struct {
	// APIURL is mcrsrv's base URL ([web] api_url), e.g. https://localhost:8443.
	APIURL string
	// HTTPClient talks to mcrsrv; it must trust mcrsrv's certificate
	// ([web] ca_cert).
	HTTPClient *http.Client
	// Backend, when set, answers every admin API call (GRPCBackend for
	// web.grpc_addr); nil uses the REST client of APIURL. APIURL is still
	// needed for manifest bodies (/v2), which only REST serves.
	Backend Backend
	// ServiceName is the token service name ([identity] service_name).
	ServiceName string
	// RegistryHost is the host[:port] shown in pull commands; default: the
	// API URL's host.
	RegistryHost string
	// ClientIP resolves the browser's address (web.trusted_proxies); nil:
	// the peer address.
	ClientIP *clientip.Resolver
	// Version is shown in the footer.
	Version string
	// Logger receives request errors; default slog.Default().
	Logger *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// SessionKey (at least 32 bytes) seals session cookies and signs CSRF
	// tokens.
	SessionKey []byte
	// Secure marks cookies Secure and sends HSTS: set when serving HTTPS,
	// or forced by web.secure_cookies behind a TLS-terminating proxy.
	Secure bool
}

// Server is the web UI's http.Handler.
type Server struct {
	api    Backend // the admin API (REST or gRPC)
	reg    *Client // REST: /v2 manifest bodies and the API URL shown
	sealer *sealer
	pages  map[string]*template.Template
	mux    *http.ServeMux
	log    *slog.Logger
	opts   Options
}

// New builds the web UI.
func New(opts Options) (*Server, error) {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	api, err := NewClient(opts.APIURL, opts.HTTPClient, opts.ServiceName)
	if err != nil {
		return nil, err
	}
	if opts.RegistryHost == "" {
		opts.RegistryHost = api.Host()
	}
	sl, err := newSealer(opts.SessionKey)
	if err != nil {
		return nil, err
	}
	srv := &Server{opts: opts, api: api, reg: api, sealer: sl, log: opts.Logger}
	if opts.Backend != nil {
		srv.api = opts.Backend
	}
	if err := srv.parseTemplates(); err != nil {
		return nil, err
	}
	srv.routes()
	return srv, nil
}

func (srv *Server) now() time.Time { return srv.opts.Now() }

// ServeHTTP implements http.Handler: every answer carries the security
// headers.
func (srv *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	if srv.opts.Secure {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	if !strings.HasPrefix(r.URL.Path, "/static/") {
		h.Set("Cache-Control", "no-store")
	}
	srv.mux.ServeHTTP(w, r)
}

func (srv *Server) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	m.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=86400")
		files.ServeHTTP(w, r)
	}))
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	m.HandleFunc("GET /login", srv.loginPage)
	m.HandleFunc("POST /login", srv.loginSubmit)
	m.HandleFunc("POST /logout", srv.logout)

	m.HandleFunc("GET /{$}", srv.authed(false, srv.dashboard))
	m.HandleFunc("GET /repositories", srv.authed(false, srv.repositories))
	m.HandleFunc("GET /repositories/{rest...}", srv.authed(false, srv.repositoryGET))
	m.HandleFunc("POST /repositories/{rest...}", srv.authed(true, srv.repositoryPOST))

	m.HandleFunc("GET /policies", srv.authed(true, srv.policies))
	m.HandleFunc("POST /policies", srv.authed(true, srv.policyCreate))
	m.HandleFunc("GET /policies/{id}", srv.authed(true, srv.policyRow))
	m.HandleFunc("POST /policies/{id}", srv.authed(true, srv.policyUpdate))
	m.HandleFunc("GET /policies/{id}/edit", srv.authed(true, srv.policyEdit))
	m.HandleFunc("POST /policies/{id}/toggle", srv.authed(true, srv.policyToggle))
	m.HandleFunc("GET /policies/{id}/delete", srv.authed(true, srv.policyDeleteConfirm))
	m.HandleFunc("POST /policies/{id}/delete", srv.authed(true, srv.policyDelete))

	m.HandleFunc("GET /audit", srv.authed(true, srv.audit))

	m.HandleFunc("GET /gc", srv.authed(true, srv.gcPage))
	m.HandleFunc("GET /gc/status", srv.authed(true, srv.gcStatus))
	m.HandleFunc("POST /gc", srv.authed(true, srv.gcStart))

	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		srv.errorPage(w, r, srv.session(r), &pageError{Status: http.StatusNotFound, Title: "Page not found",
			Message: "There is no page at " + r.URL.Path + ".", Hint: "Use the navigation above, or go back to the dashboard."})
	})
	srv.mux = m
}

// handler is a page handler for a signed-in user.
type handler func(w http.ResponseWriter, r *http.Request, s *Session) error

// authed wraps h: it requires a session (else sign-in), a valid CSRF token
// on every POST, and the admin role when admin is set.
func (srv *Server) authed(admin bool, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := srv.session(r)
		if s == nil {
			next := ""
			if r.Method == http.MethodGet && !isHTMX(r) {
				next = r.URL.RequestURI()
			}
			srv.toLogin(w, r, "", next)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !srv.checkCSRF(r, s.ID) {
			srv.errorPage(w, r, s, &pageError{Status: http.StatusForbidden, Title: "Request refused",
				Message: "This form did not carry a valid security token for your session (CSRF protection), so nothing was changed.",
				Hint:    "Reload the page and try again. If you signed in again in another tab, use that tab."})
			return
		}
		if admin && !s.IsAdmin() {
			srv.errorPage(w, r, s, &pageError{Status: http.StatusForbidden, Title: "Administrators only",
				Message: "Your account (" + s.Username + ", role " + s.Role() + ") cannot open this page.",
				Hint:    "Ask an administrator if you need access to policies, the audit log or garbage collection."})
			return
		}
		if err := h(w, r, s); err != nil {
			srv.fail(w, r, s, err)
		}
	}
}

func isHTMX(r *http.Request) bool {
	return r.Header.Get("HX-Request") == "true" && r.Header.Get("HX-History-Restore-Request") != "true"
}

func hxTarget(r *http.Request) string {
	if !isHTMX(r) {
		return ""
	}
	return r.Header.Get("HX-Target")
}

// toLogin sends the browser to the sign-in page (HX-Redirect for htmx).
func (srv *Server) toLogin(w http.ResponseWriter, r *http.Request, reason, next string) {
	q := url.Values{}
	if reason != "" {
		q.Set(reason, "1")
	}
	if next != "" && next != "/" {
		q.Set("next", next)
	}
	target := "/login"
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	srv.redirect(w, r, target)
}

// redirect answers 303 See Other, or HX-Redirect for htmx requests.
func (srv *Server) redirect(w http.ResponseWriter, r *http.Request, target string) {
	if isHTMX(r) {
		w.Header().Set("HX-Redirect", target)
		w.WriteHeader(http.StatusOK)
		return
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// pageError is an error shown to the user as an error page.
type pageError struct {
	Title   string
	Message string
	Hint    string
	Status  int
}

func (e *pageError) Error() string { return e.Title + ": " + e.Message }

// fail turns an error from a handler into the right answer: the API
// saying the token is no longer good sends the user to sign in again;
// other failures become an error page that says what happened.
func (srv *Server) fail(w http.ResponseWriter, r *http.Request, s *Session, err error) {
	var pe *pageError
	var ae *APIError
	var ue *UnreachableError
	switch {
	case errors.As(err, &pe):
	case errors.As(err, &ae):
		switch ae.Status {
		case http.StatusUnauthorized:
			srv.clearSession(w)
			srv.toLogin(w, r, "expired", "")
			return
		case http.StatusForbidden:
			pe = &pageError{Status: http.StatusForbidden, Title: "Not allowed", Message: "The registry refused: " + ae.Message + ".",
				Hint: "Your account may lack the role this needs; ask an administrator."}
		case http.StatusNotFound:
			pe = &pageError{Status: http.StatusNotFound, Title: "Not found", Message: "The registry says: " + ae.Message + ".",
				Hint: "It may have been deleted. Go back to the list and pick another one."}
		case http.StatusBadRequest:
			pe = &pageError{Status: http.StatusBadRequest, Title: "Bad request", Message: "The registry rejected the request: " + ae.Message + "."}
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			pe = &pageError{Status: http.StatusBadGateway, Title: "Registry unavailable", Message: "The registry could not answer: " + ae.Message + ".",
				Hint: "Try again in a moment; if it persists, check mcrsrv and its identity service."}
		default:
			pe = &pageError{Status: http.StatusBadGateway, Title: "Registry error", Message: fmt.Sprintf("The registry answered %d: %s.", ae.Status, ae.Message)}
		}
	case errors.As(err, &ue):
		srv.log.Warn("mcr-web: api unreachable", "err", err)
		pe = &pageError{Status: http.StatusBadGateway, Title: "Registry unreachable",
			Message: "mcr-web could not reach the registry's admin API at " + ue.URL + ".",
			Hint:    "Check that mcrsrv is running and that [web] api_url and ca_cert in mcr.toml are right. Details: " + ue.Err.Error()}
	default:
		srv.log.Error("mcr-web: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		pe = &pageError{Status: http.StatusInternalServerError, Title: "Something went wrong",
			Message: "mcr-web failed to build this page.", Hint: "The error was logged; try again."}
	}
	srv.errorPage(w, r, s, pe)
}

// view is what every page template receives.
type view struct {
	Title    string
	Nav      string
	S        *Session
	CSRF     string
	Version  string
	APIURL   string
	Host     string
	Flash    string
	Now      time.Time
	D        any
	FlashErr string
}

func (srv *Server) newView(w http.ResponseWriter, r *http.Request, s *Session, title, nav string, d any) *view {
	sid := ""
	if s != nil {
		sid = s.ID
	}
	return &view{
		Title: title, Nav: nav, S: s, CSRF: srv.csrfFor(w, r, sid), Version: srv.opts.Version,
		APIURL: srv.reg.URL(), Host: srv.opts.RegistryHost, Now: srv.now(), D: d,
		Flash: flashMessage(r.URL.Query()),
	}
}

// flashMessage maps the ?done= codes set by redirects after a change.
func flashMessage(q url.Values) string {
	name := q.Get("name")
	switch q.Get("done") {
	case "repo-deleted":
		return "Repository " + name + " was deleted. Its blobs are freed by the next garbage collection."
	case "rule-created":
		return "Policy rule " + name + " was created; it applies to the next request."
	case "rule-updated":
		return "Policy rule " + name + " was updated."
	case "rule-deleted":
		return "Policy rule " + name + " was deleted."
	case "gc-started":
		return "Garbage collection started (run " + name + ")."
	}
	return ""
}

// render writes a full page.
func (srv *Server) render(w http.ResponseWriter, status int, page string, v *view) {
	srv.execute(w, status, page, "base", v)
}

// partial writes one named block of a page's templates (htmx swaps).
func (srv *Server) partial(w http.ResponseWriter, status int, page, block string, data any) {
	srv.execute(w, status, page, block, data)
}

func (srv *Server) execute(w http.ResponseWriter, status int, page, block string, data any) {
	t, ok := srv.pages[page]
	if !ok {
		http.Error(w, "unknown page "+page, http.StatusInternalServerError)
		return
	}
	var buf strings.Builder
	if err := t.ExecuteTemplate(&buf, block, data); err != nil {
		srv.log.Error("mcr-web: template", "page", page, "block", block, "err", err)
		http.Error(w, "mcr-web could not render this page; the error was logged.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(buf.String()))
}

// errorPage shows what went wrong: a whole page, or for htmx requests a
// message swapped into the page's message area.
func (srv *Server) errorPage(w http.ResponseWriter, r *http.Request, s *Session, e *pageError) {
	v := srv.newView(w, r, s, e.Title, "", e)
	if isHTMX(r) {
		w.Header().Set("HX-Retarget", "#messages")
		w.Header().Set("HX-Reswap", "innerHTML")
		srv.partial(w, e.Status, "error", "error-flash", v)
		return
	}
	srv.render(w, e.Status, "error", v)
}

func (srv *Server) parseTemplates() error {
	funcs := template.FuncMap{
		"size":    humanSize,
		"ago":     func(t time.Time) template.HTML { return timeHTML(t, srv.now()) },
		"exact":   exactTime,
		"short":   shortDigest,
		"mtype":   mediaTypeLabel,
		"isIndex": isIndex,
		"details": detailPairs,
		"joinOr":  joinOr,
		"has":     contains,
		"repoURL": func(name string) string { return "/repositories/" + name },
		"manifestURL": func(name, digest string) string {
			return "/repositories/" + name + "/-/manifests/" + digest
		},
		"add": func(a, b int) int { return a + b },
	}
	entries, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	srv.pages = map[string]*template.Template{}
	for _, e := range entries {
		name := strings.TrimSuffix(strings.TrimPrefix(e, "templates/"), ".html")
		if name == "base" {
			continue
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/base.html", e)
		if err != nil {
			return fmt.Errorf("webui: template %s: %w", name, err)
		}
		srv.pages[name] = t
	}
	return nil
}
