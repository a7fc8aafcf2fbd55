// Package storageguard keeps a full blob store from turning into opaque
// failures (issue 17): it knows how much space the storage filesystem has
// left, refuses new writes below storage.min_free, recognises ENOSPC and
// EDQUOT from the storage driver, and answers the /v2 request that hit
// them with 507 Insufficient Storage and an OCI error body without a path.
//
//	g := storageguard.New(cfg.Storage.LayersPath, minFree)
//	dc.Middleware["storage"] = []configuration.Middleware{g.Middleware()}
//	mux.Handle("/v2/", g.Wrap(app))
//	err := g.Check(ctx) // health detail: write probe + free space
package storageguard

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Message is what clients are told; it names no path.
const Message = "registry storage is full"

// ErrFull is returned (wrapped) by the guarded driver when the storage is
// out of space or below the configured minimum.
var ErrFull = errors.New(Message)

// IsFull reports whether err means the storage is out of space.
func IsFull(err error) bool {
	return errors.Is(err, ErrFull) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// Guard watches one storage filesystem.
type Guard struct {
	// Path is a directory on the storage filesystem (the layers root).
	Path string

	lastFull time.Time // last ENOSPC/EDQUOT seen from the driver
	lastErr  string

	// MinFree is the space (bytes) under which new writes are refused
	// and health reports storage failing. Zero refuses only on ENOSPC.
	MinFree int64

	mu sync.Mutex // guards lastFull and lastErr
}

// New returns a guard for the filesystem holding path. An empty path (object
// storage) keeps only the ENOSPC mapping: no free space, no probe.
func New(path string, minFree int64) *Guard { return &Guard{Path: path, MinFree: minFree} }

// Free returns the bytes available to the server on the storage
// filesystem (statfs f_bavail × f_bsize).
func (g *Guard) Free() (int64, error) {
	if g.Path == "" {
		return 0, errors.New("storage: not a local filesystem")
	}
	var st unix.Statfs_t
	if err := unix.Statfs(g.Path, &st); err != nil {
		return 0, fmt.Errorf("storage: statfs: %w", err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil //nolint:gosec // block counts fit
}

// belowMin reports whether free space is under MinFree (false if unknown).
func (g *Guard) belowMin() (bool, int64) {
	if g.MinFree <= 0 || g.Path == "" {
		return false, 0
	}
	free, err := g.Free()
	if err != nil {
		return false, 0
	}
	return free < g.MinFree, free
}

// admit refuses a new write while free space is under MinFree.
func (g *Guard) admit() error {
	if below, free := g.belowMin(); below {
		return fmt.Errorf("%w: %d bytes free, storage.min_free is %d", ErrFull, free, g.MinFree)
	}
	return nil
}

// noteFull records that the driver hit ENOSPC/EDQUOT.
func (g *Guard) noteFull(err error) {
	g.mu.Lock()
	g.lastFull = time.Now()
	g.lastErr = err.Error()
	g.mu.Unlock()
}

// probeSize is written and removed by every probe: enough to need a data
// block on any filesystem.
const probeSize = 64 << 10

// Probe writes, syncs and removes a small file in the storage root: it
// fails when the filesystem cannot take a write (full, read-only, gone).
func (g *Guard) Probe() error {
	f, err := os.CreateTemp(g.Path, ".mcr-write-probe-*")
	if err != nil {
		return probeErr(err)
	}
	name := f.Name()
	defer os.Remove(name) //nolint:errcheck // best effort; the name is unique
	_, werr := f.Write(make([]byte, probeSize))
	if werr == nil {
		werr = f.Sync()
	}
	cerr := f.Close()
	if werr != nil {
		return probeErr(werr)
	}
	if cerr != nil {
		return probeErr(cerr)
	}
	return nil
}

func probeErr(err error) error {
	if IsFull(err) {
		return fmt.Errorf("%w (write probe: no space left)", ErrFull)
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is the operator's business, not a health reader's
	}
	return fmt.Errorf("write probe failed: %w", err)
}

// Check is the health check: a write probe, then free space against
// MinFree. The error says which failed.
func (g *Guard) Check(context.Context) error {
	if g.Path == "" {
		return nil
	}
	if err := g.Probe(); err != nil {
		return err
	}
	if below, free := g.belowMin(); below {
		return fmt.Errorf("%w: %d bytes free, under storage.min_free (%d)", ErrFull, free, g.MinFree)
	}
	return nil
}

// Dir returns the guard's path made absolute (for logs).
func (g *Guard) Dir() string {
	if p, err := filepath.Abs(g.Path); err == nil {
		return p
	}
	return g.Path
}
