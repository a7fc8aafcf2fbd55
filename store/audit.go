package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// AuditEvent is one row of the audit log.
type AuditEvent struct {
	Time       time.Time      `json:"event_time"`
	Type       string         `json:"event_type"`
	ActorID    string         `json:"actor_id,omitempty"`
	Actor      string         `json:"actor,omitempty"`
	Repository string         `json:"repository,omitempty"`
	Digest     string         `json:"digest,omitempty"`
	Tag        string         `json:"tag,omitempty"`
	Details    map[string]any `json:"details,omitempty"`
	IP         string         `json:"ip,omitempty"`
	ID         int64          `json:"id"`
}

// AuditFilter selects audit rows. Before is a keyset cursor: only rows
// with id < Before (0 = from the newest).
type AuditFilter struct {
	EventType  string
	ActorID    string
	Since      time.Time
	Until      time.Time
	Repository string
	Before     int64
	Offset     int
	Limit      int
}

// Bounds on what one audit row holds, whatever the caller supplied: the
// writer truncates here, in one place, so a 1 MB username never becomes a
// 1 MB row.
const (
	// MaxAuditField bounds each text column (actor, repository, digest,
	// tag, ip), in bytes.
	MaxAuditField = 256
	// MaxAuditDetailString bounds each string value in details.
	MaxAuditDetailString = 1024
	// MaxAuditDetails bounds the details JSON; larger details are replaced
	// by a marker.
	MaxAuditDetails = 8 << 10
)

// Truncate shortens s to at most n bytes without splitting a UTF-8
// sequence, marking the cut with "…" (counted in n).
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// boundDetails truncates the string values of details (one level deep:
// that is where callers put request-derived text).
func boundDetails(d map[string]any) map[string]any {
	var out map[string]any
	for k, v := range d {
		if sv, ok := v.(string); ok && len(sv) > MaxAuditDetailString {
			if out == nil {
				out = make(map[string]any, len(d))
				for k2, v2 := range d {
					out[k2] = v2
				}
			}
			out[k] = Truncate(sv, MaxAuditDetailString)
		}
	}
	if out == nil {
		return d
	}
	return out
}

// commitSlack bounds how long after its time an event is committed (pull
// events are batched asynchronously; everything else commits at once).
const commitSlack = time.Minute

func insertAudit(ctx context.Context, tx *sql.Tx, evs []AuditEvent) error {
	if len(evs) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO audit_log(event_time, event_type, actor_id, actor, repository, digest, tag, ip, details_json)
		VALUES (?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		return err
	}
	defer func() { _ = stmt.Close() }() // the transaction's commit reports what matters
	for _, e := range evs {
		details := "{}"
		if len(e.Details) > 0 {
			b, err := json.Marshal(boundDetails(e.Details))
			if err != nil {
				return fmt.Errorf("audit details: %w", err)
			}
			if len(b) > MaxAuditDetails {
				b, _ = json.Marshal(map[string]any{"truncated": true, "type": e.Type})
			}
			details = string(b)
		}
		e.ActorID, e.Actor, e.Repository = Truncate(e.ActorID, MaxAuditField), Truncate(e.Actor, MaxAuditField), Truncate(e.Repository, MaxAuditField)
		e.Digest, e.Tag, e.IP = Truncate(e.Digest, MaxAuditField), Truncate(e.Tag, MaxAuditField), Truncate(e.IP, MaxAuditField)
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
//
// Every query walks one index in id order (ids grow with commit order) and
// stops after the page, whatever the table's size:
//   - no filter, or only time bounds: the table itself (rowid);
//   - an event type: (event_type, id), or (repository|actor_id, event_type,
//     id) when a repository or actor is given too;
//   - a repository or actor without a type: one walk of (repository|actor_id,
//     event_type, id) per event type present for that key, merged. There is
//     no (repository, id) index: every index is paid for by every audit row
//     written, and pulls across many repositories make such indexes the
//     dearest part of a commit (see BenchmarkApplyBatchPulls).
//
// Time bounds become id bounds (auditIDRange), so they narrow the walk too.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	lo, hi, ok, err := s.auditIDRange(ctx, f.Since, f.Until)
	if err != nil {
		return nil, fmt.Errorf("store: list audit: %w", err)
	}
	if !ok {
		return []AuditEvent{}, nil
	}
	// The key whose (key, event_type, id) index the query walks; with both
	// keys, the other is checked by a probe of its own index (other).
	col, key, otherCol, otherKey := "", "", "", ""
	switch {
	case f.Repository != "" && f.ActorID != "":
		if col, key, err = s.narrowerKey(ctx, f); err != nil {
			return nil, fmt.Errorf("store: list audit: %w", err)
		}
		otherCol, otherKey = "actor_id", f.ActorID
		if col == "actor_id" {
			otherCol, otherKey = "repository", f.Repository
		}
	case f.Repository != "":
		col, key = "repository", f.Repository
	case f.ActorID != "":
		col, key = "actor_id", f.ActorID
	}
	var where []string
	var args []any
	add := func(cond string, arg any) { where, args = append(where, cond), append(args, arg) }
	if col != "" {
		add(col+" = ?", key)
	}
	if otherCol != "" {
		// An index probe per candidate, not a row read: the index is a
		// tenth of the table and stays in the cache.
		add(`EXISTS (SELECT 1 FROM audit_log AS o`+s.auditKeyIndex(otherCol)+` WHERE o.`+otherCol+
			` = ? AND o.event_type = a.event_type AND o.id = a.id)`, otherKey)
	}
	if col == "" {
		if !f.Since.IsZero() {
			add("event_time >= ?", f.Since.UTC().UnixNano())
			add("id >= ?", lo)
		}
		if !f.Until.IsZero() {
			add("event_time <= ?", f.Until.UTC().UnixNano())
			add("id <= ?", hi)
		}
	}
	if f.Before > 0 {
		add("id < ?", f.Before)
	}
	const cols = `id, event_time, event_type, actor_id, actor, repository, digest, tag, ip, details_json`
	var q string
	switch {
	case col != "":
		types := []string{f.EventType}
		if f.EventType == "" {
			if types, err = s.auditTypesFor(ctx, col, key); err != nil {
				return nil, fmt.Errorf("store: list audit: %w", err)
			}
			if otherCol != "" {
				// Only types both keys have (an actor's sign-ins have no
				// repository).
				other, err := s.auditTypesFor(ctx, otherCol, otherKey)
				if err != nil {
					return nil, fmt.Errorf("store: list audit: %w", err)
				}
				types = slices.DeleteFunc(types, func(t string) bool { return !slices.Contains(other, t) })
			}
		}
		if len(types) == 0 {
			return []AuditEvent{}, nil
		}
		segs, err := s.auditSegments(ctx, f, lo, hi)
		if err != nil {
			return nil, fmt.Errorf("store: list audit: %w", err)
		}
		// One walk per type and id segment, each at most a page deep; the
		// merge keeps the newest page. Each arm is a subquery so it may
		// have its own LIMIT.
		var arms []string
		var armArgs []any
		for _, t := range types {
			for _, sg := range segs {
				cond, cargs := sg.where(f)
				arms = append(arms, `SELECT id FROM (SELECT id FROM audit_log AS a`+s.auditKeyIndex(col)+` WHERE `+
					strings.Join(append(append([]string{}, where...), cond...), " AND ")+` AND event_type = ? ORDER BY id DESC LIMIT ?) AS arm`)
				armArgs = append(append(append(armArgs, args...), cargs...), t, f.Limit+f.Offset)
			}
		}
		q = `SELECT ` + cols + ` FROM audit_log WHERE id IN (SELECT id FROM (` + strings.Join(arms, " UNION ALL ") +
			`) AS arms ORDER BY id DESC LIMIT ? OFFSET ?) ORDER BY id DESC`
		args = append(armArgs, f.Limit, f.Offset)
	case f.EventType != "":
		add("event_type = ?", f.EventType)
		q = `SELECT ` + cols + ` FROM audit_log WHERE ` + strings.Join(where, " AND ") + ` ORDER BY id DESC LIMIT ? OFFSET ?`
		args = append(args, f.Limit, f.Offset)
	default:
		q = `SELECT ` + cols + ` FROM audit_log`
		if len(where) > 0 {
			q += " WHERE " + strings.Join(where, " AND ")
		}
		q += " ORDER BY id DESC LIMIT ? OFFSET ?"
		args = append(args, f.Limit, f.Offset)
	}
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

// idSegment is a stretch of ids a key query walks, and which time bounds
// its rows must be checked against.
type idSegment struct {
	lo, hi       int64 // 0: unbounded
	since, until bool
}

func (sg idSegment) where(f AuditFilter) ([]string, []any) {
	var c []string
	var a []any
	if sg.lo > 0 {
		c, a = append(c, "id >= ?"), append(a, sg.lo)
	}
	if sg.hi > 0 {
		c, a = append(c, "id <= ?"), append(a, sg.hi)
	}
	if sg.since {
		c, a = append(c, "event_time >= ?"), append(a, f.Since.UTC().UnixNano())
	}
	if sg.until {
		c, a = append(c, "event_time <= ?"), append(a, f.Until.UTC().UnixNano())
	}
	return c, a
}

// auditSegments splits the window's id range [lo, hi] into a core, whose
// rows are all inside the window, and the edges (about commitSlack of rows
// each) that need the event_time check. A key's index holds the id, not the
// time: checking the time means reading the row, which made an actor and a
// repository with an open time bound read thousands of rows per page.
// Rows at and after the first row timed since+commitSlack were committed
// after it, so their time is at least since; symmetrically for until.
func (s *Store) auditSegments(ctx context.Context, f AuditFilter, lo, hi int64) ([]idSegment, error) {
	if f.Since.IsZero() && f.Until.IsZero() {
		return []idSegment{{}}, nil
	}
	coreLo, coreHi := lo, hi
	if !f.Since.IsZero() {
		x, _, ok, err := s.auditIDRange(ctx, f.Since.Add(2*commitSlack), time.Time{})
		if err != nil {
			return nil, err
		}
		if !ok {
			x = hi + 1
		}
		coreLo = max(x, lo)
	}
	if !f.Until.IsZero() {
		_, z, ok, err := s.auditIDRange(ctx, time.Time{}, f.Until.Add(-2*commitSlack))
		if err != nil {
			return nil, err
		}
		if !ok {
			z = lo - 1
		}
		coreHi = min(z, hi)
	}
	since, until := !f.Since.IsZero(), !f.Until.IsZero()
	if coreLo > coreHi { // a short window: no core
		return []idSegment{{lo: lo, hi: hi, since: since, until: until}}, nil
	}
	segs := []idSegment{{lo: coreLo, hi: coreHi}}
	if since && coreLo > lo {
		segs = append(segs, idSegment{lo: lo, hi: coreLo - 1, since: true, until: until})
	}
	if until && coreHi < hi {
		segs = append(segs, idSegment{lo: coreHi + 1, hi: hi, since: since, until: true})
	}
	return segs, nil
}

// auditKeyIndex names, for SQLite, the (repository|actor_id, event_type,
// id) index a query with a repository or actor must walk. With an id range
// (a time window) SQLite's planner, which has no statistics (production
// databases never run ANALYZE), otherwise takes the (event_type, id) index
// and reads every row of that type in the window to find the key's: at 10 M
// rows a repository and one day took p50 54 / p99 78 ms that way, against
// a few ms for the same page through the key's index. PostgreSQL plans by
// its own statistics and has no such clause.
func (s *Store) auditKeyIndex(col string) string {
	if s.postgres {
		return ""
	}
	switch col {
	case "repository":
		return " INDEXED BY audit_log_repo_type"
	case "actor_id":
		return " INDEXED BY audit_log_actor_type"
	}
	return ""
}

// keyProbe bounds the index entries narrowerKey counts per key.
const keyProbe = 20000

// narrowerKey picks, for a query with both a repository and an actor, the
// key with fewer rows (counted in its index up to keyProbe): walking the
// narrower key's index and filtering on the other reads the fewest rows.
// A busy repository and one actor, or one busy actor and a quiet
// repository, differ by orders of magnitude either way. PostgreSQL decides
// this itself from its statistics (the repository is returned).
func (s *Store) narrowerKey(ctx context.Context, f AuditFilter) (string, string, error) {
	if s.postgres {
		return "repository", f.Repository, nil
	}
	count := func(col, key string) (int, error) {
		var n int
		err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM audit_log`+s.auditKeyIndex(col)+
			` WHERE `+col+` = ? LIMIT ?) AS probe`, key, keyProbe).Scan(&n)
		return n, err
	}
	nr, err := count("repository", f.Repository)
	if err != nil {
		return "", "", err
	}
	if nr < keyProbe {
		na, err := count("actor_id", f.ActorID)
		if err != nil {
			return "", "", err
		}
		if nr <= na {
			return "repository", f.Repository, nil
		}
	}
	return "actor_id", f.ActorID, nil
}

// auditTypesFor lists the event types recorded for one repository or actor
// (col is "repository" or "actor_id"): a loose scan of the (col,
// event_type, id) index, one seek per type.
func (s *Store) auditTypesFor(ctx context.Context, col, key string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `WITH RECURSIVE t(x) AS (
		SELECT (SELECT MIN(event_type) FROM audit_log WHERE `+col+` = ?1)
		UNION ALL
		SELECT (SELECT MIN(event_type) FROM audit_log WHERE `+col+` = ?1 AND event_type > t.x) FROM t WHERE t.x IS NOT NULL)
		SELECT x FROM t WHERE x IS NOT NULL`, key)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// auditIDRange turns a time window into an id range [lo, hi] that holds
// every row of the window (ok false: no row can be in it). Ids grow with
// commit order and an event commits within commitSlack of its time, so a
// row whose time is before since-commitSlack was committed before any row
// of the window: a binary search over ids steps past such rows (and,
// from the other end, past rows after until+commitSlack). Each step is one
// rowid seek; there is no time index to maintain on every write.
func (s *Store) auditIDRange(ctx context.Context, since, until time.Time) (lo, hi int64, ok bool, err error) {
	if since.IsZero() && until.IsZero() {
		return 0, 0, true, nil
	}
	// Two statements: SQLite reads MIN or MAX of the rowid with one seek,
	// but both in one SELECT scan the table.
	var minID, maxID sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MIN(id) FROM audit_log`).Scan(&minID); err != nil {
		return 0, 0, false, err
	}
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(id) FROM audit_log`).Scan(&maxID); err != nil {
		return 0, 0, false, err
	}
	if !minID.Valid || !maxID.Valid {
		return 0, 0, false, nil
	}
	lo, hi = minID.Int64, maxID.Int64
	// probe returns the first row at or after id (asc) or at or before it.
	probe := func(id int64, asc bool) (rid, rt int64, found bool, err error) {
		q := `SELECT id, event_time FROM audit_log WHERE id >= ? ORDER BY id LIMIT 1`
		if !asc {
			q = `SELECT id, event_time FROM audit_log WHERE id <= ? ORDER BY id DESC LIMIT 1`
		}
		err = s.db.QueryRowContext(ctx, q, id).Scan(&rid, &rt)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, 0, false, nil
		}
		return rid, rt, err == nil, err
	}
	if !since.IsZero() {
		t := since.Add(-commitSlack).UTC().UnixNano()
		a, b := lo, hi+1 // the answer is in [a, b]; b = past the end
		for a < b {
			mid := a + (b-a)/2
			rid, rt, found, err := probe(mid, true)
			if err != nil {
				return 0, 0, false, err
			}
			if found && rt < t {
				a = rid + 1 // rid and everything before it precede the window
			} else {
				b = mid
			}
		}
		lo = a
	}
	if !until.IsZero() {
		t := until.Add(commitSlack).UTC().UnixNano()
		a, b := lo-1, hi // the answer is in [a, b]; a = before the start
		for a < b {
			mid := b - (b-a)/2
			rid, rt, found, err := probe(mid, false)
			if err != nil {
				return 0, 0, false, err
			}
			if found && rt > t {
				b = rid - 1 // rid and everything after it follow the window
			} else {
				a = mid
			}
		}
		hi = b
	}
	return lo, hi, lo <= hi, nil
}

// PruneAudit deletes up to batch events older than cutoff and reports how
// many it deleted; callers loop with pauses so writers are never starved.
// The oldest rows have the lowest ids, so the walk is in id order, bounded
// by the id range that can hold rows before cutoff.
func (s *Store) PruneAudit(ctx context.Context, cutoff time.Time, batch int) (int64, error) {
	_, hi, ok, err := s.auditIDRange(ctx, time.Time{}, cutoff)
	if err != nil {
		return 0, fmt.Errorf("store: prune audit: %w", err)
	}
	if !ok {
		return 0, nil
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM audit_log WHERE id IN (
		SELECT id FROM audit_log WHERE id <= ? AND event_time < ? ORDER BY id LIMIT ?)`, hi, cutoff.UTC().UnixNano(), batch)
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
