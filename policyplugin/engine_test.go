package policyplugin

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// fakeSource is an in-memory RuleSource.
type fakeSource struct {
	err   error
	rules []Rule
	mu    sync.Mutex
	calls int
}

// reloads is how many times the engine asked for the rules.
func (f *fakeSource) reloads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeSource) EnabledRules(ctx context.Context) ([]Rule, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.err != nil {
		return nil, f.err
	}
	out := make([]Rule, 0, len(f.rules))
	for _, r := range f.rules {
		if r.Enabled {
			out = append(out, r.Clone())
		}
	}
	return out, nil
}

func (f *fakeSource) set(rules []Rule, err error) {
	f.mu.Lock()
	f.rules, f.err = rules, err
	f.mu.Unlock()
}

var ciPull = Rule{ID: 100, Priority: 10, Description: "ci may pull and push ci/*", Effect: EffectAllow,
	AccountTypes: []string{AccountTypeSystem}, SubjectUUID: system().Subject,
	Actions: []Action{ActionPull, ActionPush}, Repositories: []string{"ci/*"}, Enabled: true}

func TestEngineOnlyDefaults(t *testing.T) {
	e := NewEngine(nil)
	rules := e.Rules()
	if len(rules) != 3 {
		t.Fatalf("Rules() has %d rules, want the 3 defaults", len(rules))
	}
	for i, r := range rules {
		if r.ID != int64(-(i + 1)) {
			t.Errorf("rule %d has ID %d", i, r.ID)
		}
	}
	tests := []struct {
		name    string
		wantEff Effect
		in      Input
		wantID  int64
	}{
		{"admin delete", EffectAllow, human(RoleAdmin).do(ActionDelete, "x/y"), -1},
		{"user push", EffectAllow, human(RoleUser).do(ActionPush, "x/y"), -2},
		{"user version check", EffectAllow, human(RoleUser).do(ActionVersionCheck, ""), -3},
		{"system pull", EffectDeny, system().do(ActionPull, "ci/app"), 0},
		{"system version check", EffectAllow, system().do(ActionVersionCheck, ""), -3},
		{"guest pull", EffectDeny, human(RoleGuest).do(ActionPull, "x"), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eff, r := e.Evaluate(tc.in)
			checkResult(t, eff, r, tc.wantEff, tc.wantID)
		})
	}
	if err := e.Reload(context.Background()); !errors.Is(err, ErrNoRuleSource) {
		t.Errorf("Reload without source: got %v, want ErrNoRuleSource", err)
	}
}

func TestEngineCustomRules(t *testing.T) {
	e := NewEngine(nil)
	deny := Rule{ID: 101, Priority: 50, Effect: EffectDeny, Actions: []Action{ActionDelete},
		Repositories: []string{"production/*"}, Enabled: true}
	custom := []Rule{deny, ciPull.Clone()}
	e.SetRules(custom)

	got := e.Rules()
	wantIDs := []int64{-1, -2, -3, 100, 101} // defaults first, then by priority
	if len(got) != len(wantIDs) {
		t.Fatalf("Rules() = %d rules, want %d", len(got), len(wantIDs))
	}
	for i, id := range wantIDs {
		if got[i].ID != id {
			t.Errorf("Rules()[%d].ID = %d, want %d", i, got[i].ID, id)
		}
	}

	tests := []struct {
		name    string
		wantEff Effect
		in      Input
		wantID  int64
	}{
		{"ci pull", EffectAllow, system().do(ActionPull, "ci/app"), 100},
		{"ci push", EffectAllow, system().do(ActionPush, "ci/app"), 100},
		{"ci delete", EffectDeny, system().do(ActionDelete, "ci/app"), 0},
		{"ci outside glob", EffectDeny, system().do(ActionPull, "ci/a/b"), 0},
		{"user delete production", EffectDeny, human(RoleUser).do(ActionDelete, "production/app"), 101},
		{"admin delete production", EffectDeny, human(RoleAdmin).do(ActionDelete, "production/app"), 101},
		{"user delete staging", EffectAllow, human(RoleUser).do(ActionDelete, "staging/app"), -2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eff, r := e.Evaluate(tc.in)
			checkResult(t, eff, r, tc.wantEff, tc.wantID)
		})
	}

	// The engine owns copies: neither the input nor Rules() results alias it.
	custom[1].Repositories[0] = "*"
	custom[1].Enabled = false
	got[3].Actions[0] = ActionDelete
	eff, r := e.Evaluate(system().do(ActionPull, "ci/app"))
	checkResult(t, eff, r, EffectAllow, 100)
	if r.Repositories[0] != "ci/*" || r.Actions[0] != ActionPull {
		t.Errorf("engine's rule was modified through an alias: %+v", r)
	}
}

func TestEngineDisabledRulesExcluded(t *testing.T) {
	e := NewEngine(nil)
	e.SetRules([]Rule{
		{ID: 1, Priority: 1, Effect: EffectAllow, AccountTypes: []string{AccountTypeSystem}, Enabled: false},
		{ID: 2, Priority: 1, Effect: EffectDeny, Roles: []string{RoleUser}, Enabled: false},
	})
	eff, r := e.Evaluate(system().do(ActionPull, "x"))
	checkResult(t, eff, r, EffectDeny, 0)
	eff, r = e.Evaluate(human(RoleUser).do(ActionPull, "x"))
	checkResult(t, eff, r, EffectAllow, -2)

	// Through a source: a disabled stored rule is never loaded.
	src := &fakeSource{}
	src.set([]Rule{{ID: 3, Priority: 1, Effect: EffectAllow, AccountTypes: []string{AccountTypeSystem}, Enabled: false}}, nil)
	e = NewEngine(src)
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	eff, r = e.Evaluate(system().do(ActionPull, "x"))
	checkResult(t, eff, r, EffectDeny, 0)
}

func TestEngineReload(t *testing.T) {
	ctx := context.Background()
	src := &fakeSource{}
	e := NewEngine(src)

	in := system().do(ActionPull, "ci/app")
	eff, r := e.Evaluate(in)
	checkResult(t, eff, r, EffectDeny, 0) // nothing loaded yet

	if err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	eff, r = e.Evaluate(in)
	checkResult(t, eff, r, EffectDeny, 0) // empty store

	src.set([]Rule{ciPull}, nil)
	eff, r = e.Evaluate(in)
	checkResult(t, eff, r, EffectDeny, 0) // not reloaded yet
	if err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	eff, kept := e.Evaluate(in)
	checkResult(t, eff, kept, EffectAllow, 100) // picked up

	// A failing reload keeps the previous rules.
	boom := errors.New("db down")
	src.set(nil, boom)
	if err := e.Reload(ctx); !errors.Is(err, boom) {
		t.Fatalf("Reload error = %v, want wrapping %v", err, boom)
	}
	eff, r = e.Evaluate(in)
	checkResult(t, eff, r, EffectAllow, 100)

	// Rule disabled in the store, then reloaded: gone.
	disabled := ciPull
	disabled.Enabled = false
	src.set([]Rule{disabled}, nil)
	if err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	eff, r = e.Evaluate(in)
	checkResult(t, eff, r, EffectDeny, 0)
	if kept.ID != 100 || kept.Repositories[0] != "ci/*" {
		t.Errorf("rule returned before reload changed: %+v", kept)
	}

	// Cancelled context surfaces as an error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := e.Reload(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Reload(cancelled) = %v", err)
	}
}

// TestEngineConcurrent runs Evaluate against Reload, SetRules and Rules;
// run it with -race. Every answer must come from one of the two rule sets.
func TestEngineConcurrent(t *testing.T) {
	ctx := context.Background()
	src := &fakeSource{}
	e := NewEngine(src)
	setA := []Rule{ciPull}
	setB := []Rule{{ID: 200, Priority: 5, Effect: EffectDeny, Roles: []string{RoleUser},
		Actions: []Action{ActionPush}, Enabled: true}}

	const reloaders, evaluators = 4, 8
	errc := make(chan error, reloaders+evaluators)
	stop := make(chan struct{})
	var reloadWG, evalWG sync.WaitGroup
	for w := range reloaders {
		reloadWG.Add(1)
		go func() {
			defer reloadWG.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if i%2 == 0 {
					src.set(setA, nil)
				} else {
					src.set(setB, nil)
				}
				if w == 0 {
					e.SetRules(setB)
				} else if err := e.Reload(ctx); err != nil {
					errc <- err
					return
				}
				_ = e.Rules()
			}
		}()
	}
	for range evaluators {
		evalWG.Add(1)
		go func() {
			defer evalWG.Done()
			// At least 5000 rounds, and on until a reload has happened: on a
			// loaded machine the evaluators can finish before a reloader
			// is scheduled at all.
			for i := 0; i < 5000 || src.reloads() == 0; i++ {
				eff, r := e.Evaluate(system().do(ActionPull, "ci/app"))
				if (eff != EffectDeny || r != nil) && (eff != EffectAllow || r == nil || r.ID != 100) {
					errc <- fmt.Errorf("system pull: %s %+v", eff, r)
					return
				}
				eff, r = e.Evaluate(human(RoleUser).do(ActionPush, "x"))
				if (eff != EffectAllow || r == nil || r.ID != -2) && (eff != EffectDeny || r == nil || r.ID != 200) {
					errc <- fmt.Errorf("user push: %s %+v", eff, r)
					return
				}
				if eff, _ := e.Evaluate(human(RoleAdmin).do(ActionPull, "x")); eff != EffectAllow {
					errc <- fmt.Errorf("admin pull: %s", eff)
					return
				}
			}
		}()
	}
	evalWG.Wait()
	close(stop)
	reloadWG.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if src.calls == 0 {
		t.Error("no reloads happened")
	}
}
