package adminsvc

import (
	"context"
	"errors"
	"time"

	"git.wntrmute.dev/kyle/mcr/authplugin"
	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
)

// MsgAuthRequired is the answer to a request without a bearer token.
const MsgAuthRequired = "authentication required: Authorization: Bearer <token> from /v1/auth/login"

// Authenticate verifies an identity token (local session or MCIAS), never
// a repository-scoped registry token; an empty token is Unauthenticated.
func (s *Service) Authenticate(ctx context.Context, token string) (*identity.Principal, error) {
	if token == "" {
		return nil, Errorf(Unauthenticated, MsgAuthRequired)
	}
	p, err := s.opts.Authn.Identity(ctx, token)
	if err != nil {
		if errors.Is(err, identity.ErrUnavailable) {
			return nil, Errorf(Unavailable, "identity service unavailable")
		}
		return nil, Errorf(Unauthenticated, "invalid or expired token")
	}
	return p, nil
}

// RequireAdmin refuses callers without the admin role.
func RequireAdmin(p *identity.Principal) error {
	if !p.IsAdmin() {
		return Errorf(PermissionDenied, "admin role required")
	}
	return nil
}

// RequireUser refuses guests: they have no business browsing content.
func RequireUser(p *identity.Principal) error {
	if p == nil || p.IsGuestOnly() {
		return Errorf(PermissionDenied, "guest accounts cannot use the admin API")
	}
	return nil
}

// LoginResult is a successful sign-in.
type LoginResult struct {
	Token     string
	ExpiresAt time.Time
	Principal identity.Principal
}

// Login exchanges a username and password for an identity token usable
// as a bearer on /v1, gRPC and /v2/token. It goes through the sign-in
// throttle (SignIn), which records the attempt.
func (s *Service) Login(ctx context.Context, c Caller, username, password string) (*LoginResult, error) {
	if username == "" || password == "" {
		return nil, Errorf(InvalidArgument, "username and password are required")
	}
	sess, err := s.signIn().Login(c.request().WithContext(ctx), username, password)
	if err != nil {
		var te *authplugin.ThrottledError
		switch {
		case errors.Is(err, authplugin.ErrInputTooLong):
			return nil, Errorf(InvalidArgument, "username or password too long")
		case errors.As(err, &te):
			return nil, &Error{Code: TooManyRequests, Message: te.Error(), RetryAfter: te.RetryAfterSeconds()}
		case errors.Is(err, identity.ErrUnavailable):
			return nil, Errorf(Unavailable, "identity service unavailable; try again later")
		}
		return nil, Errorf(Unauthenticated, "invalid username or password")
	}
	return &LoginResult{Token: sess.Token, ExpiresAt: sess.ExpiresAt, Principal: sess.Principal}, nil
}

func (s *Service) signIn() *authplugin.SignIn {
	if s.opts.SignIn != nil {
		return s.opts.SignIn
	}
	return &authplugin.SignIn{Provider: s.opts.Authn.Provider, Recorder: s.opts.Recorder}
}

// Logout revokes an identity token.
func (s *Service) Logout(ctx context.Context, token string) error {
	if token == "" {
		return Errorf(Unauthenticated, "authentication required")
	}
	if err := s.opts.Authn.Provider.Logout(ctx, token); err != nil {
		if errors.Is(err, identity.ErrUnavailable) {
			return Errorf(Unavailable, "identity service unavailable")
		}
		return Errorf(Unauthenticated, "invalid or expired token")
	}
	// Every refresh token minted with this session goes with it.
	if s.opts.Store != nil {
		if err := s.opts.Store.RevokeSessionFamilies(ctx, authplugin.SessionKey(token)); err != nil {
			return internal("could not revoke the session's refresh tokens", err)
		}
	}
	return nil
}
