package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// A database migrated by a newer mcrsrv is refused at open, with a message
// that says what to do, instead of being used by a binary that would
// misread it. PostgreSQL goes through the same check (newerSchema).
func TestOpenRefusesANewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mcr.db")
	st, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := st.SchemaVersion(context.Background())
	if err != nil || v != len(migrations) {
		t.Fatalf("schema version %d, %v; want %d", v, err, len(migrations))
	}
	if _, err := st.db.Exec(`INSERT INTO schema_migrations(version) VALUES (?)`, v+1); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "newer than this mcrsrv") {
		t.Fatalf("Open of a newer schema: %v, want the newer-schema refusal", err)
	}
}
