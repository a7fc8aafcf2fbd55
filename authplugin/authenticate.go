package authplugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/authplugin/token"
	"git.wntrmute.dev/kyle/mcr/internal/ttlcache"
)

// Identity is what a bearer credential proved: the principal and, for a
// registry token, the access it was granted (nil Claims: the credential was
// an identity-provider token, bounded by policy alone).
type Identity struct {
	Principal *identity.Principal
	Claims    *token.Claims
}

// Authenticator turns bearer credentials into identities: registry tokens
// are verified locally; anything else is handed to the identity provider.
type Authenticator struct {
	Issuer   *token.Issuer
	Provider identity.Provider

	verified *ttlcache.Cache[*token.Claims] // registry tokens already verified, until they expire
	once     sync.Once
}

func (a *Authenticator) cache() *ttlcache.Cache[*token.Claims] {
	a.once.Do(func() { a.verified = ttlcache.New[*token.Claims](10000) })
	return a.verified
}

// cachedAccess returns the claims of a registry token verified before and
// not yet expired: a client sends the same token with every request of an
// image push or pull, and an ES256 verification is the dearest step.
func (a *Authenticator) cachedAccess(tok string) (*token.Claims, bool) {
	now := a.Issuer.Now()
	c, ok := a.cache().Get(ttlcache.Key(tok), now)
	if !ok || (c.NotBefore != nil && now.Add(10*time.Second).Before(c.NotBefore.Time)) {
		return nil, false
	}
	return c, true
}

// verifyAccess verifies a registry token and remembers it until it expires.
func (a *Authenticator) verifyAccess(tok string) (*token.Claims, error) {
	c, err := a.Issuer.Verify(token.UseAccess, tok)
	if err != nil {
		return nil, err
	}
	a.cache().Put(ttlcache.Key(tok), c, c.ExpiresAt.Add(10*time.Second), a.Issuer.Now())
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

// Bearer authenticates a bearer token. Errors wrap
// identity.ErrInvalidCredentials or identity.ErrUnavailable.
func (a *Authenticator) Bearer(ctx context.Context, tok string) (*Identity, error) {
	if c, ok := a.cachedAccess(tok); ok {
		// Verified before, but the account may have changed since: the
		// generation check is an in-memory lookup (package revocation).
		if err := a.Issuer.Current(c); err != nil {
			a.cache().Delete(ttlcache.Key(tok))
			if errors.Is(err, token.ErrUnavailable) {
				return nil, fmt.Errorf("%w: %w", identity.ErrUnavailable, err)
			}
			return nil, identity.ErrInvalidCredentials
		}
		return &Identity{Principal: c.Principal(), Claims: c}, nil
	}
	if use, ours := a.Issuer.Peek(tok); ours {
		switch use {
		case token.UseAccess:
			c, err := a.verifyAccess(tok)
			if err != nil {
				return nil, identity.ErrInvalidCredentials
			}
			return &Identity{Principal: c.Principal(), Claims: c}, nil
		case token.UseSession:
			// A local session: the provider that issued it verifies it
			// (signature, revocation, the account), once.
		default:
			return nil, identity.ErrInvalidCredentials // a refresh token is no bearer
		}
	}
	p, err := a.Provider.Validate(ctx, tok)
	if err != nil {
		if errors.Is(err, identity.ErrUnavailable) {
			return nil, err
		}
		return nil, identity.ErrInvalidCredentials
	}
	return &Identity{Principal: p}, nil
}

// ErrNotIdentity is what Identity answers for a token MCR signed that is
// not a session: a registry token (repository-scoped) or a refresh token
// proves no identity. It wraps identity.ErrInvalidCredentials.
var ErrNotIdentity = fmt.Errorf("%w: a registry token is not an identity token", identity.ErrInvalidCredentials)

// Identity authenticates an identity token (a local session or an MCIAS
// token) for the admin API and the token endpoint. A token of ours is told
// apart by its use claim (Peek), without a signature check of its own: a
// session is then verified once, by the provider; any other use is refused.
func (a *Authenticator) Identity(ctx context.Context, tok string) (*identity.Principal, error) {
	if use, ours := a.Issuer.Peek(tok); ours && use != token.UseSession {
		return nil, ErrNotIdentity
	}
	p, err := a.Provider.Validate(ctx, tok)
	if err != nil {
		if errors.Is(err, identity.ErrUnavailable) {
			return nil, err
		}
		return nil, identity.ErrInvalidCredentials
	}
	return p, nil
}
