package authplugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/bcrypt"

	"git.wntrmute.dev/kyle/mcr/store"
)

// Local is the `local` identity provider: accounts in MCR's own SQLite
// database with bcrypt password hashes, managed by `mcrsrv user`. Its
// session tokens are MCR-signed JWTs (use "session"), revocable on logout.
type Local struct {
	store      *store.Store
	issuer     *Issuer
	sessionTTL time.Duration
	// dummyHash keeps the time of a login for an unknown user equal to
	// that of a wrong password.
	dummyHash []byte
	// checked remembers, for 30 s, password checks that succeeded, keyed
	// by a digest of (a per-process salt, the stored hash, the password):
	// docker and podman sign in for every push and pull, and bcrypt is
	// deliberately slow. A changed password changes the stored hash, so a
	// remembered check never outlives it; a deleted account is looked up
	// first and refused.
	checked *ttlCache[struct{}]
	salt    string
}

// NewLocal returns the local provider.
func NewLocal(st *store.Store, issuer *Issuer, sessionTTL time.Duration) *Local {
	h, _ := bcrypt.GenerateFromPassword([]byte("mcr-dummy-password"), bcrypt.DefaultCost)
	return &Local{store: st, issuer: issuer, sessionTTL: sessionTTL, dummyHash: h,
		checked: newTTLCache[struct{}](10000), salt: newJTI()}
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

// Name implements Provider.
func (l *Local) Name() string { return "local" }

func principalOf(u *store.User) *Principal {
	return &Principal{Subject: u.UUID, Username: u.Username, AccountType: u.AccountType, Roles: []string{u.Role}}
}

// Login implements Provider.
func (l *Local) Login(ctx context.Context, username, password string) (*Session, error) {
	u, err := l.store.UserByName(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		_ = bcrypt.CompareHashAndPassword(l.dummyHash, []byte(password))
		return nil, ErrInvalidCredentials
	}
	if err != nil {
		return nil, fmt.Errorf("local login: %w: %w", ErrUnavailable, err)
	}
	key := cacheKey(l.salt, u.PasswordHash, password)
	now := time.Now()
	if _, ok := l.checked.get(key, now); !ok {
		if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
			return nil, ErrInvalidCredentials
		}
		l.checked.put(key, struct{}{}, now.Add(30*time.Second), now)
	}
	p := principalOf(u)
	tok, c, err := l.issuer.Issue(UseSession, p, nil, l.sessionTTL)
	if err != nil {
		return nil, err
	}
	return &Session{Token: tok, ExpiresAt: c.ExpiresAt.Time, Principal: *p}, nil
}

// Validate implements Provider: a session token signed by us, not revoked,
// whose account still exists (with its current role).
func (l *Local) Validate(ctx context.Context, token string) (*Principal, error) {
	c, err := l.issuer.Verify(UseSession, token)
	if err != nil {
		return nil, ErrInvalidCredentials
	}
	revoked, err := l.store.TokenRevoked(ctx, c.ID)
	if err != nil {
		return nil, fmt.Errorf("local validate: %w: %w", ErrUnavailable, err)
	}
	if revoked {
		return nil, ErrInvalidCredentials
	}
	return l.Refresh(ctx, *c.Principal())
}

// Refresh implements Refresher: the account's current role and type.
func (l *Local) Refresh(ctx context.Context, p Principal) (*Principal, error) {
	u, err := l.store.UserByUUID(ctx, p.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrInvalidCredentials
	}
	if err != nil {
		return nil, fmt.Errorf("local refresh: %w: %w", ErrUnavailable, err)
	}
	return principalOf(u), nil
}

// Logout implements Provider.
func (l *Local) Logout(ctx context.Context, token string) error {
	c, err := l.issuer.Verify(UseSession, token)
	if err != nil {
		return ErrInvalidCredentials
	}
	return l.store.RevokeToken(ctx, c.ID, c.ExpiresAt.Time)
}

// Ping implements Provider.
func (l *Local) Ping(ctx context.Context) error { return l.store.Ping(ctx) }
