package policyplugin

import "testing"

func human(roles ...string) Input {
	return Input{Subject: "6f1c0d5e-0000-4000-8000-000000000001", AccountType: AccountTypeHuman, Roles: roles}
}

func system(roles ...string) Input {
	return Input{Subject: "6f1c0d5e-0000-4000-8000-0000000000aa", AccountType: AccountTypeSystem, Roles: roles}
}

func (in Input) do(a Action, repo string) Input {
	in.Action = a
	in.Repository = repo
	return in
}

// checkResult asserts the effect and the deciding rule's ID (0 = no rule).
func checkResult(t *testing.T, eff Effect, r *Rule, wantEff Effect, wantID int64) {
	t.Helper()
	var gotID int64
	if r != nil {
		gotID = r.ID
	}
	if eff != wantEff || gotID != wantID {
		t.Errorf("got (%s, rule %d), want (%s, rule %d)", eff, gotID, wantEff, wantID)
	}
}

// withDefaults returns DefaultRules followed by rules.
func withDefaults(rules ...Rule) []Rule {
	return append(DefaultRules(), rules...)
}
