package adminapi

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

type snapshotCreated struct {
	Path string `json:"path"`
}

// snapshot serves POST /v1/snapshot: 201 {"path"}; audited snapshot_created.
func (a *API) snapshot(c echo.Context) error {
	path, err := a.svc.Snapshot(c.Request().Context(), caller(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, snapshotCreated{Path: path})
}
