package authplugin

import (
	"reflect"
	"testing"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/authplugin/token"
	"git.wntrmute.dev/kyle/mcr/policyplugin"
)

func TestGrantFiltersByPolicy(t *testing.T) {
	eng := policyplugin.NewEngine(nil)
	eng.SetRules([]policyplugin.Rule{
		{ID: 1, Priority: 1, Effect: policyplugin.EffectDeny, Roles: []string{"user"},
			Actions: []policyplugin.Action{policyplugin.ActionPush}, Repositories: []string{"production/*"}, Enabled: true},
		{ID: 2, Priority: 2, Effect: policyplugin.EffectAllow, AccountTypes: []string{"system"},
			Actions: []policyplugin.Action{policyplugin.ActionPull}, Repositories: []string{"ci/*"}, Enabled: true},
	})
	ci := &identity.Principal{Subject: "s", Username: "ci", AccountType: identity.AccountSystem, Roles: []string{identity.RoleUser}}
	admin := &identity.Principal{Subject: "a", Username: "root", AccountType: identity.AccountHuman, Roles: []string{identity.RoleAdmin}}
	guest := &identity.Principal{Subject: "g", Username: "g", AccountType: identity.AccountHuman, Roles: []string{identity.RoleGuest}}
	cases := []struct {
		name   string
		p      *identity.Principal
		scopes []token.Scope
		want   []token.AccessEntry
	}{
		{"user pull+push dev", alice, []token.Scope{{Type: "repository", Name: "dev/app", Actions: []string{"pull", "push"}}},
			[]token.AccessEntry{{Type: "repository", Name: "dev/app", Actions: []string{"pull", "push"}}}},
		{"user push production denied", alice, []token.Scope{{Type: "repository", Name: "production/app", Actions: []string{"pull", "push"}}},
			[]token.AccessEntry{{Type: "repository", Name: "production/app", Actions: []string{"pull"}}}},
		{"admin bypasses deny", admin, []token.Scope{{Type: "repository", Name: "production/app", Actions: []string{"push"}}},
			[]token.AccessEntry{{Type: "repository", Name: "production/app", Actions: []string{"push"}}}},
		{"system pull only", ci, []token.Scope{{Type: "repository", Name: "ci/x", Actions: []string{"pull", "push"}}},
			[]token.AccessEntry{{Type: "repository", Name: "ci/x", Actions: []string{"pull"}}}},
		{"system elsewhere nothing", ci, []token.Scope{{Type: "repository", Name: "dev/x", Actions: []string{"pull"}}}, []token.AccessEntry{}},
		{"star expands", alice, []token.Scope{{Type: "repository", Name: "dev/x", Actions: []string{"*"}}},
			[]token.AccessEntry{{Type: "repository", Name: "dev/x", Actions: []string{"pull", "push", "delete"}}}},
		{"catalog user", alice, []token.Scope{{Type: "registry", Name: "catalog", Actions: []string{"*"}}},
			[]token.AccessEntry{{Type: "registry", Name: "catalog", Actions: []string{"*"}}}},
		{"guest nothing", guest, []token.Scope{{Type: "repository", Name: "dev/x", Actions: []string{"pull"}}}, []token.AccessEntry{}},
		{"unknown type ignored", alice, []token.Scope{{Type: "plugin", Name: "x", Actions: []string{"pull"}}}, []token.AccessEntry{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Grant(eng, tc.p, tc.scopes)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
