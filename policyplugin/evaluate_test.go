package policyplugin

import (
	"reflect"
	"testing"
)

func TestEvaluate(t *testing.T) {
	sysSubject := system().Subject
	exactRepo := Rule{ID: 10, Priority: 10, Effect: EffectAllow, AccountTypes: []string{AccountTypeSystem},
		SubjectUUID: sysSubject, Actions: []Action{ActionPull}, Repositories: []string{"myapp"}, Enabled: true}
	prodGlob := Rule{ID: 11, Priority: 10, Effect: EffectAllow, AccountTypes: []string{AccountTypeSystem},
		Actions: []Action{ActionPull, ActionPush}, Repositories: []string{"production/*"}, Enabled: true}
	denyProdPush := Rule{ID: 20, Priority: 100, Effect: EffectDeny, Roles: []string{RoleUser},
		Actions: []Action{ActionPush}, Repositories: []string{"production/*"}, Enabled: true}
	allowAllSys := Rule{ID: 21, Priority: 1, Effect: EffectAllow, AccountTypes: []string{AccountTypeSystem}, Enabled: true}
	catalogRepoRule := Rule{ID: 30, Priority: 5, Effect: EffectAllow, AccountTypes: []string{AccountTypeSystem},
		Actions: []Action{ActionCatalog}, Repositories: []string{"*"}, Enabled: true}
	catalogGlobal := Rule{ID: 31, Priority: 5, Effect: EffectAllow, AccountTypes: []string{AccountTypeSystem},
		Actions: []Action{ActionCatalog}, Enabled: true}
	denyRepoRule := Rule{ID: 32, Priority: 1, Effect: EffectDeny, Actions: []Action{ActionCatalog},
		Repositories: []string{"*"}, Enabled: true}

	tests := []struct {
		name    string
		rules   []Rule
		wantEff Effect
		in      Input
		wantID  int64
	}{
		// Built-ins.
		{"admin wildcard push", withDefaults(), EffectAllow, human(RoleAdmin).do(ActionPush, "any/repo"), -1},
		{"admin wildcard policy manage", withDefaults(), EffectAllow, system(RoleAdmin).do(ActionPolicyManage, ""), -1},
		{"user allow pull", withDefaults(), EffectAllow, human(RoleUser).do(ActionPull, "library/alpine"), -2},
		{"user allow catalog", withDefaults(), EffectAllow, human(RoleUser).do(ActionCatalog, ""), -2},
		{"user denied policy manage", withDefaults(), EffectDeny, human(RoleUser).do(ActionPolicyManage, ""), 0},
		{"system denied pull without rules", withDefaults(), EffectDeny, system(RoleUser).do(ActionPull, "myapp"), 0},
		{"system version check", withDefaults(), EffectAllow, system().do(ActionVersionCheck, ""), -3},
		{"guest denied pull", withDefaults(), EffectDeny, human(RoleGuest).do(ActionPull, "myapp"), 0},
		{"guest version check", withDefaults(), EffectAllow, human(RoleGuest).do(ActionVersionCheck, ""), -3},
		{"no rules default deny", nil, EffectDeny, human(RoleAdmin).do(ActionPull, "x"), 0},

		// Exact repository.
		{"exact repo match", withDefaults(exactRepo), EffectAllow, system().do(ActionPull, "myapp"), 10},
		{"exact repo other repo", withDefaults(exactRepo), EffectDeny, system().do(ActionPull, "myapp2"), 0},
		{"exact repo prefix is not a match", withDefaults(exactRepo), EffectDeny, system().do(ActionPull, "myapp/sub"), 0},
		{"exact repo other action", withDefaults(exactRepo), EffectDeny, system().do(ActionPush, "myapp"), 0},
		{"exact repo other subject", withDefaults(exactRepo),
			EffectDeny, Input{Subject: "someone-else", AccountType: AccountTypeSystem, Action: ActionPull, Repository: "myapp"}, 0},

		// Globs.
		{"glob production/* matches production/app", withDefaults(prodGlob), EffectAllow, system().do(ActionPush, "production/app"), 11},
		{"glob production/* not production/team/app", withDefaults(prodGlob), EffectDeny, system().do(ActionPush, "production/team/app"), 0},
		{"glob production/* not production", withDefaults(prodGlob), EffectDeny, system().do(ActionPull, "production"), 0},
		{"glob production/* not staging/app", withDefaults(prodGlob), EffectDeny, system().do(ActionPull, "staging/app"), 0},
		{"glob ? and class", withDefaults(Rule{ID: 12, Priority: 1, Effect: EffectAllow, Actions: []Action{ActionPull},
			Repositories: []string{"team[0-9]/app?"}, Enabled: true}), EffectAllow, system().do(ActionPull, "team3/appx"), 12},
		{"any of several globs", withDefaults(Rule{ID: 13, Priority: 1, Effect: EffectAllow, Actions: []Action{ActionPull},
			Repositories: []string{"a/*", "b/*"}, Enabled: true}), EffectAllow, system().do(ActionPull, "b/x"), 13},

		// Deny wins.
		{"deny wins over lower-priority-number allow", withDefaults(Rule{ID: 1, Priority: 1, Effect: EffectAllow,
			Actions: []Action{ActionPush}, Enabled: true}, denyProdPush), EffectDeny, human(RoleUser).do(ActionPush, "production/app"), 20},
		{"deny wins over built-in allow", withDefaults(denyProdPush), EffectDeny, human(RoleUser).do(ActionPush, "production/app"), 20},
		{"deny does not apply elsewhere", withDefaults(denyProdPush), EffectAllow, human(RoleUser).do(ActionPush, "staging/app"), -2},
		{"deny does not apply to pull", withDefaults(denyProdPush), EffectAllow, human(RoleUser).do(ActionPull, "production/app"), -2},

		// Priority ordering.
		{"first allow by priority", []Rule{
			{ID: 2, Priority: 5, Effect: EffectAllow, Enabled: true},
			{ID: 1, Priority: 1, Effect: EffectAllow, Enabled: true},
		}, EffectAllow, system().do(ActionPull, "x"), 1},
		{"equal priority keeps slice order", []Rule{
			{ID: 4, Priority: 5, Effect: EffectAllow, Enabled: true},
			{ID: 3, Priority: 5, Effect: EffectAllow, Enabled: true},
			{ID: 5, Priority: 6, Effect: EffectAllow, Enabled: true},
		}, EffectAllow, system().do(ActionPull, "x"), 4},
		{"first deny by priority", []Rule{
			{ID: 7, Priority: 9, Effect: EffectDeny, Enabled: true},
			{ID: 1, Priority: 1, Effect: EffectAllow, Enabled: true},
			{ID: 6, Priority: 3, Effect: EffectDeny, Enabled: true},
		}, EffectDeny, system().do(ActionPull, "x"), 6},
		{"built-ins (priority 0) before stored allows", withDefaults(Rule{ID: 8, Priority: 1, Effect: EffectAllow,
			Roles: []string{RoleUser}, Enabled: true}), EffectAllow, human(RoleUser).do(ActionPull, "x"), -2},

		// Global operations.
		{"global op skips repository rules", withDefaults(catalogRepoRule), EffectDeny, system().do(ActionCatalog, ""), 0},
		{"global op matches repository-less rule", withDefaults(catalogRepoRule, catalogGlobal), EffectAllow, system().do(ActionCatalog, ""), 31},
		{"repository deny rule ignored for global op", withDefaults(denyRepoRule), EffectAllow, human(RoleUser).do(ActionCatalog, ""), -2},
		{"wildcard-repo rule matches repo op", withDefaults(allowAllSys), EffectAllow, system().do(ActionDelete, "deep/nested/repo"), 21},
		{"wildcard-repo rule matches global op", withDefaults(allowAllSys), EffectAllow, system().do(ActionCatalog, ""), 21},

		// Multiple matching rules.
		{"multiple allows match", withDefaults(allowAllSys, prodGlob, exactRepo), EffectAllow, system().do(ActionPull, "myapp"), 21},
		{"multiple allows and a deny", withDefaults(allowAllSys, prodGlob, Rule{ID: 40, Priority: 500, Effect: EffectDeny,
			SubjectUUID: sysSubject, Repositories: []string{"production/secret"}, Enabled: true}),
			EffectDeny, system().do(ActionPull, "production/secret"), 40},

		// Field semantics.
		{"roles: any of", withDefaults(Rule{ID: 50, Priority: 1, Effect: EffectAllow, Roles: []string{RoleAdmin, RoleGuest},
			Actions: []Action{ActionPull}, Enabled: true}), EffectAllow, human("other", RoleGuest).do(ActionPull, "x"), 50},
		{"roles: none of", withDefaults(Rule{ID: 51, Priority: 1, Effect: EffectAllow, Roles: []string{RoleGuest},
			Enabled: true}), EffectDeny, system().do(ActionPull, "x"), 0},
		{"account type mismatch", withDefaults(Rule{ID: 52, Priority: 1, Effect: EffectAllow, AccountTypes: []string{AccountTypeHuman},
			Actions: []Action{ActionPush}, Enabled: true}), EffectDeny, system().do(ActionPush, "x"), 0},
		{"disabled allow excluded", withDefaults(Rule{ID: 53, Priority: 1, Effect: EffectAllow, Enabled: false}),
			EffectDeny, system().do(ActionPull, "x"), 0},
		{"disabled deny excluded", withDefaults(Rule{ID: 54, Priority: 1, Effect: EffectDeny, Enabled: false}),
			EffectAllow, human(RoleAdmin).do(ActionPull, "x"), -1},
		{"unknown effect never matches", withDefaults(Rule{ID: 55, Priority: 1, Effect: "maybe", Enabled: true}),
			EffectDeny, system().do(ActionPull, "x"), 0},
		{"malformed glob never matches", withDefaults(Rule{ID: 56, Priority: 1, Effect: EffectAllow,
			Repositories: []string{"x["}, Enabled: true}), EffectDeny, system().do(ActionPull, "x["), 0},
		{"unknown action only matches wildcard rules", withDefaults(allowAllSys), EffectAllow, system().do("registry:bogus", "x"), 21},
		{"unknown action denied by default", withDefaults(), EffectDeny, human(RoleUser).do("registry:bogus", "x"), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eff, r := Evaluate(tc.in, tc.rules)
			checkResult(t, eff, r, tc.wantEff, tc.wantID)
			if r != nil && !pointsInto(r, tc.rules) {
				t.Errorf("returned rule does not point into the caller's slice")
			}

			// The engine must agree with the stateless evaluator.
			var stored []Rule
			for _, r := range tc.rules {
				if r.ID > 0 {
					stored = append(stored, r)
				}
			}
			if len(tc.rules) > 0 && tc.rules[0].ID == -1 { // built with withDefaults
				e := NewEngine(nil)
				e.SetRules(stored)
				eff, r := e.Evaluate(tc.in)
				checkResult(t, eff, r, tc.wantEff, tc.wantID)
			}
		})
	}
}

func pointsInto(r *Rule, rules []Rule) bool {
	for i := range rules {
		if r == &rules[i] {
			return true
		}
	}
	return false
}

func TestDefaultRules(t *testing.T) {
	rules := DefaultRules()
	if len(rules) != 3 {
		t.Fatalf("got %d default rules, want 3", len(rules))
	}
	for i, r := range rules {
		if r.ID != int64(-(i+1)) || r.Priority != 0 || !r.Enabled || r.Effect != EffectAllow {
			t.Errorf("default rule %d = %+v; want ID %d, priority 0, enabled allow", i, r, -(i + 1))
		}
		// Apart from the reserved priority, built-ins are valid rules
		// (admin's wildcard action list aside).
		r.Priority = 1
		if len(r.Actions) == 0 {
			r.Actions = AllActions()
		}
		if err := r.Validate(); err != nil {
			t.Errorf("default rule %d: %v", r.ID, err)
		}
	}
	// Fresh copies each call.
	rules[1].Actions[0] = ActionPolicyManage
	if DefaultRules()[1].Actions[0] != ActionPull {
		t.Error("DefaultRules shares backing arrays between calls")
	}

	type want map[Action]Effect
	allow := func(as ...Action) want {
		w := want{}
		for _, a := range AllActions() {
			w[a] = EffectDeny
		}
		for _, a := range as {
			w[a] = EffectAllow
		}
		return w
	}
	principals := []struct {
		name string
		want want
		in   Input
	}{
		{"admin", allow(AllActions()...), human(RoleAdmin)},
		{"system admin", allow(AllActions()...), system(RoleAdmin)},
		{"human user", allow(ActionVersionCheck, ActionPull, ActionPush, ActionDelete, ActionCatalog), human(RoleUser)},
		{"system account", allow(ActionVersionCheck), system()},
		{"system account with user role", allow(ActionVersionCheck), system(RoleUser)},
		{"guest", allow(ActionVersionCheck), human(RoleGuest)},
		{"no roles", allow(ActionVersionCheck), human()},
	}
	for _, p := range principals {
		for _, a := range AllActions() {
			repo := "library/alpine"
			switch a {
			case ActionVersionCheck, ActionCatalog, ActionPolicyManage:
				repo = ""
			}
			t.Run(p.name+"/"+string(a), func(t *testing.T) {
				eff, _ := Evaluate(p.in.do(a, repo), DefaultRules())
				if eff != p.want[a] {
					t.Errorf("got %s, want %s", eff, p.want[a])
				}
			})
		}
	}
}

func TestEvaluateDoesNotMutate(t *testing.T) {
	rules := withDefaults(
		Rule{ID: 3, Priority: 30, Effect: EffectAllow, Roles: []string{RoleUser}, Enabled: true},
		Rule{ID: 1, Priority: 10, Effect: EffectDeny, Repositories: []string{"a/*"}, Enabled: true},
		Rule{ID: 2, Priority: 20, Effect: EffectAllow, Enabled: false},
	)
	before := make([]Rule, len(rules))
	for i := range rules {
		before[i] = rules[i].Clone()
	}
	Evaluate(human(RoleUser).do(ActionPull, "a/b"), rules)
	Evaluate(human(RoleUser).do(ActionPull, "c"), rules)
	if !reflect.DeepEqual(before, rules) {
		t.Errorf("Evaluate modified its rules:\n got %+v\nwant %+v", rules, before)
	}
}

func TestEvaluateZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	rules := benchRules(1000)
	in := human(RoleUser).do(ActionPush, "team7/app3")
	if n := testing.AllocsPerRun(100, func() { Evaluate(in, rules) }); n != 0 {
		t.Errorf("Evaluate: %v allocs per run, want 0", n)
	}
	e := NewEngine(nil)
	e.SetRules(rules)
	for _, in := range benchInputs() {
		if n := testing.AllocsPerRun(100, func() { e.Evaluate(in) }); n != 0 {
			t.Errorf("Engine.Evaluate(%+v): %v allocs per run, want 0", in, n)
		}
	}
}
