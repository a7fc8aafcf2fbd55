package webui

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
)

// Cookie names. Both are HttpOnly and SameSite=Strict; Secure when the UI
// is served over TLS.
const (
	sessionCookie = "mcr_session"
	csrfCookie    = "mcr_csrf"
	csrfField     = "csrf_token"
	csrfHeader    = "X-CSRF-Token"
)

// Session is what the session cookie carries, sealed with AES-256-GCM: the
// API token never reaches the browser in readable form, and a cookie that
// was altered or made with another key does not open.
type Session struct {
	ID          string    `json:"id"`
	Token       string    `json:"t"`
	Username    string    `json:"u"`
	AccountType string    `json:"a,omitempty"`
	Expires     time.Time `json:"e"`
	Roles       []string  `json:"r"`
}

// IsAdmin reports whether the signed-in account holds the admin role.
func (s *Session) IsAdmin() bool { return s != nil && contains(s.Roles, "admin") }

// Role is the highest role, for display.
func (s *Session) Role() string {
	switch {
	case s == nil:
		return ""
	case contains(s.Roles, "admin"):
		return "admin"
	case contains(s.Roles, "user"):
		return "user"
	}
	return "guest"
}

// guestOnly reports whether roles hold nothing above guest.
func guestOnly(roles []string) bool { return !contains(roles, "admin") && !contains(roles, "user") }

// sealer seals sessions and signs CSRF tokens with keys derived from one
// secret.
type sealer struct {
	aead    cipher.AEAD
	csrfKey []byte
}

var errBadCookie = errors.New("cookie does not open")

func newSealer(secret []byte) (*sealer, error) {
	if len(secret) < 32 {
		return nil, errors.New("webui: session key must be at least 32 bytes")
	}
	encKey, err := hkdf.Key(sha256.New, secret, nil, "mcr-web session encryption", 32)
	if err != nil {
		return nil, err
	}
	csrfKey, err := hkdf.Key(sha256.New, secret, nil, "mcr-web csrf signing", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, csrfKey: csrfKey}, nil
}

func (s *sealer) seal(v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := s.aead.Seal(nonce, nonce, plain, []byte(sessionCookie))
	return base64.RawURLEncoding.EncodeToString(out), nil
}

func (s *sealer) open(text string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(text)
	if err != nil || len(raw) < s.aead.NonceSize()+s.aead.Overhead() {
		return errBadCookie
	}
	ns := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:ns], raw[ns:], []byte(sessionCookie))
	if err != nil {
		return errBadCookie
	}
	if err := json.Unmarshal(plain, v); err != nil {
		return errBadCookie
	}
	return nil
}

// csrfToken makes a signed double-submit token bound to a session id (""
// before sign-in): random nonce, then HMAC(key, sid|nonce).
func (s *sealer) csrfToken(sid string) string {
	nonce := make([]byte, 18)
	_, _ = rand.Read(nonce)
	n := base64.RawURLEncoding.EncodeToString(nonce)
	return n + "." + s.csrfMAC(sid, n)
}

func (s *sealer) csrfMAC(sid, nonce string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte(sid))
	m.Write([]byte{0})
	m.Write([]byte(nonce))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfValid reports whether tok was made by this server for sid.
func (s *sealer) csrfValid(sid, tok string) bool {
	nonce, mac, ok := strings.Cut(tok, ".")
	if !ok || nonce == "" || mac == "" {
		return false
	}
	return hmac.Equal([]byte(mac), []byte(s.csrfMAC(sid, nonce)))
}

func newSessionID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// cookie builds a cookie with the UI's common attributes.
func (srv *Server) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: srv.opts.Secure, SameSite: http.SameSiteStrictMode,
	}
}

// session returns the request's session, or nil when there is none, it
// does not open, or it has expired.
func (srv *Server) session(r *http.Request) *Session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	var s Session
	if srv.sealer.open(c.Value, &s) != nil || s.Token == "" || s.ID == "" {
		return nil
	}
	if !s.Expires.IsZero() && !srv.now().Before(s.Expires) {
		return nil
	}
	return &s
}

// setSession writes the session cookie and a fresh CSRF token bound to it,
// and returns that token.
func (srv *Server) setSession(w http.ResponseWriter, s *Session) (string, error) {
	v, err := srv.sealer.seal(s)
	if err != nil {
		return "", err
	}
	maxAge := 0
	if !s.Expires.IsZero() {
		maxAge = int(time.Until(s.Expires).Seconds())
		if maxAge < 1 {
			maxAge = 1
		}
	}
	http.SetCookie(w, srv.cookie(sessionCookie, v, maxAge))
	tok := srv.sealer.csrfToken(s.ID)
	http.SetCookie(w, srv.cookie(csrfCookie, tok, 0))
	return tok, nil
}

// clearSession removes the session cookie.
func (srv *Server) clearSession(w http.ResponseWriter) {
	http.SetCookie(w, srv.cookie(sessionCookie, "", -1))
}

// csrfFor returns the request's CSRF token if it is valid for sid, or
// issues a new one (setting the cookie).
func (srv *Server) csrfFor(w http.ResponseWriter, r *http.Request, sid string) string {
	if c, err := r.Cookie(csrfCookie); err == nil && srv.sealer.csrfValid(sid, c.Value) {
		return c.Value
	}
	tok := srv.sealer.csrfToken(sid)
	http.SetCookie(w, srv.cookie(csrfCookie, tok, 0))
	return tok
}

// checkCSRF verifies a state-changing request: the token in the form or
// header must equal the cookie's and carry this server's signature for the
// current session.
func (srv *Server) checkCSRF(r *http.Request, sid string) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || c.Value == "" {
		return false
	}
	sent := r.Header.Get(csrfHeader)
	if sent == "" {
		sent = r.PostFormValue(csrfField)
	}
	if sent == "" || subtle.ConstantTimeCompare([]byte(sent), []byte(c.Value)) != 1 {
		return false
	}
	return srv.sealer.csrfValid(sid, sent)
}
