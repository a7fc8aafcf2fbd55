// Package local is the `local` identity provider: accounts in MCR's own
// database (bcrypt hashes), sessions as MCR-signed JWTs revocable on
// logout. It depends on the shared identity types, the token issuer and the
// store — never on HTTP or distribution.
package local

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/bcrypt"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/authplugin/token"
	"git.wntrmute.dev/kyle/mcr/internal/ttlcache"
	"git.wntrmute.dev/kyle/mcr/store"
)

// Provider is the `local` identity provider: accounts in MCR's own SQLite
// database with bcrypt password hashes, managed by `mcrsrv user`. Its
// session tokens are MCR-signed JWTs (use "session"), revocable on logout.
type Provider struct {
	store  *store.Store
	issuer *token.Issuer
	// checked remembers, for 30 s, password checks that succeeded, keyed
	// by a digest of (a per-process salt, the stored hash, the password):
	// docker and podman sign in for every push and pull, and bcrypt is
	// deliberately slow. A changed password changes the stored hash, so a
	// remembered check never outlives it; a deleted account is looked up
	// first and refused.
	checked *ttlcache.Cache[struct{}]
	salt    string
	// dummyHash keeps the time of a login for an unknown user equal to
	// that of a wrong password.
	dummyHash  []byte
	sessionTTL time.Duration
}

// New returns the local provider.
func New(st *store.Store, issuer *token.Issuer, sessionTTL time.Duration) *Provider {
	h, _ := bcrypt.GenerateFromPassword([]byte("mcr-dummy-password"), bcrypt.DefaultCost)
	return &Provider{store: st, issuer: issuer, sessionTTL: sessionTTL, dummyHash: h,
		checked: ttlcache.New[struct{}](10000), salt: token.NewJTI()}
}

// HashPassword returns the bcrypt hash stored for a local account.
func HashPassword(password string) (string, error) {
	if len(password) < 8 {
		return "", errors.New("password must be at least 8 characters")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// Name implements identity.Provider.
func (l *Provider) Name() string { return "local" }

func principalOf(u *store.User) *identity.Principal {
	return &identity.Principal{Subject: u.UUID, Username: u.Username, AccountType: u.AccountType, Roles: []string{u.Role}}
}

// Login implements identity.Provider.
func (l *Provider) Login(ctx context.Context, username, password string) (*identity.Session, error) {
	u, err := l.store.UserByName(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		_ = bcrypt.CompareHashAndPassword(l.dummyHash, []byte(password))
		return nil, identity.ErrInvalidCredentials
	}
	if err != nil {
		return nil, fmt.Errorf("local login: %w: %w", identity.ErrUnavailable, err)
	}
	key := ttlcache.Key(l.salt, u.PasswordHash, password)
	now := time.Now()
	if _, ok := l.checked.Get(key, now); !ok {
		if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
			return nil, identity.ErrInvalidCredentials
		}
		l.checked.Put(key, struct{}{}, now.Add(30*time.Second), now)
	}
	if u.Disabled {
		// Checked after the password so a disabled account answers like
		// a wrong password, in the same time.
		return nil, identity.ErrInvalidCredentials
	}
	p := principalOf(u)
	tok, c, err := l.issuer.Issue(token.UseSession, p, nil, l.sessionTTL)
	if err != nil {
		return nil, err
	}
	return &identity.Session{Token: tok, ExpiresAt: c.ExpiresAt.Time, Principal: *p}, nil
}

// Validate implements identity.Provider: a session token signed by us, not revoked,
// whose account still exists (with its current role).
func (l *Provider) Validate(ctx context.Context, tok string) (*identity.Principal, error) {
	c, err := l.issuer.Verify(token.UseSession, tok)
	if err != nil {
		return nil, identity.ErrInvalidCredentials
	}
	revoked, err := l.store.TokenRevoked(ctx, c.ID)
	if err != nil {
		return nil, fmt.Errorf("local validate: %w: %w", identity.ErrUnavailable, err)
	}
	if revoked {
		return nil, identity.ErrInvalidCredentials
	}
	return l.Refresh(ctx, *c.Principal())
}

// Refresh implements identity.Refresher: the account's current role and type.
func (l *Provider) Refresh(ctx context.Context, p identity.Principal) (*identity.Principal, error) {
	u, err := l.store.UserByUUID(ctx, p.Subject)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Disabled) {
		return nil, identity.ErrInvalidCredentials
	}
	if err != nil {
		return nil, fmt.Errorf("local refresh: %w: %w", identity.ErrUnavailable, err)
	}
	return principalOf(u), nil
}

// Logout implements identity.Provider.
func (l *Provider) Logout(ctx context.Context, tok string) error {
	c, err := l.issuer.Verify(token.UseSession, tok)
	if err != nil {
		return identity.ErrInvalidCredentials
	}
	return l.store.RevokeToken(ctx, c.ID, c.ExpiresAt.Time)
}

// Ping implements identity.Provider.
func (l *Provider) Ping(ctx context.Context) error { return l.store.Ping(ctx) }
