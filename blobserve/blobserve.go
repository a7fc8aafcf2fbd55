// Package blobserve serves blob content (GET and HEAD of
// /v2/<name>/blobs/<digest>) straight from a local storage driver's file.
//
// distribution's blob server reads every blob through a fileReader that
// allocates (and so zeroes) a 4 MiB bufio.Reader per request, however
// small the blob: pulling 300 small images allocated 4.8 GB, 93 % of all
// the server's allocation, and set its peak RSS. Here the blob is served
// with http.ServeContent from the *os.File the local driver hands back —
// no buffer of its own, no extra copy on a large pull. Everything else is
// distribution's: the repository's link check and descriptor (Stat), the
// headers it sets, Range and conditional requests (ServeContent, as
// distribution uses it), and any driver that does not hand back a seekable
// file (S3) is served by distribution unchanged.
//
// It is a registry middleware: it wraps the namespace, so the repository
// middleware (the audit listener) still sees every pull.
package blobserve

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	registrymw "github.com/distribution/distribution/v3/registry/middleware/registry"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"git.wntrmute.dev/kyle/mcr/internal/layout"
)

// MiddlewareName is the registry middleware's registered name.
const MiddlewareName = "mcr-blobserve"

// cacheControl is distribution's: a blob never changes under its digest.
const cacheControl = "max-age=31536000"

func init() {
	if err := registrymw.Register(MiddlewareName, func(_ context.Context, ns distribution.Namespace, d storagedriver.StorageDriver, _ map[string]any) (distribution.Namespace, error) {
		return &namespace{Namespace: ns, driver: d}, nil
	}); err != nil {
		panic(err)
	}
}

// Middleware is the configuration entry that enables it. Use it only with
// a driver on the local filesystem ("mcrfs", "filesystem").
func Middleware() configuration.Middleware {
	return configuration.Middleware{Name: MiddlewareName}
}

type namespace struct {
	distribution.Namespace
	driver storagedriver.StorageDriver
}

func (n *namespace) Repository(ctx context.Context, name reference.Named) (distribution.Repository, error) {
	r, err := n.Namespace.Repository(ctx, name)
	if err != nil {
		return nil, err
	}
	return &repository{Repository: r, driver: n.driver}, nil
}

// Remove keeps the wrapped namespace's RepositoryRemover: distribution's
// App looks for it on the namespace it is given (and warns without it).
func (n *namespace) Remove(ctx context.Context, name reference.Named) error {
	r, ok := n.Namespace.(distribution.RepositoryRemover)
	if !ok {
		return errors.New("blobserve: the registry cannot remove repositories")
	}
	return r.Remove(ctx, name)
}

type repository struct {
	distribution.Repository
	driver storagedriver.StorageDriver
}

func (r *repository) Blobs(ctx context.Context) distribution.BlobStore {
	return &blobs{BlobStore: r.Repository.Blobs(ctx), driver: r.driver}
}

type blobs struct {
	distribution.BlobStore
	driver storagedriver.StorageDriver
}

// ServeBlob answers a GET or HEAD of the blob as distribution's
// linkedBlobStore and blobServer do together, reading the file directly.
func (b *blobs) ServeBlob(ctx context.Context, w http.ResponseWriter, r *http.Request, dgst digest.Digest) error {
	desc, err := b.Stat(ctx, dgst) // the repository's link: a blob not in it is unknown here
	if err != nil {
		return err
	}
	rc, err := b.driver.Reader(ctx, layout.BlobDataPath(desc.Digest), 0)
	if err != nil {
		var nf storagedriver.PathNotFoundError
		if errors.As(err, &nf) {
			return distribution.ErrBlobUnknown
		}
		return err
	}
	defer func() { _ = rc.Close() }() // read-only
	f, ok := rc.(io.ReaderAt)
	if !ok {
		return b.BlobStore.ServeBlob(ctx, w, r, dgst)
	}
	h := w.Header()
	h.Set("ETag", `"`+desc.Digest.String()+`"`) // If-None-Match is ServeContent's
	h.Set("Cache-Control", cacheControl)
	if h.Get("Docker-Content-Digest") == "" {
		h.Set("Docker-Content-Digest", desc.Digest.String())
	}
	if h.Get("Content-Type") == "" {
		mt := desc.MediaType
		if mt == "" {
			mt = "application/octet-stream"
		}
		h.Set("Content-Type", mt)
	}
	if h.Get("Content-Length") == "" {
		h.Set("Content-Length", strconv.FormatInt(desc.Size, 10))
	}
	// Bounded by the descriptor's size, as distribution's fileReader is.
	content := io.NewSectionReader(f, 0, desc.Size)
	if r.Method != http.MethodGet || conditional(r) {
		http.ServeContent(w, r, desc.Digest.String(), time.Time{}, content)
		return nil
	}
	// A plain GET, what every pull is: ServeContent's answer (200, the
	// length, Accept-Ranges), copied in reads of up to 1 MiB instead of
	// net/http's 32 KiB: a large pull makes a read syscall per MiB, as
	// distribution's 4 MiB reader did, without its per-request buffer.
	h.Set("Accept-Ranges", "bytes")
	w.WriteHeader(http.StatusOK)
	if desc.Size == 0 {
		return nil
	}
	buf, ok := copyBuffers.Get().(*[]byte)
	if !ok { // the pool holds only *[]byte (its New)
		b := make([]byte, 1<<20)
		buf = &b
	}
	defer copyBuffers.Put(buf)
	// The anonymous structs hide ReadFrom/WriteTo, which would choose
	// 32 KiB buffers. A failed copy leaves the client a short body (the
	// status is sent), which its length and digest checks catch; as with
	// ServeContent there is nothing more to answer.
	_, _ = io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{content}, (*buf)[:min(int64(len(*buf)), desc.Size)])
	return nil
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// conditional reports whether r asks for part of the content or states a
// precondition: those are http.ServeContent's to answer.
func conditional(r *http.Request) bool {
	for _, k := range []string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if r.Header.Get(k) != "" {
			return true
		}
	}
	return false
}
