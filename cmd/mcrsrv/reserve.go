package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"git.wntrmute.dev/kyle/mcr/config"
	"git.wntrmute.dev/kyle/mcr/store"
)

// The database reserve (database.reserve) is a file of that many bytes
// next to an SQLite database. When the filesystem holding the database is
// 100 % full, SQLite cannot even open it (its -wal and -shm files need
// space); start-up then deletes the reserve and tries again, so the server
// comes up read-only in effect and the operator can free space through it
// (mcrctl uploads purge, repo delete, gc). The reserve is recreated at the
// next start that finds room for it.

func reservePath(cfg *config.Config) string { return cfg.Database.Path + ".reserve" }

// isNoSpace reports whether err is a filesystem out of space (ENOSPC,
// EDQUOT, or SQLite's SQLITE_FULL/IO error saying so).
func isNoSpace(err error) bool { return store.IsFull(err) }

// releaseReserve deletes the reserve and reports how many bytes it freed.
func releaseReserve(cfg *config.Config) int64 {
	p := reservePath(cfg)
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	if err := os.Remove(p); err != nil {
		slog.Error("database: cannot delete the reserve", "component", "database", "err", err)
		return 0
	}
	return fi.Size()
}

// ensureReserve creates the reserve when it is missing and the filesystem
// has room for it plus as much again (it never takes the last space).
func ensureReserve(cfg *config.Config, free func(dir string) (int64, error)) error {
	size := cfg.Database.ReserveBytes()
	if size <= 0 || cfg.Database.Driver == config.DatabasePostgres {
		return nil
	}
	p := reservePath(cfg)
	if fi, err := os.Stat(p); err == nil && fi.Size() >= size {
		return nil
	}
	avail, err := free(filepath.Dir(p))
	if err != nil {
		return err
	}
	if avail < 2*size {
		slog.Warn("database: not enough free space to recreate the reserve; free space on the database's filesystem",
			"component", "database", "free", avail, "reserve", size)
		return nil
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("database reserve: %w", err)
	}
	// Written, not truncated: a sparse file would reserve nothing.
	buf := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(buf)) {
		n := min(left, int64(len(buf)))
		if _, err := f.Write(buf[:n]); err != nil {
			_ = f.Close()
			_ = os.Remove(p)
			return fmt.Errorf("database reserve: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("database reserve: %w", err)
	}
	return f.Close()
}
