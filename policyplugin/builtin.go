package policyplugin

// DefaultRules returns the built-in rules, which the Engine always merges
// with the stored ones. They have negative IDs and priority 0 (stored rules
// have priority >= 1, so built-ins are evaluated first, but a stored deny
// still wins over a built-in allow):
//
//	-1 admin wildcard: role admin may do anything
//	-2 human users: account type human with role user may pull, push,
//	   delete and list the catalog
//	-3 everyone may perform the version check (GET /v2/)
//
// A system account therefore gets nothing but the version check until a
// rule grants it more, and a guest gets only the version check.
// The returned slice is freshly allocated.
func DefaultRules() []Rule {
	return []Rule{
		{
			ID:          -1,
			Priority:    0,
			Description: "built-in: admin wildcard",
			Effect:      EffectAllow,
			Roles:       []string{RoleAdmin},
			Enabled:     true,
		},
		{
			ID:           -2,
			Priority:     0,
			Description:  "built-in: human users may pull, push, delete and list the catalog",
			Effect:       EffectAllow,
			Roles:        []string{RoleUser},
			AccountTypes: []string{AccountTypeHuman},
			Actions:      []Action{ActionPull, ActionPush, ActionDelete, ActionCatalog},
			Enabled:      true,
		},
		{
			ID:          -3,
			Priority:    0,
			Description: "built-in: everyone may perform the version check",
			Effect:      EffectAllow,
			Actions:     []Action{ActionVersionCheck},
			Enabled:     true,
		},
	}
}
