package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// slowStream yields total bytes (a repeated random block) no faster than
// rate bytes per second, counting what it has produced.
type slowStream struct {
	start time.Time
	block []byte
	total int64
	rate  float64
	off   int64
	sent  atomic.Int64
}

func newSlowStream(block []byte, total int64, rate float64) *slowStream {
	return &slowStream{block: block, total: total, rate: rate}
}

func (s *slowStream) Read(p []byte) (int, error) {
	if s.off >= s.total {
		return 0, io.EOF
	}
	if s.start.IsZero() {
		s.start = time.Now()
	}
	if due := time.Duration(float64(s.off) / s.rate * float64(time.Second)); due > time.Since(s.start) {
		time.Sleep(due - time.Since(s.start))
	}
	n := min(int64(len(p)), 256<<10, s.total-s.off)
	for i := int64(0); i < n; {
		c := copy(p[i:n], s.block[(s.off+i)%int64(len(s.block)):])
		i += int64(c)
	}
	s.off += n
	s.sent.Store(s.off)
	return int(n), nil
}

// digestOf is the sha256 digest of block repeated to total bytes.
func digestOf(block []byte, total int64) string {
	h := sha256.New()
	for left := total; left > 0; {
		n := min(left, int64(len(block)))
		h.Write(block[:n])
		left -= n
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

type uploadResult struct {
	header http.Header
	err    error
	at     time.Time
	body   string
	status int
}

// stream sends method url with body (ContentLength total) on its own client.
func stream(srv *mcrtest.Server, method, u, token string, body io.Reader, total int64) uploadResult {
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return uploadResult{err: err}
	}
	req.ContentLength = total
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	c := &http.Client{Transport: srv.Transport()} // no timeout: the drain decides
	resp, err := c.Do(req)
	if err != nil {
		return uploadResult{err: err, at: time.Now()}
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return uploadResult{status: resp.StatusCode, header: resp.Header, body: string(b), at: time.Now()}
}

func TestShutdownDrainsUploads(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t, mcrtest.WithConfig("server.shutdown_timeout", `"20s"`))
	const repo = "drain/big"
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:"+repo+":pull,push")

	block := make([]byte, 1<<20+7) // not a power of two, so offsets matter
	_, _ = rand.Read(block)

	open := func() *url.URL {
		resp := srv.Do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", tok, nil)
		expectStatus(t, resp, http.StatusAccepted)
		return uploadURL(t, srv, resp.Header.Get("Location"))
	}

	// Upload 1: 200 MiB in one streamed PUT ?digest= (the whole upload is
	// in flight when SIGTERM arrives). Upload 2: a streamed PATCH of 32 MiB
	// (a chunk of an upload finished after the restart).
	const bigSize, chunkSize = 200 << 20, 32 << 20
	bigDigest := digestOf(block, bigSize)
	chunkDigest := digestOf(block, chunkSize)
	bigURL, chunkURL := open(), open()
	q := bigURL.Query()
	q.Set("digest", bigDigest)
	bigURL.RawQuery = q.Encode()

	big := newSlowStream(block, bigSize, 60<<20)    // ≥ 3.3 s
	chunk := newSlowStream(block, chunkSize, 8<<20) // ≥ 4 s
	bigDone, chunkDone := make(chan uploadResult, 1), make(chan uploadResult, 1)
	go func() { bigDone <- stream(srv, http.MethodPut, bigURL.String(), tok, big, bigSize) }()
	go func() { chunkDone <- stream(srv, http.MethodPatch, chunkURL.String(), tok, chunk, chunkSize) }()

	deadline := time.Now().Add(30 * time.Second)
	for big.sent.Load() < 24<<20 || chunk.sent.Load() < 4<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("uploads did not get going: %d and %d bytes sent", big.sent.Load(), chunk.sent.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	sigAt := time.Now()
	if err := srv.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGTERM after %d MiB of the PUT and %d MiB of the PATCH", big.sent.Load()>>20, chunk.sent.Load()>>20)

	// Draining: new connections are refused while the uploads continue.
	refused := false
	for time.Since(sigAt) < 3*time.Second && big.sent.Load() < bigSize {
		c, err := net.DialTimeout("tcp", srv.Addr, 500*time.Millisecond)
		if err != nil {
			refused = true
			break
		}
		_ = c.Close() // only whether it connects matters
		time.Sleep(50 * time.Millisecond)
	}
	if !refused && big.sent.Load() < bigSize {
		t.Errorf("mcrsrv still accepts connections 3 s after SIGTERM")
	}

	var br, cr uploadResult
	for _, w := range []struct {
		ch  chan uploadResult
		res *uploadResult
	}{{bigDone, &br}, {chunkDone, &cr}} {
		select {
		case *w.res = <-w.ch:
		case <-time.After(40 * time.Second):
			t.Fatalf("upload still running 40 s after SIGTERM")
		}
	}
	if br.err != nil || br.status != http.StatusCreated {
		t.Errorf("streamed PUT during shutdown: status %d err %v body %s; want 201", br.status, br.err, br.body)
	} else if got := br.header.Get("Docker-Content-Digest"); got != bigDigest {
		t.Errorf("PUT: Docker-Content-Digest %q, want %s", got, bigDigest)
	}
	if cr.err != nil || cr.status != http.StatusAccepted {
		t.Errorf("streamed PATCH during shutdown: status %d err %v body %s; want 202", cr.status, cr.err, cr.body)
	} else if got := cr.header.Get("Range"); got != fmt.Sprintf("0-%d", chunkSize-1) {
		t.Errorf("PATCH: Range %q, want 0-%d", got, chunkSize-1)
	}
	t.Logf("PUT finished %s after SIGTERM, PATCH %s", br.at.Sub(sigAt).Round(time.Millisecond), cr.at.Sub(sigAt).Round(time.Millisecond))

	select {
	case <-srv.Done():
	case <-time.After(25 * time.Second):
		t.Fatalf("mcrsrv still running %s after SIGTERM (shutdown_timeout 20s)\n%s", time.Since(sigAt), srv.Output.String())
	}
	exitAt := time.Since(sigAt)
	if err := srv.ExitErr(); err != nil {
		t.Fatalf("mcrsrv exited with %v after SIGTERM, want 0\n%s", err, srv.Output.String())
	}
	t.Logf("mcrsrv exited 0, %s after SIGTERM", exitAt.Round(time.Millisecond))
	if t.Failed() {
		t.FailNow()
	}

	// After a restart the blob is there, and the PATCHed upload can be
	// finished.
	srv.Restart(t)
	tok = srv.Token(t, "admin", mcrtest.AdminPassword, "repository:"+repo+":pull,push")
	checkBlob := func(dgst string, size int64) {
		t.Helper()
		resp := srv.Do(t, http.MethodGet, "/v2/"+repo+"/blobs/"+dgst, tok, nil)
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET blob %s after restart: %d %s", dgst, resp.StatusCode, readAll(t, resp))
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		if err != nil {
			t.Fatalf("read blob: %v", err)
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != dgst || n != size {
			t.Fatalf("blob read back: %d bytes hashing to %s, want %d bytes %s", n, got, size, dgst)
		}
	}
	checkBlob(bigDigest, bigSize)

	next := uploadURL(t, srv, cr.header.Get("Location"))
	q = next.Query()
	q.Set("digest", chunkDigest)
	next.RawQuery = q.Encode()
	resp := srv.Do(t, http.MethodPut, next.RequestURI(), tok, nil)
	expectStatus(t, resp, http.StatusCreated)
	checkBlob(chunkDigest, chunkSize)
}

func TestShutdownTimeoutBoundsDrain(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t, mcrtest.WithConfig("server.shutdown_timeout", `"2s"`))
	const repo = "drain/slow"
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:"+repo+":pull,push")
	block := make([]byte, 1<<20)
	_, _ = rand.Read(block)
	const size = 160 << 20
	resp := srv.Do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", tok, nil)
	expectStatus(t, resp, http.StatusAccepted)
	u := uploadURL(t, srv, resp.Header.Get("Location"))

	slow := newSlowStream(block, size, 8<<20) // 20 s: longer than the drain allows
	done := make(chan uploadResult, 1)
	go func() { done <- stream(srv, http.MethodPatch, u.String(), tok, slow, size) }()
	for slow.sent.Load() < 4<<20 {
		time.Sleep(20 * time.Millisecond)
	}
	sigAt := time.Now()
	if err := srv.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.Done():
	case <-time.After(12 * time.Second):
		t.Fatalf("mcrsrv still running %s after SIGTERM with shutdown_timeout 2s and a 20 s upload in flight", time.Since(sigAt))
	}
	took := time.Since(sigAt)
	t.Logf("mcrsrv exited %s after SIGTERM (exit: %v)", took.Round(time.Millisecond), srv.ExitErr())
	if took < 1500*time.Millisecond {
		t.Errorf("mcrsrv exited %s after SIGTERM: it did not wait for the in-flight upload", took)
	}
	select {
	case r := <-done:
		if r.err == nil && r.status == http.StatusAccepted {
			t.Errorf("a 20 s upload completed although the server stopped after 2 s")
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the client's upload did not end when the server exited")
	}
}
