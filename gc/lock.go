package gc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockFileName is the data-directory lock a running server holds.
const LockFileName = "mcr.lock"

// ErrLocked is returned by LockDataDir when another process holds the lock.
var ErrLocked = errors.New("data directory is locked by another process")

// DirLock is a held data-directory lock (flock on <data dir>/mcr.lock).
type DirLock struct {
	f    *os.File
	path string
}

// LockDataDir takes the data directory's lock without waiting. The running
// server holds it for its lifetime, so offline maintenance (mcrsrv gc)
// refuses to run next to it, and a second server refuses to start. The
// lock is released when the process exits, however it exits.
func LockDataDir(dir string) (*DirLock, error) {
	p := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	if err := flock(f); err != nil {
		_ = f.Close()
		if errors.Is(err, ErrLocked) {
			holder := ""
			if b, rerr := os.ReadFile(p); rerr == nil {
				holder = strings.TrimSpace(string(b))
			}
			if holder != "" {
				return nil, fmt.Errorf("%w (%s held by pid %s)", ErrLocked, p, holder)
			}
			return nil, fmt.Errorf("%w (%s)", ErrLocked, p)
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	// Record the holder for the message above (informational only).
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &DirLock{f: f, path: p}, nil
}

// Path is the lock file.
func (l *DirLock) Path() string { return l.path }

// Unlock releases the lock.
func (l *DirLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = funlock(l.f)
	err := l.f.Close()
	l.f = nil
	return err
}
