// Package ttlcache is the one bounded expiring cache MCR uses for verified
// credentials (registry tokens, MCIAS validations, password checks). Keys
// are SHA-256 digests, so a cache never holds a raw token or password.
package ttlcache

import (
	"crypto/sha256"
	"sync"
	"time"
)

// Cache is a small bounded map from a SHA-256 key to a value with an
// expiry. It never holds raw tokens or passwords, only digests of them.
type Cache[V any] struct {
	entries map[[32]byte]entry[V] // guarded by mu
	mu      sync.Mutex
	max     int
}

type entry[V any] struct {
	v   V
	exp time.Time
}

// New returns a cache holding at most maxEntries entries.
func New[V any](maxEntries int) *Cache[V] {
	return &Cache[V]{entries: make(map[[32]byte]entry[V]), max: maxEntries}
}

// Key digests parts (NUL-separated, so ("ab","c") and ("a","bc") differ).
func Key(parts ...string) [32]byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k
}

// Get returns the value under k if it has not expired at now.
func (c *Cache[V]) Get(k [32]byte, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || !now.Before(e.exp) {
		if ok {
			delete(c.entries, k)
		}
		var zero V
		return zero, false
	}
	return e.v, true
}

// Put stores v under k until exp. A full cache first drops expired entries,
// then, if still full, arbitrary ones — an eighth of the cache at once, so
// a stream of new keys pays for one scan per max/8 insertions, not one per
// insertion under the lock. The cache is an optimisation, never the
// authority.
func (c *Cache[V]) Put(k [32]byte, v V, exp time.Time, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		c.sweep(now)
		drop := len(c.entries) - c.max + max(1, c.max/8)
		for key := range c.entries {
			if drop <= 0 {
				break
			}
			delete(c.entries, key)
			drop--
		}
	}
	c.entries[k] = entry[V]{v: v, exp: exp}
}

// Sweep drops the entries expired at now.
func (c *Cache[V]) Sweep(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweep(now)
}

// sweep is Sweep with c.mu held.
func (c *Cache[V]) sweep(now time.Time) {
	for key, e := range c.entries {
		if !now.Before(e.exp) {
			delete(c.entries, key)
		}
	}
}

// Delete removes k.
func (c *Cache[V]) Delete(k [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, k)
}

// Len is the number of entries held (expired ones included until swept).
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
