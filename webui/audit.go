package webui

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// auditEventTypes are the event types the filter offers (DESIGN §7).
var auditEventTypes = []string{
	"manifest_pushed", "manifest_pulled", "manifest_deleted", "tag_deleted", "repo_deleted",
	"blob_uploaded", "blob_mounted", "blob_deleted", "policy_deny",
	"policy_rule_created", "policy_rule_updated", "policy_rule_deleted", "policy_reload_failed",
	"login_ok", "login_fail", "login_locked", "refresh_reuse", "account_unlocked", "tokens_revoked",
	"gc_started", "gc_completed", "snapshot_created",
}

const auditPageSize = 50

// auditFilter is the audit page's filter form.
type auditFilter struct {
	EventType  string
	Repository string
	ActorID    string
	Since      string
	Until      string
}

func (f auditFilter) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"event_type": f.EventType, "repository": f.Repository, "actor_id": f.ActorID, "since": f.Since, "until": f.Until} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// Active reports whether any filter is set.
func (f auditFilter) Active() bool { return len(f.values()) > 0 }

// auditData is the audit page's content.
type auditData struct {
	Filter  auditFilter
	Types   []string
	MoreURL string
	Error   string
	Events  []AuditEvent
}

// With returns the audit URL for this filter with one more key set.
func (d *auditData) With(key, value string) string {
	v := d.Filter.values()
	v.Set(key, value)
	return "/audit?" + v.Encode()
}

func (srv *Server) audit(w http.ResponseWriter, r *http.Request, s *Session) error {
	q := r.URL.Query()
	f := auditFilter{
		EventType: q.Get("event_type"), Repository: strings.TrimSpace(q.Get("repository")),
		ActorID: strings.TrimSpace(q.Get("actor_id")), Since: q.Get("since"), Until: q.Get("until"),
	}
	d := &auditData{Filter: f, Types: auditEventTypes}
	api := url.Values{"n": {strconv.Itoa(auditPageSize)}}
	for k, vs := range f.values() {
		api[k] = vs
	}
	before := q.Get("before")
	var errs []string
	if f.EventType != "" && !contains(auditEventTypes, f.EventType) {
		errs = append(errs, "unknown event type “"+f.EventType+"”")
	}
	var since, until time.Time
	if f.Since != "" {
		t, err := time.Parse("2006-01-02", f.Since)
		if err != nil {
			errs = append(errs, "“From” must be a date (YYYY-MM-DD)")
		}
		since = t
		api.Set("since", t.UTC().Format(time.RFC3339))
	}
	if f.Until != "" {
		t, err := time.Parse("2006-01-02", f.Until)
		if err != nil {
			errs = append(errs, "“To” must be a date (YYYY-MM-DD)")
		}
		// The whole of the "to" day is included.
		until = t.Add(24*time.Hour - time.Nanosecond)
		api.Set("until", until.UTC().Format(time.RFC3339Nano))
	}
	if !since.IsZero() && !until.IsZero() && until.Before(since) {
		errs = append(errs, "“To” must not be before “From”")
	}
	if before != "" {
		if n, err := strconv.ParseInt(before, 10, 64); err != nil || n < 1 {
			errs = append(errs, "the page cursor is not valid; start from the first page")
		} else {
			api.Set("before", before)
		}
	}
	if len(errs) > 0 {
		d.Error = "Check the filter: " + strings.Join(errs, "; ") + "."
	} else {
		page, err := srv.api.Audit(r.Context(), s.Token, api)
		switch {
		case err == nil:
			d.Events = page.Events
			if page.Next != "" {
				d.MoreURL = d.With("before", page.Next)
			}
		case statusOf(err) == http.StatusBadRequest:
			d.Error = "The registry rejected the filter: " + messageOf(err) + "."
		default:
			return err
		}
	}
	status := http.StatusOK
	if d.Error != "" {
		status = http.StatusBadRequest
	}
	v := srv.newView(w, r, s, "Audit log", "audit", d)
	switch {
	case isHTMX(r) && before != "" && d.Error == "":
		srv.partial(w, status, "audit", "audit-more", v)
	case hxTarget(r) == "audit-results":
		srv.partial(w, status, "audit", "audit-results", v)
	default:
		srv.render(w, status, "audit", v)
	}
	return nil
}
