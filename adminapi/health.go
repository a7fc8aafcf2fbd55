package adminapi

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// health answers 200 {"status":"ok"} while the process serves; with
// ?detail=1 it also reports the database, storage, identity service and
// audit path (503 when one fails).
func (a *API) health(c echo.Context) error {
	h := a.svc.Health(c.Request().Context(), c.QueryParam("detail") != "")
	if h.Checks == nil {
		return c.JSON(http.StatusOK, map[string]string{"status": h.Status})
	}
	code := http.StatusOK
	if h.Status != "ok" {
		code = http.StatusServiceUnavailable
	}
	return c.JSON(code, map[string]any{"status": h.Status, "checks": h.Checks})
}
