package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"git.wntrmute.dev/kyle/mcr/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// eachDialect runs f against a fresh SQLite store and a fresh PostgreSQL
// store (a new database in the test cluster): the store's tests hold for
// both engines.
func eachDialect(t *testing.T, f func(t *testing.T, st *Store)) {
	t.Run(DialectSQLite, func(t *testing.T) {
		st, err := Open(filepath.Join(t.TempDir(), "mcr.db"))
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
