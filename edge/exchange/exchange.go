// Package exchange is what MCR knows about one HTTP exchange while it is
// being served: which route it addresses (classified once, with
// distribution's own v2 router), who sent it once the edge has
// authenticated the bearer, the policy denial if there was one, and the one
// ResponseWriter wrapper through which every layer observes or amends the
// answer. Every layer reads the exchange from the request context instead
// of re-parsing the path or wrapping the writer again.
//
//	h = exchange.Begin(h)                 // outermost: classify, one writer
//	x := exchange.From(r.Context())       // any layer below
//	x.OnHeader(func(status int, h http.Header) error { ... })
//
// It is a leaf: it knows distribution's route table and MCR's identity and
// token types, nothing that serves requests.
package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/felixge/httpsnoop"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/authplugin/token"
	"git.wntrmute.dev/kyle/mcr/clientip"
	"git.wntrmute.dev/kyle/mcr/policyplugin"
)

// Exchange is the state of one request. Fields other than Route, IP and
// Method are set by the edge after authentication; a nil Principal means
// the request has not been (or could not be) authenticated.
type Exchange struct {
	Route  Route
	IP     string // peer address without the port
	Method string

	// Principal is the identity the edge verified; Claims are the grants
	// of a registry token (nil for an identity-provider token).
	Principal *identity.Principal
	Claims    *token.Claims
	// Denial is set by the access controller when the policy refused an
	// authenticated request.
	Denial *Denial

	raw     http.ResponseWriter
	hooks   []HeaderHook
	status  int
	discard bool
}

// Denial describes an authenticated request the policy refused.
type Denial struct {
	Principal  *identity.Principal
	Action     policyplugin.Action
	Repository string
	RuleID     int64 // 0 when no rule matched (default deny)
}

// HeaderHook runs once, just before the response status is written, with
// the status and the response headers (which it may change). A non-nil
// error replaces the response: it is written with errcode.ServeJSON (or
// with the status given to WithStatus) and whatever the handler writes
// afterwards is discarded.
type HeaderHook func(status int, h http.Header) error

type ctxKey struct{}

// From returns the exchange of ctx, or nil outside Begin.
func From(ctx context.Context) *Exchange {
	x, _ := ctx.Value(ctxKey{}).(*Exchange)
	return x
}

// With returns ctx carrying x (tests and handlers that build requests).
func With(ctx context.Context, x *Exchange) context.Context {
	return context.WithValue(ctx, ctxKey{}, x)
}

// Authenticated reports whether the edge verified a principal.
func (x *Exchange) Authenticated() bool { return x != nil && x.Principal != nil }

// OnHeader registers h; hooks run in registration order.
func (x *Exchange) OnHeader(h HeaderHook) { x.hooks = append(x.hooks, h) }

// Status is the status written so far (0: none yet).
func (x *Exchange) Status() int { return x.status }

// Begin is the outermost layer: it classifies the request once, records
// the peer, and serves next through the one ResponseWriter wrapper. It
// reads nothing of the body.
func Begin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x := &Exchange{Route: Classify(r), IP: ClientIP(r), Method: r.Method, raw: w}
		next.ServeHTTP(x.wrap(w), r.WithContext(With(r.Context(), x)))
		if x.status == 0 {
			x.status = http.StatusOK
		}
	})
}

// header runs the hooks for code and reports whether the handler's own
// response goes through (false: a hook replaced it).
func (x *Exchange) header(code int) bool {
	if x.status != 0 {
		return !x.discard
	}
	x.status = code
	for _, h := range x.hooks {
		if err := h(code, x.raw.Header()); err != nil {
			x.discard = true
			x.status = statusOf(err)
			ServeError(x.raw, err)
			return false
		}
	}
	return true
}

// statusError answers an error with a status its code does not carry.
type statusError struct {
	err    error
	status int
}

func (e statusError) Error() string { return e.err.Error() }
func (e statusError) Unwrap() error { return e.err }

// WithStatus makes a hook's replacement answer err (in errcode's
// envelope) with status instead of the status err's code carries, e.g.
// 507 for "UNKNOWN: registry storage is full".
func WithStatus(status int, err error) error { return statusError{status: status, err: err} }

// ServeError writes err in distribution's error envelope: with
// errcode.ServeJSON (the status err's code carries), or with the status
// given to WithStatus. It is MCR's one writer of OCI error answers (a
// hook's replacement answer, the token endpoint's errors).
func ServeError(w http.ResponseWriter, err error) {
	var se statusError
	if !errors.As(err, &se) {
		_ = errcode.ServeJSON(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(se.status)
	_ = json.NewEncoder(w).Encode(errcode.Errors{se.err})
}

func statusOf(err error) int {
	var se statusError
	if errors.As(err, &se) {
		return se.status
	}
	if ec, ok := err.(errcode.ErrorCoder); ok {
		if sc := ec.ErrorCode().Descriptor().HTTPStatusCode; sc != 0 {
			return sc
		}
	}
	return http.StatusInternalServerError
}

func (x *Exchange) wrap(w http.ResponseWriter) http.ResponseWriter {
	return httpsnoop.Wrap(w, httpsnoop.Hooks{
		WriteHeader: func(next httpsnoop.WriteHeaderFunc) httpsnoop.WriteHeaderFunc {
			return func(code int) {
				if x.status != 0 {
					if !x.discard {
						next(code) // superfluous: net/http logs it
					}
					return
				}
				if code < 200 { // informational (100-continue, 103): not the answer
					next(code)
					return
				}
				if x.header(code) {
					next(code)
				}
			}
		},
		Write: func(next httpsnoop.WriteFunc) httpsnoop.WriteFunc {
			return func(b []byte) (int, error) {
				if !x.header(http.StatusOK) {
					return len(b), nil
				}
				return next(b)
			}
		},
		ReadFrom: func(next httpsnoop.ReadFromFunc) httpsnoop.ReadFromFunc {
			return func(src io.Reader) (int64, error) {
				if !x.header(http.StatusOK) {
					return io.Copy(io.Discard, src)
				}
				return next(src)
			}
		},
		Flush: func(next httpsnoop.FlushFunc) httpsnoop.FlushFunc {
			return func() {
				if x.header(http.StatusOK) {
					next()
				}
			}
		},
	})
}

// ClientIP is the client address of r: the peer, or the forwarded client
// when the peer is a trusted proxy (package clientip's middleware runs in
// front of the exchange).
func ClientIP(r *http.Request) string { return clientip.From(r) }

// MethodLabel normalises a method for metric labels: the methods the
// registry serves, everything else "other".
func MethodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// StatusLabel is the status as a label; anything outside 100–599 is
// "other".
func StatusLabel(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code)
}
