package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// GC run kinds.
const (
	GCKindGC        = "gc"
	GCKindReconcile = "reconcile"
)

// GCRun is one row of gc_runs: a garbage collection or reconcile run.
type GCRun struct {
	Kind             string         `json:"kind"`
	Started          time.Time      `json:"started"`
	Completed        *time.Time     `json:"completed,omitempty"`
	Error            string         `json:"error,omitempty"`
	Details          map[string]any `json:"details,omitempty"`
	Actor            string         `json:"actor,omitempty"`
	ID               int64          `json:"id"`
	BlobsRemoved     int64          `json:"blobs_removed"`
	BytesFreed       int64          `json:"bytes_freed"`
	ManifestsRemoved int64          `json:"manifests_removed"`
	DryRun           bool           `json:"dry_run"`
	RemoveUntagged   bool           `json:"remove_untagged"`
}

// Running reports whether the run has not completed.
func (r *GCRun) Running() bool { return r.Completed == nil }

const gcRunCols = `id, kind, started, completed, blobs_removed, bytes_freed, manifests_removed, error, dry_run, remove_untagged, actor, details_json`

func scanGCRun(row interface{ Scan(...any) error }) (*GCRun, error) {
	var r GCRun
	var started int64
	var completed sql.NullInt64
	var dry, untagged int
	var details string
	if err := row.Scan(&r.ID, &r.Kind, &started, &completed, &r.BlobsRemoved, &r.BytesFreed, &r.ManifestsRemoved,
		&r.Error, &dry, &untagged, &r.Actor, &details); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	r.Started = time.Unix(0, started).UTC()
	if completed.Valid {
		t := time.Unix(0, completed.Int64).UTC()
		r.Completed = &t
	}
	r.DryRun, r.RemoveUntagged = dry != 0, untagged != 0
	if details != "" && details != "{}" {
		_ = json.Unmarshal([]byte(details), &r.Details)
	}
	return &r, nil
}

func detailsJSON(m map[string]any) (string, error) {
	if len(m) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	return string(b), err
}

// CreateGCRun inserts a run that has started (Completed must be nil) and
// sets its ID. A zero Started means now.
func (s *Store) CreateGCRun(ctx context.Context, r *GCRun) error {
	if r.Kind == "" {
		r.Kind = GCKindGC
	}
	if r.Started.IsZero() {
		r.Started = time.Now().UTC()
	}
	details, err := detailsJSON(r.Details)
	if err != nil {
		return fmt.Errorf("store: create gc run: %w", err)
	}
	err = s.db.QueryRowContext(ctx, `INSERT INTO gc_runs(kind, started, dry_run, remove_untagged, actor, details_json)
		VALUES (?,?,?,?,?,?) RETURNING id`, r.Kind, r.Started.UTC().UnixNano(), boolInt(r.DryRun), boolInt(r.RemoveUntagged), r.Actor, details).Scan(&r.ID)
	if err != nil {
		return fmt.Errorf("store: create gc run: %w", err)
	}
	return nil
}

// CompleteGCRun records a run's results and completion time (now when
// Completed is nil).
func (s *Store) CompleteGCRun(ctx context.Context, r *GCRun) error {
	if r.Completed == nil {
		t := time.Now().UTC()
		r.Completed = &t
	}
	details, err := detailsJSON(r.Details)
	if err != nil {
		return fmt.Errorf("store: complete gc run: %w", err)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE gc_runs SET completed = ?, blobs_removed = ?, bytes_freed = ?,
		manifests_removed = ?, error = ?, details_json = ? WHERE id = ?`,
		r.Completed.UTC().UnixNano(), r.BlobsRemoved, r.BytesFreed, r.ManifestsRemoved, r.Error, details, r.ID)
	if err != nil {
		return fmt.Errorf("store: complete gc run %d: %w", r.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// GCRunByID returns one run.
func (s *Store) GCRunByID(ctx context.Context, id int64) (*GCRun, error) {
	return scanGCRun(s.db.QueryRowContext(ctx, `SELECT `+gcRunCols+` FROM gc_runs WHERE id = ?`, id))
}

// LastGCRun returns the newest run of any kind, or ErrNotFound.
func (s *Store) LastGCRun(ctx context.Context) (*GCRun, error) {
	return scanGCRun(s.db.QueryRowContext(ctx, `SELECT `+gcRunCols+` FROM gc_runs ORDER BY id DESC LIMIT 1`))
}

// ListGCRuns returns up to limit runs, newest first.
func (s *Store) ListGCRuns(ctx context.Context, limit int) ([]GCRun, error) {
	if limit <= 0 {
		limit = 20
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+gcRunCols+` FROM gc_runs ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list gc runs: %w", err)
	}
	defer rows.Close()
	out := []GCRun{}
	for rows.Next() {
		r, err := scanGCRun(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list gc runs: %w", err)
		}
		out = append(out, *r)
	}
	return out, rows.Err()
}

// FailUnfinishedGCRuns marks every run without a completion time as
// failed with msg (the process running it died). Call it only while no
// run can be in progress (the data-directory lock is held).
func (s *Store) FailUnfinishedGCRuns(ctx context.Context, msg string) (int64, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE gc_runs SET completed = ?, error = ? WHERE completed IS NULL`,
		time.Now().UTC().UnixNano(), msg)
	if err != nil {
		return 0, fmt.Errorf("store: fail unfinished gc runs: %w", err)
	}
	return res.RowsAffected()
}
