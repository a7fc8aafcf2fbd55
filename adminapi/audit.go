package adminapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"git.wntrmute.dev/kyle/mcr/store"
)

// EventTypes are the audit event types queries may filter on.
var EventTypes = map[string]bool{
	"login_ok": true, "login_fail": true, "manifest_pushed": true, "manifest_pulled": true,
	"manifest_deleted": true, "tag_deleted": true, "blob_uploaded": true, "blob_mounted": true,
	"blob_deleted": true, "repo_deleted": true, "policy_deny": true, "policy_rule_created": true,
	"policy_rule_updated": true, "policy_rule_deleted": true, "gc_started": true, "gc_completed": true,
	"snapshot_created": true, "login_locked": true, "refresh_reuse": true, "account_unlocked": true,
	"tokens_revoked": true,
}

type auditPage struct {
	Events []store.AuditEvent `json:"events"`
	Next   string             `json:"next,omitempty"`
}

func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t, nil
	}
	return time.Time{}, errorf(http.StatusBadRequest, name+": want RFC 3339 time (2026-01-02T15:04:05Z) or a date (2026-01-02)")
}

// listAudit serves GET /v1/audit: newest first, keyset pagination with
// `next` (pass it back as `before`); `offset` is accepted too.
func (a *API) listAudit(c echo.Context) error {
	n, offset, err := pageParams(c, 50, 1000)
	if err != nil {
		return err
	}
	f := store.AuditFilter{
		EventType: c.QueryParam("event_type"), ActorID: c.QueryParam("actor_id"),
		Repository: c.QueryParam("repository"), Limit: n, Offset: offset,
	}
	if f.EventType != "" && !EventTypes[f.EventType] {
		return errorf(http.StatusBadRequest, "event_type: unknown event type "+quote(f.EventType))
	}
	if f.Since, err = parseTime("since", c.QueryParam("since")); err != nil {
		return err
	}
	if f.Until, err = parseTime("until", c.QueryParam("until")); err != nil {
		return err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return errorf(http.StatusBadRequest, "until: must not be before since")
	}
	if s := c.QueryParam("before"); s != "" {
		if f.Before, err = strconv.ParseInt(s, 10, 64); err != nil || f.Before < 1 {
			return errorf(http.StatusBadRequest, "before: must be a cursor returned as `next`")
		}
	}
	evs, err := a.opts.Store.ListAudit(c.Request().Context(), f)
	if err != nil {
		return err
	}
	page := auditPage{Events: evs}
	if len(evs) == n {
		page.Next = strconv.FormatInt(evs[len(evs)-1].ID, 10)
	}
	return c.JSON(http.StatusOK, page)
}
