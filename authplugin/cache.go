package authplugin

import (
	"crypto/sha256"
	"sync"
	"time"
)

// ttlCache is a small bounded map from a SHA-256 key to a value with an
// expiry. It never holds raw tokens or passwords, only digests of them.
type ttlCache[V any] struct {
	mu      sync.Mutex
	entries map[[32]byte]ttlEntry[V]
	max     int
}

type ttlEntry[V any] struct {
	v   V
	exp time.Time
}

func newTTLCache[V any](maxEntries int) *ttlCache[V] {
	return &ttlCache[V]{entries: make(map[[32]byte]ttlEntry[V]), max: maxEntries}
}

func cacheKey(parts ...string) [32]byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k
}

func (c *ttlCache[V]) get(k [32]byte, now time.Time) (V, bool) {
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

func (c *ttlCache[V]) put(k [32]byte, v V, exp time.Time, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for key, e := range c.entries { // sweep expired, then drop arbitrary
			if !now.Before(e.exp) {
				delete(c.entries, key)
			}
		}
		for key := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, key)
		}
	}
	c.entries[k] = ttlEntry[V]{v: v, exp: exp}
}
