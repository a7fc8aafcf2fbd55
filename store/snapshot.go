package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"time"
)

// snapshotName matches mcr-YYYYMMDD-HHMMSS.db, optionally with -N when two
// snapshots are taken within one second.
var snapshotName = regexp.MustCompile(`^mcr-(\d{8}-\d{6})(?:-(\d+))?\.db$`)

// ErrSnapshotUnsupported is returned for a PostgreSQL store: snapshots are SQLite files; a PostgreSQL
// database is backed up with its own tools (pg_dump, base backups).
var ErrSnapshotUnsupported = errors.New("store: snapshots are for SQLite; back up PostgreSQL with pg_dump or a base backup")

// SnapshotFile is one snapshot in a backups directory.
type SnapshotFile struct {
	Path    string
	ModTime time.Time
	Stamp   string // YYYYMMDD-HHMMSS (UTC)
	Seq     int    // 0, or N of the -N suffix
	Size    int64
}

// Snapshot writes a consistent copy of the database to
// dir/mcr-YYYYMMDD-HHMMSS.db (UTC, mode 0600) with VACUUM INTO, which
// reads one transaction's view while writers carry on, then deletes the
// oldest snapshots so that at most keep remain (keep <= 0 keeps all).
// The copy is a complete database: restoring is copying it over mcr.db
// with the server stopped.
func (s *Store) Snapshot(ctx context.Context, dir string, keep int) (string, error) {
	if s.postgres {
		return "", ErrSnapshotUnsupported
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("store: snapshot: %w", err)
	}
	stamp := time.Now().UTC().Format("20060102-150405")
	var path string
	for i := 0; ; i++ {
		name := "mcr-" + stamp + ".db"
		if i > 0 {
			name = fmt.Sprintf("mcr-%s-%d.db", stamp, i+1)
		}
		path = filepath.Join(dir, name)
		// VACUUM INTO needs a missing or empty file; creating it first
		// (exclusively) fixes the mode and claims the name.
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("store: snapshot: %w", err)
		}
		_ = f.Close()
		break
	}
	if _, err := s.db.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("store: snapshot to %s: %w", path, err)
	}
	_ = os.Chmod(path, 0o600)
	if err := syncFile(path); err != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("store: snapshot to %s: %w", path, err)
	}
	if keep > 0 {
		if err := PruneSnapshots(dir, keep); err != nil {
			return path, err
		}
	}
	return path, nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // the sync error is the one to report
		return err
	}
	return f.Close()
}

// ListSnapshots returns the snapshots in dir, oldest first.
func ListSnapshots(dir string) ([]SnapshotFile, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("store: list snapshots: %w", err)
	}
	var out []SnapshotFile
	for _, e := range ents {
		m := snapshotName.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			continue
		}
		sf := SnapshotFile{Path: filepath.Join(dir, e.Name()), Stamp: m[1]}
		if m[2] != "" {
			sf.Seq, _ = strconv.Atoi(m[2])
		}
		if fi, err := e.Info(); err == nil {
			sf.Size, sf.ModTime = fi.Size(), fi.ModTime()
		}
		out = append(out, sf)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Stamp != out[j].Stamp {
			return out[i].Stamp < out[j].Stamp
		}
		return out[i].Seq < out[j].Seq
	})
	return out, nil
}

// PruneSnapshots deletes the oldest snapshots in dir so at most keep remain.
func PruneSnapshots(dir string, keep int) error {
	snaps, err := ListSnapshots(dir)
	if err != nil {
		return err
	}
	var errs []error
	for i := 0; i < len(snaps)-keep; i++ {
		if err := os.Remove(snaps[i].Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("store: prune snapshots: %w", errors.Join(errs...))
	}
	return nil
}

// CopyFile writes a consistent copy of the SQLite database at from (with
// its WAL, if one was left) to the new file to, opening from read-only:
// nothing migrates, analyzes or otherwise writes the original. Open the
// copy to bring it to this binary's schema.
func CopyFile(ctx context.Context, from, to string) error {
	q := url.Values{}
	q.Set("mode", "ro")
	db, err := sql.Open(driverName, "file:"+from+"?"+q.Encode())
	if err != nil {
		return fmt.Errorf("store: open %s read-only: %w", from, err)
	}
	defer func() { _ = db.Close() }() // read-only
	f, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("store: copy of %s: %w", from, err)
	}
	_ = f.Close() // empty: VACUUM INTO fills it
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, to); err != nil {
		_ = os.Remove(to)
		return fmt.Errorf("store: copy %s to %s: %w", from, to, err)
	}
	return nil
}
