package policyplugin

import (
	"math/rand/v2"
	"path"
	"slices"
	"testing"
)

func TestCompileGlob(t *testing.T) {
	tests := []struct {
		pat  string
		kind globKind
	}{
		{"myapp", globExact},
		{"team/app", globExact},
		{"production/*", globPrefix},
		{"*", globPrefix},
		{"prod*", globPrefix},
		{"*/app", globMatch},
		{"a/*/b", globMatch},
		{"a?", globMatch},
		{"a/[0-9]*", globMatch},
		{`a\*`, globMatch},
		{"a[", globNever},
		{`a\`, globNever},
	}
	names := []string{"", "myapp", "team/app", "production", "production/", "production/app",
		"production/team/app", "prodx", "x/app", "a/c/b", "a/b", "a1", "a/5x", "a*", "a[", `a\`}
	for _, tc := range tests {
		g := compileGlob(tc.pat)
		if g.kind != tc.kind {
			t.Errorf("compileGlob(%q).kind = %d, want %d", tc.pat, g.kind, tc.kind)
		}
		for _, n := range names {
			want, err := path.Match(tc.pat, n)
			want = want && err == nil
			if got := g.match(n); got != want {
				t.Errorf("glob %q on %q = %v, path.Match says %v", tc.pat, n, got, want)
			}
		}
	}
}

// TestCompiledMatchesReference checks that the Engine's compiled evaluator
// and the reference Evaluate agree on randomly generated rules and inputs,
// including unknown roles, actions, account types, effects and bad globs.
func TestCompiledMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	roles := []string{RoleAdmin, RoleUser, RoleGuest, "ops", ""}
	types := []string{AccountTypeHuman, AccountTypeSystem, "robot", ""}
	actions := append(AllActions(), "registry:bogus", "")
	subjects := []string{"s1", "s2", ""}
	repos := []string{"", "a", "a/b", "a/b/c", "ab", "b/a", "a[", "prod/app", "prod/x/app"}
	globs := []string{"a", "a/*", "*", "a*", "*/a", "a/?", "[ab]/*", "a[", "prod/*", "prod/*/app", `a\/b`, "**"}
	effects := []Effect{EffectAllow, EffectAllow, EffectDeny, "bogus"}

	pickN := func(pool []string, most int) []string {
		n := rng.IntN(most + 1)
		out := make([]string, 0, n)
		for range n {
			out = append(out, pool[rng.IntN(len(pool))])
		}
		return out
	}
	for iter := range 300 {
		n := rng.IntN(40)
		rules := make([]Rule, n)
		for i := range rules {
			var acts []Action
			for _, a := range pickN(actionStrings(actions), 2) {
				acts = append(acts, Action(a))
			}
			rules[i] = Rule{
				ID:           int64(i + 1),
				Priority:     rng.IntN(5),
				Effect:       effects[rng.IntN(len(effects))],
				Roles:        pickN(roles, 2),
				AccountTypes: pickN(types, 1),
				Actions:      acts,
				Repositories: pickN(globs, 2),
				Enabled:      rng.IntN(6) != 0,
			}
			if rng.IntN(4) == 0 {
				rules[i].SubjectUUID = subjects[rng.IntN(len(subjects))]
			}
		}
		sorted := slices.Clone(rules)
		slices.SortStableFunc(sorted, func(a, b Rule) int { return a.Priority - b.Priority })
		set := newRuleSet(sorted)
		for range 50 {
			in := Input{
				Subject:     subjects[rng.IntN(len(subjects))],
				AccountType: types[rng.IntN(len(types))],
				Roles:       pickN(roles, 3),
				Action:      actions[rng.IntN(len(actions))],
				Repository:  repos[rng.IntN(len(repos))],
			}
			wantEff, wantRule := Evaluate(in, sorted)
			gotEff, gotRule := set.evaluate(&in)
			if gotEff != wantEff || gotRule != wantRule {
				t.Fatalf("iter %d: input %+v\nrules %+v\ncompiled (%s, %v) != reference (%s, %v)",
					iter, in, sorted, gotEff, gotRule, wantEff, wantRule)
			}
			// And the unsorted original gives the same decision.
			if eff, r := Evaluate(in, rules); eff != wantEff || (r == nil) != (wantRule == nil) ||
				(r != nil && r.ID != wantRule.ID) {
				t.Fatalf("iter %d: unsorted evaluation differs for %+v", iter, in)
			}
		}
	}
}

func actionStrings(as []Action) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = string(a)
	}
	return out
}
