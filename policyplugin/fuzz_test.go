package policyplugin

import (
	"encoding/json"
	"errors"
	"path"
	"testing"
)

// FuzzRuleJSON decodes a rule as the admin API does, validates it and, when
// valid, checks that the compiled engine and the reference evaluator agree
// on a request, and that a valid rule survives a JSON round trip.
func FuzzRuleJSON(f *testing.F) {
	seeds := []struct {
		rule, repo, role, acct, action string
	}{
		{`{"priority":10,"effect":"allow","actions":["registry:pull"],"repositories":["production/*"],"enabled":true}`, "production/app", "user", "system", "registry:pull"},
		{`{"priority":1,"effect":"deny","roles":["user"],"actions":["registry:push","registry:delete"],"repositories":["*/*"],"enabled":true}`, "team/app", "user", "human", "registry:push"},
		{`{"priority":5,"effect":"allow","account_types":["human"],"subject_uuid":"u-1","actions":["registry:catalog"],"enabled":true}`, "", "guest", "human", "registry:catalog"},
		{`{"priority":2,"effect":"allow","actions":["registry:pull"],"repositories":["a/[b-d]?/x"],"enabled":true}`, "a/cz/x", "user", "human", "registry:pull"},
		{`{"priority":0,"effect":"allow","actions":["registry:pull"]}`, "x", "user", "human", "registry:pull"},
		{`{"priority":3,"effect":"allow","actions":["registry:pull"],"repositories":["../etc"]}`, "x", "user", "human", "registry:pull"},
		{`{"priority":3,"effect":"allow","actions":["registry:pull"],"repositories":["[\\"]}`, "x", "user", "human", "registry:pull"},
		{`{"priority":3,"effect":"maybe","actions":["nope"]}`, "", "", "", ""},
		{`not json`, "", "", "", ""},
	}
	for _, s := range seeds {
		f.Add([]byte(s.rule), s.repo, s.role, s.acct, s.action)
	}
	f.Fuzz(func(t *testing.T, data []byte, repo, role, acct, action string) {
		var r Rule
		if err := json.Unmarshal(data, &r); err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate returned %T, want *ValidationError", err)
			}
			return
		}
		for _, p := range r.Repositories {
			if _, err := path.Match(p, repo); err != nil {
				t.Fatalf("valid glob %q fails on %q: %v", p, repo, err)
			}
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back Rule
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("valid rule invalid after a round trip: %v\n%s", err, b)
		}
		r.Enabled = true
		in := Input{Subject: "u-1", AccountType: acct, Roles: []string{role}, Action: Action(action), Repository: repo}
		eng := NewEngine(nil)
		eng.SetRules([]Rule{r})
		gotEff, gotRule := eng.Evaluate(in)
		wantEff, wantRule := Evaluate(in, eng.Rules())
		if gotEff != wantEff || (gotRule == nil) != (wantRule == nil) || (gotRule != nil && gotRule.ID != wantRule.ID) {
			t.Fatalf("engine %v %+v, reference %v %+v for %+v", gotEff, gotRule, wantEff, wantRule, in)
		}
	})
}

// FuzzGlob checks the compiled glob matcher against path.Match for every
// pattern Validate accepts.
func FuzzGlob(f *testing.F) {
	for _, s := range [][2]string{{"production/*", "production/app"}, {"a*", "a/b"}, {"*/*", "x/y"}, {"a/[b-d]?", "a/c1"}, {`a\*`, "a*"}, {"exact/name", "exact/name"}, {"[", "x"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pat, name string) {
		if validateGlob(pat) != "" {
			return
		}
		g := compileGlob(pat)
		want, err := path.Match(pat, name)
		if err != nil {
			t.Fatalf("valid glob %q: %v", pat, err)
		}
		if got := g.match(name); got != want {
			t.Fatalf("compiled %q matches %q = %v, path.Match = %v", pat, name, got, want)
		}
	})
}
