package authplugin

import (
	"reflect"
	"testing"

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
	ci := &Principal{Subject: "s", Username: "ci", AccountType: AccountSystem, Roles: []string{RoleUser}}
	admin := &Principal{Subject: "a", Username: "root", AccountType: AccountHuman, Roles: []string{RoleAdmin}}
	guest := &Principal{Subject: "g", Username: "g", AccountType: AccountHuman, Roles: []string{RoleGuest}}
	cases := []struct {
		name   string
		p      *Principal
		scopes []Scope
		want   []AccessEntry
	}{
		{"user pull+push dev", alice, []Scope{{"repository", "dev/app", []string{"pull", "push"}}},
			[]AccessEntry{{"repository", "dev/app", []string{"pull", "push"}}}},
		{"user push production denied", alice, []Scope{{"repository", "production/app", []string{"pull", "push"}}},
			[]AccessEntry{{"repository", "production/app", []string{"pull"}}}},
		{"admin bypasses deny", admin, []Scope{{"repository", "production/app", []string{"push"}}},
			[]AccessEntry{{"repository", "production/app", []string{"push"}}}},
		{"system pull only", ci, []Scope{{"repository", "ci/x", []string{"pull", "push"}}},
			[]AccessEntry{{"repository", "ci/x", []string{"pull"}}}},
		{"system elsewhere nothing", ci, []Scope{{"repository", "dev/x", []string{"pull"}}}, []AccessEntry{}},
		{"star expands", alice, []Scope{{"repository", "dev/x", []string{"*"}}},
			[]AccessEntry{{"repository", "dev/x", []string{"pull", "push", "delete"}}}},
		{"catalog user", alice, []Scope{{"registry", "catalog", []string{"*"}}},
			[]AccessEntry{{"registry", "catalog", []string{"*"}}}},
		{"guest nothing", guest, []Scope{{"repository", "dev/x", []string{"pull"}}}, []AccessEntry{}},
		{"unknown type ignored", alice, []Scope{{"plugin", "x", []string{"pull"}}}, []AccessEntry{}},
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
