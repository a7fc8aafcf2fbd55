package storageguard

import (
	"context"
	"net/http"
	"sync/atomic"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"git.wntrmute.dev/kyle/mcr/edge/exchange"
)

type reqKey struct{}

// markRequest flags the request whose context ctx derives from as having
// hit a full storage.
func markRequest(ctx context.Context) {
	if f, ok := ctx.Value(reqKey{}).(*atomic.Bool); ok {
		f.Store(true)
	}
}

// MarkFull flags the request ctx derives from as having failed for lack
// of space outside the storage driver, such as on the database's disk (an
// audit or index row a push could not commit), so that Wrap answers its
// 5xx with the same 507 as a full blob store.
func MarkFull(ctx context.Context) { markRequest(ctx) }

// Wrap answers a /v2 request that failed (5xx) because the storage is
// full with 507 and {"errors":[{"code":"UNKNOWN","message":"registry
// storage is full"}]} instead of distribution's 500 carrying the driver's
// path. Everything else passes unchanged. It amends the answer through the
// exchange's one ResponseWriter (a hook), so it must run inside
// exchange.Begin, as the edge places it.
func Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		flag := &atomic.Bool{}
		r = r.WithContext(context.WithValue(r.Context(), reqKey{}, flag))
		if x := exchange.From(r.Context()); x != nil {
			x.OnHeader(func(status int, h http.Header) error {
				if status < 500 || !flag.Load() {
					return nil
				}
				h.Del("Content-Length")
				return exchange.WithStatus(http.StatusInsufficientStorage, errcode.ErrorCodeUnknown.WithMessage(Message))
			})
		}
		next.ServeHTTP(w, r)
	})
}
