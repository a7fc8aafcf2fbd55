package adminsvc

import (
	"context"
	"strconv"
	"time"

	"git.wntrmute.dev/kyle/mcr/store"
)

// Audit paging: default and maximum page size.
const (
	AuditPageDefault = 50
	AuditPageMax     = 1000
)

// EventTypes are the audit event types queries may filter on.
var EventTypes = map[string]bool{
	"login_ok": true, "login_fail": true, "manifest_pushed": true, "manifest_pulled": true,
	"manifest_deleted": true, "tag_deleted": true, "blob_uploaded": true, "blob_mounted": true,
	"blob_deleted": true, "repo_deleted": true, "policy_deny": true, "policy_rule_created": true,
	"policy_rule_updated": true, "policy_rule_deleted": true, "policy_reload_failed": true,
	"gc_started": true, "gc_completed": true, "snapshot_created": true,
	"login_locked": true, "refresh_reuse": true, "account_unlocked": true, "tokens_revoked": true,
}

// AuditQuery filters the audit log. Since and Until are RFC 3339 times or
// dates (2026-01-02), as on /v1/audit; Before is the `next` cursor of a
// previous page (0: from the newest).
type AuditQuery struct {
	EventType, ActorID, Repository string
	Since, Until                   string
	Before                         int64
	N, Offset                      int
}

// AuditPage is a page of events, newest first; Next is the cursor of the
// next page, empty on a short page.
type AuditPage struct {
	Next   string
	Events []store.AuditEvent
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
	return time.Time{}, Errorf(InvalidArgument, "%s: want RFC 3339 time (2026-01-02T15:04:05Z) or a date (2026-01-02)", name)
}

// MsgBadCursor is the answer to a `before` that is not a cursor.
const MsgBadCursor = "before: must be a cursor returned as `next`"

// ListAudit returns a page of audit events (admins only).
func (s *Service) ListAudit(ctx context.Context, c Caller, q AuditQuery) (*AuditPage, error) {
	if err := RequireAdmin(c.Principal); err != nil {
		return nil, err
	}
	n, err := CheckPage(q.N, q.Offset, AuditPageDefault, AuditPageMax)
	if err != nil {
		return nil, err
	}
	f := store.AuditFilter{EventType: q.EventType, ActorID: q.ActorID, Repository: q.Repository, Limit: n, Offset: q.Offset}
	if f.EventType != "" && !EventTypes[f.EventType] {
		return nil, Errorf(InvalidArgument, "event_type: unknown event type %s", Quote(f.EventType))
	}
	if f.Since, err = parseTime("since", q.Since); err != nil {
		return nil, err
	}
	if f.Until, err = parseTime("until", q.Until); err != nil {
		return nil, err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return nil, Errorf(InvalidArgument, "until: must not be before since")
	}
	if q.Before < 0 {
		return nil, Errorf(InvalidArgument, MsgBadCursor)
	}
	f.Before = q.Before
	evs, err := s.opts.Store.ListAudit(ctx, f)
	if err != nil {
		return nil, internal("reading the audit log failed", err)
	}
	page := &AuditPage{Events: evs}
	if len(evs) == n {
		page.Next = strconv.FormatInt(evs[len(evs)-1].ID, 10)
	}
	return page, nil
}

func itoa(id int64) string { return strconv.FormatInt(id, 10) }
