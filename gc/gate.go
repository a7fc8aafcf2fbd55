package gc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/opencontainers/go-digest"

	"git.wntrmute.dev/kyle/mcr/edge/exchange"
)

// Gate is the registry-wide GC write gate around /v2 (DESIGN §8).
//
// While a collection marks and sweeps, the gate is closed: write requests
// (POST, PUT, PATCH, DELETE) that arrive wait for it to open again, up to
// MaxWait, and are then answered 503 UNAVAILABLE with Retry-After. Reads
// (GET, HEAD) never wait.
//
// Closing the gate waits for in-flight manifest pushes, mounts and deletes
// to finish (they are short: a manifest body is read before the gate), so
// the mark phase sees every manifest that was accepted; it waits at most
// MaxWait, then the collection is cancelled (see Lock).
// In-flight blob upload requests (a PATCH streaming gigabytes) are not
// waited for: what they write is protected from the sweep by the grace
// period instead, and by the gate's record of recently used digests.
//
// The gate also remembers, for one grace period, every digest an
// authenticated request named and distribution answered with 2xx: blob HEAD/GET probes (a pusher that found a layer present will
// reference it in its manifest), upload completions (?digest=), mounts
// (?mount=) and manifests addressed by digest. The sweep never removes a
// remembered digest, which closes the window between "the client saw the
// blob exists" and "the client pushed the manifest that references it".
type Gate struct {
	// Cluster, when set, extends Lock to the other replicas sharing the
	// database (package cluster): once this gate has closed and drained,
	// their gates close and drain too, and unlock reopens them.
	Cluster ClusterGate
	// Shared, when set, answers Recent for digests other replicas named.
	Shared RecentDigests

	// Guarded by mu (with closed and inflight).
	released chan struct{} // closed when the gate opens again
	drained  chan struct{} // closed when inflight drops to zero

	// Guarded by recentMu.
	recent     map[digest.Digest]time.Time
	lastExpiry time.Time
	onRemember func(digest.Digest) // see OnRemember

	now func() time.Time

	// MaxWait bounds how long a write waits for a collection (default 30 s).
	MaxWait time.Duration
	// Grace is how long a named digest is remembered (default 1 h).
	Grace time.Duration

	// mu guards closed, inflight, released and drained.
	mu       sync.Mutex
	closed   bool
	inflight int // manifest writes and deletes in progress

	recentMu sync.Mutex // guards recent, lastExpiry and onRemember
}

// ClusterGate closes the gates of the other replicas: CloseOthers returns
// once every live replica's gate is closed with its tracked writes
// drained; reopen opens them again.
type ClusterGate interface {
	CloseOthers(ctx context.Context) (reopen func(), err error)
}

// RecentDigests reports whether another replica named d within the grace
// period.
type RecentDigests interface {
	Recent(d digest.Digest) bool
}

// NewGate returns an open gate.
func NewGate(maxWait, grace time.Duration) *Gate {
	return &Gate{MaxWait: maxWait, Grace: grace, recent: map[digest.Digest]time.Time{}}
}

func (g *Gate) clock() time.Time {
	if g.now != nil {
		return g.now()
	}
	return time.Now()
}

func (g *Gate) maxWait() time.Duration {
	if g.MaxWait > 0 {
		return g.MaxWait
	}
	return 30 * time.Second
}

// ErrGateTimeout is returned by Enter when the gate stayed closed for
// MaxWait.
var ErrGateTimeout = errors.New("gc: registry is collecting garbage; write not admitted in time")

// IsWrite reports whether method changes registry content.
func IsWrite(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// Closed reports whether a collection currently holds the gate.
func (g *Gate) Closed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// InFlight is the number of tracked writes in progress (the ones a
// collection waits for before it marks).
func (g *Gate) InFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inflight
}

// Enter admits one write: it waits while the gate is closed (up to MaxWait
// or ctx) and returns a release function. Tracked writes are ones the
// collector waits for before marking (manifest pushes, deletes).
func (g *Gate) Enter(ctx context.Context, tracked bool) (release func(), err error) {
	var timer *time.Timer
	g.mu.Lock()
	for g.closed {
		ch := g.released
		g.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(g.maxWait())
			defer timer.Stop()
		}
		select {
		case <-ch:
		case <-timer.C:
			return nil, ErrGateTimeout
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		g.mu.Lock()
	}
	if !tracked {
		g.mu.Unlock()
		return func() {}, nil
	}
	g.inflight++
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.inflight--
			if g.inflight == 0 && g.drained != nil {
				close(g.drained)
				g.drained = nil
			}
			g.mu.Unlock()
		})
	}, nil
}

// LockLocal closes this process's gate for a collection: new writes wait
// from now on, and it returns once the tracked writes in flight have
// finished. Tracked
// writes are authenticated and do only server-side work by the time they
// are admitted (a manifest body is read before the gate), so they finish
// quickly; if some have not within MaxWait, LockLocal reopens the gate and
// returns ErrWritesInFlight: the collection is cancelled before it removed
// anything, and no write is lost or half-linked. A running collection
// therefore never waits on a client for longer than MaxWait. The returned
// function opens the gate.
func (g *Gate) LockLocal(ctx context.Context) (unlock func(), err error) {
	g.mu.Lock()
	for g.closed { // another collection holds the gate
		ch := g.released
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		g.mu.Lock()
	}
	g.closed = true
	g.released = make(chan struct{})
	var drained chan struct{}
	if g.inflight > 0 {
		drained = make(chan struct{})
		g.drained = drained
	}
	g.mu.Unlock()
	if drained == nil {
		return g.unlockFunc(), nil
	}
	t := time.NewTimer(g.maxWait())
	defer t.Stop()
	select {
	case <-drained:
		return g.unlockFunc(), nil
	case <-t.C:
		g.mu.Lock()
		n := g.inflight
		g.mu.Unlock()
		g.open()
		return nil, fmt.Errorf("%w: %d still running after %s", ErrWritesInFlight, n, g.maxWait())
	case <-ctx.Done():
		g.open()
		return nil, ctx.Err()
	}
}

// ErrWritesInFlight is returned by LockLocal (and Lock) when tracked writes did not finish
// within MaxWait; the collection does not start.
var ErrWritesInFlight = errors.New("gc: writes in flight did not finish; collection cancelled")

// Lock closes this gate (LockLocal) and then, with Cluster set, every
// other replica's; the returned function reopens them all.
func (g *Gate) Lock(ctx context.Context) (func(), error) {
	openLocal, err := g.LockLocal(ctx)
	if err != nil || g.Cluster == nil {
		return openLocal, err
	}
	reopen, err := g.Cluster.CloseOthers(ctx)
	if err != nil {
		openLocal()
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { reopen(); openLocal() }) }, nil
}

func (g *Gate) unlockFunc() func() {
	var once sync.Once
	return func() { once.Do(g.open) }
}

func (g *Gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		return
	}
	g.closed = false
	g.drained = nil
	close(g.released)
}

// Remember records that d was named by a request now.
func (g *Gate) Remember(d digest.Digest) {
	if d == "" || g.Grace <= 0 {
		return
	}
	now := g.clock()
	g.recentMu.Lock()
	hook := g.onRemember
	defer func() {
		g.recentMu.Unlock()
		if hook != nil {
			hook(d) // outside the lock: it writes to the database
		}
	}()
	if g.recent == nil {
		g.recent = map[digest.Digest]time.Time{}
	}
	// Expire old entries at most once per grace/4 (amortised), or when
	// the set is large.
	if now.Sub(g.lastExpiry) > g.Grace/4 || (len(g.recent) >= maxRecent && now.Sub(g.lastExpiry) > time.Second) {
		g.lastExpiry = now
		for k, t := range g.recent {
			if now.Sub(t) >= g.Grace {
				delete(g.recent, k)
			}
		}
	}
	if _, ok := g.recent[d]; ok || len(g.recent) < maxRecent {
		g.recent[d] = now
	}
}

// OnRemember sets (nil: clears) a function called with every digest
// remembered from now on: while another replica collects, this one feeds
// the digests its requests name to that collection (package cluster).
func (g *Gate) OnRemember(fn func(digest.Digest)) {
	g.recentMu.Lock()
	g.onRemember = fn
	g.recentMu.Unlock()
}

// Remembered lists the digests named within the grace period.
func (g *Gate) Remembered() []digest.Digest {
	g.recentMu.Lock()
	defer g.recentMu.Unlock()
	now := g.clock()
	out := make([]digest.Digest, 0, len(g.recent))
	for d, t := range g.recent {
		if now.Sub(t) < g.Grace {
			out = append(out, d)
		}
	}
	return out
}

// maxRecent bounds the remembered digests (memory); past it, new digests
// rely on the grace period of their files alone.
const maxRecent = 1 << 20

// Recent reports whether d was named by a request within the grace period.
func (g *Gate) Recent(d digest.Digest) bool {
	if g == nil || g.Grace <= 0 {
		return false
	}
	g.recentMu.Lock()
	t, ok := g.recent[d]
	g.recentMu.Unlock()
	if ok && g.clock().Sub(t) < g.Grace {
		return true
	}
	return g.Shared != nil && g.Shared.Recent(d)
}

// Wrap returns the gated /v2 handler. It sits behind the edge, so the
// exchange says who sent the request and what it addresses. Only
// authenticated requests count: an unauthenticated one is refused by the
// registry anyway, so it neither waits, nor holds a collection, nor pins a
// digest. A named digest is remembered when distribution answers 2xx, just
// before the client sees the answer.
func (g *Gate) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x := exchange.From(r.Context())
		if !x.Authenticated() {
			next.ServeHTTP(w, r)
			return
		}
		if d := namedDigest(x.Route, r); d != "" {
			x.OnHeader(func(status int, _ http.Header) error {
				if status >= 200 && status < 300 {
					g.Remember(d)
				}
				return nil
			})
		}
		if !IsWrite(r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		release, err := g.Enter(r.Context(), tracked(x.Route, r))
		if err != nil {
			if errors.Is(err, ErrGateTimeout) {
				retry := max(int(g.maxWait().Seconds()), 1)
				w.Header().Set("Retry-After", strconv.Itoa(retry))
				_ = errcode.ServeJSON(w, errcode.ErrorCodeUnavailable.
					WithMessage("registry is collecting garbage; retry shortly").
					WithDetail(map[string]int{"retry_after_seconds": retry}))
			}
			return // otherwise the client went away
		}
		defer release()
		next.ServeHTTP(w, r)
	})
}

// tracked reports whether the collector waits for a write before marking:
// everything but the upload requests that stream a blob body (their
// content is protected by the grace period instead). A mount is tracked:
// it links an existing, possibly old, blob.
func tracked(rt exchange.Route, r *http.Request) bool {
	switch rt.Name {
	case v2.RouteNameBlobUploadChunk:
		return false
	case v2.RouteNameBlobUpload:
		return r.URL.Query().Get("mount") != ""
	}
	return true
}

// namedDigest is the digest a request names: a blob, a manifest by
// digest, or an upload's ?digest= / ?mount=.
func namedDigest(rt exchange.Route, r *http.Request) digest.Digest {
	switch rt.Name {
	case v2.RouteNameBlobUpload, v2.RouteNameBlobUploadChunk:
		q := r.URL.Query()
		d := q.Get("digest")
		if d == "" {
			d = q.Get("mount")
		}
		return parseDigest(d)
	case v2.RouteNameBlob, v2.RouteNameManifest:
		return rt.NamedDigest()
	}
	return ""
}

func parseDigest(s string) digest.Digest {
	if !strings.Contains(s, ":") {
		return ""
	}
	d, err := digest.Parse(s)
	if err != nil {
		return ""
	}
	return d
}
