package store

import (
	"errors"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	sqlite3 "github.com/mattn/go-sqlite3"
)

// The store's SQL is written once, in the subset SQLite and PostgreSQL
// share: `?`/`?N` placeholders (rewritten to `$N` for PostgreSQL by
// rebind, in the driver wrapper, so call sites never see the difference),
// INSERT … ON CONFLICT … DO NOTHING/UPDATE, INSERT … RETURNING id, CASE
// instead of two-argument MIN/MAX, aliased subqueries in FROM, and
// instr() (a SQL function the PostgreSQL schema defines). Where the two
// cannot share a statement (schema, snapshots) the store branches on
// s.postgres.

// Dialect names, as database.driver spells them.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// Dialect is the database engine behind the store.
func (s *Store) Dialect() string {
	if s.postgres {
		return DialectPostgres
	}
	return DialectSQLite
}

// rebind turns SQLite placeholders into PostgreSQL's: `?N` becomes `$N`
// and a bare `?` the next number after the largest so far (SQLite's
// rule). Placeholders inside string literals, quoted identifiers and
// comments are left alone.
func rebind(q string) string {
	if !strings.ContainsRune(q, '?') {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	maxN := 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'' || c == '"':
			j := strings.IndexByte(q[i+1:], c)
			if j < 0 {
				b.WriteString(q[i:])
				return b.String()
			}
			b.WriteString(q[i : i+j+2])
			i += j + 1
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				b.WriteString(q[i:])
				return b.String()
			}
			b.WriteString(q[i : i+j])
			i += j - 1
		case c == '?':
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			n := maxN + 1
			if j > i+1 {
				n, _ = strconv.Atoi(q[i+1 : j])
			}
			maxN = max(maxN, n)
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// isUniqueViolation reports whether err is a unique-constraint failure
// in either engine.
func isUniqueViolation(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// IsRetryable reports whether err says the write should be tried again,
// never dropped: SQLite "busy" or "locked", PostgreSQL serialization
// failure or deadlock (concurrent batches from several replicas).
func IsRetryable(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return false
}

// IsFull reports whether err means the disk (or quota) holding the
// database is full: SQLite's SQLITE_FULL (or an I/O error from ENOSPC),
// PostgreSQL's disk_full (53100), or ENOSPC/EDQUOT itself. Callers answer
// it as full storage (507), not as a database fault.
func IsFull(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	var se sqlite3.Error
	if errors.As(err, &se) && (se.Code == sqlite3.ErrFull || se.SystemErrno == syscall.ENOSPC || se.SystemErrno == syscall.EDQUOT) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "53100" {
		return true
	}
	// Some paths (database/sql's open, a driver's wrapping) keep only the
	// message.
	msg := err.Error()
	return strings.Contains(msg, "database or disk is full") || strings.Contains(msg, "no space left on device") ||
		strings.Contains(msg, "disk quota exceeded")
}
