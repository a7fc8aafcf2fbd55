package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
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

// pullType is the audit event type of manifest pulls: most rows of a busy
// log, and the ones written in bulk (asynchronous group commits), so the
// (repository, actor_id, event_type, id) index leaves them out (its
// migration's WHERE) and costs pull commits nothing.
const pullType = "manifest_pulled"

// notPull is the partial index's condition: an arm that states it may
// walk that index (neither engine proves it from a bound parameter).
const notPull = "event_type <> '" + pullType + "'"

// ListAudit returns matching events, newest first.
//
// Every query walks one index in id order (ids grow with commit order) and
// stops after the page, whatever the table's size:
//   - no filter, or only time bounds: the table itself (rowid);
//   - an event type: (event_type, id), or the key's (key..., event_type,
//     id) index when a repository and/or actor is given too;
//   - a repository, an actor, or both, without a type: one walk of the
//     key's index per event type present for that key, merged. The keys'
//     indexes are (repository, event_type, id), (actor_id, event_type, id)
//     and, for both at once, (repository, actor_id, event_type, id)
//     without pulls; pulls of a repository by an actor walk the narrower
//     key's pulls and probe the other key's index (pullArm). There is no
//     (key, id) index: every index is paid for by every audit row written
//     (see BenchmarkApplyBatchPulls).
//
// Time bounds become id bounds (auditIDRange), so they narrow the walk too.
// The planner picks each walk's index from the statistics PRAGMA optimize
// keeps (Open, Optimize); PostgreSQL from its own.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	lo, hi, ok, err := s.auditIDRange(ctx, f.Since, f.Until)
	if err != nil {
		return nil, fmt.Errorf("store: list audit: %w", err)
	}
	if !ok {
		return []AuditEvent{}, nil
	}
	// The key columns, in the order of the index the query walks.
	var keyCols []string
	var keyVals []any
	if f.Repository != "" {
		keyCols, keyVals = append(keyCols, "repository"), append(keyVals, f.Repository)
	}
	if f.ActorID != "" {
		keyCols, keyVals = append(keyCols, "actor_id"), append(keyVals, f.ActorID)
	}
	const cols = `id, event_time, event_type, actor_id, actor, repository, digest, tag, ip, details_json`
	var q string
	var args []any
	if len(keyCols) > 0 {
		arms, armArgs, err := s.keyArms(ctx, f, keyCols, keyVals, lo, hi)
		if err != nil {
			return nil, fmt.Errorf("store: list audit: %w", err)
		}
		if len(arms) == 0 {
			return []AuditEvent{}, nil
		}
		q = `SELECT ` + cols + ` FROM audit_log WHERE id IN (SELECT id FROM (` + strings.Join(arms, " UNION ALL ") +
			`) AS arms ORDER BY id DESC LIMIT ? OFFSET ?) ORDER BY id DESC`
		args = append(armArgs, f.Limit, f.Offset)
	} else {
		var where []string
		add := func(cond string, arg any) { where, args = append(where, cond), append(args, arg) }
		if !f.Since.IsZero() {
			add("event_time >= ?", f.Since.UTC().UnixNano())
			add("id >= ?", lo)
		}
		if !f.Until.IsZero() {
			add("event_time <= ?", f.Until.UTC().UnixNano())
			add("id <= ?", hi)
		}
		if f.Before > 0 {
			add("id < ?", f.Before)
		}
		if f.EventType != "" {
			add("event_type = ?", f.EventType)
		}
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

// keyArms returns the walks of a query with a repository and/or actor:
// one per event type and id segment, each at most a page deep (the merge
// keeps the newest page; each arm is a subquery so it may have its own
// LIMIT).
func (s *Store) keyArms(ctx context.Context, f AuditFilter, keyCols []string, keyVals []any, lo, hi int64) ([]string, []any, error) {
	both := len(keyCols) == 2
	types := []string{f.EventType}
	if f.EventType == "" {
		extra := ""
		if both {
			extra = notPull // the index of both keys has no pulls
		}
		var err error
		if types, err = s.auditTypesFor(ctx, keyCols, keyVals, extra); err != nil {
			return nil, nil, err
		}
		if both {
			types = append(types, pullType) // if the pair has pulls, pullArm finds them
		}
	}
	var pull *pullArm
	if both && slices.Contains(types, pullType) {
		var err error
		if pull, err = s.narrowerPulls(ctx, f); err != nil {
			return nil, nil, err
		}
	}
	segs, err := s.auditSegments(ctx, f, lo, hi)
	if err != nil {
		return nil, nil, err
	}
	var arms []string
	var args []any
	for _, t := range types {
		var key []string
		var kargs []any
		switch {
		case both && t == pullType:
			if pull == nil {
				continue // one key has no pulls
			}
			key, kargs = pull.where()
		default:
			for i, c := range keyCols {
				key, kargs = append(key, c+" = ?"), append(kargs, keyVals[i])
			}
			if both {
				key = append(key, notPull)
			}
		}
		if f.Before > 0 {
			key, kargs = append(key, "id < ?"), append(kargs, f.Before)
		}
		for _, sg := range segs {
			cond, cargs := sg.where(f)
			arms = append(arms, `SELECT id FROM (SELECT id FROM audit_log AS a WHERE `+
				strings.Join(append(append([]string{}, key...), cond...), " AND ")+` AND event_type = ? ORDER BY id DESC LIMIT ?) AS arm`)
			args = append(append(append(args, kargs...), cargs...), t, f.Limit+f.Offset)
		}
	}
	return arms, args, nil
}

// pullArm is how a query with a repository and an actor finds their
// pulls, which the index of both keys leaves out: it walks the narrower
// key's (key, event_type, id) index and checks each candidate with a probe
// of the other key's index (an index seek, not a row read: the index is a
// tenth of the table and stays in the cache).
type pullArm struct {
	col, key, otherCol, otherKey string
}

func (p *pullArm) where() ([]string, []any) {
	return []string{p.col + " = ?", `EXISTS (SELECT 1 FROM audit_log AS o WHERE o.` + p.otherCol +
		` = ? AND o.event_type = a.event_type AND o.id = a.id)`}, []any{p.key, p.otherKey}
}

// keyProbe bounds the pull entries narrowerPulls counts per key.
const keyProbe = 20000

// narrowerPulls picks, for the pulls of a repository by an actor, the key
// with fewer pulls (counted in its index up to keyProbe): walking the
// narrower key's and probing the other's reads the fewest entries. A busy
// repository and one actor, or one busy actor and a quiet repository,
// differ by orders of magnitude either way, and the planner's statistics
// (averages per index) cannot tell which. nil: one of them has no pulls.
func (s *Store) narrowerPulls(ctx context.Context, f AuditFilter) (*pullArm, error) {
	count := func(col, key string, limit int) (int, error) {
		var n int
		err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM audit_log WHERE `+col+
			` = ? AND event_type = ? LIMIT ?) AS probe`, key, pullType, limit).Scan(&n)
		return n, err
	}
	repo := &pullArm{"repository", f.Repository, "actor_id", f.ActorID}
	actor := &pullArm{"actor_id", f.ActorID, "repository", f.Repository}
	nr, err := count("repository", f.Repository, keyProbe)
	if err != nil || nr == 0 {
		return nil, err
	}
	if nr == keyProbe {
		// A busy repository: the actor's, if it has any (pulls
		// concentrate on a few repositories, not on a few accounts).
		if na, err := count("actor_id", f.ActorID, 1); err != nil || na == 0 {
			return nil, err
		}
		return actor, nil
	}
	// Whether the actor has fewer is all that matters: counted up to nr.
	na, err := count("actor_id", f.ActorID, nr)
	if err != nil || na == 0 {
		return nil, err
	}
	if na < nr {
		return actor, nil
	}
	return repo, nil
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

// auditTypesFor lists the event types recorded for one key (cols are
// "repository", "actor_id" or both, in that order; vals their values;
// extra, if set, a condition the key's index has): a loose scan of the
// key's (cols..., event_type, id) index, one seek per type.
func (s *Store) auditTypesFor(ctx context.Context, cols []string, vals []any, extra string) ([]string, error) {
	conds := make([]string, len(cols))
	for i, c := range cols {
		conds[i] = c + " = ?" + strconv.Itoa(i+1)
	}
	if extra != "" {
		conds = append(conds, extra)
	}
	key := strings.Join(conds, " AND ")
	rows, err := s.db.QueryContext(ctx, `WITH RECURSIVE t(x) AS (
		SELECT (SELECT MIN(event_type) FROM audit_log WHERE `+key+`)
		UNION ALL
		SELECT (SELECT MIN(event_type) FROM audit_log WHERE `+key+` AND event_type > t.x) FROM t WHERE t.x IS NOT NULL)
		SELECT x FROM t WHERE x IS NOT NULL`, vals...)
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
