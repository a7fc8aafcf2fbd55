package adminapi

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"git.wntrmute.dev/kyle/mcr/adminsvc"
	"git.wntrmute.dev/kyle/mcr/store"
)

type auditPage struct {
	Next   string             `json:"next,omitempty"`
	Events []store.AuditEvent `json:"events"`
}

// listAudit serves GET /v1/audit: newest first, keyset pagination with
// `next` (pass it back as `before`); `offset` is accepted too.
func (a *API) listAudit(c echo.Context) error {
	n, offset, err := pageParams(c)
	if err != nil {
		return err
	}
	q := adminsvc.AuditQuery{
		EventType: c.QueryParam("event_type"), ActorID: c.QueryParam("actor_id"), Repository: c.QueryParam("repository"),
		Since: c.QueryParam("since"), Until: c.QueryParam("until"), N: n, Offset: offset,
	}
	if s := c.QueryParam("before"); s != "" {
		if q.Before, err = strconv.ParseInt(s, 10, 64); err != nil || q.Before < 1 {
			return adminsvc.Errorf(adminsvc.InvalidArgument, adminsvc.MsgBadCursor)
		}
	}
	page, err := a.svc.ListAudit(c.Request().Context(), caller(c), q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, auditPage{Events: page.Events, Next: page.Next})
}
