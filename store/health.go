package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// ErrCorrupt marks a database SQLite reports as damaged (malformed pages,
// not a database at all, or a failed integrity check).
var ErrCorrupt = errors.New("database is corrupt")

// IsCorrupt reports whether err means the database file is damaged.
func IsCorrupt(err error) bool {
	if errors.Is(err, ErrCorrupt) {
		return true
	}
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.Code == sqlite3.ErrCorrupt || se.Code == sqlite3.ErrNotADB
	}
	// Some paths only keep the message.
	msg := err.Error()
	return strings.Contains(msg, "database disk image is malformed") || strings.Contains(msg, "file is not a database")
}

// CheckResult is the outcome of the newest integrity check.
type CheckResult struct {
	At   time.Time
	Err  error // nil: ok; wraps ErrCorrupt when damage was found
	Full bool
	// Incomplete: the time bound ran out before the check finished.
	Incomplete bool
}

// checkState remembers the last check for health detail.
type checkState struct {
	last *CheckResult // guarded by mu
	mu   sync.Mutex
}

// Check runs PRAGMA quick_check (or, with full, integrity_check, which
// also verifies index contents) within ctx's deadline. Damage is returned
// wrapping ErrCorrupt with SQLite's first finding; a check the deadline
// cut short is reported Incomplete, not as damage.
func (s *Store) Check(ctx context.Context, full bool) CheckResult {
	pragma := "quick_check"
	if full {
		pragma = "integrity_check"
	}
	res := CheckResult{At: time.Now(), Full: full}
	if s.postgres {
		// PostgreSQL checks its own pages (and has no PRAGMA); its health
		// is the server's answering.
		return res
	}
	rows, err := s.db.QueryContext(ctx, "PRAGMA "+pragma+"(20)")
	if err == nil {
		var findings []string
		for rows.Next() {
			var line string
			if err = rows.Scan(&line); err != nil {
				break
			}
			if line != "ok" {
				findings = append(findings, line)
			}
		}
		if err == nil {
			err = rows.Err()
		}
		_ = rows.Close()
		if err == nil && len(findings) > 0 {
			err = fmt.Errorf("%w: PRAGMA %s: %s", ErrCorrupt, pragma, strings.Join(findings[:min(3, len(findings))], "; "))
		}
	}
	switch {
	case err == nil:
	case ctx.Err() != nil && !IsCorrupt(err):
		res.Incomplete = true
	case IsCorrupt(err) && !errors.Is(err, ErrCorrupt):
		res.Err = fmt.Errorf("%w: PRAGMA %s: %w", ErrCorrupt, pragma, err)
	default:
		res.Err = err
	}
	s.check.mu.Lock()
	s.check.last = &res
	s.check.mu.Unlock()
	return res
}

// LastCheck returns the newest check's result (nil before the first).
func (s *Store) LastCheck() *CheckResult {
	s.check.mu.Lock()
	defer s.check.mu.Unlock()
	if s.check.last == nil {
		return nil
	}
	r := *s.check.last
	return &r
}

// Healthy is the database's health: it answers a query, and the newest
// integrity check found no damage.
func (s *Store) Healthy(ctx context.Context) error {
	if err := s.Ping(ctx); err != nil {
		if IsCorrupt(err) {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return err
	}
	if last := s.LastCheck(); last != nil && last.Err != nil {
		return fmt.Errorf("integrity check at %s: %w", last.At.UTC().Format(time.RFC3339), last.Err)
	}
	return nil
}
