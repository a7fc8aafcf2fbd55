package policyplugin

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// ValidationError reports the first invalid field of a Rule. Field is the
// rule's JSON field name.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Message }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Validate checks a rule before it is stored: priority >= 1 (0 and below
// belong to the built-ins), effect allow or deny, a non-empty list of known
// actions, known roles and account types, and repository globs that are
// well-formed path.Match patterns, non-empty, relative (no leading '/') and
// free of ".." segments. The error, if any, is a *ValidationError.
// ID, Description and Enabled are not checked.
func (r *Rule) Validate() error {
	if r.Priority < 1 {
		return invalid("priority", "must be >= 1")
	}
	if r.Effect != EffectAllow && r.Effect != EffectDeny {
		return invalid("effect", "must be %q or %q, got %q", EffectAllow, EffectDeny, r.Effect)
	}
	if len(r.Actions) == 0 {
		return invalid("actions", "must not be empty")
	}
	for _, a := range r.Actions {
		if !a.Valid() {
			return invalid("actions", "unknown action %q", a)
		}
	}
	for _, role := range r.Roles {
		if roleBit(role) == 0 {
			return invalid("roles", "unknown role %q (want %s, %s or %s)", role, RoleAdmin, RoleUser, RoleGuest)
		}
	}
	for _, t := range r.AccountTypes {
		if accountTypeBit(t) == 0 {
			return invalid("account_types", "unknown account type %q (want %s or %s)", t, AccountTypeHuman, AccountTypeSystem)
		}
	}
	for _, p := range r.Repositories {
		if err := validateGlob(p); err != "" {
			return invalid("repositories", "pattern %q: %s", p, err)
		}
	}
	return nil
}

func validateGlob(p string) string {
	if p == "" {
		return "must not be empty"
	}
	if strings.HasPrefix(p, "/") {
		return "must not start with '/'"
	}
	if slices.Contains(strings.Split(p, "/"), "..") {
		return `must not contain ".." segments`
	}
	if _, err := path.Match(p, ""); err != nil {
		return "malformed glob: " + err.Error()
	}
	return ""
}
