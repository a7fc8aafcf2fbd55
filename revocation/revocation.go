// Package revocation answers, without a database read per request, which
// generation an account is at. Every token MCR issues carries the
// generation of its subject; changing, disabling, deleting an account or
// revoking its tokens bumps it, so older tokens are refused on their next
// use.
//
// The generations are held in memory and re-read when the store's marker
// file changes (an account changed, possibly by `mcrsrv user` in another
// process: a stat per lookup notices it), when Invalidate is called (a
// change made by this process), and at least every poll interval (a change
// made by another replica sharing the database).
//
//	c := revocation.New(st, st.AccountsMarker(), 5*time.Second, time.Now)
//	gen, err := c.Generation(ctx, claims.Subject)
//	if claims.Generation < gen { /* refused */ }
package revocation

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// Source reads every subject's generation (store.Store does).
type Source interface {
	Generations(ctx context.Context) (map[string]int64, error)
}

// DefaultPoll is how often generations are re-read regardless of the
// marker, bounding how long another replica's change takes to act here.
const DefaultPoll = 5 * time.Second

type fileID struct {
	ino   uint64
	mtime int64
	size  int64
	ok    bool
}

func statID(path string) fileID {
	if path == "" {
		return fileID{}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}
	}
	id := fileID{mtime: fi.ModTime().UnixNano(), size: fi.Size(), ok: true}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.ino = st.Ino
	}
	return id
}

// Cache holds the generations.
type Cache struct {
	src Source
	now func() time.Time

	// Guarded by mu (with seen and stale).
	gens map[string]int64
	next time.Time // re-read at this time at the latest

	marker string
	poll   time.Duration

	mu     sync.RWMutex // guards gens, next, seen and stale
	seen   fileID
	stale  bool
	reload sync.Mutex
}

// New returns a cache over src. marker may be empty (no cross-process
// notice; the poll interval alone applies).
func New(src Source, marker string, poll time.Duration, now func() time.Time) *Cache {
	if poll <= 0 {
		poll = DefaultPoll
	}
	if now == nil {
		now = time.Now
	}
	return &Cache{src: src, marker: marker, poll: poll, now: now, stale: true}
}

// Invalidate makes the next lookup re-read the generations.
func (c *Cache) Invalidate() {
	c.mu.Lock()
	c.stale = true
	c.mu.Unlock()
}

// Generation returns the current generation of subject (0 if it never
// changed).
func (c *Cache) Generation(ctx context.Context, subject string) (int64, error) {
	id := statID(c.marker)
	c.mu.RLock()
	fresh := !c.stale && id == c.seen && c.now().Before(c.next)
	g := c.gens[subject]
	c.mu.RUnlock()
	if fresh {
		return g, nil
	}
	if err := c.load(ctx, id); err != nil {
		return 0, err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gens[subject], nil
}

// load re-reads the generations once for all callers that found them
// stale at the same time.
func (c *Cache) load(ctx context.Context, id fileID) error {
	c.reload.Lock()
	defer c.reload.Unlock()
	c.mu.RLock()
	done := !c.stale && id == c.seen && c.now().Before(c.next)
	c.mu.RUnlock()
	if done {
		return nil
	}
	// Clear the flag before reading, so an Invalidate during the read
	// forces another one.
	c.mu.Lock()
	c.stale = false
	c.mu.Unlock()
	gens, err := c.src.Generations(ctx)
	if err != nil {
		c.Invalidate()
		return fmt.Errorf("revocation: %w", err)
	}
	c.mu.Lock()
	c.gens, c.seen, c.next = gens, id, c.now().Add(c.poll)
	c.mu.Unlock()
	return nil
}
