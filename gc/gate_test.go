package gc

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/edge/exchange"
)

// gated serves h behind the gate as the edge does: the exchange classifies
// the request, and one bearing "Bearer valid" counts as authenticated
// (verifying it is the edge's job, not the gate's).
func gated(g *Gate, h http.HandlerFunc) http.Handler {
	inner := g.Wrap(h)
	return exchange.Begin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer valid" {
			exchange.From(r.Context()).Principal = &identity.Principal{Username: "u"}
		}
		inner.ServeHTTP(w, r)
	}))
}

// do sends an authenticated request.
func do(h http.Handler, method, target string) *httptest.ResponseRecorder {
	return doAs(h, "Bearer valid", method, target)
}

func doAs(h http.Handler, authz, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, target, nil)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	h.ServeHTTP(rec, req)
	return rec
}

func TestGateReadsNeverWaitWritesWaitThenProceed(t *testing.T) {
	g := NewGate(5*time.Second, time.Hour)
	var served atomic.Int32
	h := gated(g, func(w http.ResponseWriter, _ *http.Request) { served.Add(1); w.WriteHeader(http.StatusAccepted) })

	unlock, err := g.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if rec := do(h, http.MethodGet, "/v2/a/blobs/sha256:"+digest.FromString("x").Encoded()); rec.Code != http.StatusAccepted {
		t.Fatalf("read during GC: %d", rec.Code)
	}
	if rec := do(h, http.MethodHead, "/v2/a/manifests/latest"); rec.Code != http.StatusAccepted {
		t.Fatalf("head during GC: %d", rec.Code)
	}
	if time.Since(start) > time.Second {
		t.Fatal("reads waited on the gate")
	}

	done := make(chan int, 1)
	go func() { done <- do(h, http.MethodPut, "/v2/a/manifests/latest").Code }()
	select {
	case <-done:
		t.Fatal("write was admitted while the gate was closed")
	case <-time.After(200 * time.Millisecond):
	}
	unlock()
	select {
	case code := <-done:
		if code != http.StatusAccepted {
			t.Fatalf("write after GC: %d", code)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("write still waiting after the gate opened")
	}
}

func TestGateTimesOutWith503(t *testing.T) {
	g := NewGate(300*time.Millisecond, time.Hour)
	h := gated(g, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusCreated) })
	unlock, err := g.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	rec := do(h, http.MethodPost, "/v2/a/blobs/uploads/")
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("got %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	var body struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 || body.Errors[0].Code != "UNAVAILABLE" {
		t.Fatalf("body %s", rec.Body.String())
	}
}

func TestGateLockWaitsForManifestWritesNotUploads(t *testing.T) {
	g := NewGate(10*time.Second, time.Hour)
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	h := gated(g, func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		<-release
		w.WriteHeader(http.StatusCreated)
	})
	// A long upload PATCH is in flight: GC does not wait for it.
	go do(h, http.MethodPatch, "/v2/a/blobs/uploads/uuid")
	<-entered
	unlock, err := g.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	unlock()

	// A manifest PUT is in flight: GC waits until it is done.
	go do(h, http.MethodPut, "/v2/a/manifests/v1")
	<-entered
	locked := make(chan func(), 1)
	go func() {
		u, err := g.Lock(context.Background())
		if err == nil {
			locked <- u
		}
	}()
	select {
	case <-locked:
		t.Fatal("GC started while a manifest push was in flight")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case u := <-locked:
		u()
	case <-time.After(2 * time.Second):
		t.Fatal("GC did not start after the push finished")
	}
}

func TestGateRemembersNamedDigests(t *testing.T) {
	g := NewGate(time.Second, 300*time.Millisecond)
	var clock atomic.Int64 // nanoseconds after t0; the gate's clock
	t0 := time.Now()
	g.now = func() time.Time { return t0.Add(time.Duration(clock.Load())) }
	missing := digest.FromString("missing")
	h := gated(g, func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, missing.Encoded()) {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	probe := digest.FromString("probe")
	put := digest.FromString("put")
	mount := digest.FromString("mount")
	man := digest.FromString("manifest")
	anon := digest.FromString("anonymous")
	forged := digest.FromString("forged")
	anonRead := digest.FromString("anonymous read")
	do(h, http.MethodHead, "/v2/team/app/blobs/"+probe.String())
	do(h, http.MethodGet, "/v2/team/app/manifests/"+man.String())
	do(h, http.MethodHead, "/v2/team/app/blobs/"+missing.String())
	do(h, http.MethodPut, "/v2/team/app/blobs/uploads/abc?digest="+put.String())
	do(h, http.MethodPost, "/v2/team/app/blobs/uploads/?mount="+mount.String()+"&from=x")
	// Unauthenticated requests pin nothing, with or without a header.
	doAs(h, "", http.MethodPut, "/v2/team/app/blobs/uploads/abc?digest="+anon.String())
	doAs(h, "Bearer forged", http.MethodPut, "/v2/team/app/blobs/uploads/abc?digest="+forged.String())
	doAs(h, "Bearer forged", http.MethodHead, "/v2/team/app/blobs/"+anonRead.String())
	for _, d := range []digest.Digest{probe, put, mount, man} {
		if !g.Recent(d) {
			t.Errorf("%s not remembered", d)
		}
	}
	for _, d := range []digest.Digest{missing, anon, forged, anonRead, digest.FromString("other")} {
		if g.Recent(d) {
			t.Errorf("%s remembered", d)
		}
	}
	clock.Store(int64(299 * time.Millisecond))
	if !g.Recent(probe) {
		t.Error("digest forgotten within the grace period")
	}
	clock.Store(int64(300 * time.Millisecond))
	if g.Recent(probe) {
		t.Error("digest remembered past the grace period")
	}
}

func TestGateLockHonoursContext(t *testing.T) {
	g := NewGate(time.Hour, time.Hour)
	release, err := g.Enter(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := g.Lock(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock: %v", err)
	}
	if g.Closed() {
		t.Fatal("gate left closed after a cancelled Lock")
	}
}

// A write that does not finish holds a collection for at most MaxWait: Lock
// then reopens the gate and reports the writes still in flight.
func TestGateLockGivesUpAfterMaxWait(t *testing.T) {
	g := NewGate(150*time.Millisecond, time.Hour)
	release, err := g.Enter(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	start := time.Now()
	if _, err := g.Lock(context.Background()); !errors.Is(err, ErrWritesInFlight) {
		t.Fatalf("Lock: %v, want ErrWritesInFlight", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Lock gave up after %v", d)
	}
	if g.Closed() {
		t.Fatal("gate left closed after a cancelled Lock")
	}
}

// Unauthenticated writes never enter the gate: they neither wait for a
// collection nor hold one.
func TestGateIgnoresUnauthenticatedWrites(t *testing.T) {
	g := NewGate(time.Hour, time.Hour)
	block := make(chan struct{})
	entered := make(chan struct{})
	h := gated(g, func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-block
		w.WriteHeader(http.StatusUnauthorized)
	})
	done := make(chan struct{})
	go func() { doAs(h, "Bearer forged", http.MethodPut, "/v2/a/manifests/v1"); close(done) }()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	unlock, err := g.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock with only an unauthenticated write in flight: %v", err)
	}
	unlock()
	close(block)
	<-done
}

func TestLockDataDir(t *testing.T) {
	dir := t.TempDir()
	l, err := LockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockDataDir(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v", err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	l2, err := LockDataDir(dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	_ = l2.Unlock()
	if fi, err := os.Stat(filepath.Join(dir, LockFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v %v", fi, err)
	}
}
