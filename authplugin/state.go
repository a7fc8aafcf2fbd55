package authplugin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/clientip"
)

// requestState is the slot the /v2 middleware places in the request
// context; the access controller, running deeper inside distribution, fills
// it in. distribution maps every non-Challenge controller error to a bare
// 400, so a denial travels out through this slot and the middleware turns
// the 401 it causes into 403 DENIED.
type requestState struct {
	principal *identity.Principal
	denial    *Denial
	ip        string
	method    string
}

type stateKey struct{}

func stateFrom(ctx context.Context) *requestState {
	s, _ := ctx.Value(stateKey{}).(*requestState)
	return s
}

// RequestPrincipal returns the principal the access controller
// authenticated for this /v2 request, or nil.
func RequestPrincipal(ctx context.Context) *identity.Principal {
	if s := stateFrom(ctx); s != nil {
		return s.principal
	}
	return nil
}

// RequestMeta returns what the /v2 middleware and access controller know
// about the request in ctx: the principal (nil if none), client IP and
// method. Event code uses it to attribute registry events.
func RequestMeta(ctx context.Context) (p *identity.Principal, ip, method string) {
	if s := stateFrom(ctx); s != nil {
		return s.principal, s.ip, s.method
	}
	return nil, "", ""
}

// Recorder receives the security events of sign-in and authorization.
type Recorder interface {
	LoginSucceeded(r *http.Request, p *identity.Principal)
	LoginFailed(r *http.Request, username, reason string)
	Denied(r *http.Request, d Denial)
}

// V2Middleware wraps distribution's app: it gives each request a state
// slot and answers denials with 403 DENIED.
func V2Middleware(next http.Handler, rec Recorder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := &requestState{ip: ClientIP(r), method: r.Method}
		ctx := context.WithValue(r.Context(), stateKey{}, st)
		dw := &denyWriter{ResponseWriter: w, st: st}
		next.ServeHTTP(dw, r.WithContext(ctx))
		if st.denial != nil && dw.rewrote && rec != nil {
			rec.Denied(r, *st.denial)
		}
	})
}

// denyWriter rewrites the controller's 401 into 403 when the slot says the
// principal was authenticated but denied.
type denyWriter struct {
	http.ResponseWriter
	st      *requestState
	rewrote bool
	wrote   bool
}

func (d *denyWriter) WriteHeader(code int) {
	if d.wrote {
		return
	}
	d.wrote = true
	if code == http.StatusUnauthorized && d.st.denial != nil {
		d.rewrote = true
		h := d.Header()
		h.Del("WWW-Authenticate")
		WriteOCIError(d.ResponseWriter, http.StatusForbidden, "DENIED", denialMessage(d.st.denial), nil)
		return
	}
	d.ResponseWriter.WriteHeader(code)
}

func (d *denyWriter) Write(b []byte) (int, error) {
	if !d.wrote {
		d.WriteHeader(http.StatusOK)
	}
	if d.rewrote {
		return len(b), nil // the 401 body is replaced by ours
	}
	return d.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer (flush,
// deadlines) for streamed blobs.
func (d *denyWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }

// Flush forwards to the underlying writer.
func (d *denyWriter) Flush() {
	if f, ok := d.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// ClientIP is the client address of r: the peer, or the forwarded client
// when the peer is a trusted proxy (package clientip; its middleware runs
// in front of every handler).
func ClientIP(r *http.Request) string { return clientip.From(r) }

func denialMessage(d *Denial) string {
	if d.Repository == "" {
		return fmt.Sprintf("access denied: %s", d.Action)
	}
	return fmt.Sprintf("access denied: %s on repository %s", d.Action, d.Repository)
}

// ociError is the OCI distribution error envelope.
type ociError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// WriteOCIError writes `{"errors":[{code,message,detail}]}` with status.
func WriteOCIError(w http.ResponseWriter, status int, code, message string, detail any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Errors []ociError `json:"errors"`
	}{[]ociError{{Code: code, Message: message, Detail: detail}}})
}
