package adminsvc

import (
	"context"
	"errors"

	"git.wntrmute.dev/kyle/mcr/store"
)

// Accounts is what account operations act on: the sign-in throttle of
// this process and the revocation of an account's tokens.
type Accounts interface {
	// Unlock clears an account's failed sign-ins and lockout; it reports
	// whether there was anything to clear.
	Unlock(username string) bool
	// RevokeTokens ends every session, refresh and access token of a
	// subject.
	RevokeTokens(ctx context.Context, subject string) error
}

// MaxAccountName bounds an account name or subject given by a caller.
const MaxAccountName = 256

func accountName(name string) error {
	if name == "" || len(name) > MaxAccountName {
		return Errorf(InvalidArgument, "account name must be 1-%d characters", MaxAccountName)
	}
	return nil
}

// UnlockAccount clears the sign-in throttle of an account in this process
// (admin; audited account_unlocked).
func (s *Service) UnlockAccount(ctx context.Context, c Caller, name string) (bool, error) {
	if err := RequireAdmin(c.Principal); err != nil {
		return false, err
	}
	if s.opts.Accounts == nil {
		return false, Errorf(Unimplemented, "account operations are not available")
	}
	if err := accountName(name); err != nil {
		return false, err
	}
	had := s.opts.Accounts.Unlock(name)
	id, actor := c.actor()
	if err := s.audit(ctx, store.AuditEvent{Type: "account_unlocked", ActorID: id, Actor: actor, IP: c.IP,
		Details: map[string]any{"username": name, "had_failures": had}}); err != nil {
		return false, err
	}
	return had, nil
}

// RevokeAccount ends every token of an account (admin; audited
// tokens_revoked). A local account is found by name; an MCIAS account
// (not stored here) by subject, as the audit log shows it. It returns the
// subject.
func (s *Service) RevokeAccount(ctx context.Context, c Caller, name, subject string) (string, error) {
	if err := RequireAdmin(c.Principal); err != nil {
		return "", err
	}
	if s.opts.Accounts == nil {
		return "", Errorf(Unimplemented, "account operations are not available")
	}
	if err := accountName(name); err != nil {
		return "", err
	}
	if len(subject) > MaxAccountName {
		return "", Errorf(InvalidArgument, "subject too long")
	}
	if subject == "" {
		u, err := s.opts.Store.UserByName(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return "", Errorf(NotFound, "no local account %s (for an MCIAS account give its subject)", Quote(name))
		}
		if err != nil {
			return "", internal("could not look the account up", err)
		}
		subject = u.UUID
	}
	if err := s.opts.Accounts.RevokeTokens(ctx, subject); err != nil {
		return "", internal("could not revoke the account's tokens", err)
	}
	id, actor := c.actor()
	if err := s.audit(ctx, store.AuditEvent{Type: "tokens_revoked", ActorID: id, Actor: actor, IP: c.IP,
		Details: map[string]any{"username": name, "subject": subject}}); err != nil {
		return "", err
	}
	return subject, nil
}
