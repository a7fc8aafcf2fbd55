package e2e

// The policy applies to /v1's repository reads exactly as to /v2 pulls
// (issue 13): a repository a caller may not pull is absent from
// GET /v1/repositories (counts and pages included) and 404 on
// GET /v1/repositories/{name}; admins see everything. And a policy change
// whose reload fails answers 500 and is audited.

import (
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// v1RepoNames lists every repository name GET /v1/repositories shows tok,
// following `next` pages of n, and the total of the first page.
func v1RepoNames(t *testing.T, srv *mcrtest.Server, tok string, n int) ([]string, int) {
	t.Helper()
	var names []string
	total, last := -1, ""
	for range 100 {
		q := url.Values{"n": {fmt.Sprint(n)}}
		if last != "" {
			q.Set("last", last)
		}
		status, obj, raw := polAPI(t, srv, http.MethodGet, "/v1/repositories?"+q.Encode(), tok, nil)
		if status != http.StatusOK {
			t.Fatalf("GET /v1/repositories: %d %s", status, raw)
		}
		if total < 0 {
			n, _ := obj["total"].(float64)
			total = int(n)
		}
		repos, _ := obj["repositories"].([]any)
		for _, r := range repos {
			repo, _ := r.(map[string]any)
			name, _ := repo["name"].(string)
			names = append(names, name)
		}
		next, _ := obj["next"].(string)
		if next == "" {
			return names, total
		}
		last = next
	}
	t.Fatal("GET /v1/repositories: more than 100 pages")
	return nil, 0
}

func TestV1RepositoriesFollowPolicy(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	srv.AddUser(t, "alice", "alice-password-1", "user", "human")
	srv.AddUser(t, "ci", "ci-password-1", "user", "system")
	adminTok := polAdminSession(t, srv)
	all := []string{"ci/x", "dev/app", "dev/lib", "secret/app", "secret/db"}
	for _, repo := range all {
		polMustPush(t, srv, polAdminToken(t, srv, polPushScope(repo)), repo)
	}
	polCreateRule(t, srv, adminTok, map[string]any{
		"priority": 10, "description": "alice may not read secrets", "effect": "deny",
		"subject_uuid": polSubject(t, srv, "alice"), "actions": []string{"registry:pull"},
		"repositories": []string{"secret/*"},
	})
	alice := srv.Login(t, "alice", "alice-password-1")
	ci := srv.Login(t, "ci", "ci-password-1")

	for _, n := range []int{1, 2, 50} {
		names, total := v1RepoNames(t, srv, alice, n)
		if want := []string{"ci/x", "dev/app", "dev/lib"}; !slices.Equal(names, want) || total != 3 {
			t.Errorf("alice, pages of %d: got %v (total %d), want %v (total 3)", n, names, total, want)
		}
		names, total = v1RepoNames(t, srv, adminTok, n)
		if !slices.Equal(names, all) || total != len(all) {
			t.Errorf("admin, pages of %d: got %v (total %d), want %v", n, names, total, all)
		}
	}
	// Offset paging counts visible repositories only.
	status, obj, raw := polAPI(t, srv, http.MethodGet, "/v1/repositories?n=1&offset=2", alice, nil)
	if repos, _ := obj["repositories"].([]any); status != 200 || len(repos) != 1 || nameOf(repos[0]) != "dev/lib" {
		t.Errorf("alice offset=2: %d %s, want only dev/lib", status, raw)
	}
	// A substring query never reveals a hidden name.
	status, obj, raw = polAPI(t, srv, http.MethodGet, "/v1/repositories?q=secret", alice, nil)
	if repos, _ := obj["repositories"].([]any); status != 200 || len(repos) != 0 || obj["total"] != float64(0) {
		t.Errorf("alice q=secret: %d %s, want no repositories", status, raw)
	}

	status, obj, raw = polAPI(t, srv, http.MethodGet, "/v1/repositories/secret/app", alice, nil)
	polWantAPIError(t, "alice GET secret/app", status, obj, raw, http.StatusNotFound, `"secret/app"`)
	if strings.Contains(raw, "sha256:") {
		t.Errorf("alice GET secret/app leaks digests: %s", raw)
	}
	if status, _, raw := polAPI(t, srv, http.MethodGet, "/v1/repositories/dev/app", alice, nil); status != 200 {
		t.Errorf("alice GET dev/app: %d %s", status, raw)
	}
	if status, _, raw := polAPI(t, srv, http.MethodGet, "/v1/repositories/secret/app", adminTok, nil); status != 200 {
		t.Errorf("admin GET secret/app: %d %s", status, raw)
	}

	// A system account no rule allows anything lists and reads nothing.
	if names, total := v1RepoNames(t, srv, ci, 50); len(names) != 0 || total != 0 {
		t.Errorf("system account without rules lists %v (total %d), want nothing", names, total)
	}
	for _, repo := range all {
		status, obj, raw := polAPI(t, srv, http.MethodGet, "/v1/repositories/"+repo, ci, nil)
		polWantAPIError(t, "ci GET "+repo, status, obj, raw, http.StatusNotFound, "not found")
	}
	// Granted pull on ci/*, it sees exactly that.
	polCreateRule(t, srv, adminTok, map[string]any{
		"priority": 20, "description": "ci reads ci/*", "effect": "allow",
		"subject_uuid": polSubject(t, srv, "ci"), "actions": []string{"registry:pull"}, "repositories": []string{"ci/*"},
	})
	if names, total := v1RepoNames(t, srv, ci, 50); !slices.Equal(names, []string{"ci/x"}) || total != 1 {
		t.Errorf("system account allowed ci/*: lists %v (total %d), want [ci/x]", names, total)
	}
}

// A rule change the engine cannot reload (here: another, hand-corrupted
// row the store cannot read) is stored, but answers 500 and is audited as
// policy_reload_failed, because the server keeps enforcing the old rules.
func TestPolicyReloadFailureAnswers500(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	adminTok := polAdminSession(t, srv)
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(srv.Dir, "mcr.db")+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	}()
	if _, err := db.Exec(`INSERT INTO policy_rules(priority, description, effect, rule_json, enabled, created_by, created_at, updated_by, updated_at)
		VALUES (50, 'corrupt', 'allow', '{not json', 1, 'test', '2026-01-01T00:00:00Z', 'test', '2026-01-01T00:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	status, obj, raw := polAPI(t, srv, http.MethodPost, "/v1/policy/rules", adminTok, map[string]any{
		"priority": 10, "description": "dev readers", "effect": "allow", "roles": []string{"user"},
		"actions": []string{"registry:pull"}, "repositories": []string{"dev/*"},
	})
	polWantAPIError(t, "create rule with a failing reload", status, obj, raw, http.StatusInternalServerError,
		"reloading the policy failed", "previous rules are still enforced")
	if strings.Contains(raw, srv.Dir) {
		t.Errorf("error names a server path: %s", raw)
	}
	status, obj, raw = polAPI(t, srv, http.MethodGet, "/v1/audit?event_type=policy_reload_failed", adminTok, nil)
	evs, _ := obj["events"].([]any)
	if status != 200 || len(evs) != 1 {
		t.Fatalf("audit policy_reload_failed: %d %s, want one event", status, raw)
	}
	ev, _ := evs[0].(map[string]any)
	if d, _ := ev["details"].(map[string]any); d["change"] != "policy_rule_created" || d["error"] == "" {
		t.Errorf("policy_reload_failed details: %v", d)
	}
	if status, obj, raw = polAPI(t, srv, http.MethodGet, "/v1/audit?event_type=policy_rule_created", adminTok, nil); status != 200 || len(asList(obj["events"])) != 1 {
		t.Errorf("audit policy_rule_created: %d %s, want the stored change recorded", status, raw)
	}
	// Repaired, the next change reloads and answers 2xx.
	if _, err := db.Exec(`DELETE FROM policy_rules WHERE description = 'corrupt'`); err != nil {
		t.Fatal(err)
	}
	polCreateRule(t, srv, adminTok, map[string]any{"priority": 11, "effect": "allow", "roles": []string{"user"},
		"actions": []string{"registry:pull"}, "repositories": []string{"ops/*"}})
}

// nameOf is the "name" of a decoded JSON object ("" if it has none).
func nameOf(v any) string {
	m, _ := v.(map[string]any)
	s, _ := m["name"].(string)
	return s
}

// asList is a decoded JSON array (nil if v is not one).
func asList(v any) []any {
	l, _ := v.([]any)
	return l
}
