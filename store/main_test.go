package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"git.wntrmute.dev/kyle/mcr/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// openSQLite opens a fresh SQLite store in a temporary directory, closed
// (and the close checked) when the test ends.
func openSQLite(tb testing.TB) *Store {
	tb.Helper()
	st, err := Open(filepath.Join(tb.TempDir(), "mcr.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := st.Close(); err != nil {
			tb.Error(err)
		}
	})
	return st
}

// eachDialect runs f against a fresh SQLite store and a fresh PostgreSQL
// store (a new database in the test cluster): the store's tests hold for
// both engines.
func eachDialect(t *testing.T, f func(t *testing.T, st *Store)) {
	t.Run(DialectSQLite, func(t *testing.T) { f(t, openSQLite(t)) })
	t.Run(DialectPostgres, func(t *testing.T) {
		st, err := OpenPostgres(context.Background(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := st.Close(); err != nil {
				t.Error(err)
			}
		}()
		f(t, st)
	})
}
