package identity

import (
	"context"
	"errors"
	"time"
)

// Errors every identity provider reports in the same way, so handlers map
// them to one HTTP status each.
var (
	// ErrInvalidCredentials: wrong username or password, or a token the
	// provider does not accept (expired, revoked, malformed). → 401.
	ErrInvalidCredentials = errors.New("invalid credentials")
	// ErrUnavailable: the identity service could not be reached or answered
	// with an unexpected status. → 502/503, never 401.
	ErrUnavailable = errors.New("identity service unavailable")
	// ErrNotSupported: the provider does not implement the operation.
	ErrNotSupported = errors.New("not supported by this identity provider")
)

// Session is the result of a successful login: an opaque bearer token the
// provider can later Validate, and the principal it stands for.
type Session struct {
	Token     string
	ExpiresAt time.Time
	Principal Principal
}

// Provider is an identity service: MCIAS in production, local accounts in
// SQLite for the embedded default.
type Provider interface {
	// Name is the provider's configuration name ("local", "mcias").
	Name() string
	// Login checks a username and password and opens a session.
	Login(ctx context.Context, username, password string) (*Session, error)
	// Validate checks a session token issued by Login.
	Validate(ctx context.Context, token string) (*Principal, error)
	// Logout revokes a session token.
	Logout(ctx context.Context, token string) error
	// Ping reports whether the identity service is reachable (health detail).
	Ping(ctx context.Context) error
}

// Refresher is implemented by providers that can re-read a principal's
// current roles when a refresh token is redeemed (local accounts can; MCIAS
// cannot without the user's credentials, so its principal is kept as issued).
type Refresher interface {
	Refresh(ctx context.Context, p Principal) (*Principal, error)
}
