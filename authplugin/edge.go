package authplugin

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/distribution/distribution/v3/registry/auth"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/edge/exchange"
	"git.wntrmute.dev/kyle/mcr/metrics"
)

// Recorder receives the security events of sign-in and authorization.
type Recorder interface {
	LoginSucceeded(r *http.Request, p *identity.Principal)
	LoginFailed(r *http.Request, username, reason string)
	Denied(r *http.Request, d exchange.Denial)
}

// Edge authenticates /v2 requests, once, in front of everything else that
// acts on them: a missing or invalid bearer is answered with the 401
// challenge right here, before any layer reads the body, parses a form,
// writes a row or remembers a digest. A verified identity goes into the
// exchange, where the access controller finds it.
type Edge struct {
	Authn    *Authenticator
	Service  string
	Recorder Recorder
	Hostname string // server.hostname: the token realm's host
}

// Authenticate is the edge's authentication layer.
func (e *Edge) Authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x := exchange.From(r.Context())
		if x == nil {
			_ = errcode.ServeJSON(w, errcode.ErrorCodeUnknown.WithMessage("request reached the registry outside the edge"))
			return
		}
		tok, ok := BearerToken(r)
		if !ok {
			e.challenge(w, r, x, "", "")
			return
		}
		id, err := e.Authn.Bearer(r.Context(), tok)
		if err != nil {
			metrics.AuthFailures.WithLabelValues("invalid_token").Inc()
			if errors.Is(err, identity.ErrUnavailable) {
				slog.Warn("identity service unavailable while validating a bearer token", "err", err)
			}
			e.challenge(w, r, x, "invalid_token", "invalid bearer token")
			return
		}
		x.Principal, x.Claims = id.Principal, id.Claims
		// distribution answers a refused access record with a 401
		// challenge (it has no 403 path); when the controller noted a
		// policy denial, the answer becomes 403 DENIED.
		x.OnHeader(func(status int, h http.Header) error {
			if status != http.StatusUnauthorized || x.Denial == nil {
				return nil
			}
			h.Del("WWW-Authenticate")
			return errcode.ErrorCodeDenied.WithMessage(denialMessage(x.Denial))
		})
		next.ServeHTTP(w, r)
		if x.Denial != nil && x.Status() == http.StatusForbidden && e.Recorder != nil {
			e.Recorder.Denied(r, *x.Denial)
		}
	})
}

func (e *Edge) challenge(w http.ResponseWriter, r *http.Request, x *exchange.Exchange, code, reason string) {
	access := AccessFor(x.Route, r)
	ch := &challenge{hostname: e.Hostname, service: e.Service, scope: scopeOf(access), code: code, reason: reason}
	ch.SetHeaders(r, w)
	_ = errcode.ServeJSON(w, errcode.ErrorCodeUnauthorized.WithDetail(access))
}

// AccessFor is the access distribution will ask the controller about for a
// request on rt (handlers/app.go appendAccessRecords), so the challenge
// names the scope a client must request a token for.
func AccessFor(rt exchange.Route, r *http.Request) []auth.Access {
	var out []auth.Access
	add := func(repo, method string) {
		res := auth.Resource{Type: "repository", Name: repo}
		switch method {
		case http.MethodGet, http.MethodHead:
			out = append(out, auth.Access{Resource: res, Action: "pull"})
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			out = append(out, auth.Access{Resource: res, Action: "pull"}, auth.Access{Resource: res, Action: "push"})
		case http.MethodDelete:
			out = append(out, auth.Access{Resource: res, Action: "delete"})
		}
	}
	switch {
	case rt.Name == v2.RouteNameCatalog:
		out = append(out, auth.Access{Resource: auth.Resource{Type: "registry", Name: "catalog"}, Action: "*"})
	case rt.Name == exchange.RouteReferrers:
		add(rt.Repository, http.MethodGet)
	case rt.Repository != "":
		add(rt.Repository, r.Method)
		if from := r.URL.Query().Get("from"); from != "" {
			add(from, http.MethodGet)
		}
	}
	return out
}

func denialMessage(d *exchange.Denial) string {
	if d.Repository == "" {
		return fmt.Sprintf("access denied: %s", d.Action)
	}
	return fmt.Sprintf("access denied: %s on repository %s", d.Action, d.Repository)
}

// ClientIP is the peer address of r without the port.
func ClientIP(r *http.Request) string { return exchange.ClientIP(r) }
