package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// AuditEvent is one row of the audit log.
type AuditEvent struct {
	ID         int64          `json:"id"`
	Time       time.Time      `json:"event_time"`
	Type       string         `json:"event_type"`
	ActorID    string         `json:"actor_id,omitempty"`
	Actor      string         `json:"actor,omitempty"`
	Repository string         `json:"repository,omitempty"`
	Digest     string         `json:"digest,omitempty"`
	Tag        string         `json:"tag,omitempty"`
	IP         string         `json:"ip,omitempty"`
	Details    map[string]any `json:"details,omitempty"`
}

// AuditFilter selects audit rows. Before is a keyset cursor: only rows
// with id < Before (0 = from the newest).
type AuditFilter struct {
	EventType  string
	ActorID    string
	Repository string
	Since      time.Time
	Until      time.Time
	Before     int64
	Offset     int
	Limit      int
}

// commitSlack bounds how long after its time an event is committed (pull
// events are batched asynchronously; everything else commits at once).
const commitSlack = time.Minute

// IsRetryable reports whether err is SQLite saying "busy" or "locked":
// the write should be tried again, never dropped.
func IsRetryable(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked
	}
	return false
}

func insertAudit(ctx context.Context, tx *sql.Tx, evs []AuditEvent) error {
	if len(evs) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO audit_log(event_time, event_type, actor_id, actor, repository, digest, tag, ip, details_json)
		VALUES (?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, e := range evs {
		details := "{}"
		if len(e.Details) > 0 {
			b, err := json.Marshal(e.Details)
			if err != nil {
				return fmt.Errorf("audit details: %w", err)
			}
			details = string(b)
		}
		t := e.Time
		if t.IsZero() {
			t = time.Now()
		}
		if _, err := stmt.ExecContext(ctx, t.UTC().UnixNano(), e.Type, e.ActorID, e.Actor, e.Repository, e.Digest, e.Tag, e.IP, details); err != nil {
			return err
		}
	}
	return nil
}

// WriteAudit appends events in one transaction, retrying while the
// database is busy.
func (s *Store) WriteAudit(ctx context.Context, evs ...AuditEvent) error {
	return s.ApplyBatch(ctx, evs, nil)
}

// ListAudit returns matching events, newest first.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	var where []string
	var args []any
	if f.EventType != "" {
		where, args = append(where, "event_type = ?"), append(args, f.EventType)
	}
	if f.ActorID != "" {
		where, args = append(where, "actor_id = ?"), append(args, f.ActorID)
	}
	if f.Repository != "" {
		where, args = append(where, "repository = ?"), append(args, f.Repository)
	}
	// Time bounds become id bounds too: ids grow with commit order, and an
	// event is committed within commitSlack of its time, so the id range
	// found through the time index (widened by the slack) holds every row of
	// the window, and the (filter, id) indexes serve the query in id order
	// instead of sorting the window.
	if !f.Since.IsZero() {
		where, args = append(where, "event_time >= ?"), append(args, f.Since.UTC().UnixNano())
		var lo sql.NullInt64
		if err := s.db.QueryRowContext(ctx, `SELECT id FROM audit_log WHERE event_time >= ? ORDER BY event_time LIMIT 1`,
			f.Since.Add(-commitSlack).UTC().UnixNano()).Scan(&lo); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("store: list audit: %w", err)
		}
		if !lo.Valid {
			return []AuditEvent{}, nil
		}
		where, args = append(where, "id >= ?"), append(args, lo.Int64)
	}
	if !f.Until.IsZero() {
		where, args = append(where, "event_time <= ?"), append(args, f.Until.UTC().UnixNano())
		var hi sql.NullInt64
		if err := s.db.QueryRowContext(ctx, `SELECT id FROM audit_log WHERE event_time <= ? ORDER BY event_time DESC LIMIT 1`,
			f.Until.Add(commitSlack).UTC().UnixNano()).Scan(&hi); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("store: list audit: %w", err)
		}
		if !hi.Valid {
			return []AuditEvent{}, nil
		}
		where, args = append(where, "id <= ?"), append(args, hi.Int64)
	}
	if f.Before > 0 {
		where, args = append(where, "id < ?"), append(args, f.Before)
	}
	q := `SELECT id, event_time, event_type, actor_id, actor, repository, digest, tag, ip, details_json FROM audit_log`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT ? OFFSET ?"
	args = append(args, f.Limit, f.Offset)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list audit: %w", err)
	}
	defer rows.Close()
	out := []AuditEvent{}
	for rows.Next() {
		var e AuditEvent
		var ts int64
		var details string
		if err := rows.Scan(&e.ID, &ts, &e.Type, &e.ActorID, &e.Actor, &e.Repository, &e.Digest, &e.Tag, &e.IP, &details); err != nil {
			return nil, fmt.Errorf("store: list audit: %w", err)
		}
		e.Time = time.Unix(0, ts).UTC()
		if details != "" && details != "{}" {
			_ = json.Unmarshal([]byte(details), &e.Details)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// PruneAudit deletes up to batch events older than cutoff and reports how
// many it deleted; callers loop with pauses so writers are never starved.
func (s *Store) PruneAudit(ctx context.Context, cutoff time.Time, batch int) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM audit_log WHERE id IN (
		SELECT id FROM audit_log WHERE event_time < ? ORDER BY event_time LIMIT ?)`, cutoff.UTC().UnixNano(), batch)
	if err != nil {
		return 0, fmt.Errorf("store: prune audit: %w", err)
	}
	return res.RowsAffected()
}

// CountAudit counts rows of one event type (all types when empty).
func (s *Store) CountAudit(ctx context.Context, eventType string) (int64, error) {
	var n int64
	var err error
	if eventType == "" {
		err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_log`).Scan(&n)
	} else {
		err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_log WHERE event_type = ?`, eventType).Scan(&n)
	}
	return n, err
}
