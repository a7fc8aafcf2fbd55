package policyplugin

import (
	"errors"
	"strings"
	"testing"
)

func TestRuleValidate(t *testing.T) {
	valid := func() Rule {
		return Rule{ID: 1, Priority: 10, Description: "ci", Effect: EffectAllow,
			Roles: []string{RoleUser}, AccountTypes: []string{AccountTypeSystem},
			SubjectUUID: "6f1c0d5e-0000-4000-8000-0000000000aa",
			Actions:     []Action{ActionPull, ActionPush}, Repositories: []string{"ci/*", "team[0-9]/app?"}, Enabled: true}
	}
	tests := []struct {
		name      string
		mutate    func(r *Rule)
		wantField string // "" = valid
		wantMsg   string // substring of the message
	}{
		{"valid", func(*Rule) {}, "", ""},
		{"valid minimal", func(r *Rule) { r.Roles, r.AccountTypes, r.SubjectUUID, r.Repositories = nil, nil, "", nil }, "", ""},
		{"valid deny", func(r *Rule) { r.Effect = EffectDeny }, "", ""},
		{"priority zero", func(r *Rule) { r.Priority = 0 }, "priority", "must be >= 1"},
		{"priority negative", func(r *Rule) { r.Priority = -5 }, "priority", "must be >= 1"},
		{"effect empty", func(r *Rule) { r.Effect = "" }, "effect", `must be "allow" or "deny"`},
		{"effect unknown", func(r *Rule) { r.Effect = "Allow" }, "effect", `"Allow"`},
		{"actions empty", func(r *Rule) { r.Actions = nil }, "actions", "must not be empty"},
		{"actions unknown", func(r *Rule) { r.Actions = []Action{ActionPull, "registry:bogus"} }, "actions", `"registry:bogus"`},
		{"roles unknown", func(r *Rule) { r.Roles = []string{"superuser"} }, "roles", `"superuser"`},
		{"roles empty string", func(r *Rule) { r.Roles = []string{""} }, "roles", "unknown role"},
		{"account type unknown", func(r *Rule) { r.AccountTypes = []string{"robot"} }, "account_types", `"robot"`},
		{"repo empty string", func(r *Rule) { r.Repositories = []string{"ok", ""} }, "repositories", "must not be empty"},
		{"repo leading slash", func(r *Rule) { r.Repositories = []string{"/abs/*"} }, "repositories", "must not start with '/'"},
		{"repo dotdot", func(r *Rule) { r.Repositories = []string{"a/../b"} }, "repositories", `".." segments`},
		{"repo dotdot only", func(r *Rule) { r.Repositories = []string{".."} }, "repositories", `".." segments`},
		{"repo dotdot trailing", func(r *Rule) { r.Repositories = []string{"a/.."} }, "repositories", `".." segments`},
		{"repo dots in name ok", func(r *Rule) { r.Repositories = []string{"a..b/c"} }, "", ""},
		{"repo bad glob", func(r *Rule) { r.Repositories = []string{"team[0-9"} }, "repositories", "malformed glob"},
		{"repo bad escape", func(r *Rule) { r.Repositories = []string{`team\`} }, "repositories", "malformed glob"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := valid()
			tc.mutate(&r)
			err := r.Validate()
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate() = %v (%T), want *ValidationError", err, err)
			}
			if ve.Field != tc.wantField || !strings.Contains(ve.Message, tc.wantMsg) {
				t.Errorf("got {%q, %q}, want field %q with message containing %q", ve.Field, ve.Message, tc.wantField, tc.wantMsg)
			}
			if !strings.HasPrefix(err.Error(), tc.wantField+": ") {
				t.Errorf("Error() = %q, want it to start with %q", err.Error(), tc.wantField+": ")
			}
		})
	}

	r := valid()
	r.Priority = 0
	if got := r.Validate().Error(); got != "priority: must be >= 1" {
		t.Errorf("Error() = %q", got)
	}
}
