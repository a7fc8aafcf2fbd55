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
		in      Input
		wantEff Effect
		rules   []Rule
		wantID  int64
	}{
		// Built-ins.
		{"admin wildcard push", human(RoleAdmin).do(ActionPush, "any/repo"), EffectAllow, withDefaults(), -1},
		{"admin wildcard policy manage", system(RoleAdmin).do(ActionPolicyManage, ""), EffectAllow, withDefaults(), -1},
		{"user allow pull", human(RoleUser).do(ActionPull, "library/alpine"), EffectAllow, withDefaults(), -2},
		{"user allow catalog", human(RoleUser).do(ActionCatalog, ""), EffectAllow, withDefaults(), -2},
		{"user denied policy manage", human(RoleUser).do(ActionPolicyManage, ""), EffectDeny, withDefaults(), 0},
		{"system denied pull without rules", system(RoleUser).do(ActionPull, "myapp"), EffectDeny, withDefaults(), 0},
		{"system version check", system().do(ActionVersionCheck, ""), EffectAllow, withDefaults(), -3},
		{"guest denied pull", human(RoleGuest).do(ActionPull, "myapp"), EffectDeny, withDefaults(), 0},
		{"guest version check", human(RoleGuest).do(ActionVersionCheck, ""), EffectAllow, withDefaults(), -3},
		{"no rules default deny", human(RoleAdmin).do(ActionPull, "x"), EffectDeny, nil, 0},

		// Exact repository.
		{"exact repo match", system().do(ActionPull, "myapp"), EffectAllow, withDefaults(exactRepo), 10},
		{"exact repo other repo", system().do(ActionPull, "myapp2"), EffectDeny, withDefaults(exactRepo), 0},
		{"exact repo prefix is not a match", system().do(ActionPull, "myapp/sub"), EffectDeny, withDefaults(exactRepo), 0},
		{"exact repo other action", system().do(ActionPush, "myapp"), EffectDeny, withDefaults(exactRepo), 0},
		{"exact repo other subject", Input{Subject: "someone-else", AccountType: AccountTypeSystem, Action: ActionPull, Repository: "myapp"},
			EffectDeny, withDefaults(exactRepo), 0},

		// Globs.
		{"glob production/* matches production/app", system().do(ActionPush, "production/app"), EffectAllow, withDefaults(prodGlob), 11},
		{"glob production/* not production/team/app", system().do(ActionPush, "production/team/app"), EffectDeny, withDefaults(prodGlob), 0},
		{"glob production/* not production", system().do(ActionPull, "production"), EffectDeny, withDefaults(prodGlob), 0},
		{"glob production/* not staging/app", system().do(ActionPull, "staging/app"), EffectDeny, withDefaults(prodGlob), 0},
		{"glob ? and class", system().do(ActionPull, "team3/appx"), EffectAllow, withDefaults(Rule{ID: 12, Priority: 1, Effect: EffectAllow, Actions: []Action{ActionPull},
			Repositories: []string{"team[0-9]/app?"}, Enabled: true}), 12},
		{"any of several globs", system().do(ActionPull, "b/x"), EffectAllow, withDefaults(Rule{ID: 13, Priority: 1, Effect: EffectAllow, Actions: []Action{ActionPull},
			Repositories: []string{"a/*", "b/*"}, Enabled: true}), 13},

		// Deny wins.
		{"deny wins over lower-priority-number allow", human(RoleUser).do(ActionPush, "production/app"), EffectDeny, withDefaults(Rule{ID: 1, Priority: 1, Effect: EffectAllow,
			Actions: []Action{ActionPush}, Enabled: true}, denyProdPush), 20},
		{"deny wins over built-in allow", human(RoleUser).do(ActionPush, "production/app"), EffectDeny, withDefaults(denyProdPush), 20},
		{"deny does not apply elsewhere", human(RoleUser).do(ActionPush, "staging/app"), EffectAllow, withDefaults(denyProdPush), -2},
		{"deny does not apply to pull", human(RoleUser).do(ActionPull, "production/app"), EffectAllow, withDefaults(denyProdPush), -2},

		// Priority ordering.
		{"first allow by priority", system().do(ActionPull, "x"), EffectAllow, []Rule{
			{ID: 2, Priority: 5, Effect: EffectAllow, Enabled: true},
			{ID: 1, Priority: 1, Effect: EffectAllow, Enabled: true},
		}, 1},
		{"equal priority keeps slice order", system().do(ActionPull, "x"), EffectAllow, []Rule{
			{ID: 4, Priority: 5, Effect: EffectAllow, Enabled: true},
			{ID: 3, Priority: 5, Effect: EffectAllow, Enabled: true},
			{ID: 5, Priority: 6, Effect: EffectAllow, Enabled: true},
		}, 4},
		{"first deny by priority", system().do(ActionPull, "x"), EffectDeny, []Rule{
			{ID: 7, Priority: 9, Effect: EffectDeny, Enabled: true},
			{ID: 1, Priority: 1, Effect: EffectAllow, Enabled: true},
			{ID: 6, Priority: 3, Effect: EffectDeny, Enabled: true},
		}, 6},
		{"built-ins (priority 0) before stored allows", human(RoleUser).do(ActionPull, "x"), EffectAllow, withDefaults(Rule{ID: 8, Priority: 1, Effect: EffectAllow,
			Roles: []string{RoleUser}, Enabled: true}), -2},

		// Global operations.
		{"global op skips repository rules", system().do(ActionCatalog, ""), EffectDeny, withDefaults(catalogRepoRule), 0},
		{"global op matches repository-less rule", system().do(ActionCatalog, ""), EffectAllow, withDefaults(catalogRepoRule, catalogGlobal), 31},
		{"repository deny rule ignored for global op", human(RoleUser).do(ActionCatalog, ""), EffectAllow, withDefaults(denyRepoRule), -2},
		{"wildcard-repo rule matches repo op", system().do(ActionDelete, "deep/nested/repo"), EffectAllow, withDefaults(allowAllSys), 21},
		{"wildcard-repo rule matches global op", system().do(ActionCatalog, ""), EffectAllow, withDefaults(allowAllSys), 21},

		// Multiple matching rules.
		{"multiple allows match", system().do(ActionPull, "myapp"), EffectAllow, withDefaults(allowAllSys, prodGlob, exactRepo), 21},
		{"multiple allows and a deny", system().do(ActionPull, "production/secret"),
			EffectDeny, withDefaults(allowAllSys, prodGlob, Rule{ID: 40, Priority: 500, Effect: EffectDeny,
				SubjectUUID: sysSubject, Repositories: []string{"production/secret"}, Enabled: true}), 40},

		// Field semantics.
		{"roles: any of", human("other", RoleGuest).do(ActionPull, "x"), EffectAllow, withDefaults(Rule{ID: 50, Priority: 1, Effect: EffectAllow, Roles: []string{RoleAdmin, RoleGuest},
			Actions: []Action{ActionPull}, Enabled: true}), 50},
		{"roles: none of", system().do(ActionPull, "x"), EffectDeny, withDefaults(Rule{ID: 51, Priority: 1, Effect: EffectAllow, Roles: []string{RoleGuest},
			Enabled: true}), 0},
		{"account type mismatch", system().do(ActionPush, "x"), EffectDeny, withDefaults(Rule{ID: 52, Priority: 1, Effect: EffectAllow, AccountTypes: []string{AccountTypeHuman},
			Actions: []Action{ActionPush}, Enabled: true}), 0},
		{"disabled allow excluded", system().do(ActionPull, "x"),
			EffectDeny, withDefaults(Rule{ID: 53, Priority: 1, Effect: EffectAllow, Enabled: false}), 0},
		{"disabled deny excluded", human(RoleAdmin).do(ActionPull, "x"),
			EffectAllow, withDefaults(Rule{ID: 54, Priority: 1, Effect: EffectDeny, Enabled: false}), -1},
		{"unknown effect never matches", system().do(ActionPull, "x"),
			EffectDeny, withDefaults(Rule{ID: 55, Priority: 1, Effect: "maybe", Enabled: true}), 0},
		{"malformed glob never matches", system().do(ActionPull, "x["), EffectDeny, withDefaults(Rule{ID: 56, Priority: 1, Effect: EffectAllow,
			Repositories: []string{"x["}, Enabled: true}), 0},
		{"unknown action only matches wildcard rules", system().do("registry:bogus", "x"), EffectAllow, withDefaults(allowAllSys), 21},
		{"unknown action denied by default", human(RoleUser).do("registry:bogus", "x"), EffectDeny, withDefaults(), 0},
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
