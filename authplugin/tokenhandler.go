package authplugin

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/authplugin/token"
	"git.wntrmute.dev/kyle/mcr/internal/ttlcache"
	"git.wntrmute.dev/kyle/mcr/metrics"
	"git.wntrmute.dev/kyle/mcr/policyplugin"
	"git.wntrmute.dev/kyle/mcr/store"
)

// TokenHandler serves the Docker/OCI token endpoint (`/v2/token`): GET with
// Basic credentials or an identity-provider bearer token, POST with the
// OAuth2 password and refresh_token grants. Granted access is the requested
// access the policy allows.
type TokenHandler struct {
	Authn    *Authenticator
	Policy   Policy
	Recorder Recorder
	// SignIn checks passwords (bounds, throttle, audit); nil: the
	// provider unthrottled.
	SignIn *SignIn
	// Families records refresh-token families for rotation and
	// revocation; nil: no refresh tokens are issued.
	Families Families
	// OnRefreshReuse records a rotated refresh token presented again (its
	// family has been revoked).
	OnRefreshReuse func(r *http.Request, c *token.Claims)
	TokenTTL       time.Duration
	RefreshTTL     time.Duration
}

// Families keeps refresh-token families (store.Store does).
type Families interface {
	CreateFamily(ctx context.Context, f store.RefreshFamily) error
	RotateFamily(ctx context.Context, id, oldJTI, newJTI string, expires time.Time) (*store.RefreshFamily, error)
	CheckFamily(ctx context.Context, id, jti string) error
}

// SessionKey is how a refresh family remembers the identity session it was
// minted with (a digest: the session token itself is never stored), so a
// logout can revoke it.
func SessionKey(sessionToken string) string {
	k := ttlcache.Key("refresh-session", sessionToken)
	return hex.EncodeToString(k[:16])
}

func (h *TokenHandler) signIn() *SignIn {
	if h.SignIn != nil {
		return h.SignIn
	}
	return &SignIn{Provider: h.Authn.Provider, Recorder: h.Recorder}
}

// grant is what a token request proved.
type grant struct {
	p          *identity.Principal
	sessionEnd time.Time
	session    string // SessionKey of the bearer session, if any
	family     string // refresh family being rotated, if any
	refreshExp time.Time
	refreshJTI string // its new current id
	// rotating: a new refresh token (offline access) is replaced on use.
	// The token endpoint's GET (docker login's offline_token=true) hands
	// out identity tokens clients store once and reuse, so those do not
	// rotate; the OAuth2 POST grants rotate.
	rotating bool
}

type tokenResponse struct {
	Token        string `json:"token,omitempty"`
	AccessToken  string `json:"access_token"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
	ExpiresIn    int    `json:"expires_in"`
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
	var g grant
	if user, pass, ok := r.BasicAuth(); ok {
		g.p, g.sessionEnd = h.login(w, r, user, pass)
	} else if tok, ok := BearerToken(r); ok {
		g.p = h.bearer(w, r, tok)
		g.session = SessionKey(tok)
	} else {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+h.Authn.Issuer.Service()+`"`)
		WriteOCIError(w, http.StatusUnauthorized, "UNAUTHORIZED", "credentials required: Basic username/password or an identity token", nil)
		return
	}
	if g.p == nil {
		return
	}
	h.respond(w, r, g, scopes, q.Get("offline_token") == "true")
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
	var g grant
	offline := r.PostForm.Get("access_type") == "offline"
	switch r.PostForm.Get("grant_type") {
	case "password":
		user, pass := r.PostForm.Get("username"), r.PostForm.Get("password")
		if user == "" || pass == "" {
			WriteOCIError(w, http.StatusBadRequest, "UNSUPPORTED", "grant_type=password needs username and password", nil)
			return
		}
		g.p, g.sessionEnd = h.login(w, r, user, pass)
		g.rotating = true
	case "refresh_token":
		if !h.rotate(w, r, r.PostForm.Get("refresh_token"), &g) {
			return
		}
		offline = false // a rotated token is answered by respond; an identity token is kept
	case "":
		WriteOCIError(w, http.StatusBadRequest, "UNSUPPORTED", "grant_type is required", nil)
		return
	default:
		WriteOCIError(w, http.StatusBadRequest, "UNSUPPORTED", "unsupported grant_type", nil)
		return
	}
	if g.p == nil {
		return
	}
	h.respond(w, r, g, scopes, offline)
}

// rotate redeems a refresh token: it must be its family's current one.
// The family moves on to a new id (answered as the new refresh token); an
// older id presented again revokes the family.
func (h *TokenHandler) rotate(w http.ResponseWriter, r *http.Request, rt string, g *grant) bool {
	refuse := func() bool {
		WriteOCIError(w, http.StatusUnauthorized, "UNAUTHORIZED", "invalid refresh token", nil)
		return false
	}
	if len(rt) > maxTokenBytes || h.Families == nil {
		return refuse()
	}
	c, err := h.Authn.Issuer.Verify(token.UseRefresh, rt)
	if err != nil || c.Family == "" { // no family: minted before rotation existed
		return refuse()
	}
	if !c.Rotating {
		// An identity token (docker login): presented again and again by
		// design; it works while its family stands (logout, account
		// changes and admin revocation end it).
		switch err := h.Families.CheckFamily(r.Context(), c.Family, c.ID); {
		case errors.Is(err, store.ErrNotFound):
			return refuse()
		case err != nil:
			slog.Error("check refresh token", "err", err)
			WriteOCIError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "could not redeem the refresh token; try again", nil)
			return false
		}
		return h.refreshPrincipal(w, r, c, g)
	}
	next := token.NewJTI()
	_, err = h.Families.RotateFamily(r.Context(), c.Family, c.ID, next, c.ExpiresAt.Time)
	switch {
	case errors.Is(err, store.ErrReused):
		if h.OnRefreshReuse != nil {
			h.OnRefreshReuse(r, c)
		}
		return refuse()
	case errors.Is(err, store.ErrNotFound):
		return refuse()
	case err != nil:
		slog.Error("rotate refresh token", "err", err)
		WriteOCIError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "could not redeem the refresh token; try again", nil)
		return false
	}
	g.family, g.refreshJTI, g.refreshExp = c.Family, next, c.ExpiresAt.Time
	return h.refreshPrincipal(w, r, c, g)
}

// refreshPrincipal is who a redeemed refresh token stands for now: the
// account's current role where the provider can tell (local accounts).
func (h *TokenHandler) refreshPrincipal(w http.ResponseWriter, r *http.Request, c *token.Claims, g *grant) bool {
	p := c.Principal()
	if rf, ok := h.Authn.Provider.(identity.Refresher); ok {
		var err error
		if p, err = rf.Refresh(r.Context(), *p); err != nil {
			h.identityError(w, r, c.Username, err)
			return false
		}
	}
	g.p = p
	return true
}

// maxTokenBytes bounds a token presented in a form.
const maxTokenBytes = 8 << 10

func (h *TokenHandler) login(w http.ResponseWriter, r *http.Request, user, pass string) (*identity.Principal, time.Time) {
	s, err := h.signIn().Login(r, user, pass)
	if err != nil {
		var te *ThrottledError
		switch {
		case errors.Is(err, ErrInputTooLong):
			WriteOCIError(w, http.StatusBadRequest, "UNSUPPORTED", "username or password too long", nil)
		case errors.As(err, &te):
			w.Header().Set("Retry-After", te.RetryAfterSeconds())
			WriteOCIError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS", te.Error(), nil)
		case errors.Is(err, identity.ErrUnavailable):
			slog.Error("identity service unavailable", "username", user, "err", err)
			WriteOCIError(w, http.StatusBadGateway, "UNAVAILABLE", "identity service unavailable; try again later", nil)
		default:
			w.Header().Set("WWW-Authenticate", `Basic realm="`+h.Authn.Issuer.Service()+`"`)
			WriteOCIError(w, http.StatusUnauthorized, "UNAUTHORIZED", "invalid username or password", nil)
		}
		return nil, time.Time{}
	}
	return &s.Principal, s.ExpiresAt
}

func (h *TokenHandler) bearer(w http.ResponseWriter, r *http.Request, tok string) *identity.Principal {
	p, err := h.Authn.Identity(r.Context(), tok)
	if errors.Is(err, ErrNotIdentity) {
		// A registry token is not an identity: it cannot mint others.
		WriteOCIError(w, http.StatusUnauthorized, "UNAUTHORIZED", "a registry token cannot be exchanged for another", nil)
		return nil
	}
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
func (h *TokenHandler) respond(w http.ResponseWriter, r *http.Request, g grant, scopes []token.Scope, offline bool) {
	p := g.p
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
	if g.family != "" {
		// A rotation: the family's new current token, same expiry.
		rt, _, err := h.Authn.Issuer.IssueRefresh(p, g.family, g.refreshJTI, time.Until(g.refreshExp), true)
		if err != nil {
			slog.Error("issue refresh token", "err", err)
			WriteOCIError(w, http.StatusInternalServerError, "UNKNOWN", "could not issue token", nil)
			return
		}
		resp.RefreshToken = rt
	} else if rt, ok := h.newRefresh(w, r, g, offline); !ok {
		return
	} else {
		resp.RefreshToken = rt
	}
	metrics.TokensIssued.Inc()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(resp)
}

// newRefresh starts a refresh-token family when the client asked for an
// offline token ("" when none is issued; false when an error was written).
func (h *TokenHandler) newRefresh(w http.ResponseWriter, r *http.Request, g grant, offline bool) (string, bool) {
	if !offline || h.Families == nil {
		return "", true
	}
	refreshTTL := h.RefreshTTL
	if _, ok := h.Authn.Provider.(identity.Refresher); !ok {
		if left := time.Until(g.sessionEnd); left < refreshTTL {
			refreshTTL = left
		}
	}
	if refreshTTL < time.Minute {
		return "", true
	}
	fam, jti := token.NewJTI(), token.NewJTI()
	exp := h.Authn.Issuer.Now().Add(refreshTTL)
	if err := h.Families.CreateFamily(r.Context(), store.RefreshFamily{
		ID: fam, Subject: g.p.Subject, Session: g.session, CurrentJTI: jti, ExpiresAt: exp,
	}); err != nil {
		slog.Error("record refresh token", "err", err)
		WriteOCIError(w, http.StatusInternalServerError, "UNKNOWN", "could not issue token", nil)
		return "", false
	}
	rt, _, err := h.Authn.Issuer.IssueRefresh(g.p, fam, jti, refreshTTL, g.rotating)
	if err != nil {
		slog.Error("issue refresh token", "err", err)
		WriteOCIError(w, http.StatusInternalServerError, "UNKNOWN", "could not issue token", nil)
		return "", false
	}
	return rt, true
}
