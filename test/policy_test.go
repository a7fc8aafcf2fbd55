package e2e

// End-to-end tests of the policy engine (DESIGN §4–§6, issue 3): real
// mcrsrv processes over TLS, real registry tokens from /v2/token, rules
// managed through /v1/policy/rules.
//
// Images are pushed with the plain OCI distribution API (monolithic blob
// uploads and an OCI manifest) so every step's status code and error body
// can be checked.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

const (
	polOCIManifest = "application/vnd.oci.image.manifest.v1+json"
	polOCIConfig   = "application/vnd.oci.image.config.v1+json"
	polOCILayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// ---- registry (/v2) helpers ------------------------------------------------

// polResult is a response with its body read.
type polResult struct {
	Header http.Header
	Body   string
	Step   string // which step of a push produced it
	Status int
}

func (r polResult) String() string {
	return fmt.Sprintf("%s: %d %s", r.Step, r.Status, strings.TrimSpace(r.Body))
}

func polDo(t *testing.T, srv *mcrtest.Server, method, rawURL, token string, body []byte, header ...string) polResult {
	t.Helper()
	if strings.HasPrefix(rawURL, "/") {
		rawURL = srv.URL + rawURL
	}
	req, err := http.NewRequest(method, rawURL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return polResult{Status: resp.StatusCode, Header: resp.Header, Body: string(b), Step: method + " " + req.URL.Path}
}

func polDigest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func polRandom(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// polImage is a random single-layer OCI image.
type polImage struct {
	config, layer, manifest []byte
}

func polNewImage(t *testing.T) polImage {
	t.Helper()
	layer := polRandom(t, 2048)
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{polDigest(layer)}},
		"config":       map[string]any{"Labels": map[string]string{"nonce": hex.EncodeToString(polRandom(t, 8))}},
	})
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     polOCIManifest,
		"config":        map[string]any{"mediaType": polOCIConfig, "digest": polDigest(config), "size": len(config)},
		"layers":        []any{map[string]any{"mediaType": polOCILayer, "digest": polDigest(layer), "size": len(layer)}},
	})
	return polImage{config: config, layer: layer, manifest: manifest}
}

// polUploadBlob starts an upload session and completes it with one PUT.
func polUploadBlob(t *testing.T, srv *mcrtest.Server, token, repo string, blob []byte) polResult {
	t.Helper()
	r := polDo(t, srv, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", token, nil)
	if r.Status != http.StatusAccepted {
		return r
	}
	loc := r.Header.Get("Location")
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("upload Location %q: %v", loc, err)
	}
	base, _ := url.Parse(srv.URL)
	u = base.ResolveReference(u)
	q := u.Query()
	q.Set("digest", polDigest(blob))
	u.RawQuery = q.Encode()
	return polDo(t, srv, http.MethodPut, u.String(), token, blob, "Content-Type", "application/octet-stream")
}

// polPushImage pushes img as repo:tag and returns the first failing response,
// or the manifest PUT's (201) on success.
func polPushImage(t *testing.T, srv *mcrtest.Server, token, repo, tag string, img polImage) polResult {
	t.Helper()
	for _, blob := range [][]byte{img.layer, img.config} {
		if r := polUploadBlob(t, srv, token, repo, blob); r.Status != http.StatusCreated {
			return r
		}
	}
	return polDo(t, srv, http.MethodPut, "/v2/"+repo+"/manifests/"+tag, token, img.manifest, "Content-Type", polOCIManifest)
}

func polPush(t *testing.T, srv *mcrtest.Server, token, repo string) polResult {
	t.Helper()
	return polPushImage(t, srv, token, repo, "latest", polNewImage(t))
}

func polMustPush(t *testing.T, srv *mcrtest.Server, token, repo string) polImage {
	t.Helper()
	img := polNewImage(t)
	if r := polPushImage(t, srv, token, repo, "latest", img); r.Status != http.StatusCreated {
		t.Fatalf("push %s: want 201, got %s", repo, r)
	}
	return img
}

func polPull(t *testing.T, srv *mcrtest.Server, token, repo, ref string) polResult {
	t.Helper()
	return polDo(t, srv, http.MethodGet, "/v2/"+repo+"/manifests/"+ref, token, nil, "Accept", polOCIManifest)
}

// polWantStatus fails unless r has status want.
func polWantStatus(t *testing.T, what string, r polResult, want int) {
	t.Helper()
	if r.Status != want {
		t.Errorf("%s: want %d, got %s", what, want, r)
	}
}

// polWantDenied checks a 403 with an OCI DENIED error whose message contains
// every string of mention (action and repository).
func polWantDenied(t *testing.T, what string, r polResult, mention ...string) {
	t.Helper()
	if r.Status != http.StatusForbidden {
		t.Errorf("%s: want 403 DENIED, got %s", what, r)
		return
	}
	var body struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal([]byte(r.Body), &body); err != nil || len(body.Errors) == 0 {
		t.Errorf("%s: 403 body is not an OCI error envelope: %q (%v)", what, r.Body, err)
		return
	}
	e := body.Errors[0]
	if e.Code != "DENIED" {
		t.Errorf("%s: want error code DENIED, got %q (%s)", what, e.Code, r.Body)
	}
	for _, m := range mention {
		if !strings.Contains(e.Message, m) {
			t.Errorf("%s: DENIED message %q does not mention %q", what, e.Message, m)
		}
	}
	if h := r.Header.Get("WWW-Authenticate"); h != "" {
		t.Errorf("%s: 403 carries a challenge %q (clients would retry authentication)", what, h)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: 403 Content-Type %q, want application/json", what, ct)
	}
}

// ---- tokens ----------------------------------------------------------------

type polAccess struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

type polClaims struct {
	Subject     string      `json:"sub"`
	Name        string      `json:"name"`
	AccountType string      `json:"account_type"`
	Roles       []string    `json:"roles"`
	Access      []polAccess `json:"access"`
}

// polJWT decodes a JWT's payload without verifying it.
func polJWT(t *testing.T, tok string) polClaims {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token is not a JWT: %q", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	var c polClaims
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("JWT payload %s: %v", raw, err)
	}
	return c
}

// polGranted returns the actions the token's access claim grants on
// typ:name (nil if none).
func polGranted(c polClaims, typ, name string) []string {
	var out []string
	for _, a := range c.Access {
		if a.Type == typ && a.Name == name {
			out = append(out, a.Actions...)
		}
	}
	return out
}

// ---- admin API (/v1) helpers -------------------------------------------------

// polAPI sends body (nil, a string/[]byte sent verbatim, or a value to
// marshal) and returns the status and decoded JSON object.
func polAPI(t *testing.T, srv *mcrtest.Server, method, path, token string, body any) (int, map[string]any, string) {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	var hdr []string
	if raw != nil {
		hdr = []string{"Content-Type", "application/json"}
	}
	r := polDo(t, srv, method, path, token, raw, hdr...)
	var obj map[string]any
	if strings.TrimSpace(r.Body) != "" {
		if err := json.Unmarshal([]byte(r.Body), &obj); err != nil {
			t.Errorf("%s %s: response is not a JSON object: %q", method, path, r.Body)
		}
	}
	return r.Status, obj, r.Body
}

// polWantAPIError checks status and a {"error":"..."} body containing every
// string of mention.
func polWantAPIError(t *testing.T, what string, status int, obj map[string]any, raw string, want int, mention ...string) {
	t.Helper()
	if status != want {
		t.Errorf("%s: want %d, got %d %s", what, want, status, raw)
		return
	}
	msg, ok := obj["error"].(string)
	if !ok || msg == "" {
		t.Errorf("%s: want {\"error\":\"...\"}, got %s", what, raw)
		return
	}
	if len(obj) != 1 {
		t.Errorf("%s: error body has extra fields: %s", what, raw)
	}
	for _, m := range mention {
		if !strings.Contains(msg, m) {
			t.Errorf("%s: error %q does not name %q", what, msg, m)
		}
	}
}

// polCreateRule POSTs a rule and returns its id.
func polCreateRule(t *testing.T, srv *mcrtest.Server, adminTok string, rule any) int64 {
	t.Helper()
	status, obj, raw := polAPI(t, srv, http.MethodPost, "/v1/policy/rules", adminTok, rule)
	if status != http.StatusCreated {
		t.Fatalf("create rule: want 201, got %d %s", status, raw)
	}
	id, ok := obj["id"].(float64)
	if !ok || id < 1 {
		t.Fatalf("create rule: no positive id in %s", raw)
	}
	return int64(id)
}

func polPatchRule(t *testing.T, srv *mcrtest.Server, adminTok string, id int64, patch any) map[string]any {
	t.Helper()
	status, obj, raw := polAPI(t, srv, http.MethodPatch, fmt.Sprintf("/v1/policy/rules/%d", id), adminTok, patch)
	if status != http.StatusOK {
		t.Fatalf("patch rule %d: want 200, got %d %s", id, status, raw)
	}
	return obj
}

func polDeleteRule(t *testing.T, srv *mcrtest.Server, adminTok string, id int64) {
	t.Helper()
	status, _, raw := polAPI(t, srv, http.MethodDelete, fmt.Sprintf("/v1/policy/rules/%d", id), adminTok, nil)
	if status != http.StatusNoContent {
		t.Fatalf("delete rule %d: want 204, got %d %s", id, status, raw)
	}
}

// polSubject returns an account's subject UUID as `mcrsrv user list` shows
// it (the documented way to find the value for subject_uuid).
func polSubject(t *testing.T, srv *mcrtest.Server, username string) string {
	t.Helper()
	out, err := srv.Run(t, "", "user", "list", "--config", srv.ConfigPath)
	if err != nil {
		t.Fatalf("user list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == username {
			return f[3]
		}
	}
	t.Fatalf("user list has no %s:\n%s", username, out)
	return ""
}

func polAdminSession(t *testing.T, srv *mcrtest.Server) string {
	t.Helper()
	return srv.Login(t, "admin", mcrtest.AdminPassword)
}

func polAdminToken(t *testing.T, srv *mcrtest.Server, scopes ...string) string {
	t.Helper()
	return srv.Token(t, "admin", mcrtest.AdminPassword, scopes...)
}

func polPushScope(repo string) string { return "repository:" + repo + ":pull,push" }
func polPullScope(repo string) string { return "repository:" + repo + ":pull" }

const polCatalogScope = "registry:catalog:*"

// ---- tests -------------------------------------------------------------------

// A deny rule on production/* push for role user: the user's push there is
// 403 DENIED (with a token minted before or after the rule), its push to
// dev/app and to production/team/app (`*` does not cross '/') works, its
// pull of production/app works, an admin's push to production/app works,
// and the denial is logged as policy_deny.
func TestPolicyDenyProductionPushForUsers(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	srv.AddUser(t, "alice", "alice-password", "user", "human")
	adminTok := polAdminSession(t, srv)
	scopes := []string{polPushScope("production/app"), polPushScope("dev/app"), polPushScope("production/team/app")}
	before := srv.Token(t, "alice", "alice-password", scopes...)

	ruleID := polCreateRule(t, srv, adminTok, map[string]any{
		"priority":     10,
		"description":  "users may not push to production",
		"effect":       "deny",
		"roles":        []string{"user"},
		"actions":      []string{"registry:push"},
		"repositories": []string{"production/*"},
	})

	// A second matching deny, evaluated later (higher priority number): the
	// outcome is the same, and the log names the first deny in priority order.
	polCreateRule(t, srv, adminTok, map[string]any{
		"priority": 50, "effect": "deny", "roles": []string{"user"},
		"actions": []string{"registry:push"}, "repositories": []string{"production/app"},
	})

	after := srv.Token(t, "alice", "alice-password", scopes...)
	c := polJWT(t, after)
	if got := polGranted(c, "repository", "production/app"); !slices.Equal(got, []string{"pull"}) {
		t.Errorf("token minted after the deny rule: production/app actions %v, want [pull]", got)
	}
	if got := polGranted(c, "repository", "dev/app"); !slices.Equal(got, []string{"pull", "push"}) {
		t.Errorf("token minted after the deny rule: dev/app actions %v, want [pull push]", got)
	}

	polWantDenied(t, "alice push production/app (token minted before the rule)",
		polPush(t, srv, before, "production/app"), "registry:push", "production/app")
	polWantDenied(t, "alice push production/app (token minted after the rule)",
		polPush(t, srv, after, "production/app"), "registry:push", "production/app")
	polWantStatus(t, "alice push dev/app", polPush(t, srv, after, "dev/app"), http.StatusCreated)
	polWantStatus(t, "alice push production/team/app (* does not cross /)",
		polPush(t, srv, after, "production/team/app"), http.StatusCreated)

	admin := polAdminToken(t, srv, polPushScope("production/app"))
	polWantStatus(t, "admin push production/app", polPush(t, srv, admin, "production/app"), http.StatusCreated)
	polWantStatus(t, "alice pull production/app (only push is denied)",
		polPull(t, srv, after, "production/app", "latest"), http.StatusOK)

	// An unauthenticated client still gets the 401 challenge, not 403.
	r := polDo(t, srv, http.MethodPost, "/v2/production/app/blobs/uploads/", "", nil)
	polWantStatus(t, "anonymous push production/app", r, http.StatusUnauthorized)
	if h := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer ") {
		t.Errorf("anonymous push: WWW-Authenticate %q, want a Bearer challenge", h)
	}

	// policy_deny is recorded with who, what and where.
	var denyLine string
	for _, line := range strings.Split(srv.Output.String(), "\n") {
		if strings.Contains(line, "policy_deny") && strings.Contains(line, "repository=production/app") {
			denyLine = line
			break
		}
	}
	if denyLine == "" {
		t.Fatalf("server log has no policy_deny for production/app:\n%s", srv.Output.String())
	}
	for _, want := range []string{"username=alice", "action=registry:push", fmt.Sprintf(" rule=%d ", ruleID)} {
		if !strings.Contains(denyLine, want) {
			t.Errorf("policy_deny log line %q lacks %q", denyLine, want)
		}
	}
	if strings.Contains(srv.Output.String(), before) || strings.Contains(srv.Output.String(), after) {
		t.Error("a registry token appears in the server log")
	}
}

// A system account with one allow rule (pull on ci/*) pulls ci/x and is
// denied push; without the rule (before it exists and after it is deleted)
// it is denied pull too.
func TestPolicySystemAccountPullOnly(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	srv.AddUser(t, "ci", "ci-password-1", "user", "system")
	adminTok := polAdminSession(t, srv)
	img := polMustPush(t, srv, polAdminToken(t, srv, polPushScope("ci/x")), "ci/x")

	// No rule: a system account gets only the version check.
	noRule := srv.Token(t, "ci", "ci-password-1", polPushScope("ci/x"))
	if c := polJWT(t, noRule); len(c.Access) != 0 {
		t.Errorf("system account without rules: token access %+v, want none", c.Access)
	}
	polWantStatus(t, "ci GET /v2/ without rules", polDo(t, srv, http.MethodGet, "/v2/", noRule, nil), http.StatusOK)
	polWantDenied(t, "ci pull ci/x without rules", polPull(t, srv, noRule, "ci/x", "latest"), "registry:pull", "ci/x")
	polWantDenied(t, "ci push ci/x without rules", polPush(t, srv, noRule, "ci/x"), "ci/x")

	ruleID := polCreateRule(t, srv, adminTok, map[string]any{
		"priority":     100,
		"description":  "ci: read-only on ci/*",
		"effect":       "allow",
		"subject_uuid": polSubject(t, srv, "ci"),
		"actions":      []string{"registry:pull"},
		"repositories": []string{"ci/*"},
	})

	tok := srv.Token(t, "ci", "ci-password-1", polPushScope("ci/x"))
	polWantStatus(t, "ci pull ci/x manifest", polPull(t, srv, tok, "ci/x", "latest"), http.StatusOK)
	polWantStatus(t, "ci pull ci/x layer", polDo(t, srv, http.MethodGet, "/v2/ci/x/blobs/"+polDigest(img.layer), tok, nil), http.StatusOK)
	polWantDenied(t, "ci push ci/x", polPush(t, srv, tok, "ci/x"), "registry:push", "ci/x")
	polWantDenied(t, "ci delete ci/x manifest",
		polDo(t, srv, http.MethodDelete, "/v2/ci/x/manifests/"+polDigest(img.manifest), tok, nil), "registry:delete", "ci/x")

	other := srv.Token(t, "ci", "ci-password-1", polPullScope("dev/app"))
	polWantDenied(t, "ci pull dev/app (outside ci/*)", polPull(t, srv, other, "dev/app", "latest"), "registry:pull", "dev/app")

	// Deleting the rule acts on the very next request with the same token.
	polDeleteRule(t, srv, adminTok, ruleID)
	polWantDenied(t, "ci pull ci/x after the rule was deleted", polPull(t, srv, tok, "ci/x", "latest"), "registry:pull", "ci/x")
}

// The token endpoint grants only the requested actions the policy allows.
func TestPolicyTokenGrantsOnlyAllowedActions(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	srv.AddUser(t, "ci", "ci-password-1", "user", "system")
	srv.AddUser(t, "alice", "alice-password", "user", "human")
	srv.AddUser(t, "gus", "guest-password", "guest", "human")
	polCreateRule(t, srv, polAdminSession(t, srv), map[string]any{
		"priority":      100,
		"effect":        "allow",
		"account_types": []string{"system"},
		"actions":       []string{"registry:pull"},
		"repositories":  []string{"ci/*"},
	})

	type tokenBody struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		Scope       string `json:"scope"`
	}
	get := func(user, pass string, scopes ...string) (tokenBody, polClaims) {
		t.Helper()
		q := url.Values{"service": {"mcr"}, "scope": scopes}
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/token?"+q.Encode(), nil)
		req.SetBasicAuth(user, pass)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("token for %s %v: %d %s", user, scopes, resp.StatusCode, b)
		}
		var tb tokenBody
		if err := json.NewDecoder(resp.Body).Decode(&tb); err != nil {
			t.Fatal(err)
		}
		return tb, polJWT(t, tb.Token)
	}

	tb, c := get("ci", "ci-password-1", "repository:ci/x:pull,push")
	if got := polGranted(c, "repository", "ci/x"); !slices.Equal(got, []string{"pull"}) {
		t.Errorf("ci asks ci/x pull,push: granted %v, want [pull] (access claim %+v)", got, c.Access)
	}
	if tb.Scope != "repository:ci/x:pull" {
		t.Errorf("ci asks ci/x pull,push: response scope %q, want %q", tb.Scope, "repository:ci/x:pull")
	}
	if c.AccountType != "system" || !slices.Contains(c.Roles, "user") || c.Name != "ci" || c.Subject == "" {
		t.Errorf("ci token identity claims: %+v", c)
	}

	_, c = get("ci", "ci-password-1", "repository:ci/x:*")
	if got := polGranted(c, "repository", "ci/x"); !slices.Equal(got, []string{"pull"}) {
		t.Errorf("ci asks ci/x:*: granted %v, want [pull]", got)
	}
	_, c = get("ci", "ci-password-1", "repository:ci/x:push", "repository:dev/app:pull", polCatalogScope)
	if len(c.Access) != 0 {
		t.Errorf("ci asks for push, another repo and the catalog: granted %+v, want nothing", c.Access)
	}
	_, c = get("ci", "ci-password-1", "repository:ci/team/x:pull")
	if len(c.Access) != 0 {
		t.Errorf("ci asks ci/team/x (ci/* does not cross /): granted %+v, want nothing", c.Access)
	}

	_, c = get("alice", "alice-password", "repository:ci/x:pull,push,delete", polCatalogScope)
	if got := polGranted(c, "repository", "ci/x"); !slices.Equal(got, []string{"pull", "push", "delete"}) {
		t.Errorf("human user asks ci/x pull,push,delete: granted %v", got)
	}
	if got := polGranted(c, "registry", "catalog"); !slices.Equal(got, []string{"*"}) {
		t.Errorf("human user asks the catalog: granted %v, want [*]", got)
	}
	_, c = get("gus", "guest-password", "repository:ci/x:pull,push", polCatalogScope)
	if len(c.Access) != 0 {
		t.Errorf("guest: granted %+v, want nothing", c.Access)
	}

	// The OAuth2 password grant (POST) filters the same way.
	form := url.Values{"grant_type": {"password"}, "username": {"ci"}, "password": {"ci-password-1"},
		"service": {"mcr"}, "scope": {"repository:ci/x:pull,push"}}
	r := polDo(t, srv, http.MethodPost, "/v2/token", "", []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
	if r.Status != http.StatusOK {
		t.Fatalf("POST /v2/token: %s", r)
	}
	var pb tokenBody
	_ = json.Unmarshal([]byte(r.Body), &pb)
	if got := polGranted(polJWT(t, pb.AccessToken), "repository", "ci/x"); !slices.Equal(got, []string{"pull"}) {
		t.Errorf("POST password grant ci/x pull,push: granted %v, want [pull]", got)
	}
}

// Disabling a rule with PATCH {enabled:false} restores access on the very
// next request with the same token; enabling it denies again; rewriting
// its effect with PATCH rule{} acts immediately too.
func TestPolicyPatchDisableTakesEffectImmediately(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	srv.AddUser(t, "alice", "alice-password", "user", "human")
	adminTok := polAdminSession(t, srv)
	// Minted before the rule exists, so it grants push: the token is only an
	// upper bound, the policy is evaluated again on every request.
	tok := srv.Token(t, "alice", "alice-password", polPushScope("production/app"))
	if got := polGranted(polJWT(t, tok), "repository", "production/app"); !slices.Equal(got, []string{"pull", "push"}) {
		t.Fatalf("token before the rule grants %v, want [pull push]", got)
	}
	polWantStatus(t, "push before the rule", polPush(t, srv, tok, "production/app"), http.StatusCreated)

	// A rule created disabled has no effect.
	disabled := polCreateRule(t, srv, adminTok, map[string]any{
		"priority": 1, "effect": "deny", "actions": []string{"registry:push"}, "enabled": false,
	})
	polWantStatus(t, "push with a disabled deny rule", polPush(t, srv, tok, "production/app"), http.StatusCreated)
	polDeleteRule(t, srv, adminTok, disabled)

	rule := map[string]any{
		"priority":     10,
		"description":  "freeze production",
		"effect":       "deny",
		"roles":        []string{"user"},
		"actions":      []string{"registry:push"},
		"repositories": []string{"production/*"},
	}
	id := polCreateRule(t, srv, adminTok, rule)
	polWantDenied(t, "push with the rule", polPush(t, srv, tok, "production/app"), "registry:push", "production/app")

	got := polPatchRule(t, srv, adminTok, id, map[string]any{"enabled": false})
	if got["enabled"] != false || got["effect"] != "deny" || got["priority"] != float64(10) || got["description"] != "freeze production" {
		t.Errorf("PATCH enabled=false changed other fields: %v", got)
	}
	polWantStatus(t, "push right after PATCH enabled=false (same token)", polPush(t, srv, tok, "production/app"), http.StatusCreated)

	status, obj, raw := polAPI(t, srv, http.MethodGet, fmt.Sprintf("/v1/policy/rules/%d", id), adminTok, nil)
	if status != http.StatusOK || obj["enabled"] != false {
		t.Errorf("GET rule after disabling: %d %s", status, raw)
	}
	if repos, _ := obj["repositories"].([]any); len(repos) != 1 || repos[0] != "production/*" {
		t.Errorf("GET rule after disabling: repositories %v, want [production/*]", obj["repositories"])
	}

	polPatchRule(t, srv, adminTok, id, map[string]any{"enabled": true})
	polWantDenied(t, "push after re-enabling", polPush(t, srv, tok, "production/app"), "registry:push", "production/app")

	// Narrow the rule to another repository: production/app is free again.
	got = polPatchRule(t, srv, adminTok, id, map[string]any{"rule": map[string]any{
		"effect": "deny", "roles": []string{"user"}, "actions": []string{"registry:push"}, "repositories": []string{"production/db"},
	}})
	if got["enabled"] != true || got["priority"] != float64(10) {
		t.Errorf("PATCH rule{} changed priority/enabled: %v", got)
	}
	polWantStatus(t, "push production/app after narrowing the rule", polPush(t, srv, tok, "production/app"), http.StatusCreated)

	polDeleteRule(t, srv, adminTok, id)
	polWantStatus(t, "push after deleting the rule", polPush(t, srv, tok, "production/app"), http.StatusCreated)
	if !strings.Contains(srv.Output.String(), "policy_rule_updated") {
		t.Error("server log does not record policy_rule_updated")
	}
}

// The catalog is a global operation: only rules without repositories
// match it, for deny and for allow.
func TestPolicyCatalogIsGlobal(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	srv.AddUser(t, "alice", "alice-password", "user", "human")
	srv.AddUser(t, "ci", "ci-password-1", "user", "system")
	adminTok := polAdminSession(t, srv)
	polMustPush(t, srv, polAdminToken(t, srv, polPushScope("dev/app")), "dev/app")

	tok := srv.Token(t, "alice", "alice-password", polCatalogScope, polPushScope("dev/tool"))
	r := polDo(t, srv, http.MethodGet, "/v2/_catalog", tok, nil)
	polWantStatus(t, "alice catalog", r, http.StatusOK)
	if !strings.Contains(r.Body, "dev/app") {
		t.Errorf("catalog does not list dev/app: %s", r.Body)
	}

	// A deny naming registry:catalog but also repositories never matches the
	// catalog (repository-less) request.
	withRepos := polCreateRule(t, srv, adminTok, map[string]any{
		"priority": 10, "effect": "deny", "roles": []string{"user"},
		"actions": []string{"registry:catalog"}, "repositories": []string{"*", "*/*"},
	})
	polWantStatus(t, "alice catalog with a repository-scoped catalog deny", polDo(t, srv, http.MethodGet, "/v2/_catalog", tok, nil), http.StatusOK)
	polDeleteRule(t, srv, adminTok, withRepos)

	global := polCreateRule(t, srv, adminTok, map[string]any{
		"priority": 10, "effect": "deny", "roles": []string{"user"}, "actions": []string{"registry:catalog"},
	})
	polWantDenied(t, "alice catalog with a global catalog deny", polDo(t, srv, http.MethodGet, "/v2/_catalog", tok, nil), "registry:catalog")
	polWantStatus(t, "alice push dev/tool with a catalog deny", polPush(t, srv, tok, "dev/tool"), http.StatusCreated)
	polWantStatus(t, "alice GET /v2/ with a catalog deny", polDo(t, srv, http.MethodGet, "/v2/", tok, nil), http.StatusOK)
	admin := polAdminToken(t, srv, polCatalogScope)
	polWantStatus(t, "admin catalog with a user catalog deny", polDo(t, srv, http.MethodGet, "/v2/_catalog", admin, nil), http.StatusOK)
	polDeleteRule(t, srv, adminTok, global)
	polWantStatus(t, "alice catalog after deleting the deny", polDo(t, srv, http.MethodGet, "/v2/_catalog", tok, nil), http.StatusOK)

	// Allow works the same way: a system account is not granted the catalog
	// by a rule with repositories, only by one without.
	polCreateRule(t, srv, adminTok, map[string]any{
		"priority": 20, "effect": "allow", "account_types": []string{"system"},
		"actions": []string{"registry:catalog"}, "repositories": []string{"*"},
	})
	ciTok := srv.Token(t, "ci", "ci-password-1", polCatalogScope)
	polWantDenied(t, "ci catalog with a repository-scoped allow", polDo(t, srv, http.MethodGet, "/v2/_catalog", ciTok, nil), "registry:catalog")
	polCreateRule(t, srv, adminTok, map[string]any{
		"priority": 20, "effect": "allow", "account_types": []string{"system"}, "actions": []string{"registry:catalog"},
	})
	ciTok = srv.Token(t, "ci", "ci-password-1", polCatalogScope)
	if got := polGranted(polJWT(t, ciTok), "registry", "catalog"); !slices.Equal(got, []string{"*"}) {
		t.Errorf("ci catalog token after a global allow: %v", got)
	}
	polWantStatus(t, "ci catalog with a global allow", polDo(t, srv, http.MethodGet, "/v2/_catalog", ciTok, nil), http.StatusOK)
}

// A cross-repository blob mount needs pull on the source repository.
func TestPolicyCrossRepoMountNeedsSourcePull(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	srv.AddUser(t, "alice", "alice-password", "user", "human")
	adminTok := polAdminSession(t, srv)
	img := polMustPush(t, srv, polAdminToken(t, srv, polPushScope("secret/base")), "secret/base")
	tok := srv.Token(t, "alice", "alice-password", polPushScope("dev/app"), polPullScope("secret/base"))
	mount := "/v2/dev/app/blobs/uploads/?mount=" + url.QueryEscape(polDigest(img.layer)) + "&from=secret/base"

	polCreateRule(t, srv, adminTok, map[string]any{
		"priority": 10, "effect": "deny", "roles": []string{"user"},
		"actions": []string{"registry:pull"}, "repositories": []string{"secret/*"},
	})
	polWantDenied(t, "mount from a repository alice may not pull", polDo(t, srv, http.MethodPost, mount, tok, nil), "registry:pull", "secret/base")
	if r := polDo(t, srv, http.MethodHead, "/v2/dev/app/blobs/"+polDigest(img.layer), tok, nil); r.Status == http.StatusOK {
		t.Errorf("the denied mount still linked the blob into dev/app")
	}
}

// Documented example (docs/policy.md): a guest may do nothing at all, not
// even the version check.
func TestPolicyDenyGuestEverything(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	srv.AddUser(t, "gus", "guest-password", "guest", "human")
	srv.AddUser(t, "alice", "alice-password", "user", "human")
	adminTok := polAdminSession(t, srv)
	guestTok := srv.Token(t, "gus", "guest-password", polPullScope("dev/app"), polCatalogScope)
	polWantStatus(t, "guest GET /v2/ (built-in version check)", polDo(t, srv, http.MethodGet, "/v2/", guestTok, nil), http.StatusOK)
	polWantDenied(t, "guest pull (default deny)", polPull(t, srv, guestTok, "dev/app", "latest"), "registry:pull", "dev/app")

	polCreateRule(t, srv, adminTok, polDocRules(t, "", "")[polDocGuestDenied])
	polWantDenied(t, "guest GET /v2/", polDo(t, srv, http.MethodGet, "/v2/", guestTok, nil), "registry:version_check")
	polWantDenied(t, "guest catalog", polDo(t, srv, http.MethodGet, "/v2/_catalog", guestTok, nil), "registry:catalog")
	polWantDenied(t, "guest push", polPush(t, srv, guestTok, "dev/app"), "dev/app")
	// Guest session token on /v2 (identity token, policy only).
	guestSession := srv.Login(t, "gus", "guest-password")
	polWantDenied(t, "guest GET /v2/ with a session token", polDo(t, srv, http.MethodGet, "/v2/", guestSession, nil), "registry:version_check")

	aliceTok := srv.Token(t, "alice", "alice-password", polPushScope("dev/app"))
	polWantStatus(t, "user GET /v2/", polDo(t, srv, http.MethodGet, "/v2/", aliceTok, nil), http.StatusOK)
	polWantStatus(t, "user push dev/app", polPush(t, srv, aliceTok, "dev/app"), http.StatusCreated)
}

// Descriptions of the rules of the example set in docs/policy.md.
const (
	polDocCI          = "ci-reader: read-only on ci/*"
	polDocProdDeny    = "production: no pushes by human accounts"
	polDocProdAllow   = "production: the release bot pushes"
	polDocGuestDenied = "guests get nothing"
)

// polDocRules reads the request bodies of the example rule set from
// docs/policy.md (the `<<EOF … EOF` heredocs of its curl commands), so
// the documentation and this test cannot drift apart. $CI_SUB and
// $RELEASER_SUB are replaced with the given subjects. Rules are keyed by
// description.
func polDocRules(t *testing.T, ciSub, releaserSub string) map[string]map[string]any {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(mcrtest.ModuleRoot(), "docs", "policy.md"))
	if err != nil {
		t.Fatalf("read docs/policy.md: %v", err)
	}
	out := map[string]map[string]any{}
	var body []string
	in := false
	for _, line := range strings.Split(string(doc), "\n") {
		switch {
		case !in && strings.HasSuffix(strings.TrimSpace(line), "<<EOF"):
			in, body = true, nil
		case in && strings.TrimSpace(line) == "EOF":
			in = false
			text := strings.NewReplacer("$CI_SUB", ciSub, "$RELEASER_SUB", releaserSub).Replace(strings.Join(body, "\n"))
			var rule map[string]any
			if err := json.Unmarshal([]byte(text), &rule); err != nil {
				t.Fatalf("docs/policy.md: heredoc is not JSON: %v\n%s", err, text)
			}
			desc, _ := rule["description"].(string)
			out[desc] = rule
		case in:
			body = append(body, line)
		}
	}
	for _, d := range []string{polDocCI, polDocProdDeny, polDocProdAllow, polDocGuestDenied} {
		if out[d] == nil {
			t.Fatalf("docs/policy.md has no example rule %q (found %d rules)", d, len(out))
		}
	}
	return out
}

// Documented example set (docs/policy.md, rules read from the file):
// read-only CI system account, production/* pushed only by one subject (a
// system account), guests denied everything. Checks the access table of
// the docs cell by cell, and shows why the "obvious" formulation (allow X +
// deny role user) cannot work: any matching deny wins, even over a
// subject-specific allow with a smaller priority number.
func TestPolicyDocumentedRuleSet(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	srv.AddUser(t, "ci-reader", "ci-reader-password", "user", "system")
	srv.AddUser(t, "releaser", "releaser-password", "user", "system")
	srv.AddUser(t, "alice", "alice-password", "user", "human")
	srv.AddUser(t, "gus", "guest-password", "guest", "human")
	adminTok := polAdminSession(t, srv)
	repos := []string{"ci/base", "ci/tools/lint", "production/app", "dev/app"}
	var scopes []string
	for _, r := range repos {
		scopes = append(scopes, polPushScope(r))
	}
	admin := polAdminToken(t, srv, scopes...)
	for _, r := range repos {
		polMustPush(t, srv, admin, r)
	}

	rules := polDocRules(t, polSubject(t, srv, "ci-reader"), polSubject(t, srv, "releaser"))
	for _, d := range []string{polDocCI, polDocProdDeny, polDocProdAllow, polDocGuestDenied} {
		polCreateRule(t, srv, adminTok, rules[d])
	}
	status, obj, raw := polAPI(t, srv, http.MethodGet, "/v1/policy/rules", adminTok, nil)
	if status != http.StatusOK || obj["total"] != float64(4) {
		t.Fatalf("list after creating the example set: %d %s", status, raw)
	}

	// The table "The resulting access" of docs/policy.md.
	const Y, N = true, false
	type op struct {
		do   func(tok string) polResult
		name string
	}
	ops := []op{
		{func(tok string) polResult { return polDo(t, srv, http.MethodGet, "/v2/", tok, nil) }, "GET /v2/"},
		{func(tok string) polResult { return polPull(t, srv, tok, "ci/base", "latest") }, "pull ci/base"},
		{func(tok string) polResult { return polPush(t, srv, tok, "ci/base") }, "push ci/base"},
		{func(tok string) polResult { return polPull(t, srv, tok, "production/app", "latest") }, "pull production/app"},
		{func(tok string) polResult { return polPush(t, srv, tok, "production/app") }, "push production/app"},
		{func(tok string) polResult { return polPush(t, srv, tok, "dev/app") }, "push dev/app"},
	}
	table := []struct {
		who, user, pass string
		allowed         []bool
	}{
		{"admin", "admin", mcrtest.AdminPassword, []bool{Y, Y, Y, Y, Y, Y}},
		{"human user", "alice", "alice-password", []bool{Y, Y, Y, Y, N, Y}},
		{"ci-reader", "ci-reader", "ci-reader-password", []bool{Y, Y, N, N, N, N}},
		{"releaser", "releaser", "releaser-password", []bool{Y, N, N, Y, Y, N}},
		{"guest", "gus", "guest-password", []bool{N, N, N, N, N, N}},
	}
	for _, row := range table {
		tok := srv.Token(t, row.user, row.pass, scopes...)
		for i, o := range ops {
			r := o.do(tok)
			what := row.who + " " + o.name
			if row.allowed[i] {
				if r.Status != http.StatusOK && r.Status != http.StatusCreated {
					t.Errorf("%s: want allowed, got %s", what, r)
				}
			} else {
				polWantDenied(t, what, r)
			}
		}
	}

	t.Run("details", func(t *testing.T) {
		tok := srv.Token(t, "ci-reader", "ci-reader-password", polPushScope("ci/tools/lint"))
		polWantStatus(t, "ci-reader pull ci/tools/lint (second level)", polPull(t, srv, tok, "ci/tools/lint", "latest"), http.StatusOK)

		alice := srv.Token(t, "alice", "alice-password", polPushScope("production/app"))
		if got := polGranted(polJWT(t, alice), "repository", "production/app"); !slices.Equal(got, []string{"pull"}) {
			t.Errorf("alice's token for production/app grants %v, want [pull]", got)
		}
		polWantDenied(t, "alice push production/app", polPush(t, srv, alice, "production/app"), "registry:push", "production/app")
		r := polPull(t, srv, alice, "production/app", "latest")
		polWantDenied(t, "alice delete production/app",
			polDo(t, srv, http.MethodDelete, "/v2/production/app/manifests/"+polDigest([]byte(r.Body)), alice, nil),
			"registry:delete", "production/app")

		rel := srv.Token(t, "releaser", "releaser-password", polPushScope("production/team/app"))
		polWantDenied(t, "releaser push production/team/app (one level only)", polPush(t, srv, rel, "production/team/app"), "production/team/app")
	})

	// The tempting alternative does not work: a subject allow cannot beat a
	// deny that also matches the subject.
	t.Run("deny-wins-over-subject-allow", func(t *testing.T) {
		srv.AddUser(t, "bob", "bob-password-1", "user", "human")
		polCreateRule(t, srv, adminTok, map[string]any{
			"priority": 1, "effect": "allow", "subject_uuid": polSubject(t, srv, "bob"),
			"actions": []string{"registry:pull", "registry:push"}, "repositories": []string{"staging/*"},
		})
		polCreateRule(t, srv, adminTok, map[string]any{
			"priority": 50, "effect": "deny", "roles": []string{"user"},
			"actions": []string{"registry:push"}, "repositories": []string{"staging/*"},
		})
		bob := srv.Token(t, "bob", "bob-password-1", polPushScope("staging/app"))
		polWantDenied(t, "bob push staging/app despite a higher-priority allow for his subject",
			polPush(t, srv, bob, "staging/app"), "registry:push", "staging/app")
	})
}

// Bad input to /v1/policy/rules: 400/404 with {"error":"..."} naming the
// field; non-admins 403; no token 401.
func TestPolicyRulesAPIValidation(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	adminTok := polAdminSession(t, srv)
	valid := func() map[string]any {
		return map[string]any{
			"priority": 10, "effect": "deny", "roles": []string{"user"},
			"actions": []string{"registry:push"}, "repositories": []string{"production/*"},
		}
	}
	with := func(k string, v any) map[string]any { r := valid(); r[k] = v; return r }
	without := func(k string) map[string]any { r := valid(); delete(r, k); return r }

	cases := []struct {
		name    string
		body    any
		mention []string
	}{
		{"malformed JSON", `{"priority": 10, "effect": "deny",`, []string{"JSON"}},
		{"not an object", `[1,2,3]`, []string{"JSON"}},
		{"trailing data", `{"priority":10,"effect":"deny","actions":["registry:push"]} {}`, []string{"JSON"}},
		{"empty body", ``, nil},
		{"unknown field", with("prio", 3), []string{"prio"}},
		{"wrong type", with("priority", "high"), []string{"priority"}},
		{"unknown action", with("actions", []string{"registry:fly"}), []string{"actions", "registry:fly"}},
		{"no actions", without("actions"), []string{"actions"}},
		{"priority 0", with("priority", 0), []string{"priority"}},
		{"priority missing", without("priority"), []string{"priority"}},
		{"negative priority", with("priority", -5), []string{"priority"}},
		{"bad effect", with("effect", "maybe"), []string{"effect"}},
		{"no effect", without("effect"), []string{"effect"}},
		{"bad glob", with("repositories", []string{"prod/["}), []string{"repositories", "prod/["}},
		{"absolute glob", with("repositories", []string{"/prod/*"}), []string{"repositories"}},
		{"dotdot glob", with("repositories", []string{"prod/../x"}), []string{"repositories"}},
		{"empty glob", with("repositories", []string{""}), []string{"repositories"}},
		{"unknown role", with("roles", []string{"root"}), []string{"roles", "root"}},
		{"unknown account type", with("account_types", []string{"robot"}), []string{"account_types", "robot"}},
	}
	for _, tc := range cases {
		status, obj, raw := polAPI(t, srv, http.MethodPost, "/v1/policy/rules", adminTok, tc.body)
		polWantAPIError(t, "POST "+tc.name, status, obj, raw, http.StatusBadRequest, tc.mention...)
	}
	// Nothing invalid was stored.
	status, obj, raw := polAPI(t, srv, http.MethodGet, "/v1/policy/rules", adminTok, nil)
	if status != http.StatusOK || obj["total"] != float64(0) {
		t.Errorf("after only invalid creates: %d %s", status, raw)
	}

	id := polCreateRule(t, srv, adminTok, valid())
	rulePath := fmt.Sprintf("/v1/policy/rules/%d", id)
	patches := []struct {
		name    string
		body    any
		mention []string
	}{
		{"malformed JSON", `{"enabled":`, []string{"JSON"}},
		{"priority 0", map[string]any{"priority": 0}, []string{"priority"}},
		{"unknown action", map[string]any{"rule": map[string]any{"effect": "deny", "actions": []string{"pull"}}}, []string{"actions"}},
		{"bad glob", map[string]any{"rule": map[string]any{"effect": "deny", "actions": []string{"registry:push"}, "repositories": []string{"prod/["}}}, []string{"repositories"}},
		{"bad effect", map[string]any{"rule": map[string]any{"effect": "permit", "actions": []string{"registry:push"}}}, []string{"effect"}},
		{"unknown field", map[string]any{"enabled": false, "effect": "allow"}, []string{"effect"}},
	}
	for _, tc := range patches {
		status, obj, raw := polAPI(t, srv, http.MethodPatch, rulePath, adminTok, tc.body)
		polWantAPIError(t, "PATCH "+tc.name, status, obj, raw, http.StatusBadRequest, tc.mention...)
	}
	status, obj, raw = polAPI(t, srv, http.MethodGet, rulePath, adminTok, nil)
	if status != http.StatusOK || obj["priority"] != float64(10) || obj["enabled"] != true || obj["effect"] != "deny" {
		t.Errorf("rule changed by rejected PATCHes: %d %s", status, raw)
	}

	for _, m := range []string{http.MethodGet, http.MethodPatch, http.MethodDelete} {
		var body any
		if m == http.MethodPatch {
			body = map[string]any{"enabled": false}
		}
		status, obj, raw := polAPI(t, srv, m, "/v1/policy/rules/99999", adminTok, body)
		polWantAPIError(t, m+" unknown id", status, obj, raw, http.StatusNotFound)
		for _, bad := range []string{"abc", "0", "-1", "1.5"} {
			status, obj, raw := polAPI(t, srv, m, "/v1/policy/rules/"+bad, adminTok, body)
			polWantAPIError(t, m+" id "+bad, status, obj, raw, http.StatusBadRequest, "id")
		}
	}
}

func TestPolicyRulesAPIRequiresAdmin(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	srv.AddUser(t, "alice", "alice-password", "user", "human")
	srv.AddUser(t, "ci", "ci-password-1", "user", "system")
	adminTok := polAdminSession(t, srv)
	id := polCreateRule(t, srv, adminTok, map[string]any{"priority": 5, "effect": "allow", "actions": []string{"registry:pull"}})
	rulePath := fmt.Sprintf("/v1/policy/rules/%d", id)
	body := map[string]any{"priority": 5, "effect": "allow", "roles": []string{"user"}, "actions": []string{"registry:push"}}
	patch := map[string]any{"enabled": false}

	// A policy:manage allow rule does not make a non-admin an admin of the API.
	polCreateRule(t, srv, adminTok, map[string]any{"priority": 5, "effect": "allow", "actions": []string{"policy:manage"}})

	endpoints := []struct {
		body         any
		method, path string
	}{
		{nil, http.MethodGet, "/v1/policy/rules"},
		{body, http.MethodPost, "/v1/policy/rules"},
		{nil, http.MethodGet, rulePath},
		{patch, http.MethodPatch, rulePath},
		{nil, http.MethodDelete, rulePath},
	}
	userSession := srv.Login(t, "alice", "alice-password")
	systemSession := srv.Login(t, "ci", "ci-password-1")
	adminRegistry := polAdminToken(t, srv, polCatalogScope)
	for _, ep := range endpoints {
		what := ep.method + " " + ep.path
		status, obj, raw := polAPI(t, srv, ep.method, ep.path, userSession, ep.body)
		polWantAPIError(t, what+" as user", status, obj, raw, http.StatusForbidden)
		status, obj, raw = polAPI(t, srv, ep.method, ep.path, systemSession, ep.body)
		polWantAPIError(t, what+" as system account", status, obj, raw, http.StatusForbidden)
		status, obj, raw = polAPI(t, srv, ep.method, ep.path, "", ep.body)
		polWantAPIError(t, what+" without a token", status, obj, raw, http.StatusUnauthorized)
		status, obj, raw = polAPI(t, srv, ep.method, ep.path, "not-a-token", ep.body)
		polWantAPIError(t, what+" with a garbage token", status, obj, raw, http.StatusUnauthorized)
		status, obj, raw = polAPI(t, srv, ep.method, ep.path, adminRegistry, ep.body)
		polWantAPIError(t, what+" with an admin's registry token", status, obj, raw, http.StatusUnauthorized)
	}
	// The rule is untouched.
	status, obj, raw := polAPI(t, srv, http.MethodGet, rulePath, adminTok, nil)
	if status != http.StatusOK || obj["enabled"] != true {
		t.Errorf("rule after non-admin attempts: %d %s", status, raw)
	}
	status, obj, _ = polAPI(t, srv, http.MethodGet, "/v1/policy/rules", adminTok, nil)
	if status != http.StatusOK || obj["total"] != float64(2) {
		t.Errorf("rule count after non-admin attempts: %v", obj["total"])
	}
}

// CRUD round trip and pagination of GET /v1/policy/rules.
func TestPolicyRulesAPICRUDAndPagination(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	adminTok := polAdminSession(t, srv)

	status, obj, raw := polAPI(t, srv, http.MethodGet, "/v1/policy/rules", adminTok, nil)
	if status != http.StatusOK || obj["total"] != float64(0) {
		t.Fatalf("empty list: %d %s", status, raw)
	}
	if rules, ok := obj["rules"].([]any); !ok || len(rules) != 0 {
		t.Errorf("empty list: rules = %v, want []", obj["rules"])
	}

	// Created out of priority order; the list is ordered by priority, then id.
	prios := []int{30, 10, 20, 10, 5}
	ids := make([]int64, len(prios))
	for i, p := range prios {
		ids[i] = polCreateRule(t, srv, adminTok, map[string]any{
			"priority": p, "description": fmt.Sprintf("rule %d", i), "effect": "allow",
			"account_types": []string{"system"}, "actions": []string{"registry:pull"},
			"repositories": []string{fmt.Sprintf("team%d/*", i)}, "enabled": i != 2,
		})
	}
	wantOrder := []int64{ids[4], ids[1], ids[3], ids[2], ids[0]}

	page := func(q string) ([]int64, map[string]any) {
		t.Helper()
		status, obj, raw := polAPI(t, srv, http.MethodGet, "/v1/policy/rules"+q, adminTok, nil)
		if status != http.StatusOK {
			t.Fatalf("list%s: %d %s", q, status, raw)
		}
		var out []int64
		rules, _ := obj["rules"].([]any)
		for _, r := range rules {
			rule, _ := r.(map[string]any)
			id, ok := rule["id"].(float64)
			if !ok {
				t.Fatalf("rule without a numeric id: %v", r)
			}
			out = append(out, int64(id))
		}
		return out, obj
	}
	all, obj := page("")
	if !slices.Equal(all, wantOrder) || obj["total"] != float64(5) {
		t.Errorf("list: ids %v total %v, want %v total 5", all, obj["total"], wantOrder)
	}
	p1, obj := page("?n=2")
	if !slices.Equal(p1, wantOrder[:2]) || obj["total"] != float64(5) || obj["n"] != float64(2) || obj["offset"] != float64(0) {
		t.Errorf("n=2: %v %v", p1, obj)
	}
	p2, obj := page("?n=2&offset=2")
	if !slices.Equal(p2, wantOrder[2:4]) || obj["total"] != float64(5) || obj["offset"] != float64(2) {
		t.Errorf("n=2 offset=2: %v %v", p2, obj)
	}
	p3, _ := page("?n=2&offset=4")
	if !slices.Equal(p3, wantOrder[4:]) {
		t.Errorf("n=2 offset=4: %v", p3)
	}
	p4, obj := page("?offset=10")
	if len(p4) != 0 || obj["total"] != float64(5) {
		t.Errorf("offset past the end: %v %v", p4, obj)
	}
	for _, q := range []string{"?n=0", "?n=abc", "?n=-1", "?n=100000"} {
		status, obj, raw := polAPI(t, srv, http.MethodGet, "/v1/policy/rules"+q, adminTok, nil)
		polWantAPIError(t, "list"+q, status, obj, raw, http.StatusBadRequest, "n")
	}
	status, obj, raw = polAPI(t, srv, http.MethodGet, "/v1/policy/rules?offset=-1", adminTok, nil)
	polWantAPIError(t, "list?offset=-1", status, obj, raw, http.StatusBadRequest, "offset")

	// GET one returns what was created, with bookkeeping.
	status, obj, raw = polAPI(t, srv, http.MethodGet, fmt.Sprintf("/v1/policy/rules/%d", ids[2]), adminTok, nil)
	if status != http.StatusOK {
		t.Fatalf("get: %d %s", status, raw)
	}
	if obj["priority"] != float64(20) || obj["description"] != "rule 2" || obj["effect"] != "allow" || obj["enabled"] != false ||
		obj["created_by"] != "admin" || obj["created_at"] == "" {
		t.Errorf("get rule: %s", raw)
	}

	// PATCH priority and description only.
	got := polPatchRule(t, srv, adminTok, ids[0], map[string]any{"priority": 1, "description": "now first"})
	if got["priority"] != float64(1) || got["description"] != "now first" || got["effect"] != "allow" || got["enabled"] != true {
		t.Errorf("patch priority/description: %v", got)
	}
	if repos, _ := got["repositories"].([]any); len(repos) != 1 || repos[0] != "team0/*" {
		t.Errorf("patch priority/description lost repositories: %v", got["repositories"])
	}
	first, _ := page("?n=1")
	if !slices.Equal(first, []int64{ids[0]}) {
		t.Errorf("after raising priority, first rule is %v, want %d", first, ids[0])
	}

	polDeleteRule(t, srv, adminTok, ids[0])
	status, obj, raw = polAPI(t, srv, http.MethodGet, fmt.Sprintf("/v1/policy/rules/%d", ids[0]), adminTok, nil)
	polWantAPIError(t, "get deleted rule", status, obj, raw, http.StatusNotFound)
	status, obj, raw = polAPI(t, srv, http.MethodDelete, fmt.Sprintf("/v1/policy/rules/%d", ids[0]), adminTok, nil)
	polWantAPIError(t, "delete deleted rule", status, obj, raw, http.StatusNotFound)
	_, obj = page("")
	if obj["total"] != float64(4) {
		t.Errorf("total after delete: %v", obj["total"])
	}
	out := srv.Output.String()
	for _, ev := range []string{"policy_rule_created", "policy_rule_updated", "policy_rule_deleted"} {
		if !strings.Contains(out, ev) {
			t.Errorf("server log does not record %s", ev)
		}
	}
}

// The same policy through a real client: go-containerregistry with
// username/password (it runs the token flow itself). A denied push fails
// with 403 DENIED, not an authentication error.
func TestPolicyRealClient(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	srv.AddUser(t, "alice", "alice-password", "user", "human")
	srv.AddUser(t, "ci", "ci-password-1", "user", "system")
	adminTok := polAdminSession(t, srv)
	polCreateRule(t, srv, adminTok, map[string]any{
		"priority": 10, "effect": "deny", "roles": []string{"user"},
		"actions": []string{"registry:push"}, "repositories": []string{"production/*"},
	})
	polCreateRule(t, srv, adminTok, map[string]any{
		"priority": 100, "effect": "allow", "subject_uuid": polSubject(t, srv, "ci"),
		"actions": []string{"registry:pull"}, "repositories": []string{"ci/*"},
	})

	opts := func(user, pass string) []remote.Option {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		t.Cleanup(cancel)
		return []remote.Option{
			remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: user, Password: pass})),
			remote.WithTransport(srv.Transport()), remote.WithContext(ctx),
		}
	}
	refOf := func(s string) name.Reference {
		r, err := name.ParseReference(srv.Addr + "/" + s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	write := func(user, pass, repo string) error {
		img, err := random.Image(1024, 1)
		if err != nil {
			t.Fatal(err)
		}
		return remote.Write(refOf(repo+":latest"), img, opts(user, pass)...)
	}
	wantDeniedErr := func(what string, err error) {
		t.Helper()
		var te *transport.Error
		if !errors.As(err, &te) {
			t.Errorf("%s: want a 403 DENIED registry error, got %v", what, err)
			return
		}
		if te.StatusCode != http.StatusForbidden || len(te.Errors) == 0 || te.Errors[0].Code != transport.DeniedErrorCode {
			t.Errorf("%s: want 403 DENIED, got %d %+v", what, te.StatusCode, te.Errors)
		}
	}

	wantDeniedErr("alice writes production/app", write("alice", "alice-password", "production/app"))
	if err := write("alice", "alice-password", "dev/app"); err != nil {
		t.Errorf("alice writes dev/app: %v", err)
	}
	if err := write("admin", mcrtest.AdminPassword, "production/app"); err != nil {
		t.Errorf("admin writes production/app: %v", err)
	}
	if err := write("admin", mcrtest.AdminPassword, "ci/x"); err != nil {
		t.Fatalf("admin writes ci/x: %v", err)
	}
	img, err := remote.Image(refOf("ci/x:latest"), opts("ci", "ci-password-1")...)
	if err != nil {
		t.Fatalf("ci reads ci/x: %v", err)
	}
	if _, err := img.Manifest(); err != nil {
		t.Errorf("ci reads ci/x manifest: %v", err)
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("ci reads a ci/x layer: %v", err)
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			t.Errorf("ci reads a ci/x layer: %v", err)
		}
	}
	wantDeniedErr("ci writes ci/x", write("ci", "ci-password-1", "ci/x"))
	_, err = remote.Image(refOf("dev/app:latest"), opts("ci", "ci-password-1")...)
	wantDeniedErr("ci reads dev/app", err)
}
