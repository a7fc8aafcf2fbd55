// Package adminapi is MCR's admin REST API under /v1 (DESIGN §6), built on
// Echo. Every error is `{"error":"..."}` with the matching status.
//
//	e := adminapi.New(adminapi.Options{Store: st, Authn: authn, ...})
//	mux.Handle("/v1/", e)
package adminapi

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"git.wntrmute.dev/kyle/mcr/adminsvc"
	"git.wntrmute.dev/kyle/mcr/authplugin"
	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
)

// Options carries the API's dependencies.
type Options struct {
	// Service is the business logic /v1 and gRPC share.
	Service *adminsvc.Service
}

// API is the /v1 handler.
type API struct {
	svc *adminsvc.Service
	e   *echo.Echo
}

// New builds the /v1 router. Handlers only translate: they read the
// request, call the service and write its answer or error.
func New(opts Options) *API {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler
	a := &API{svc: opts.Service, e: e}
	v1 := e.Group("/v1")
	v1.GET("/health", a.health)
	v1.POST("/auth/login", a.login)
	v1.POST("/auth/logout", a.logout)
	authed := v1.Group("", a.requireAuth)
	authed.GET("/repositories", a.listRepositories, requireUser)
	authed.GET("/repositories/*", a.getRepository, requireUser)
	authed.DELETE("/repositories/*", a.deleteRepository, requireAdmin)
	// The role checks run here too (the service repeats them) so a
	// refused caller is refused before a query is parsed or a body read,
	// in the same order as the gRPC interceptors.
	admin := v1.Group("", a.requireAuth, requireAdmin)
	admin.GET("/audit", a.listAudit)
	admin.GET("/policy/rules", a.listRules)
	admin.POST("/policy/rules", a.createRule)
	admin.GET("/policy/rules/:id", a.getRule)
	admin.PATCH("/policy/rules/:id", a.patchRule)
	admin.DELETE("/policy/rules/:id", a.deleteRule)
	if a.svc.HasGC() {
		admin.POST("/gc", a.startGC)
		admin.POST("/gc/reconcile", a.startReconcile)
		admin.GET("/gc/status", a.gcStatus)
	}
	if a.svc.HasSnapshot() {
		admin.POST("/snapshot", a.snapshot)
	}
	if a.svc.HasAccounts() {
		admin.POST("/accounts/:name/unlock", a.unlockAccount)
		admin.POST("/accounts/:name/revoke", a.revokeAccount)
	}
	if a.svc.HasReconcileIndex() {
		admin.POST("/index/reconcile", a.reconcileIndex)
	}
	if a.svc.HasUploads() {
		admin.GET("/uploads", a.listUploads)
		admin.POST("/uploads/purge", a.purgeUploads)
	}
	return a
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.e.ServeHTTP(w, r) }

// Echo exposes the router so later features can add routes.
func (a *API) Echo() *echo.Echo { return a.e }

// errorf returns a client error with an HTTP status (for what only the
// transport can get wrong: a body, a query parameter).
func errorf(status int, msg string) error { return echo.NewHTTPError(status, msg) }

// errorHandler writes every error as {"error":"..."}: the service's typed
// errors with their code's status, Echo's own (404 route, 405) with theirs.
func errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var status int
	var msg string
	var he *echo.HTTPError
	if errors.As(err, &he) {
		status = he.Code
		if m, ok := he.Message.(string); ok {
			msg = m
		} else {
			msg = http.StatusText(status)
		}
	} else {
		code, m, unexpected := adminsvc.Classify(err)
		status, msg = code.HTTPStatus(), m
		if ra := adminsvc.RetryAfter(err); ra != "" {
			c.Response().Header().Set("Retry-After", ra)
		}
		if unexpected {
			slog.Error("admin api", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
		}
	}
	if status == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="mcr"`)
	}
	_ = c.JSON(status, map[string]string{"error": msg})
}

func principalOf(c echo.Context) *identity.Principal {
	p, _ := c.Get("principal").(*identity.Principal)
	return p
}

// caller is the service's view of the request.
func caller(c echo.Context) adminsvc.Caller {
	return adminsvc.Caller{Principal: principalOf(c), IP: authplugin.ClientIP(c.Request()), Request: c.Request()}
}

// requireAuth accepts an identity token (local session or MCIAS), never a
// repository-scoped registry token.
func (a *API) requireAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		tok, _ := authplugin.BearerToken(c.Request())
		p, err := a.svc.Authenticate(c.Request().Context(), tok)
		if err != nil {
			return err
		}
		c.Set("principal", p)
		return next(c)
	}
}

func requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := adminsvc.RequireAdmin(principalOf(c)); err != nil {
			return err
		}
		return next(c)
	}
}

// requireUser refuses guests: they have no business browsing content.
func requireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := adminsvc.RequireUser(principalOf(c)); err != nil {
			return err
		}
		return next(c)
	}
}
