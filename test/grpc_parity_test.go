package e2e

// Parity of the two transports of the admin API: every gRPC RPC against
// the /v1 endpoint it mirrors, on the same server, for the same caller:
// the same data (the gRPC answer, converted by grpcclient to the /v1 wire
// types, equals the /v1 JSON decoded into them) and the same errors (the
// gRPC code maps to the /v1 status, the messages are equal).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"git.wntrmute.dev/kyle/mcr/adminapi/apitypes"
	"git.wntrmute.dev/kyle/mcr/grpcclient"
	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// restCall is one /v1 request.
type restCall struct {
	body                any
	method, path, token string
}

// restAnswer is a /v1 answer: status, decoded body or error message.
func restDo(t *testing.T, srv *mcrtest.Server, c restCall, out any) (int, string) {
	t.Helper()
	var rd io.Reader
	if c.body != nil {
		b, err := json.Marshal(c.body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(c.method, srv.URL+c.path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		var e apitypes.Error
		if err := json.Unmarshal(raw, &e); err != nil || e.Error == "" {
			t.Errorf("%s %s: %d without {\"error\"}: %s", c.method, c.path, resp.StatusCode, raw)
		}
		return resp.StatusCode, e.Error
	}
	if out != nil && len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", c.method, c.path, err, raw)
		}
	}
	return resp.StatusCode, ""
}

// same compares one RPC with its endpoint. rpc fills got; the endpoint's
// JSON is decoded into want (a pointer of the same type). norm, when set,
// clears fields that differ by nature between two calls (ids, times of
// objects each call creates).
func same[T any](t *testing.T, what string, srv *mcrtest.Server, rest restCall, wantStatus int, rpc func() (T, error), norm func(*T)) {
	t.Helper()
	var fromREST T
	status, restMsg := restDo(t, srv, rest, &fromREST)
	fromGRPC, err := rpc()
	if status != wantStatus {
		t.Errorf("%s: /v1 %s %s answered %d (%s), want %d", what, rest.method, rest.path, status, restMsg, wantStatus)
		return
	}
	if status >= 300 {
		var ge *grpcclient.Error
		if !errors.As(err, &ge) {
			t.Errorf("%s: /v1 answered %d %q, gRPC answered %v", what, status, restMsg, err)
			return
		}
		if ge.HTTPStatus() != status || ge.Message != restMsg {
			t.Errorf("%s: /v1 %d %q, gRPC %s %q", what, status, restMsg, ge.Code, ge.Message)
		}
		return
	}
	if err != nil {
		t.Errorf("%s: /v1 answered %d, gRPC failed: %v", what, status, err)
		return
	}
	if norm != nil {
		norm(&fromREST)
		norm(&fromGRPC)
	}
	if !reflect.DeepEqual(fromREST, fromGRPC) {
		a, _ := json.Marshal(fromREST)
		b, _ := json.Marshal(fromGRPC)
		t.Errorf("%s: data differ\n/v1:  %s\ngRPC: %s", what, a, b)
	}
}

type none struct{}

func TestGRPCParity(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	srv.AddUser(t, "alice", "alice-password-1", "user", "human")
	srv.AddUser(t, "guest", "guest-password-1", "guest", "human")
	admin := polAdminSession(t, srv)
	for _, repo := range []string{"dev/app", "dev/lib", "secret/app", "gone/a", "gone/b"} {
		polMustPush(t, srv, polAdminToken(t, srv, polPushScope(repo)), repo)
	}
	denyID := polCreateRule(t, srv, admin, map[string]any{"priority": 10, "effect": "deny",
		"subject_uuid": polSubject(t, srv, "alice"), "actions": []string{"registry:pull"}, "repositories": []string{"secret/*"}})
	alice := srv.Login(t, "alice", "alice-password-1")
	guest := srv.Login(t, "guest", "guest-password-1")
	gc := srv.GRPCClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// AdminService/Health ↔ GET /v1/health
	type health struct {
		Checks map[string]string `json:"checks"`
		Status string            `json:"status"`
	}
	for _, detail := range []bool{false, true} {
		path := "/v1/health"
		if detail {
			path += "?detail=1"
		}
		same(t, "Health detail="+fmt.Sprint(detail), srv, restCall{method: "GET", path: path}, 200, func() (health, error) {
			s, c, err := gc.Health(ctx, detail)
			return health{Status: s, Checks: c}, err
		}, nil)
	}

	// AdminService/Login ↔ POST /v1/auth/login (tokens and expiries differ by nature)
	noTok := func(l *apitypes.LoginResult) { l.Token, l.ExpiresAt = "", "" }
	for _, c := range []struct {
		user, pass string
		status     int
	}{{"alice", "alice-password-1", 200}, {"alice", "wrong-password", 401}, {"", "x", 400}, {"nobody", "x", 401}} {
		same(t, "Login "+c.user, srv, restCall{method: "POST", path: "/v1/auth/login", body: apitypes.LoginRequest{Username: c.user, Password: c.pass}}, c.status,
			func() (apitypes.LoginResult, error) {
				r, err := gc.Login(ctx, c.user, c.pass)
				if r == nil {
					return apitypes.LoginResult{}, err
				}
				return *r, err
			}, noTok)
	}

	// AdminService/Logout ↔ POST /v1/auth/logout
	same(t, "Logout without a token", srv, restCall{method: "POST", path: "/v1/auth/logout"}, 401,
		func() (none, error) { return none{}, gc.Logout(ctx, "") }, nil)
	same(t, "Logout with a bad token", srv, restCall{method: "POST", path: "/v1/auth/logout", token: "garbage"}, 401,
		func() (none, error) { return none{}, gc.Logout(ctx, "garbage") }, nil)
	t1, t2 := srv.Login(t, "alice", "alice-password-1"), srv.Login(t, "alice", "alice-password-1")
	if st, msg := restDo(t, srv, restCall{method: "POST", path: "/v1/auth/logout", token: t1}, nil); st != 204 {
		t.Errorf("/v1 logout: %d %s", st, msg)
	}
	if err := gc.Logout(ctx, t2); err != nil {
		t.Errorf("gRPC Logout: %v", err)
	}
	for _, tok := range []string{t1, t2} {
		same(t, "ListRepositories after logout", srv, restCall{method: "GET", path: "/v1/repositories", token: tok}, 401,
			func() (apitypes.RepoList, error) { return repoListOf(gc.Repositories(ctx, tok, "", "", 0, 0)) }, nil)
	}

	// RegistryService/ListRepositories ↔ GET /v1/repositories
	for _, c := range []struct {
		who, tok, q, last string
		n, offset, status int
	}{
		{"admin", admin, "", "", 0, 0, 200}, {"alice", alice, "", "", 0, 0, 200}, {"alice", alice, "", "", 1, 0, 200},
		{"alice", alice, "", "dev/app", 1, 0, 200}, {"alice", alice, "", "", 1, 1, 200}, {"alice", alice, "secret", "", 0, 0, 200},
		{"admin", admin, "app", "", 0, 0, 200}, {"admin", admin, "", "", 1001, 0, 400}, {"admin", admin, "", "", 0, -1, 400},
		{"guest", guest, "", "", 0, 0, 403}, {"nobody", "", "", "", 0, 0, 401},
	} {
		q := url.Values{}
		for k, v := range map[string]string{"q": c.q, "last": c.last} {
			if v != "" {
				q.Set(k, v)
			}
		}
		if c.n != 0 {
			q.Set("n", fmt.Sprint(c.n))
		}
		if c.offset != 0 {
			q.Set("offset", fmt.Sprint(c.offset))
		}
		same(t, fmt.Sprintf("ListRepositories %s %v", c.who, q), srv, restCall{method: "GET", path: "/v1/repositories?" + q.Encode(), token: c.tok}, c.status,
			func() (apitypes.RepoList, error) {
				return repoListOf(gc.Repositories(ctx, c.tok, c.q, c.last, c.n, c.offset))
			}, nil)
	}

	// RegistryService/GetRepository ↔ GET /v1/repositories/{name}
	for _, c := range []struct {
		who, tok, name string
		status         int
	}{
		{"admin", admin, "dev/app", 200}, {"admin", admin, "secret/app", 200}, {"alice", alice, "dev/app", 200},
		{"alice", alice, "secret/app", 404}, {"admin", admin, "no/such", 404}, {"admin", admin, "bad..name", 400},
		{"guest", guest, "dev/app", 403}, {"nobody", "", "dev/app", 401},
	} {
		same(t, "GetRepository "+c.who+" "+c.name, srv, restCall{method: "GET", path: "/v1/repositories/" + c.name, token: c.tok}, c.status,
			func() (apitypes.RepoDetail, error) {
				d, err := gc.Repository(ctx, c.tok, c.name)
				if d == nil {
					return apitypes.RepoDetail{}, err
				}
				return *d, err
			}, nil)
	}

	// RegistryService/DeleteRepository ↔ DELETE /v1/repositories/{name}
	same(t, "DeleteRepository by a user", srv, restCall{method: "DELETE", path: "/v1/repositories/dev/app", token: alice}, 403,
		func() (none, error) { return none{}, gc.DeleteRepository(ctx, alice, "dev/app") }, nil)
	same(t, "DeleteRepository missing", srv, restCall{method: "DELETE", path: "/v1/repositories/no/such", token: admin}, 404,
		func() (none, error) { return none{}, gc.DeleteRepository(ctx, admin, "no/such") }, nil)
	if st, msg := restDo(t, srv, restCall{method: "DELETE", path: "/v1/repositories/gone/a", token: admin}, nil); st != 204 {
		t.Errorf("/v1 delete gone/a: %d %s", st, msg)
	}
	if err := gc.DeleteRepository(ctx, admin, "gone/b"); err != nil {
		t.Errorf("gRPC DeleteRepository gone/b: %v", err)
	}
	same(t, "ListRepositories after the deletions", srv, restCall{method: "GET", path: "/v1/repositories", token: admin}, 200,
		func() (apitypes.RepoList, error) { return repoListOf(gc.Repositories(ctx, admin, "", "", 0, 0)) }, nil)

	// PolicyService ↔ /v1/policy/rules
	noStamp := func(r *apitypes.PolicyRule) { r.ID, r.CreatedAt, r.UpdatedAt = 0, time.Time{}, time.Time{} }
	rc := apitypes.RuleCreate{Priority: 20, Description: "readers", RuleMatch: apitypes.RuleMatch{Effect: "allow",
		Roles: []string{"user"}, Actions: []string{"registry:pull"}, Repositories: []string{"dev/*"}}}
	var ids []int64
	same(t, "CreatePolicyRule", srv, restCall{method: "POST", path: "/v1/policy/rules", token: admin, body: rc}, 201,
		func() (apitypes.PolicyRule, error) { return ruleOf(gc.CreateRule(ctx, admin, rc)) },
		func(r *apitypes.PolicyRule) { ids = append(ids, r.ID); noStamp(r) })
	bad := rc
	bad.Effect = "maybe"
	same(t, "CreatePolicyRule invalid", srv, restCall{method: "POST", path: "/v1/policy/rules", token: admin, body: bad}, 400,
		func() (apitypes.PolicyRule, error) { return ruleOf(gc.CreateRule(ctx, admin, bad)) }, nil)
	bad = rc
	bad.Actions = []string{"registry:fly"}
	same(t, "CreatePolicyRule unknown action", srv, restCall{method: "POST", path: "/v1/policy/rules", token: admin, body: bad}, 400,
		func() (apitypes.PolicyRule, error) { return ruleOf(gc.CreateRule(ctx, admin, bad)) }, nil)
	same(t, "CreatePolicyRule by a user", srv, restCall{method: "POST", path: "/v1/policy/rules", token: alice, body: rc}, 403,
		func() (apitypes.PolicyRule, error) { return ruleOf(gc.CreateRule(ctx, alice, rc)) }, nil)
	same(t, "ListPolicyRules", srv, restCall{method: "GET", path: "/v1/policy/rules", token: admin}, 200,
		func() (apitypes.RuleList, error) { return ruleListOf(gc.Rules(ctx, admin, 0, 0)) }, nil)
	same(t, "ListPolicyRules page", srv, restCall{method: "GET", path: "/v1/policy/rules?n=1&offset=1", token: admin}, 200,
		func() (apitypes.RuleList, error) { return ruleListOf(gc.Rules(ctx, admin, 1, 1)) }, nil)
	same(t, "ListPolicyRules by a user", srv, restCall{method: "GET", path: "/v1/policy/rules", token: alice}, 403,
		func() (apitypes.RuleList, error) { return ruleListOf(gc.Rules(ctx, alice, 0, 0)) }, nil)
	same(t, "GetPolicyRule", srv, restCall{method: "GET", path: fmt.Sprintf("/v1/policy/rules/%d", denyID), token: admin}, 200,
		func() (apitypes.PolicyRule, error) { return ruleOf(gc.Rule(ctx, admin, denyID)) }, nil)
	same(t, "GetPolicyRule missing", srv, restCall{method: "GET", path: "/v1/policy/rules/999", token: admin}, 404,
		func() (apitypes.PolicyRule, error) { return ruleOf(gc.Rule(ctx, admin, 999)) }, nil)
	same(t, "GetPolicyRule id 0", srv, restCall{method: "GET", path: "/v1/policy/rules/0", token: admin}, 400,
		func() (apitypes.PolicyRule, error) { return ruleOf(gc.Rule(ctx, admin, 0)) }, nil)
	if len(ids) != 2 {
		t.Fatalf("created rules: %v", ids)
	}
	prio, desc, off := 30, "patched", false
	patch := apitypes.RulePatch{Priority: &prio, Description: &desc, Enabled: &off,
		Rule: &apitypes.RuleMatch{Effect: "allow", Roles: []string{"user"}, Actions: []string{"registry:pull", "registry:push"}, Repositories: []string{"dev/*"}}}
	same(t, "UpdatePolicyRule", srv, restCall{method: "PATCH", path: fmt.Sprintf("/v1/policy/rules/%d", ids[0]), token: admin, body: patch}, 200,
		func() (apitypes.PolicyRule, error) { return ruleOf(gc.PatchRule(ctx, admin, ids[1], patch)) }, noStamp)
	same(t, "UpdatePolicyRule missing", srv, restCall{method: "PATCH", path: "/v1/policy/rules/999", token: admin, body: patch}, 404,
		func() (apitypes.PolicyRule, error) { return ruleOf(gc.PatchRule(ctx, admin, 999, patch)) }, nil)
	badPatch := apitypes.RulePatch{Rule: &apitypes.RuleMatch{Effect: "allow", Repositories: []string{"[bad"}}}
	same(t, "UpdatePolicyRule invalid glob", srv, restCall{method: "PATCH", path: fmt.Sprintf("/v1/policy/rules/%d", ids[0]), token: admin, body: badPatch}, 400,
		func() (apitypes.PolicyRule, error) { return ruleOf(gc.PatchRule(ctx, admin, ids[1], badPatch)) }, nil)
	if st, msg := restDo(t, srv, restCall{method: "DELETE", path: fmt.Sprintf("/v1/policy/rules/%d", ids[0]), token: admin}, nil); st != 204 {
		t.Errorf("/v1 delete rule: %d %s", st, msg)
	}
	if err := gc.DeleteRule(ctx, admin, ids[1]); err != nil {
		t.Errorf("gRPC DeletePolicyRule: %v", err)
	}
	same(t, "DeletePolicyRule missing", srv, restCall{method: "DELETE", path: fmt.Sprintf("/v1/policy/rules/%d", ids[0]), token: admin}, 404,
		func() (none, error) { return none{}, gc.DeleteRule(ctx, admin, ids[1]) }, nil)
	same(t, "DeletePolicyRule by a user", srv, restCall{method: "DELETE", path: fmt.Sprintf("/v1/policy/rules/%d", denyID), token: alice}, 403,
		func() (none, error) { return none{}, gc.DeleteRule(ctx, alice, denyID) }, nil)

	// RegistryService GC ↔ /v1/gc, /v1/gc/reconcile, /v1/gc/status
	same(t, "GarbageCollect by a user", srv, restCall{method: "POST", path: "/v1/gc", token: alice}, 403,
		func() (none, error) {
			_, err := gc.StartGC(ctx, alice, false, apitypes.GCRequest{})
			return none{}, err
		}, nil)
	same(t, "GarbageCollect bad grace", srv, restCall{method: "POST", path: "/v1/gc", token: admin, body: apitypes.GCRequest{Grace: "soon"}}, 400,
		func() (none, error) {
			_, err := gc.StartGC(ctx, admin, false, apitypes.GCRequest{Grace: "soon"})
			return none{}, err
		}, nil)
	same(t, "Reconcile by a user", srv, restCall{method: "POST", path: "/v1/gc/reconcile", token: alice}, 403,
		func() (none, error) { _, err := gc.StartGC(ctx, alice, true, apitypes.GCRequest{}); return none{}, err }, nil)
	same(t, "GetGCStatus by a user", srv, restCall{method: "GET", path: "/v1/gc/status", token: alice}, 403,
		func() (apitypes.GCStatus, error) { return gcStatusOf(gc.GCStatus(ctx, alice)) }, nil)
	same(t, "GetGCStatus before any run", srv, restCall{method: "GET", path: "/v1/gc/status", token: admin}, 200,
		func() (apitypes.GCStatus, error) { return gcStatusOf(gc.GCStatus(ctx, admin)) }, nil)
	for _, reconcile := range []bool{false, true} {
		id, err := gc.StartGC(ctx, admin, reconcile, apitypes.GCRequest{DryRun: true})
		if err != nil {
			t.Fatalf("StartGC reconcile=%v: %v", reconcile, err)
		}
		gcWaitGRPC(t, gc, admin, id)
		same(t, fmt.Sprintf("GetGCStatus after run %d", id), srv, restCall{method: "GET", path: "/v1/gc/status", token: admin}, 200,
			func() (apitypes.GCStatus, error) { return gcStatusOf(gc.GCStatus(ctx, admin)) }, nil)
		path := "/v1/gc"
		if reconcile {
			path += "/reconcile"
		}
		var started apitypes.GCStarted
		if st, msg := restDo(t, srv, restCall{method: "POST", path: path, token: admin, body: apitypes.GCRequest{DryRun: true}}, &started); st != 202 {
			t.Fatalf("POST %s: %d %s", path, st, msg)
		}
		gcWaitGRPC(t, gc, admin, started.ID)
	}

	// RegistryService/Snapshot ↔ POST /v1/snapshot (each writes its own file)
	same(t, "Snapshot by a user", srv, restCall{method: "POST", path: "/v1/snapshot", token: alice}, 403,
		func() (apitypes.SnapshotCreated, error) {
			p, err := gc.Snapshot(ctx, alice)
			return apitypes.SnapshotCreated{Path: p}, err
		}, nil)
	same(t, "Snapshot", srv, restCall{method: "POST", path: "/v1/snapshot", token: admin}, 201,
		func() (apitypes.SnapshotCreated, error) {
			p, err := gc.Snapshot(ctx, admin)
			return apitypes.SnapshotCreated{Path: p}, err
		},
		func(s *apitypes.SnapshotCreated) {
			if !strings.Contains(s.Path, "backups") {
				t.Errorf("snapshot path %q", s.Path)
			}
			s.Path = ""
		})

	// RegistryService/ListUploads, PurgeUploads, ReconcileIndex ↔
	// /v1/uploads, /v1/uploads/purge, /v1/index/reconcile
	noAge := func(l *apitypes.UploadList) {
		for i := range l.Uploads {
			l.Uploads[i].AgeSeconds = 0
		}
	}
	same(t, "ListUploads by a user", srv, restCall{method: "GET", path: "/v1/uploads", token: alice}, 403,
		func() (apitypes.UploadList, error) { return deref(gc.Uploads(ctx, alice)) }, nil)
	same(t, "ListUploads", srv, restCall{method: "GET", path: "/v1/uploads", token: admin}, 200,
		func() (apitypes.UploadList, error) { return deref(gc.Uploads(ctx, admin)) }, noAge)
	same(t, "PurgeUploads without older_than", srv, restCall{method: "POST", path: "/v1/uploads/purge", token: admin, body: apitypes.UploadPurgeRequest{}}, 400,
		func() (apitypes.UploadPurged, error) { return deref(gc.PurgeUploads(ctx, admin, "")) }, nil)
	same(t, "PurgeUploads with a bad duration", srv, restCall{method: "POST", path: "/v1/uploads/purge", token: admin, body: apitypes.UploadPurgeRequest{OlderThan: "soon"}}, 400,
		func() (apitypes.UploadPurged, error) { return deref(gc.PurgeUploads(ctx, admin, "soon")) }, nil)
	same(t, "PurgeUploads by a user", srv, restCall{method: "POST", path: "/v1/uploads/purge", token: alice, body: apitypes.UploadPurgeRequest{OlderThan: "240h"}}, 403,
		func() (apitypes.UploadPurged, error) { return deref(gc.PurgeUploads(ctx, alice, "240h")) }, nil)
	same(t, "PurgeUploads", srv, restCall{method: "POST", path: "/v1/uploads/purge", token: admin, body: apitypes.UploadPurgeRequest{OlderThan: "240h"}}, 200,
		func() (apitypes.UploadPurged, error) { return deref(gc.PurgeUploads(ctx, admin, "240h")) }, nil)
	same(t, "ReconcileIndex by a user", srv, restCall{method: "POST", path: "/v1/index/reconcile", token: alice}, 403,
		func() (map[string]any, error) { return gc.ReconcileIndex(ctx, alice) }, nil)
	same(t, "ReconcileIndex", srv, restCall{method: "POST", path: "/v1/index/reconcile", token: admin}, 200,
		func() (map[string]any, error) { return gc.ReconcileIndex(ctx, admin) }, nil)

	// AuditService/ListAuditEvents ↔ GET /v1/audit
	var first apitypes.AuditPage
	restDo(t, srv, restCall{method: "GET", path: "/v1/audit?n=3", token: admin}, &first)
	before := int64(0)
	if first.Next != "" {
		if _, err := fmt.Sscan(first.Next, &before); err != nil {
			t.Fatalf("audit next cursor %q: %v", first.Next, err)
		}
	}
	for _, c := range []struct {
		q      grpcclient.AuditQuery
		status int
	}{
		{grpcclient.AuditQuery{N: 3}, 200}, {grpcclient.AuditQuery{N: 3, Before: before}, 200},
		{grpcclient.AuditQuery{EventType: "policy_rule_created"}, 200}, {grpcclient.AuditQuery{Repository: "dev/app"}, 200},
		{grpcclient.AuditQuery{ActorID: polSubject(t, srv, "alice")}, 200}, {grpcclient.AuditQuery{Since: "2020-01-01", N: 5, Offset: 2}, 200},
		{grpcclient.AuditQuery{Until: "2020-01-01"}, 200}, {grpcclient.AuditQuery{EventType: "bogus"}, 400},
		{grpcclient.AuditQuery{Since: "yesterday"}, 400}, {grpcclient.AuditQuery{Since: "2026-02-02", Until: "2026-01-01"}, 400},
		{grpcclient.AuditQuery{N: 5000}, 400},
	} {
		q := url.Values{}
		for k, v := range map[string]string{"event_type": c.q.EventType, "actor_id": c.q.ActorID, "repository": c.q.Repository, "since": c.q.Since, "until": c.q.Until} {
			if v != "" {
				q.Set(k, v)
			}
		}
		for k, v := range map[string]int64{"before": c.q.Before, "n": int64(c.q.N), "offset": int64(c.q.Offset)} {
			if v != 0 {
				q.Set(k, fmt.Sprint(v))
			}
		}
		same(t, "ListAuditEvents "+q.Encode(), srv, restCall{method: "GET", path: "/v1/audit?" + q.Encode(), token: admin}, c.status,
			func() (apitypes.AuditPage, error) { return auditPageOf(gc.Audit(ctx, admin, c.q)) }, nil)
	}
	same(t, "ListAuditEvents by a user", srv, restCall{method: "GET", path: "/v1/audit", token: alice}, 403,
		func() (apitypes.AuditPage, error) { return auditPageOf(gc.Audit(ctx, alice, grpcclient.AuditQuery{})) }, nil)

	// AdminService/UnlockAccount, RevokeAccount ↔ POST /v1/accounts/{name}/unlock, /revoke
	same(t, "UnlockAccount by a user", srv, restCall{method: "POST", path: "/v1/accounts/guest/unlock", token: alice}, 403,
		func() (apitypes.AccountUnlocked, error) { return deref(gc.UnlockAccount(ctx, alice, "guest")) }, nil)
	same(t, "UnlockAccount without failures", srv, restCall{method: "POST", path: "/v1/accounts/guest/unlock", token: admin}, 200,
		func() (apitypes.AccountUnlocked, error) { return deref(gc.UnlockAccount(ctx, admin, "guest")) }, nil)
	long := strings.Repeat("x", 300)
	same(t, "UnlockAccount with a long name", srv, restCall{method: "POST", path: "/v1/accounts/" + long + "/unlock", token: admin}, 400,
		func() (apitypes.AccountUnlocked, error) { return deref(gc.UnlockAccount(ctx, admin, long)) }, nil)
	same(t, "RevokeAccount by a user", srv, restCall{method: "POST", path: "/v1/accounts/alice/revoke", token: alice}, 403,
		func() (apitypes.TokensRevoked, error) { return deref(gc.RevokeAccount(ctx, alice, "alice", "")) }, nil)
	same(t, "RevokeAccount unknown", srv, restCall{method: "POST", path: "/v1/accounts/nobody/revoke", token: admin}, 404,
		func() (apitypes.TokensRevoked, error) { return deref(gc.RevokeAccount(ctx, admin, "nobody", "")) }, nil)
	// Last: it ends alice's sessions.
	same(t, "RevokeAccount", srv, restCall{method: "POST", path: "/v1/accounts/alice/revoke", token: admin}, 200,
		func() (apitypes.TokensRevoked, error) { return deref(gc.RevokeAccount(ctx, admin, "alice", "")) }, nil)
	same(t, "ListRepositories after RevokeAccount", srv, restCall{method: "GET", path: "/v1/repositories", token: alice}, 401,
		func() (apitypes.RepoList, error) { return repoListOf(gc.Repositories(ctx, alice, "", "", 0, 0)) }, nil)
}

func deref[T any](v *T, err error) (T, error) {
	if v == nil {
		var zero T
		return zero, err
	}
	return *v, err
}

func repoListOf(v *apitypes.RepoList, err error) (apitypes.RepoList, error)    { return deref(v, err) }
func ruleOf(v *apitypes.PolicyRule, err error) (apitypes.PolicyRule, error)    { return deref(v, err) }
func ruleListOf(v *apitypes.RuleList, err error) (apitypes.RuleList, error)    { return deref(v, err) }
func gcStatusOf(v *apitypes.GCStatus, err error) (apitypes.GCStatus, error)    { return deref(v, err) }
func auditPageOf(v *apitypes.AuditPage, err error) (apitypes.AuditPage, error) { return deref(v, err) }

// gcWaitGRPC polls GetGCStatus until run id has completed and the runner
// is idle (it records the completion a moment before it lets go).
func gcWaitGRPC(t *testing.T, gc *grpcclient.Client, token string, id int64) *apitypes.GCRun {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		st, err := gc.GCStatus(context.Background(), token)
		if err != nil {
			t.Fatal(err)
		}
		if r := st.LastRun; r != nil && r.ID == id && r.Completed != nil && !st.Running {
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("gc run %d did not complete", id)
	return nil
}
