package adminapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"git.wntrmute.dev/kyle/mcr/authplugin"
	"git.wntrmute.dev/kyle/mcr/store"
)

type snapshotCreated struct {
	Path string `json:"path"`
}

// snapshot serves POST /v1/snapshot: 201 {"path"}; audited snapshot_created.
func (a *API) snapshot(c echo.Context) error {
	path, err := a.opts.Snapshot(c.Request().Context())
	if err != nil {
		return err
	}
	if a.opts.OnAdminEvent != nil {
		ev := store.AuditEvent{Type: "snapshot_created", IP: authplugin.ClientIP(c.Request()), Details: map[string]any{"path": path}}
		if p := principalOf(c); p != nil {
			ev.ActorID, ev.Actor = p.Subject, p.Username
		}
		a.opts.OnAdminEvent(c.Request(), ev)
	}
	return c.JSON(http.StatusCreated, snapshotCreated{Path: path})
}
