// Package identity holds the types every part of MCR shares about who is
// asking: the Principal, the identity Provider contract and its errors.
// It is the bottom of the authplugin tree and imports nothing of MCR.
package identity

import (
	"context"
	"slices"
)

// Account types and roles as MCIAS defines them (DESIGN §3).
const (
	AccountHuman  = "human"
	AccountSystem = "system"

	RoleAdmin = "admin"
	RoleUser  = "user"
	RoleGuest = "guest"
)

// Principal is an authenticated identity: who is asking, independent of
// which identity provider vouched for them.
type Principal struct {
	Subject     string   `json:"sub"`
	Username    string   `json:"username"`
	AccountType string   `json:"account_type"`
	Roles       []string `json:"roles"`
}

// HasRole reports whether the principal holds role.
func (p *Principal) HasRole(role string) bool {
	return p != nil && slices.Contains(p.Roles, role)
}

// IsAdmin reports whether the principal holds the admin role.
func (p *Principal) IsAdmin() bool { return p.HasRole(RoleAdmin) }

// IsGuestOnly reports whether the principal holds no role above guest.
func (p *Principal) IsGuestOnly() bool {
	return p != nil && !p.HasRole(RoleAdmin) && !p.HasRole(RoleUser)
}

type principalKey struct{}

// WithPrincipal returns a context carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal stored in ctx, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}
