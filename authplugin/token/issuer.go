// Package token signs and verifies MCR's own JWTs (registry access,
// local sessions, refresh tokens) and parses token-spec scopes. It knows
// nothing of HTTP or distribution; only the shared identity types.
package token

import (
	"context"
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
	Use         string   `json:"use"`
	Username    string   `json:"name,omitempty"`
	AccountType string   `json:"account_type,omitempty"`
	Roles       []string `json:"roles,omitempty"`
	// Family is the refresh-token family (refresh tokens only).
	Family string        `json:"fam,omitempty"`
	Access []AccessEntry `json:"access,omitempty"`
	// Generation is the subject's revocation generation when the token
	// was issued; a later change to the account bumps it and the token is
	// refused (see package revocation).
	Generation int64 `json:"gen,omitempty"`
	// Rotating marks a refresh token that is replaced on each use (OAuth2
	// clients); without it the token is a long-lived identity token that
	// clients such as docker store once and present again and again.
	Rotating bool `json:"rot,omitempty"`
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

// Generations tells the current revocation generation of a subject.
type Generations interface {
	Generation(ctx context.Context, subject string) (int64, error)
}

// Issuer signs and verifies MCR's tokens (ES256, `kid` header).
type Issuer struct {
	keys    *KeySet
	issuer  string
	now     func() time.Time
	gens    Generations
	service string
}

// SetGenerations makes the issuer stamp every token with its subject's
// generation and refuse tokens of an older one.
func (is *Issuer) SetGenerations(g Generations) { is.gens = g }

// ErrUnavailable means the generation of a subject could not be read, so no
// token of it can be issued or accepted right now.
var ErrUnavailable = errors.New("revocation state unavailable")

// Current reports whether claims verified earlier are still of their
// subject's current generation (a token cached after verification is
// checked again on each use: revocation acts on the next request).
func (is *Issuer) Current(c *Claims) error {
	if is.gens == nil {
		return nil
	}
	g, err := is.gens.Generation(context.Background(), c.Subject)
	if err != nil {
		return fmt.Errorf("%w: %w: %w", ErrTokenInvalid, ErrUnavailable, err)
	}
	if c.Generation < g {
		return fmt.Errorf("%w: revoked (account changed after the token was issued)", ErrTokenInvalid)
	}
	return nil
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
	return is.issue(use, p, access, ttl, NewJTI(), "", false)
}

// IssueRefresh signs a refresh token of family with the given id (the
// caller records the id as the family's current token first); rotating
// says whether it is replaced on use.
func (is *Issuer) IssueRefresh(p *identity.Principal, family, jti string, ttl time.Duration, rotating bool) (string, *Claims, error) {
	tok, c, err := is.issue(UseRefresh, p, nil, ttl, jti, family, rotating)
	return tok, c, err
}

func (is *Issuer) issue(use string, p *identity.Principal, access []AccessEntry, ttl time.Duration, jti, family string, rotating bool) (string, *Claims, error) {
	var gen int64
	if is.gens != nil {
		g, err := is.gens.Generation(context.Background(), p.Subject)
		if err != nil {
			return "", nil, fmt.Errorf("sign token: %w: %w", ErrUnavailable, err)
		}
		gen = g
	}
	now := is.now().UTC().Truncate(time.Second)
	c := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    is.issuer,
			Subject:   p.Subject,
			Audience:  jwt.ClaimStrings{is.audience(use)},
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        jti,
		},
		Generation:  gen,
		Family:      family,
		Rotating:    rotating,
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
	if err := is.Current(&c); err != nil {
		return nil, err
	}
	return &c, nil
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
