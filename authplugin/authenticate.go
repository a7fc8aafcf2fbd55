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

// cachedAccess returns the claims of a registry token verified before and
// not yet expired: a client sends the same token with every request of an
// image push or pull, and an ES256 verification is the dearest step.
func (a *Authenticator) cachedAccess(token string) (*Claims, bool) {
	a.once.Do(func() { a.verified = newTTLCache[*Claims](10000) })
	now := a.Issuer.now()
	c, ok := a.verified.get(cacheKey(token), now)
	if !ok || (c.NotBefore != nil && now.Add(10*time.Second).Before(c.NotBefore.Time)) {
		return nil, false
	}
	return c, true
}

// verifyAccess verifies a registry token and remembers it until it expires.
func (a *Authenticator) verifyAccess(token string) (*Claims, error) {
	a.once.Do(func() { a.verified = newTTLCache[*Claims](10000) })
	c, err := a.Issuer.Verify(UseAccess, token)
	if err != nil {
		return nil, err
	}
	a.verified.put(cacheKey(token), c, c.ExpiresAt.Add(10*time.Second), a.Issuer.now())
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
	if c, ok := a.cachedAccess(token); ok {
		return &Identity{Principal: c.Principal(), Claims: c}, nil
	}
	if use, ours := a.Issuer.Peek(token); ours {
		if use == UseAccess {
			c, err := a.verifyAccess(token)
			if err != nil {
				return nil, ErrInvalidCredentials
			}
			return &Identity{Principal: c.Principal(), Claims: c}, nil
		}
		// A local session token: verified here, then resolved by the
		// provider (which also checks revocation).
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
