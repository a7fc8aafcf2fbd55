package policyplugin

import (
	"path"
	"slices"
)

// Evaluate decides in against rules: the rules are taken in ascending
// priority order (stable, so equal priorities keep slice order); if any
// enabled rule matching in is a deny, the first such deny is returned;
// otherwise the first matching allow; otherwise (EffectDeny, nil).
//
// Evaluate does not modify or reorder rules; the returned *Rule points into
// rules. It does not allocate: the result of a stable sort followed by a
// first-match scan is the match with the least (priority, index), which a
// single pass finds. Rules with an effect other than allow/deny never match.
// For repeated evaluation against the same rules use an Engine, which
// precompiles them.
func Evaluate(in Input, rules []Rule) (Effect, *Rule) {
	var deny, allow *Rule
	for i := range rules {
		r := &rules[i]
		var best **Rule
		switch r.Effect {
		case EffectDeny:
			best = &deny
		case EffectAllow:
			best = &allow
		default:
			continue
		}
		if *best != nil && (*best).Priority <= r.Priority {
			continue // cannot displace the current best of this effect
		}
		if ruleMatches(r, &in) {
			*best = r
		}
	}
	if deny != nil {
		return EffectDeny, deny
	}
	if allow != nil {
		return EffectAllow, allow
	}
	return EffectDeny, nil
}

// ruleMatches reports whether r applies to in (ignoring its effect and
// priority). It is the reference matcher; compiledRule.matches must agree.
func ruleMatches(r *Rule, in *Input) bool {
	if !r.Enabled {
		return false
	}
	if len(r.Actions) > 0 && !slices.Contains(r.Actions, in.Action) {
		return false
	}
	if r.SubjectUUID != "" && r.SubjectUUID != in.Subject {
		return false
	}
	if len(r.AccountTypes) > 0 && !slices.Contains(r.AccountTypes, in.AccountType) {
		return false
	}
	if len(r.Roles) > 0 && !anyShared(r.Roles, in.Roles) {
		return false
	}
	if len(r.Repositories) > 0 {
		if in.Repository == "" {
			return false // global operations only match repository-less rules
		}
		for _, p := range r.Repositories {
			if ok, err := path.Match(p, in.Repository); ok && err == nil {
				return true
			}
		}
		return false
	}
	return true
}

func anyShared(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}
