package main

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"time"
)

// floorCommand is the first argument that makes mcrbench the floor server
// instead of the bench (the bench starts itself so, as a child process
// whose CPU it reads like the other servers').
const floorCommand = "floor-server"

// floorServer is the least any registry must do for a blob push: receive
// the body over TLS 1.3 (HTTP/1.1, the same certificate and client as the
// registries) and hash it once with SHA-256, then check the digest. It
// stores nothing, authenticates nobody and writes no file, so its CPU per
// GB is the floor under every registry's in the same round: what MCR
// and upstream spend above it is theirs to cut.
type floorServer struct {
	uploads map[string]hash.Hash
	mu      sync.Mutex // guards uploads
}

// serveFloor runs the floor server on addr until it is killed.
func serveFloor(args []string) error {
	if len(args) != 3 {
		return errors.New("usage: mcrbench " + floorCommand + " ADDR CERT KEY")
	}
	addr, cert, key := args[0], args[1], args[2]
	f := &floorServer{uploads: map[string]hash.Hash{}}
	srv := &http.Server{
		Addr: addr, Handler: f, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS13},
	}
	return srv.ListenAndServeTLS(cert, key)
}

func (f *floorServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case r.Method == http.MethodGet && p == "/v2/":
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodPost && strings.HasSuffix(p, "/blobs/uploads/"):
		var b [16]byte
		_, _ = rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		f.mu.Lock()
		f.uploads[id] = sha256.New()
		f.mu.Unlock()
		w.Header().Set("Location", p+id)
		w.WriteHeader(http.StatusAccepted)
	case (r.Method == http.MethodPatch || r.Method == http.MethodPut) && strings.Contains(p, "/blobs/uploads/"):
		f.receive(w, r, path.Base(p))
	default:
		http.NotFound(w, r)
	}
}

// bufs are the 1 MiB copy buffers (as MCR's blob path reads).
var bufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// receive hashes a PATCH or PUT body into upload id's hash; a PUT ends the
// upload and must name the digest of everything received.
func (f *floorServer) receive(w http.ResponseWriter, r *http.Request, id string) {
	f.mu.Lock()
	h := f.uploads[id]
	f.mu.Unlock()
	if h == nil {
		http.Error(w, "unknown upload", http.StatusNotFound)
		return
	}
	buf, ok := bufs.Get().(*[]byte)
	if !ok { // the pool holds only *[]byte (see bufs.New)
		b := make([]byte, 1<<20)
		buf = &b
	}
	_, err := io.CopyBuffer(h, struct{ io.Reader }{r.Body}, *buf)
	bufs.Put(buf)
	if err != nil {
		http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if r.Method == http.MethodPatch {
		w.Header().Set("Location", r.URL.Path)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	f.mu.Lock()
	delete(f.uploads, id)
	f.mu.Unlock()
	got := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if want := r.URL.Query().Get("digest"); want != got {
		http.Error(w, fmt.Sprintf("digest %s, received %s", want, got), http.StatusBadRequest)
		return
	}
	w.Header().Set("Docker-Content-Digest", got)
	w.WriteHeader(http.StatusCreated)
}

// startFloor starts this executable as the floor server.
func startFloor(logPath, addr, cert, key string) (*process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return startProcess("floor", logPath, baseEnv(), self, floorCommand, addr, cert, key)
}
