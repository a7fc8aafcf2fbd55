package policyplugin

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchRules returns n deterministic, mixed, valid stored rules: mostly
// allows with some denies, random priorities, action subsets, principal
// conditions and repository globs of every shape (exact, prefix/*, general).
func benchRules(n int) []Rule {
	rng := rand.New(rand.NewPCG(42, 7))
	all := AllActions()
	rules := make([]Rule, n)
	for i := range rules {
		r := Rule{
			ID:          int64(i + 1),
			Priority:    1 + rng.IntN(1000),
			Description: fmt.Sprintf("bench rule %d", i),
			Effect:      EffectAllow,
			Enabled:     rng.IntN(10) != 0,
		}
		if rng.IntN(4) == 0 {
			r.Effect = EffectDeny
		}
		for range 1 + rng.IntN(3) {
			r.Actions = append(r.Actions, all[1+rng.IntN(4)]) // pull/push/delete/catalog
		}
		switch rng.IntN(3) {
		case 0:
			r.AccountTypes = []string{AccountTypeSystem}
			r.SubjectUUID = fmt.Sprintf("00000000-0000-4000-8000-%012d", rng.IntN(200))
		case 1:
			r.Roles = []string{RoleUser}
		default:
			r.AccountTypes = []string{AccountTypeHuman}
			r.Roles = []string{RoleUser, RoleGuest}
		}
		team := rng.IntN(100)
		switch rng.IntN(5) {
		case 0:
			r.Repositories = []string{fmt.Sprintf("team%d/app%d", team, rng.IntN(10))}
		case 1:
			r.Repositories = []string{fmt.Sprintf("team%d/*", team)}
		case 2:
			r.Repositories = []string{fmt.Sprintf("team%d/*/svc?", team), fmt.Sprintf("team%d-[a-f]*/x", team)}
		case 3:
			r.Repositories = []string{fmt.Sprintf("*/app%d", rng.IntN(10))}
		default: // repository-less (also applies to global operations)
		}
		rules[i] = r
	}
	return rules
}

func benchInputs() []Input {
	return []Input{
		human(RoleUser).do(ActionPush, "team7/app3"),
		{Subject: "00000000-0000-4000-8000-000000000042", AccountType: AccountTypeSystem, Action: ActionPull, Repository: "team42/app1"},
		{Subject: "00000000-0000-4000-8000-000000000999", AccountType: AccountTypeSystem, Action: ActionDelete, Repository: "nomatch/repo"},
		human(RoleGuest).do(ActionCatalog, ""),
		human(RoleAdmin).do(ActionDelete, "team3/deep/svc1"),
		system().do(ActionVersionCheck, ""),
	}
}

// BenchmarkEngineEvaluate1000Rules measures the hot path: an Engine loaded
// with 1000 stored rules evaluating a rotating mix of inputs.
func BenchmarkEngineEvaluate1000Rules(b *testing.B) {
	e := NewEngine(nil)
	e.SetRules(benchRules(1000))
	ins := benchInputs()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		e.Evaluate(ins[i%len(ins)])
	}
}

// BenchmarkEngineEvaluate1000RulesNoMatch is the worst case: a principal no
// deny or allow matches, so every candidate rule is examined.
func BenchmarkEngineEvaluate1000RulesNoMatch(b *testing.B) {
	e := NewEngine(nil)
	e.SetRules(benchRules(1000))
	in := Input{Subject: "nobody", AccountType: AccountTypeSystem,
		Action: ActionPull, Repository: "team5/x/svc9"}
	if eff, r := e.Evaluate(in); eff != EffectDeny || r != nil {
		b.Fatalf("bench input unexpectedly decided by %+v", r)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Evaluate(in)
	}
}

// BenchmarkEvaluate1000Rules measures the stateless reference evaluator
// for comparison (no precompilation).
func BenchmarkEvaluate1000Rules(b *testing.B) {
	rules := withDefaults(benchRules(1000)...)
	ins := benchInputs()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		Evaluate(ins[i%len(ins)], rules)
	}
}

func BenchmarkEngineSetRules1000(b *testing.B) {
	e := NewEngine(nil)
	rules := benchRules(1000)
	b.ReportAllocs()
	for b.Loop() {
		e.SetRules(rules)
	}
}
