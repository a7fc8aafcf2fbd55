package authplugin

import (
	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/policyplugin"
)

// Policy decides whether a principal may perform an action; the policy
// engine implements it.
type Policy interface {
	Evaluate(in policyplugin.Input) (policyplugin.Effect, *policyplugin.Rule)
}

// Denial describes an authenticated request the policy refused.
type Denial struct {
	Principal  *identity.Principal
	Action     policyplugin.Action
	Repository string
	RuleID     int64 // 0 when no rule matched (default deny)
}

// Allowed evaluates the policy for p. Admins bypass the policy (DESIGN §3:
// admin comes only from the identity service's admin role).
func Allowed(pol Policy, p *identity.Principal, action policyplugin.Action, repo string) (bool, int64) {
	if p.IsAdmin() {
		return true, -1
	}
	eff, rule := pol.Evaluate(policyplugin.Input{
		Subject:     p.Subject,
		AccountType: p.AccountType,
		Roles:       p.Roles,
		Action:      action,
		Repository:  repo,
	})
	var id int64
	if rule != nil {
		id = rule.ID
	}
	return eff == policyplugin.EffectAllow, id
}
