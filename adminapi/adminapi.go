// Package adminapi is MCR's admin REST API under /v1 (DESIGN §6), built on
// Echo. Every error is `{"error":"..."}` with the matching status.
//
//	e := adminapi.New(adminapi.Options{Store: st, Authn: authn, ...})
//	mux.Handle("/v1/", e)
package adminapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"git.wntrmute.dev/kyle/mcr/authplugin"
	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/store"
)

// Options carries the API's dependencies.
type Options struct {
	Store    *store.Store
	Authn    *authplugin.Authenticator
	Recorder authplugin.Recorder
	// Reload is called after every policy change so the next request sees it.
	Reload func() error
	// OnPolicyChange records a policy rule change.
	OnPolicyChange func(r *http.Request, ev PolicyEvent)
	// DeleteRepository removes a repository through distribution.
	DeleteRepository RepoDeleter
	// StorageCheck reports whether blob storage is reachable (health detail).
	StorageCheck func() error
	// GC runs garbage collection (POST /v1/gc, /v1/gc/reconcile, GET
	// /v1/gc/status); nil leaves those routes out.
	GC GCService
	// Snapshot writes a database snapshot and returns its path (POST
	// /v1/snapshot); nil leaves the route out.
	Snapshot func(ctx context.Context) (string, error)
	// OnAdminEvent records an audit event of an admin operation
	// (snapshot_created).
	OnAdminEvent func(r *http.Request, ev store.AuditEvent)
	// SignIn checks /v1/auth/login passwords (bounds, throttle, audit);
	// nil: the provider, unthrottled.
	SignIn *authplugin.SignIn
	// Accounts unlocks sign-ins and revokes tokens (POST
	// /v1/accounts/{name}/unlock|revoke); nil leaves those routes out.
	Accounts Accounts
}

// API is the /v1 handler.
type API struct {
	opts Options
	e    *echo.Echo
}

// New builds the /v1 router.
func New(opts Options) *API {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler
	a := &API{opts: opts, e: e}
	v1 := e.Group("/v1")
	v1.GET("/health", a.health)
	v1.POST("/auth/login", a.login)
	v1.POST("/auth/logout", a.logout)
	authed := v1.Group("", a.requireAuth)
	authed.GET("/repositories", a.listRepositories, requireUser)
	authed.GET("/repositories/*", a.getRepository, requireUser)
	authed.DELETE("/repositories/*", a.deleteRepository, requireAdmin)
	admin := v1.Group("", a.requireAuth, requireAdmin)
	admin.GET("/audit", a.listAudit)
	admin.GET("/policy/rules", a.listRules)
	admin.POST("/policy/rules", a.createRule)
	admin.GET("/policy/rules/:id", a.getRule)
	admin.PATCH("/policy/rules/:id", a.patchRule)
	admin.DELETE("/policy/rules/:id", a.deleteRule)
	if opts.GC != nil {
		admin.POST("/gc", a.startGC)
		admin.POST("/gc/reconcile", a.startReconcile)
		admin.GET("/gc/status", a.gcStatus)
	}
	if opts.Snapshot != nil {
		admin.POST("/snapshot", a.snapshot)
	}
	a.accountRoutes(admin)
	return a
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.e.ServeHTTP(w, r) }

// Echo exposes the router so later features can add routes.
func (a *API) Echo() *echo.Echo { return a.e }

// apiError is the one error type handlers return; errorHandler writes it.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string { return e.Message }

func errorf(status int, msg string) error { return &apiError{Status: status, Message: msg} }

func errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, msg := http.StatusInternalServerError, "internal error"
	var ae *apiError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
		status, msg = ae.Status, ae.Message
	case errors.As(err, &he):
		status = he.Code
		if m, ok := he.Message.(string); ok {
			msg = m
		} else {
			msg = http.StatusText(status)
		}
	default:
		slog.Error("admin api", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	}
	_ = c.JSON(status, map[string]string{"error": msg})
}

func principalOf(c echo.Context) *identity.Principal {
	p, _ := c.Get("principal").(*identity.Principal)
	return p
}

// requireAuth accepts an identity token (local session or MCIAS), never a
// repository-scoped registry token.
func (a *API) requireAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		tok, ok := authplugin.BearerToken(c.Request())
		if !ok {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="mcr"`)
			return errorf(http.StatusUnauthorized, "authentication required: Authorization: Bearer <token> from /v1/auth/login")
		}
		p, err := a.opts.Authn.Identity(c.Request().Context(), tok)
		if err != nil {
			if errors.Is(err, identity.ErrUnavailable) {
				return errorf(http.StatusBadGateway, "identity service unavailable")
			}
			return errorf(http.StatusUnauthorized, "invalid or expired token")
		}
		c.Set("principal", p)
		return next(c)
	}
}

func requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !principalOf(c).IsAdmin() {
			return errorf(http.StatusForbidden, "admin role required")
		}
		return next(c)
	}
}

// requireUser refuses guests: they have no business browsing content.
func requireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if principalOf(c).IsGuestOnly() {
			return errorf(http.StatusForbidden, "guest accounts cannot use the admin API")
		}
		return next(c)
	}
}
