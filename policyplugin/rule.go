package policyplugin

import (
	"fmt"
	"slices"
)

// Effect is the outcome of a rule or of an evaluation.
type Effect string

// The two effects. Evaluation defaults to EffectDeny.
const (
	EffectAllow Effect = "allow"
	EffectDeny  Effect = "deny"
)

// ParseEffect returns the effect spelled s ("allow" or "deny"), or an error.
func ParseEffect(s string) (Effect, error) {
	switch e := Effect(s); e {
	case EffectAllow, EffectDeny:
		return e, nil
	}
	return "", fmt.Errorf("policyplugin: unknown effect %q", s)
}

// Roles and account types a rule may name (from the identity provider).
const (
	RoleAdmin = "admin"
	RoleUser  = "user"
	RoleGuest = "guest"

	AccountTypeHuman  = "human"
	AccountTypeSystem = "system"
)

// Rule is one policy rule. Every populated condition field must match
// (AND); an empty field matches anything. Rules with a non-empty
// Repositories list never match a global operation (empty repository).
type Rule struct {
	Description string `json:"description"`
	Effect      Effect `json:"effect"`

	Roles        []string `json:"roles"`         // principal has any of these roles
	AccountTypes []string `json:"account_types"` // principal's account type is listed
	SubjectUUID  string   `json:"subject_uuid"`  // principal's subject equals this
	Actions      []Action `json:"actions"`       // requested action is listed
	Repositories []string `json:"repositories"`  // any path.Match glob matches the repository

	ID       int64 `json:"id"`
	Priority int   `json:"priority"` // lower is evaluated first

	Enabled bool `json:"enabled"` // disabled rules never match
}

// Clone returns a deep copy of r.
func (r Rule) Clone() Rule {
	r.Roles = slices.Clone(r.Roles)
	r.AccountTypes = slices.Clone(r.AccountTypes)
	r.Actions = slices.Clone(r.Actions)
	r.Repositories = slices.Clone(r.Repositories)
	return r
}

// Input describes one authorization question: may this principal perform
// Action on Repository? Repository is empty for global operations
// (version check, catalog, policy management).
type Input struct {
	Subject     string // principal's UUID (token "sub")
	AccountType string // "human" or "system"
	Action      Action
	Repository  string
	Roles       []string
}
