package policyplugin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// RuleSource supplies the stored rules, e.g. the policy_rules table.
// EnabledRules should return only enabled rules (the Engine ignores
// disabled ones anyway).
type RuleSource interface {
	EnabledRules(ctx context.Context) ([]Rule, error)
}

// Engine caches a compiled rule set (the stored rules merged with
// DefaultRules) and evaluates inputs against it. It is safe for concurrent
// use; Evaluate does not allocate.
type Engine struct {
	src RuleSource
	set *ruleSet // guarded by mu

	reloadMu sync.Mutex   // serializes Reload so a slow load cannot overwrite a newer one
	mu       sync.RWMutex // guards set
}

// ErrNoRuleSource is returned by Reload on an Engine built without a source.
var ErrNoRuleSource = errors.New("policyplugin: engine has no rule source")

// NewEngine returns an Engine holding only DefaultRules; call Reload to load
// the stored rules from src. src may be nil for an engine fed by SetRules.
func NewEngine(src RuleSource) *Engine {
	e := &Engine{src: src}
	e.SetRules(nil)
	return e
}

// SetRules replaces the cached rules with DefaultRules followed by a deep
// copy of rules, stable-sorted by priority and compiled once. The caller
// keeps ownership of rules.
func (e *Engine) SetRules(rules []Rule) {
	merged := DefaultRules()
	merged = slices.Grow(merged, len(rules))
	for i := range rules {
		merged = append(merged, rules[i].Clone())
	}
	slices.SortStableFunc(merged, func(a, b Rule) int { return cmp.Compare(a.Priority, b.Priority) })
	set := newRuleSet(merged)

	e.mu.Lock()
	e.set = set
	e.mu.Unlock()
}

// Reload fetches the enabled rules from the engine's RuleSource and installs
// them with SetRules. On error the previous rules stay in force.
func (e *Engine) Reload(ctx context.Context) error {
	if e.src == nil {
		return ErrNoRuleSource
	}
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	rules, err := e.src.EnabledRules(ctx)
	if err != nil {
		return fmt.Errorf("policyplugin: reload rules: %w", err)
	}
	e.SetRules(rules)
	return nil
}

// Evaluate decides in against the cached rules with the semantics of the
// package-level Evaluate. The returned *Rule points into the engine's
// immutable cache and stays valid after later reloads; callers must not
// modify it (use Rule.Clone).
func (e *Engine) Evaluate(in Input) (Effect, *Rule) {
	e.mu.RLock()
	set := e.set
	e.mu.RUnlock()
	return set.evaluate(&in)
}

// Rules returns a deep copy of the cached rules (defaults included, disabled
// ones too), in evaluation order.
func (e *Engine) Rules() []Rule {
	e.mu.RLock()
	set := e.set
	e.mu.RUnlock()
	out := make([]Rule, len(set.rules))
	for i := range set.rules {
		out[i] = set.rules[i].Clone()
	}
	return out
}
