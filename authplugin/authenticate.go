package authplugin

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Identity is what a bearer credential proved: the principal and, for a
// registry token, the access it was granted (nil Claims: the credential was
// an identity-provider token, bounded by policy alone).
type Identity struct {
	Principal *Principal
	Claims    *Claims
}

// Authenticator turns bearer credentials into identities: registry tokens
// are verified locally; anything else is handed to the identity provider.
type Authenticator struct {
	Issuer   *Issuer
	Provider Provider

	once     sync.Once
	verified *ttlCache[*Claims] // registry tokens already verified, until they expire
}

// verifiedAccess returns the claims of a registry token, verifying its
// signature once: a client sends the same token with every request of an
// image push or pull, and an ES256 verification is the dearest step.
func (a *Authenticator) verifiedAccess(token string) (*Claims, error) {
	a.once.Do(func() { a.verified = newTTLCache[*Claims](10000) })
	now := a.Issuer.now()
	key := cacheKey(token)
	if c, ok := a.verified.get(key, now); ok {
		if c.NotBefore == nil || !now.Add(10*time.Second).Before(c.NotBefore.Time) {
			return c, nil
		}
	}
	c, err := a.Issuer.Verify(UseAccess, token)
	if err != nil {
		return nil, err
	}
	a.verified.put(key, c, c.ExpiresAt.Time.Add(10*time.Second), now)
	return c, nil
}

// BearerToken extracts the token of an `Authorization: Bearer` header.
func BearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		t := strings.TrimSpace(h[7:])
		return t, t != ""
	}
	return "", false
}

// Bearer authenticates a bearer token. Errors wrap ErrInvalidCredentials or
// ErrUnavailable.
func (a *Authenticator) Bearer(ctx context.Context, token string) (*Identity, error) {
	if c, err := a.verifiedAccess(token); err == nil {
		return &Identity{Principal: c.Principal(), Claims: c}, nil
	}
	if a.Issuer.LooksLikeOurs(token) {
		if _, err := a.Issuer.Verify(UseSession, token); err != nil {
			return nil, ErrInvalidCredentials
		}
	}
	p, err := a.Provider.Validate(ctx, token)
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			return nil, err
		}
		return nil, ErrInvalidCredentials
	}
	return &Identity{Principal: p}, nil
}

// Identity authenticates an identity token (a local session or an MCIAS
// token) for the admin API; repository-scoped registry tokens are refused.
func (a *Authenticator) Identity(ctx context.Context, token string) (*Principal, error) {
	if a.Issuer.LooksLikeOurs(token) {
		if _, err := a.Issuer.Verify(UseAccess, token); err == nil {
			return nil, ErrInvalidCredentials
		}
	}
	p, err := a.Provider.Validate(ctx, token)
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			return nil, err
		}
		return nil, ErrInvalidCredentials
	}
	return p, nil
}
