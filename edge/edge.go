// Package edge builds MCR's HTTPS request path in one place. Each layer
// is one line below, outermost first, with the reason it sits where it
// does. The rule they keep: nothing acts on a /v2 request — reads its
// body, parses a form, writes a row, remembers a digest — before the edge
// has authenticated it.
package edge

import (
	"net/http"

	"git.wntrmute.dev/kyle/mcr/authplugin"
	"git.wntrmute.dev/kyle/mcr/edge/exchange"
	"git.wntrmute.dev/kyle/mcr/gc"
	"git.wntrmute.dev/kyle/mcr/metrics"
	"git.wntrmute.dev/kyle/mcr/ociext"
)

// Options are the parts the path is built from.
type Options struct {
	ClientIP func(http.Handler) http.Handler // clientip: the client address (trusted proxies' X-Forwarded-For)
	Registry http.Handler                    // distribution's App: access controller, repository middleware, storage
	Auth     *authplugin.Edge                // bearer authentication and the 401 challenge
	Storage  func(http.Handler) http.Handler // storageguard.Wrap: a write that failed on a full disk → 507
	Gate     *gc.Gate                        // GC write gate
	Token    http.Handler                    // /v2/token
	Admin    http.Handler                    // /v1/
	OCI      ociext.Options                  // referrers, subject, sha512, filtered catalog
}

// Handler is the server's whole handler.
func Handler(o Options) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v2/token", o.Token)
	mux.Handle("/v1/", o.Admin)
	mux.Handle("/v2/", V2(o))
	return chain(mux,
		o.ClientIP,         // before the exchange records the client address: resolve it through trusted proxies
		exchange.Begin,     // then classify once (distribution's route table) and install the one ResponseWriter every layer hooks into
		metrics.Instrument, // then count, with labels from the exchange only (route name, method, status), after the answer is known
	)
}

// V2 is the /v2/ API (the token endpoint aside).
func V2(o Options) http.Handler {
	return chain(o.Registry,
		exchange.NoBodyForms, // before anything can call FormValue: distribution's dispatcher does, before its access controller
		o.Auth.Authenticate,  // the bearer, verified once; none or invalid → 401 challenge, and nothing above has touched the body
		exchange.CheckInput,  // malformed query/headers → 4xx instead of distribution's 500; only for authenticated callers
		o.Storage,            // around everything that writes storage (ociext's alias links, distribution): a full disk → 507, no path
		func(next http.Handler) http.Handler { return ociext.Wrap(next, o.OCI) }, // authorizes, then reads a manifest body (bounded, deadline) — before the gate, so a slow client never holds a GC
		o.Gate.Wrap, // last before distribution: authenticated writes wait while a GC marks and sweeps; digests remembered on 2xx
	) // distribution: the access controller evaluates the policy with the edge's identity, then repository middleware (audit) and storage
}

// chain wraps h in layers, the first outermost.
func chain(h http.Handler, layers ...func(http.Handler) http.Handler) http.Handler {
	for i := len(layers) - 1; i >= 0; i-- {
		h = layers[i](h)
	}
	return h
}
