package gc

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// Gate is the registry-wide GC write gate around /v2 (DESIGN §8).
//
// While a collection marks and sweeps, the gate is closed: write requests
// (POST, PUT, PATCH, DELETE) that arrive wait for it to open again, up to
// MaxWait, and are then answered 503 UNAVAILABLE with Retry-After. Reads
// (GET, HEAD) never wait.
//
// Closing the gate waits for in-flight manifest pushes and deletes to finish
// (they are short), so the mark phase sees every manifest that was accepted.
// In-flight blob upload requests (a PATCH streaming gigabytes) are not
// waited for: what they write is protected from the sweep by the grace
// period instead, and by the gate's record of recently used digests.
//
// The gate also remembers, for one grace period, every digest a request
// named: blob HEAD/GET probes (a pusher that found a layer present will
// reference it in its manifest), upload completions (?digest=), mounts
// (?mount=) and manifests addressed by digest. The sweep never removes a
// remembered digest, which closes the window between "the client saw the
// blob exists" and "the client pushed the manifest that references it".
type Gate struct {
	// MaxWait bounds how long a write waits for a collection (default 30 s).
	MaxWait time.Duration
	// Grace is how long a named digest is remembered (default 1 h).
	Grace time.Duration
	// Cluster, when set, extends Lock to the other replicas sharing the
	// database (package cluster): once this gate has closed and drained,
	// their gates close and drain too, and unlock reopens them.
	Cluster ClusterGate
	// Shared, when set, answers Recent for digests other replicas named.
	Shared RecentDigests

	mu       sync.Mutex
	closed   bool
	released chan struct{} // closed when the gate opens again
	inflight int           // manifest writes and deletes in progress
	drained  chan struct{} // closed when inflight drops to zero

	recentMu   sync.Mutex
	recent     map[digest.Digest]time.Time
	lastExpiry time.Time
	onRemember func(digest.Digest) // see OnRemember

	now func() time.Time
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
// finished. If they do
// not finish within half of MaxWait the gate is reopened for a moment (so
// waiting writers are admitted rather than timing out) and Lock tries
// again, until ctx ends. The returned function opens the gate.
func (g *Gate) LockLocal(ctx context.Context) (unlock func(), err error) {
	drainBudget := g.maxWait() / 2
	for {
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
		t := time.NewTimer(drainBudget)
		select {
		case <-drained:
			t.Stop()
			return g.unlockFunc(), nil
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			g.open()
			return nil, ctx.Err()
		}
		// Writers in flight for too long: let the queue through, retry.
		g.open()
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

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

// rememberWriter calls remember once, before a 2xx status is written.
type rememberWriter struct {
	http.ResponseWriter
	remember func()
	wrote    bool
}

func (w *rememberWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		if code >= 200 && code < 300 {
			w.remember()
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *rememberWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// ReadFrom keeps the underlying writer's sendfile path for blob bodies.
func (w *rememberWriter) ReadFrom(r io.Reader) (int64, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(w.ResponseWriter, r)
}

func (w *rememberWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *rememberWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

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

// Wrap returns the gated /v2 handler.
func (g *Gate) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind, dgst := classify(r)
		if !IsWrite(r.Method) {
			if dgst != "" {
				// Remember a digest a read found (2xx), before the client
				// sees the answer. Misses are not remembered, so probes
				// for random digests cannot grow the set.
				w = &rememberWriter{ResponseWriter: w, remember: func() { g.Remember(dgst) }}
			}
			next.ServeHTTP(w, r)
			return
		}
		// Remember before checking the gate: a write admitted before a
		// collection closed the gate is then visible to that collection.
		// Anonymous writes are refused by the registry anyway.
		if dgst != "" && r.Header.Get("Authorization") != "" {
			g.Remember(dgst)
		}
		release, err := g.Enter(r.Context(), kind != kindUpload)
		if err != nil {
			if errors.Is(err, ErrGateTimeout) {
				writeUnavailable(w, g.maxWait())
			}
			return // client went away
		}
		defer release()
		next.ServeHTTP(w, r)
	})
}

type reqKind int

const (
	kindOther reqKind = iota
	kindBlob
	kindUpload
	kindManifest
)

// classify finds what a /v2 request addresses and the digest it names.
func classify(r *http.Request) (reqKind, digest.Digest) {
	p := r.URL.Path
	if i := strings.LastIndex(p, "/blobs/uploads"); i > 0 {
		q := r.URL.Query()
		d := q.Get("digest")
		if d == "" {
			d = q.Get("mount")
		}
		return kindUpload, parseDigest(d)
	}
	if i := strings.LastIndex(p, "/blobs/"); i > 0 {
		return kindBlob, parseDigest(p[i+len("/blobs/"):])
	}
	if i := strings.LastIndex(p, "/manifests/"); i > 0 {
		return kindManifest, parseDigest(p[i+len("/manifests/"):])
	}
	return kindOther, ""
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

func writeUnavailable(w http.ResponseWriter, maxWait time.Duration) {
	retry := int(maxWait.Seconds())
	if retry < 1 {
		retry = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(retry))
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{{
		"code":    "UNAVAILABLE",
		"message": "registry is collecting garbage; retry shortly",
		"detail":  map[string]any{"retry_after_seconds": retry},
	}}})
}
