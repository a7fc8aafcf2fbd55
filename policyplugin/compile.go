package policyplugin

import (
	"path"
	"strings"
)

// This file holds the Engine's precompiled form of a rule set. Compilation
// turns role, account-type and action lists into bitmasks, classifies
// repository globs so that the common shapes ("name", "prefix/*") avoid
// path.Match, and buckets rules by (action, global-ness) so an evaluation
// only looks at rules that could apply. compiledRule.matches must agree
// with ruleMatches exactly (see TestCompiledMatchesReference).

// strSet is a compiled list of strings: known values as bits in mask, the
// rest in extra. An empty source list is a wildcard.
type strSet struct {
	extra []string
	any   bool
	mask  uint32
}

func compileSet[S ~string](list []S, bit func(string) uint32) strSet {
	if len(list) == 0 {
		return strSet{any: true}
	}
	var s strSet
	for _, v := range list {
		if b := bit(string(v)); b != 0 {
			s.mask |= b
		} else {
			s.extra = append(s.extra, string(v))
		}
	}
	return s
}

// hasOne reports whether the set contains v, whose bit (0 if unknown) is b.
func (s *strSet) hasOne(b uint32, v string) bool {
	if s.any {
		return true
	}
	if b != 0 {
		return s.mask&b != 0
	}
	for _, e := range s.extra {
		if e == v {
			return true
		}
	}
	return false
}

// hasAny reports whether the set contains any of vs, whose known bits are
// mask.
func (s *strSet) hasAny(mask uint32, vs []string) bool {
	if s.any || s.mask&mask != 0 {
		return true
	}
	for _, e := range s.extra {
		for _, v := range vs {
			if e == v {
				return true
			}
		}
	}
	return false
}

func roleBit(r string) uint32 {
	switch r {
	case RoleAdmin:
		return 1 << 0
	case RoleUser:
		return 1 << 1
	case RoleGuest:
		return 1 << 2
	}
	return 0
}

func accountTypeBit(t string) uint32 {
	switch t {
	case AccountTypeHuman:
		return 1 << 0
	case AccountTypeSystem:
		return 1 << 1
	}
	return 0
}

func actionBit(a string) uint32 {
	if i := actionIndex(Action(a)); i >= 0 {
		return 1 << uint(i)
	}
	return 0
}

type globKind uint8

const (
	globExact  globKind = iota // lit == name
	globPrefix                 // pattern lit+"*": name has prefix lit, no '/' after it
	globMatch                  // general: path.Match(pat, name)
	globNever                  // malformed pattern: never matches
)

type glob struct {
	lit  string
	pat  string
	kind globKind
}

func compileGlob(p string) glob {
	if _, err := path.Match(p, ""); err != nil {
		return glob{kind: globNever, pat: p}
	}
	const meta = `*?[\`
	if !strings.ContainsAny(p, meta) {
		return glob{kind: globExact, lit: p, pat: p}
	}
	if prefix, ok := strings.CutSuffix(p, "*"); ok && !strings.ContainsAny(prefix, meta) {
		return glob{kind: globPrefix, lit: prefix, pat: p}
	}
	return glob{kind: globMatch, pat: p}
}

func (g *glob) match(name string) bool {
	switch g.kind {
	case globExact:
		return name == g.lit
	case globPrefix:
		return len(name) >= len(g.lit) && name[:len(g.lit)] == g.lit &&
			strings.IndexByte(name[len(g.lit):], '/') < 0
	case globMatch:
		ok, err := path.Match(g.pat, name)
		return ok && err == nil
	}
	return false
}

// compiledRule is an enabled allow/deny rule in matchable form.
type compiledRule struct {
	rule     *Rule // points into ruleSet.rules
	actions  strSet
	accounts strSet
	subject  string
	repos    []glob // empty: any repository, and global operations
	roles    strSet
}

// query is an Input with its known values turned into bits.
type query struct {
	in       *Input
	actBit   uint32
	acctBit  uint32
	roleMask uint32
}

func newQuery(in *Input) query {
	q := query{
		in:      in,
		actBit:  actionBit(string(in.Action)),
		acctBit: accountTypeBit(in.AccountType),
	}
	for _, r := range in.Roles {
		q.roleMask |= roleBit(r)
	}
	return q
}

func (c *compiledRule) matches(q *query) bool {
	in := q.in
	if !c.actions.hasOne(q.actBit, string(in.Action)) {
		return false
	}
	if c.subject != "" && c.subject != in.Subject {
		return false
	}
	if !c.accounts.hasOne(q.acctBit, in.AccountType) {
		return false
	}
	if !c.roles.hasAny(q.roleMask, in.Roles) {
		return false
	}
	if len(c.repos) > 0 {
		if in.Repository == "" {
			return false
		}
		for i := range c.repos {
			if c.repos[i].match(in.Repository) {
				return true
			}
		}
		return false
	}
	return true
}

// bucket holds the candidate rules for one kind of query, in evaluation
// order, split by effect.
type bucket struct {
	deny  []compiledRule
	allow []compiledRule
}

func (b *bucket) add(c compiledRule) {
	if c.rule.Effect == EffectDeny {
		b.deny = append(b.deny, c)
	} else {
		b.allow = append(b.allow, c)
	}
}

// ruleSet is an immutable, sorted, compiled rule set.
type ruleSet struct {
	rules []Rule // all rules (defaults first), stable-sorted by priority
	// byAction[actionIndex][g] holds rules that can match that action;
	// g=1 is the global-operation variant (repository-less rules only).
	byAction [numActions][2]bucket
	// other[g] serves actions outside the known set: rules with a
	// wildcard action list or unknown actions listed.
	other [2]bucket
}

// newRuleSet compiles rules, which must already be stable-sorted by
// priority and owned by the new set.
func newRuleSet(rules []Rule) *ruleSet {
	s := &ruleSet{rules: rules}
	for i := range rules {
		r := &rules[i]
		if !r.Enabled || (r.Effect != EffectAllow && r.Effect != EffectDeny) {
			continue
		}
		c := compiledRule{
			rule:     r,
			actions:  compileSet(r.Actions, actionBit),
			accounts: compileSet(r.AccountTypes, accountTypeBit),
			roles:    compileSet(r.Roles, roleBit),
			subject:  r.SubjectUUID,
		}
		for _, p := range r.Repositories {
			c.repos = append(c.repos, compileGlob(p))
		}
		global := len(c.repos) == 0
		for a := range numActions {
			if c.actions.any || c.actions.mask&(1<<uint(a)) != 0 {
				s.byAction[a][0].add(c)
				if global {
					s.byAction[a][1].add(c)
				}
			}
		}
		if c.actions.any || len(c.actions.extra) > 0 {
			s.other[0].add(c)
			if global {
				s.other[1].add(c)
			}
		}
	}
	return s
}

func (s *ruleSet) evaluate(in *Input) (Effect, *Rule) {
	q := newQuery(in)
	g := 0
	if in.Repository == "" {
		g = 1
	}
	var b *bucket
	if i := actionIndex(in.Action); i >= 0 {
		b = &s.byAction[i][g]
	} else {
		b = &s.other[g]
	}
	for i := range b.deny {
		if b.deny[i].matches(&q) {
			return EffectDeny, b.deny[i].rule
		}
	}
	for i := range b.allow {
		if b.allow[i].matches(&q) {
			return EffectAllow, b.allow[i].rule
		}
	}
	return EffectDeny, nil
}
