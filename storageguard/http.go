package storageguard

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

type reqKey struct{}

// markRequest flags the request whose context ctx derives from as having
// hit a full storage.
func markRequest(ctx context.Context) {
	if f, ok := ctx.Value(reqKey{}).(*atomic.Bool); ok {
		f.Store(true)
	}
}

// Wrap answers a /v2 request that failed (5xx) because the storage is
// full with 507 and {"errors":[{"code":"UNKNOWN","message":"registry
// storage is full"}]} instead of distribution's 500 carrying the driver's
// path. Everything else passes unchanged.
func Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		flag := &atomic.Bool{}
		r = r.WithContext(context.WithValue(r.Context(), reqKey{}, flag))
		next.ServeHTTP(&fullWriter{ResponseWriter: w, full: flag}, r)
	})
}

type fullWriter struct {
	http.ResponseWriter
	full     *atomic.Bool
	wrote    bool
	replaced bool
}

func (f *fullWriter) WriteHeader(code int) {
	if f.wrote {
		return
	}
	f.wrote = true
	if code >= 500 && f.full.Load() {
		f.replaced = true
		h := f.Header()
		h.Del("Content-Length")
		h.Set("Content-Type", "application/json; charset=utf-8")
		f.ResponseWriter.WriteHeader(http.StatusInsufficientStorage)
		_ = json.NewEncoder(f.ResponseWriter).Encode(errcode.Errors{errcode.ErrorCodeUnknown.WithMessage(Message)})
		return
	}
	f.ResponseWriter.WriteHeader(code)
}

func (f *fullWriter) Write(b []byte) (int, error) {
	if !f.wrote {
		f.WriteHeader(http.StatusOK)
	}
	if f.replaced {
		return len(b), nil // distribution's body (with the driver's path) is dropped
	}
	return f.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer.
func (f *fullWriter) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// Flush forwards to the underlying writer.
func (f *fullWriter) Flush() {
	if fl, ok := f.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}
