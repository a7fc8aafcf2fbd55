package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrNotEmpty is returned by CopyInto when the destination already holds
// accounts, rules, repositories or audit events.
var ErrNotEmpty = errors.New("store: destination database is not empty")

// copyOrder puts tables before the ones whose foreign keys point at them;
// tables not listed follow in name order.
var copyOrder = []string{"users", "repositories", "manifests", "manifest_refs", "tags"}

// notCopied are tables of a running cluster (heartbeats, leases,
// broadcasts) and the schema bookkeeping: a new database starts its own.
var notCopied = map[string]bool{
	"schema_migrations": true, "cluster_members": true, "cluster_topics": true,
	"cluster_acks": true, "gc_lease": true, "gc_recent": true,
}

// identityTables have a generated id whose sequence must continue after
// the copied rows (PostgreSQL).
var identityTables = []string{"users", "policy_rules", "audit_log", "repositories", "gc_runs"}

// CopyInto copies every row of every table of s (a SQLite store at the
// same schema version) into dst, in one transaction, and returns the
// rows copied per table: `mcrsrv migrate-db` moving a single node to
// PostgreSQL. dst must be empty (ErrNotEmpty otherwise).
func (s *Store) CopyInto(ctx context.Context, dst *Store) (map[string]int64, error) {
	sv, err := s.SchemaVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: copy: source schema: %w", err)
	}
	dv, err := dst.SchemaVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: copy: destination schema: %w", err)
	}
	if sv != dv {
		return nil, fmt.Errorf("store: copy: source schema version %d, destination %d: open both with this mcrsrv first", sv, dv)
	}
	for _, t := range []string{"users", "policy_rules", "repositories", "audit_log"} {
		var n int64
		if err := dst.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+t).Scan(&n); err != nil {
			return nil, fmt.Errorf("store: copy: %w", err)
		}
		if n > 0 {
			return nil, fmt.Errorf("%w (%s has %d rows): migrate into a fresh database, before `mcrsrv init` creates an admin there", ErrNotEmpty, t, n)
		}
	}
	tables, err := s.tables(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := dst.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: copy: %w", err)
	}
	defer tx.Rollback() // a no-op after Commit
	counts := map[string]int64{}
	for _, t := range tables {
		rows, err := s.db.QueryContext(ctx, `SELECT * FROM `+t)
		if err != nil {
			return nil, fmt.Errorf("store: copy %s: %w", t, err)
		}
		cols, err := rows.Columns()
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: copy %s: %w", t, err)
		}
		marks := strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",")
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO `+t+`(`+strings.Join(cols, ",")+`) VALUES (`+marks+`)`)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: copy %s: %w", t, err)
		}
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: copy %s: %w", t, err)
			}
			for i, v := range vals {
				if b, ok := v.([]byte); ok {
					vals[i] = string(b) // every column is TEXT or an integer
				}
			}
			if _, err := stmt.ExecContext(ctx, vals...); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: copy %s: %w", t, err)
			}
			counts[t]++
		}
		err = rows.Err()
		rows.Close()
		_ = stmt.Close()
		if err != nil {
			return nil, fmt.Errorf("store: copy %s: %w", t, err)
		}
	}
	if dst.postgres {
		for _, t := range identityTables {
			if _, err := tx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence('`+t+`', 'id'), COALESCE((SELECT MAX(id) FROM `+t+`), 0) + 1, false)`); err != nil {
				return nil, fmt.Errorf("store: copy: continue %s ids: %w", t, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: copy: %w", err)
	}
	return counts, nil
}

// tables lists the SQLite store's tables to copy, in copy order.
func (s *Store) tables(ctx context.Context) ([]string, error) {
	if s.postgres {
		return nil, errors.New("store: copy: the source must be a SQLite database")
	}
	rows, err := s.db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: copy: %w", err)
	}
	defer rows.Close()
	var rest []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		if !notCopied[n] && !slices.Contains(copyOrder, n) {
			rest = append(rest, n)
		}
	}
	return append(slices.Clone(copyOrder), rest...), rows.Err()
}
