// Package store is MCR's metadata database: SQLite through mattn/go-sqlite3
// in WAL mode with foreign keys and a busy timeout (the embedded default),
// or PostgreSQL through jackc/pgx for replicas that share it; one set of
// queries (see dialect.go), schema kept by numbered migrations per
// dialect. Blobs and manifests live in distribution's storage, not here.
//
//	st, err := store.Open("/srv/mcr/mcr.db") // creates 0600, migrates
//	if err != nil { ... }
//	defer st.Close()
//	u, err := st.UserByName(ctx, "alice")
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a unique constraint would be violated.
var ErrConflict = errors.New("already exists")

// Store is an open metadata database.
type Store struct {
	db    *sql.DB
	path  string // SQLite file ("" on PostgreSQL)
	dsn   string // PostgreSQL's connection string (for LISTEN connections)
	check checkState
	// postgres: the database is PostgreSQL (OpenPostgres), shared by
	// replicas.
	postgres bool
}

// Open opens (creating with mode 0600 if needed) and migrates the database.
func Open(path string) (*Store, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("store: create %s: %w", path, err)
		}
		if f != nil {
			_ = f.Close()
		}
	}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_foreign_keys", "on")
	q.Set("_busy_timeout", "5000")
	q.Set("_synchronous", "NORMAL")
	q.Set("_txlock", "immediate")
	db, err := sql.Open(driverName, "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Store{db: db, path: path}
	if err := db.Ping(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		_ = db.Close()
		return nil, err
	}
	// WAL and SHM files inherit the umask; keep the main file private.
	_ = os.Chmod(path, 0o600)
	// Statistics for the planner, as SQLite recommends for long-lived
	// connections: a table never analyzed (a new or upgraded database) is
	// analyzed now, within analysis_limit. A database that cannot take the
	// write (a full disk) still opens; its queries are only slower.
	if err := s.Optimize(context.Background()); err != nil {
		slog.Warn("store: planner statistics not updated", "err", err)
	}
	return s, nil
}

// Optimize runs PRAGMA optimize on every table, as SQLite recommends at
// open and then periodically: it re-analyzes a table whose size changed
// enough for its statistics to mislead the planner, and is a few
// microseconds otherwise. The audit queries depend on those statistics
// to pick the key's index over (event_type, id) (ListAudit). Each ANALYZE
// reads at most analysis_limit rows per index (set on every connection),
// about 2 s at 10 M audit rows, so a writer never waits long. A no-op on
// PostgreSQL, whose autovacuum keeps statistics.
func (s *Store) Optimize(ctx context.Context) error {
	if s.postgres {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, `PRAGMA optimize=0x10002`); err != nil {
		return fmt.Errorf("store: optimize: %w", err)
	}
	return nil
}

const (
	driverName = "mcr-sqlite3"
	// walCheckpointPages is the WAL size (pages) that triggers a checkpoint.
	// SQLite's default, 1000 pages, makes busy audit logs copy the same hot
	// index pages back into the database every few commits; 8192 (32 MiB of
	// WAL) halves the cost per audit row (pulls across 300 repositories) in BenchmarkApplyBatchPulls.
	walCheckpointPages = 8192
	// analysisLimit bounds the rows ANALYZE (run by Optimize) reads per
	// index: statistics that coarse are enough for the audit queries'
	// choice of index (their equality columns), and a 10 M-row audit log
	// is analyzed in about 2 s instead of 12.
	analysisLimit = 400
)

func init() {
	sql.Register(driverName, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		for _, p := range []string{"PRAGMA wal_autocheckpoint=" + strconv.Itoa(walCheckpointPages), "PRAGMA analysis_limit=" + strconv.Itoa(analysisLimit)} {
			if _, err := c.Exec(p, nil); err != nil {
				return err
			}
		}
		return nil
	}})
}

// DB exposes the handle for packages that own their own tables.
func (s *Store) DB() *sql.DB { return s.db }

// Path is the database file ("" on PostgreSQL).
func (s *Store) Path() string { return s.path }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}
