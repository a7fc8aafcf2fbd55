package store

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	sqlite3 "github.com/mattn/go-sqlite3"
)

// TestIsFull: every engine's way of saying its disk is full is full
// storage (a 507 for the request); other database errors are not.
func TestIsFull(t *testing.T) {
	cases := []struct {
		err  error
		name string
		want bool
	}{
		{name: "nil", err: nil, want: false},
		{name: "SQLITE_FULL", err: sqlite3.Error{Code: sqlite3.ErrFull}, want: true},
		{name: "SQLITE_FULL wrapped", err: fmt.Errorf("store: apply batch: %w", sqlite3.Error{Code: sqlite3.ErrFull}), want: true},
		{name: "SQLITE_IOERR from ENOSPC", err: sqlite3.Error{Code: sqlite3.ErrIoErr, SystemErrno: syscall.ENOSPC}, want: true},
		{name: "SQLITE_IOERR from EDQUOT", err: sqlite3.Error{Code: sqlite3.ErrIoErr, SystemErrno: syscall.EDQUOT}, want: true},
		{name: "SQLITE_IOERR from EIO", err: sqlite3.Error{Code: sqlite3.ErrIoErr, SystemErrno: syscall.EIO}, want: false},
		{name: "SQLITE_BUSY", err: sqlite3.Error{Code: sqlite3.ErrBusy}, want: false},
		{name: "SQLITE_CORRUPT", err: sqlite3.Error{Code: sqlite3.ErrCorrupt}, want: false},
		{name: "ENOSPC", err: fmt.Errorf("write: %w", syscall.ENOSPC), want: true},
		{name: "EDQUOT", err: syscall.EDQUOT, want: true},
		{name: "PostgreSQL disk_full", err: fmt.Errorf("commit: %w", &pgconn.PgError{Code: "53100"}), want: true},
		{name: "PostgreSQL serialization failure", err: &pgconn.PgError{Code: "40001"}, want: false},
		{name: "message only", err: errors.New("store: open: database or disk is full"), want: true},
		{name: "other", err: errors.New("connection refused"), want: false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := IsFull(c.err); got != c.want {
				t.Errorf("IsFull(%v) = %v, want %v", c.err, got, c.want)
			}
		})
	}
}
