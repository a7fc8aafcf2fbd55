package policyplugin

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
)

func TestActions(t *testing.T) {
	all := AllActions()
	want := []Action{"registry:version_check", "registry:pull", "registry:push",
		"registry:delete", "registry:catalog", "policy:manage"}
	if !slices.Equal(all, want) {
		t.Fatalf("AllActions() = %v, want %v", all, want)
	}
	if len(all) != numActions {
		t.Fatalf("numActions = %d, AllActions has %d", numActions, len(all))
	}
	seen := map[int]bool{}
	for _, a := range all {
		i := actionIndex(a)
		if i < 0 || i >= numActions || seen[i] {
			t.Errorf("actionIndex(%s) = %d", a, i)
		}
		seen[i] = true
		got, err := ParseAction(string(a))
		if err != nil || got != a {
			t.Errorf("ParseAction(%q) = %q, %v", a, got, err)
		}
	}
	all[0] = "x"
	if AllActions()[0] != ActionVersionCheck {
		t.Error("AllActions shares its backing array")
	}
	for _, bad := range []string{"", "pull", "registry:Pull", "registry:*"} {
		if _, err := ParseAction(bad); err == nil {
			t.Errorf("ParseAction(%q) succeeded", bad)
		}
	}
	for _, s := range []string{"allow", "deny"} {
		if e, err := ParseEffect(s); err != nil || string(e) != s {
			t.Errorf("ParseEffect(%q) = %q, %v", s, e, err)
		}
	}
	if _, err := ParseEffect("permit"); err == nil {
		t.Error("ParseEffect(permit) succeeded")
	}
}

func TestActionFor(t *testing.T) {
	tests := []struct {
		typ, name, action string
		want              Action
		wantRepo          string
		ok                bool
	}{
		{"repository", "library/alpine", "pull", ActionPull, "library/alpine", true},
		{"repository", "a/b/c", "push", ActionPush, "a/b/c", true},
		{"repository", "myapp", "delete", ActionDelete, "myapp", true},
		{"repository", "myapp", "*", "", "", false},
		{"repository", "myapp", "PULL", "", "", false},
		{"repository", "myapp", "", "", "", false},
		{"repository", "", "pull", "", "", false},
		{"registry", "catalog", "*", ActionCatalog, "", true},
		{"registry", "catalog", "pull", "", "", false},
		{"registry", "other", "*", "", "", false},
		{"repository(plugin)", "x", "pull", "", "", false},
		{"", "", "", "", "", false},
	}
	for _, tc := range tests {
		a, repo, ok := ActionFor(tc.typ, tc.name, tc.action)
		if a != tc.want || repo != tc.wantRepo || ok != tc.ok {
			t.Errorf("ActionFor(%q, %q, %q) = (%q, %q, %v), want (%q, %q, %v)",
				tc.typ, tc.name, tc.action, a, repo, ok, tc.want, tc.wantRepo, tc.ok)
		}
	}
}

func TestRuleJSON(t *testing.T) {
	r := Rule{ID: 7, Priority: 3, Description: "d", Effect: EffectDeny, Roles: []string{RoleUser},
		AccountTypes: []string{AccountTypeHuman}, SubjectUUID: "u", Actions: []Action{ActionPush},
		Repositories: []string{"a/*"}, Enabled: true}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "priority", "description", "effect", "roles", "account_types",
		"subject_uuid", "actions", "repositories", "enabled"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON %s lacks key %q", b, k)
		}
	}
	if len(m) != 10 {
		t.Errorf("JSON %s has %d keys, want 10", b, len(m))
	}
	var back Rule
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, r) {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}
