// Package policyplugin is MCR's registry authorization engine: a pure,
// standard-library-only rule evaluator (no HTTP, no storage) used by the token
// endpoint (grant only allowed scopes) and the /v2 middleware (re-check every
// request).
//
//	eng := policyplugin.NewEngine(store) // store implements RuleSource
//	if err := eng.Reload(ctx); err != nil { // call again after every admin change
//		return err
//	}
//	act, repo, ok := policyplugin.ActionFor("repository", "production/app", "pull")
//	eff, rule := eng.Evaluate(policyplugin.Input{Subject: sub, AccountType: "human",
//		Roles: []string{"user"}, Action: act, Repository: repo})
//	if !ok || eff != policyplugin.EffectAllow { /* 403 DENIED, audit policy_deny (rule may be nil) */ }
//
// Rules are ANDed over their populated fields (an empty field is a
// wildcard); evaluation is by ascending priority, any matching deny wins,
// otherwise the first matching allow, otherwise the default is deny.
// DefaultRules are always merged in by the Engine.
package policyplugin
