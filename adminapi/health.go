package adminapi

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// health answers 200 {"status":"ok"} while the process serves; with
// ?detail=1 it also reports the database, storage and identity service.
func (a *API) health(c echo.Context) error {
	if c.QueryParam("detail") == "" {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), 5*time.Second)
	defer cancel()
	checks := map[string]string{}
	status := "ok"
	check := func(name string, f func() error) {
		if f == nil {
			return
		}
		if err := f(); err != nil {
			checks[name] = err.Error()
			status = "degraded"
			return
		}
		checks[name] = "ok"
	}
	check("database", func() error { return a.opts.Store.Healthy(ctx) })
	check("storage", a.opts.StorageCheck)
	check("identity", func() error { return a.opts.Authn.Provider.Ping(ctx) })
	code := http.StatusOK
	if status != "ok" {
		code = http.StatusServiceUnavailable
	}
	return c.JSON(code, map[string]any{"status": status, "checks": checks})
}
