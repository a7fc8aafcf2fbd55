// Package token signs and verifies MCR's own JWTs (registry access,
// local sessions, refresh tokens) and parses token-spec scopes. It knows
// nothing of HTTP or distribution; only the shared identity types.
package token

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
)

// Token uses: one signing key, three audiences, so a token minted for one
// purpose is never accepted for another.
const (
	UseAccess  = "access"  // registry token: aud = service
	UseSession = "session" // local-identity session (/v1/auth/login)
	UseRefresh = "refresh" // OAuth2 refresh token (/v2/token offline)
)

// AccessEntry is one element of the Docker token spec's `access` claim.
type AccessEntry struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// Claims are the claims of every token MCR signs.
type Claims struct {
	jwt.RegisteredClaims
	Use         string        `json:"use"`
	Username    string        `json:"name,omitempty"`
	AccountType string        `json:"account_type,omitempty"`
	Roles       []string      `json:"roles,omitempty"`
	Access      []AccessEntry `json:"access,omitempty"`
}

// Principal returns the identity the claims describe.
func (c *Claims) Principal() *identity.Principal {
	return &identity.Principal{Subject: c.Subject, Username: c.Username, AccountType: c.AccountType, Roles: c.Roles}
}

// Allows reports whether the access claim grants action on typ:name.
func (c *Claims) Allows(typ, name, action string) bool {
	for _, a := range c.Access {
		if a.Type != typ || a.Name != name {
			continue
		}
		for _, got := range a.Actions {
			if got == action || got == "*" {
				return true
			}
		}
	}
	return false
}

// Issuer signs and verifies MCR's tokens (ES256, `kid` header).
type Issuer struct {
	keys    *KeySet
	issuer  string
	service string
	now     func() time.Time
}

// NewIssuer returns an issuer for service (the token `aud`).
func NewIssuer(keys *KeySet, issuer, service string) *Issuer {
	return &Issuer{keys: keys, issuer: issuer, service: service, now: time.Now}
}

// Service is the audience of registry tokens.
func (is *Issuer) Service() string { return is.service }

func (is *Issuer) audience(use string) string {
	if use == UseAccess {
		return is.service
	}
	return is.service + ":" + use
}

// NewJTI returns a random token id (also a per-process salt for callers).
func NewJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Issue signs a token of the given use for p, valid for ttl.
func (is *Issuer) Issue(use string, p *identity.Principal, access []AccessEntry, ttl time.Duration) (string, *Claims, error) {
	now := is.now().UTC().Truncate(time.Second)
	c := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    is.issuer,
			Subject:   p.Subject,
			Audience:  jwt.ClaimStrings{is.audience(use)},
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        NewJTI(),
		},
		Use:         use,
		Username:    p.Username,
		AccountType: p.AccountType,
		Roles:       p.Roles,
		Access:      access,
	}
	if c.Access == nil && use == UseAccess {
		c.Access = []AccessEntry{}
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	t.Header["kid"] = is.keys.active.kid
	s, err := t.SignedString(is.keys.active.priv)
	if err != nil {
		return "", nil, fmt.Errorf("sign token: %w", err)
	}
	return s, c, nil
}

// ErrTokenInvalid wraps every reason a token is refused.
var ErrTokenInvalid = errors.New("token invalid")

// Verify checks signature (ES256 only, known kid), issuer, audience for use,
// expiry and not-before, and returns the claims.
func (is *Issuer) Verify(use, token string) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		pub, ok := is.keys.byKID[kid]
		if !ok {
			return nil, fmt.Errorf("unknown signing key %q", kid)
		}
		return pub, nil
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithIssuer(is.issuer),
		jwt.WithAudience(is.audience(use)),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(10*time.Second),
		jwt.WithTimeFunc(is.now),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTokenInvalid, err)
	}
	if c.Use != use {
		return nil, fmt.Errorf("%w: token use %q, want %q", ErrTokenInvalid, c.Use, use)
	}
	return &c, nil
}

// LooksLikeOurs reports whether a bearer string is a JWT whose header names
// one of our keys, so callers can tell registry tokens from MCIAS tokens
// without verifying anything.
func (is *Issuer) LooksLikeOurs(token string) bool {
	_, ok := is.Peek(token)
	return ok
}

// Peek reads, without verifying, the use claim of a JWT whose header names
// one of our keys (ours false otherwise). It lets a caller verify a token
// once, for the use it claims, instead of trying each use in turn; the
// verification that follows still checks the claim.
func (is *Issuer) Peek(token string) (use string, ours bool) {
	var c struct {
		Use string `json:"use"`
		jwt.RegisteredClaims
	}
	t, _, err := jwt.NewParser().ParseUnverified(token, &c)
	if err != nil {
		return "", false
	}
	kid, _ := t.Header["kid"].(string)
	if _, ok := is.keys.byKID[kid]; !ok {
		return "", false
	}
	return c.Use, true
}

// Now is the issuer's clock (expiry checks and caches keyed on it agree).
func (is *Issuer) Now() time.Time { return is.now() }

// SetClock replaces the issuer's clock (tests).
func (is *Issuer) SetClock(now func() time.Time) { is.now = now }
