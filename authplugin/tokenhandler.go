package authplugin

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/authplugin/token"
	"git.wntrmute.dev/kyle/mcr/metrics"
	"git.wntrmute.dev/kyle/mcr/policyplugin"
)

// TokenHandler serves the Docker/OCI token endpoint (`/v2/token`): GET with
// Basic credentials or an identity-provider bearer token, POST with the
// OAuth2 password and refresh_token grants. Granted access is the requested
// access the policy allows.
type TokenHandler struct {
	Authn      *Authenticator
	Policy     Policy
	Recorder   Recorder
	TokenTTL   time.Duration
	RefreshTTL time.Duration
}

type tokenResponse struct {
	Token        string `json:"token,omitempty"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

func (h *TokenHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		h.get(w, r)
	case http.MethodPost:
		h.post(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		WriteOCIError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "token endpoint accepts GET and POST", nil)
	}
}

func (h *TokenHandler) checkService(w http.ResponseWriter, service string) bool {
	if service != "" && service != h.Authn.Issuer.Service() {
		WriteOCIError(w, http.StatusBadRequest, "UNSUPPORTED", "unknown service "+service, nil)
		return false
	}
	return true
}

func (h *TokenHandler) get(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !h.checkService(w, q.Get("service")) {
		return
	}
	scopes, err := token.ParseScopes(q["scope"])
	if err != nil {
		WriteOCIError(w, http.StatusBadRequest, "UNSUPPORTED", err.Error(), nil)
		return
	}
	var p *identity.Principal
	var sessionEnd time.Time
	if user, pass, ok := r.BasicAuth(); ok {
		p, sessionEnd = h.login(w, r, user, pass)
	} else if tok, ok := BearerToken(r); ok {
		p = h.bearer(w, r, tok)
	} else {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+h.Authn.Issuer.Service()+`"`)
		WriteOCIError(w, http.StatusUnauthorized, "UNAUTHORIZED", "credentials required: Basic username/password or an identity token", nil)
		return
	}
	if p == nil {
		return
	}
	h.respond(w, p, scopes, q.Get("offline_token") == "true", sessionEnd)
}

func (h *TokenHandler) post(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		WriteOCIError(w, http.StatusBadRequest, "UNSUPPORTED", "malformed form body", nil)
		return
	}
	if !h.checkService(w, r.PostForm.Get("service")) {
		return
	}
	scopes, err := token.ParseScopes(r.PostForm["scope"])
	if err != nil {
		WriteOCIError(w, http.StatusBadRequest, "UNSUPPORTED", err.Error(), nil)
		return
	}
	var p *identity.Principal
	var sessionEnd time.Time
	offline := r.PostForm.Get("access_type") == "offline"
	switch r.PostForm.Get("grant_type") {
	case "password":
		user, pass := r.PostForm.Get("username"), r.PostForm.Get("password")
		if user == "" || pass == "" {
			WriteOCIError(w, http.StatusBadRequest, "UNSUPPORTED", "grant_type=password needs username and password", nil)
			return
		}
		p, sessionEnd = h.login(w, r, user, pass)
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		c, err := h.Authn.Issuer.Verify(token.UseRefresh, rt)
		if err != nil {
			WriteOCIError(w, http.StatusUnauthorized, "UNAUTHORIZED", "invalid refresh token", nil)
			return
		}
		p = c.Principal()
		if rf, ok := h.Authn.Provider.(identity.Refresher); ok {
			if p, err = rf.Refresh(r.Context(), *p); err != nil {
				h.identityError(w, r, c.Username, err)
				return
			}
		}
		offline = false // the client keeps the refresh token it has
	case "":
		WriteOCIError(w, http.StatusBadRequest, "UNSUPPORTED", "grant_type is required", nil)
		return
	default:
		WriteOCIError(w, http.StatusBadRequest, "UNSUPPORTED", "unsupported grant_type", nil)
		return
	}
	if p == nil {
		return
	}
	h.respond(w, p, scopes, offline, sessionEnd)
}

func (h *TokenHandler) login(w http.ResponseWriter, r *http.Request, user, pass string) (*identity.Principal, time.Time) {
	s, err := h.Authn.Provider.Login(r.Context(), user, pass)
	if err != nil {
		h.identityError(w, r, user, err)
		return nil, time.Time{}
	}
	if h.Recorder != nil {
		h.Recorder.LoginSucceeded(r, &s.Principal)
	}
	return &s.Principal, s.ExpiresAt
}

func (h *TokenHandler) bearer(w http.ResponseWriter, r *http.Request, tok string) *identity.Principal {
	if h.Authn.Issuer.LooksLikeOurs(tok) {
		if _, err := h.Authn.Issuer.Verify(token.UseAccess, tok); err == nil {
			// A registry token is not an identity: it cannot mint others.
			WriteOCIError(w, http.StatusUnauthorized, "UNAUTHORIZED", "a registry token cannot be exchanged for another", nil)
			return nil
		}
	}
	p, err := h.Authn.Provider.Validate(r.Context(), tok)
	if err != nil {
		h.identityError(w, r, "", err)
		return nil
	}
	return p
}

func (h *TokenHandler) identityError(w http.ResponseWriter, r *http.Request, user string, err error) {
	if errors.Is(err, identity.ErrUnavailable) {
		slog.Error("identity service unavailable", "username", user, "err", err)
		if h.Recorder != nil {
			h.Recorder.LoginFailed(r, user, "identity service unavailable")
		}
		WriteOCIError(w, http.StatusBadGateway, "UNAVAILABLE", "identity service unavailable; try again later", nil)
		return
	}
	if h.Recorder != nil {
		h.Recorder.LoginFailed(r, user, "invalid credentials")
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="`+h.Authn.Issuer.Service()+`"`)
	WriteOCIError(w, http.StatusUnauthorized, "UNAUTHORIZED", "invalid username or password", nil)
}

// Grant returns the part of the requested scopes the policy allows.
func Grant(pol Policy, p *identity.Principal, scopes []token.Scope) []token.AccessEntry {
	out := []token.AccessEntry{}
	for _, s := range scopes {
		var granted []string
		for _, act := range expandActions(s) {
			action, repo, ok := policyplugin.ActionFor(s.Type, s.Name, act)
			if !ok {
				continue
			}
			if allowed, _ := Allowed(pol, p, action, repo); allowed && !slices.Contains(granted, act) {
				granted = append(granted, act)
			}
		}
		if len(granted) > 0 {
			out = append(out, token.AccessEntry{Type: s.Type, Name: s.Name, Actions: granted})
		}
	}
	return out
}

// expandActions turns a repository `*` into the actions it stands for.
func expandActions(s token.Scope) []string {
	if s.Type != "repository" {
		return s.Actions
	}
	var out []string
	for _, a := range s.Actions {
		if a == "*" {
			out = append(out, "pull", "push", "delete")
			continue
		}
		out = append(out, a)
	}
	return out
}

// respond issues the registry token and, when asked, a refresh token. A
// provider that cannot re-read a principal on refresh (MCIAS) gets refresh
// tokens no longer-lived than the identity session they came from, so a
// revocation or demotion upstream is not outlived; without a known session
// end none is issued.
func (h *TokenHandler) respond(w http.ResponseWriter, p *identity.Principal, scopes []token.Scope, offline bool, sessionEnd time.Time) {
	access := Grant(h.Policy, p, scopes)
	tok, c, err := h.Authn.Issuer.Issue(token.UseAccess, p, access, h.TokenTTL)
	if err != nil {
		slog.Error("issue token", "err", err)
		WriteOCIError(w, http.StatusInternalServerError, "UNKNOWN", "could not issue token", nil)
		return
	}
	resp := tokenResponse{
		Token:       tok,
		AccessToken: tok,
		ExpiresIn:   int(h.TokenTTL / time.Second),
		IssuedAt:    c.IssuedAt.UTC().Format(time.RFC3339),
	}
	for i, a := range access {
		if i > 0 {
			resp.Scope += " "
		}
		resp.Scope += token.Scope(a).String()
	}
	refreshTTL := h.RefreshTTL
	if _, ok := h.Authn.Provider.(identity.Refresher); !ok {
		if left := time.Until(sessionEnd); left < refreshTTL {
			refreshTTL = left
		}
	}
	if offline && refreshTTL >= time.Minute {
		rt, _, err := h.Authn.Issuer.Issue(token.UseRefresh, p, nil, refreshTTL)
		if err != nil {
			slog.Error("issue refresh token", "err", err)
			WriteOCIError(w, http.StatusInternalServerError, "UNKNOWN", "could not issue token", nil)
			return
		}
		resp.RefreshToken = rt
	}
	metrics.TokensIssued.Inc()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(resp)
}
