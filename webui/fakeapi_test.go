package webui

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"git.wntrmute.dev/kyle/mcr/adminapi/apitypes"
)

// fakeAPI is an in-memory stand-in for mcrsrv's admin API (/v1) and the
// bits of the registry API (/v2/token, manifests) the UI uses.
type fakeAPI struct {
	t *testing.T

	users   map[string]fakeUser // by username
	tokens  map[string]string   // token → username
	revoked map[string]bool

	repos     map[string]*RepoDetail
	manifests map[string]string // "repo@digest" → JSON body
	rules     map[int64]*PolicyRule
	events    []AuditEvent
	deleted   []string

	gcLast *GCRun

	gcRequests   []string
	auditQueries []url.Values
	repoQueries  []url.Values

	mu sync.Mutex

	nextRule int64

	gcAvailable bool
	gcRunning   bool

	registryDown bool
}

type fakeUser struct {
	password string
	roles    []string
}

const (
	appDigest  = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	sigDigest  = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	cfgDigest  = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
	layer1     = "sha256:4444444444444444444444444444444444444444444444444444444444444444"
	layer2     = "sha256:5555555555555555555555555555555555555555555555555555555555555555"
	aliceSubID = "7c1f0a52-0000-4000-8000-000000000001"
)

func newFakeAPI(t *testing.T) (*fakeAPI, *httptest.Server) {
	f := &fakeAPI{
		t: t,
		users: map[string]fakeUser{
			"admin": {"admin-pw", []string{"admin"}},
			"alice": {"alice-pw", []string{"user"}},
			"gina":  {"gina-pw", []string{"guest"}},
		},
		tokens: map[string]string{}, revoked: map[string]bool{},
		repos: map[string]*RepoDetail{}, manifests: map[string]string{},
		rules: map[int64]*PolicyRule{}, nextRule: 1, gcAvailable: true,
	}
	now := time.Now().UTC()
	f.repos["team/app"] = &RepoDetail{
		RepoSummary: RepoSummary{Name: "team/app", TagCount: 1, ManifestCount: 2, TotalSize: 1_234_567, CreatedAt: now.Add(-48 * time.Hour), LastPush: now.Add(-5 * time.Minute)},
		Tags:        []TagInfo{{Name: "1.0", Digest: appDigest, UpdatedAt: now.Add(-5 * time.Minute)}},
		Manifests: []ManifestInfo{
			{Digest: appDigest, MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 700, CreatedAt: now.Add(-5 * time.Minute), Tags: []string{"1.0"},
				Layers: []Ref{{Digest: layer1, Size: 1_000_000}, {Digest: layer2, Size: 233_000}}},
			{Digest: sigDigest, MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 400, ArtifactType: "application/vnd.dev.cosign.signature",
				Subject: appDigest, CreatedAt: now.Add(-4 * time.Minute), Tags: []string{}},
		},
	}
	f.repos["infra/tools"] = &RepoDetail{
		RepoSummary: RepoSummary{Name: "infra/tools", TagCount: 1, ManifestCount: 1, TotalSize: 2048, CreatedAt: now.Add(-time.Hour), LastPush: now.Add(-time.Hour)},
		Tags:        []TagInfo{}, Manifests: []ManifestInfo{},
	}
	f.manifests["team/app@"+appDigest] = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + cfgDigest + `","size":321},` +
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + layer1 + `","size":1000000},` +
		`{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + layer2 + `","size":233000}]}`
	f.events = []AuditEvent{
		{ID: 3, Time: now.Add(-time.Minute), Type: "policy_deny", ActorID: aliceSubID, Actor: "alice", Repository: "team/app", IP: "127.0.0.1",
			Details: map[string]any{"action": "registry:push"}},
		{ID: 2, Time: now.Add(-5 * time.Minute), Type: "manifest_pushed", ActorID: "admin-sub", Actor: "admin", Repository: "team/app", Digest: appDigest, Tag: "1.0",
			Details: map[string]any{"size": float64(700), "media_type": "application/vnd.oci.image.manifest.v1+json"}},
		{ID: 1, Time: now.Add(-time.Hour), Type: "login_ok", ActorID: "admin-sub", Actor: "admin", IP: "127.0.0.1"},
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiErr(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// user returns the username behind the request's bearer token.
func (f *fakeAPI) user(r *http.Request) (string, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "", false
	}
	u, ok := f.tokens[tok]
	if !ok || f.revoked[tok] {
		return "", false
	}
	return u, true
}

func (f *fakeAPI) isAdmin(u string) bool { return contains(f.users[u].roles, "admin") }

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := r.URL.Path
	switch {
	case p == "/v1/auth/login" && r.Method == http.MethodPost:
		var req struct{ Username, Password string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		u, ok := f.users[req.Username]
		if !ok || u.password != req.Password {
			apiErr(w, 401, "invalid username or password")
			return
		}
		tok := fmt.Sprintf("tok-%s-%d", req.Username, len(f.tokens))
		f.tokens[tok] = req.Username
		writeJSON(w, 200, LoginResult{Token: tok, ExpiresAt: time.Now().Add(8 * time.Hour).UTC().Format(time.RFC3339),
			Username: req.Username, Roles: u.roles, AccountType: "human"})
		return
	case p == "/v1/auth/logout" && r.Method == http.MethodPost:
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		f.revoked[tok] = true
		w.WriteHeader(204)
		return
	}
	if strings.HasPrefix(p, "/v2/") && strings.Contains(p, "/manifests/") {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer reg-") {
			writeJSON(w, 401, map[string]any{"errors": []map[string]string{{"code": "UNAUTHORIZED", "message": "authentication required"}}})
			return
		}
		f.serveManifest(w, r)
		return
	}
	user, ok := f.user(r)
	if !ok {
		apiErr(w, 401, "invalid or expired token")
		return
	}
	admin := f.isAdmin(user)
	switch {
	case p == "/v2/token":
		writeJSON(w, 200, map[string]string{"token": "reg-" + user, "scope": r.URL.Query().Get("scope")})
	case p == "/v1/repositories" && r.Method == http.MethodGet:
		f.listRepos(w, r)
	case strings.HasPrefix(p, "/v1/repositories/"):
		name := strings.TrimPrefix(p, "/v1/repositories/")
		d, ok := f.repos[name]
		if !ok {
			apiErr(w, 404, "repository \""+name+"\" not found")
			return
		}
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, 200, d)
		case http.MethodDelete:
			if !admin {
				apiErr(w, 403, "admin role required")
				return
			}
			delete(f.repos, name)
			f.deleted = append(f.deleted, name)
			w.WriteHeader(204)
		}
	case p == "/v1/audit":
		if !admin {
			apiErr(w, 403, "admin role required")
			return
		}
		f.listAudit(w, r)
	case strings.HasPrefix(p, "/v1/policy/rules"):
		if !admin {
			apiErr(w, 403, "admin role required")
			return
		}
		f.policy(w, r, user)
	case strings.HasPrefix(p, "/v1/gc"):
		if !f.gcAvailable {
			apiErr(w, 404, "Not Found")
			return
		}
		if !admin {
			apiErr(w, 403, "admin role required")
			return
		}
		switch {
		case p == "/v1/gc/status":
			writeJSON(w, 200, GCStatus{Running: f.gcRunning, LastRun: f.gcLast})
		case (p == "/v1/gc" || p == "/v1/gc/reconcile") && r.Method == http.MethodPost:
			b, _ := io.ReadAll(r.Body)
			f.gcRequests = append(f.gcRequests, p+" "+string(b))
			if f.gcRunning {
				apiErr(w, 409, "garbage collection already running")
				return
			}
			f.gcRunning = true
			writeJSON(w, 202, apitypes.GCStarted{ID: 7})
		}
	default:
		apiErr(w, 404, "Not Found")
	}
}

func (f *fakeAPI) serveManifest(w http.ResponseWriter, r *http.Request) {
	rest, _ := strings.CutPrefix(r.URL.Path, "/v2/")
	repo, digest, _ := strings.Cut(rest, "/manifests/")
	if f.registryDown {
		writeJSON(w, 500, map[string]any{"errors": []map[string]string{{"code": "UNKNOWN", "message": "storage unavailable"}}})
		return
	}
	body, ok := f.manifests[repo+"@"+digest]
	if !ok {
		writeJSON(w, 404, map[string]any{"errors": []map[string]string{{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}}})
		return
	}
	w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	_, _ = w.Write([]byte(body))
}

func (f *fakeAPI) listRepos(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.repoQueries = append(f.repoQueries, q)
	names := make([]string, 0, len(f.repos))
	for n := range f.repos {
		if strings.Contains(n, q.Get("q")) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	total := len(names)
	if last := q.Get("last"); last != "" {
		i := sort.SearchStrings(names, last)
		for i < len(names) && names[i] <= last {
			i++
		}
		names = names[i:]
	}
	n, _ := strconv.Atoi(q.Get("n"))
	if n == 0 {
		n = 50
	}
	off, _ := strconv.Atoi(q.Get("offset"))
	if off > len(names) {
		off = len(names)
	}
	names = names[off:]
	if len(names) > n {
		names = names[:n]
	}
	out := RepoList{Repositories: []RepoSummary{}, Total: total, N: n, Offset: off}
	for _, nm := range names {
		out.Repositories = append(out.Repositories, f.repos[nm].RepoSummary)
	}
	if len(names) == n {
		out.Next = names[len(names)-1]
	}
	writeJSON(w, 200, out)
}

func (f *fakeAPI) listAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.auditQueries = append(f.auditQueries, q)
	for _, k := range []string{"since", "until"} {
		if v := q.Get(k); v != "" {
			if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
				apiErr(w, 400, k+": want RFC 3339 time")
				return
			}
		}
	}
	n, _ := strconv.Atoi(q.Get("n"))
	before, _ := strconv.ParseInt(q.Get("before"), 10, 64)
	var out []AuditEvent
	for _, e := range f.events {
		if t := q.Get("event_type"); t != "" && e.Type != t {
			continue
		}
		if rp := q.Get("repository"); rp != "" && e.Repository != rp {
			continue
		}
		if a := q.Get("actor_id"); a != "" && e.ActorID != a {
			continue
		}
		if before > 0 && e.ID >= before {
			continue
		}
		out = append(out, e)
	}
	page := AuditPage{Events: []AuditEvent{}}
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	page.Events = append(page.Events, out...)
	if n > 0 && len(out) == n {
		page.Next = strconv.FormatInt(out[len(out)-1].ID, 10)
	}
	writeJSON(w, 200, page)
}

func (f *fakeAPI) policy(w http.ResponseWriter, r *http.Request, user string) {
	idText := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/v1/policy/rules"), "/")
	if idText == "" {
		switch r.Method {
		case http.MethodGet:
			list := RuleList{Rules: []PolicyRule{}}
			ids := make([]int64, 0, len(f.rules))
			for id := range f.rules {
				ids = append(ids, id)
			}
			sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
			for _, id := range ids {
				list.Rules = append(list.Rules, *f.rules[id])
			}
			list.Total = len(list.Rules)
			writeJSON(w, 200, list)
		case http.MethodPost:
			var c RuleCreate
			dec := json.NewDecoder(r.Body)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&c); err != nil {
				apiErr(w, 400, "malformed JSON: "+err.Error())
				return
			}
			for _, p := range c.Repositories {
				if strings.HasPrefix(p, "/") {
					apiErr(w, 400, "repositories: pattern \""+p+"\": must not start with '/'")
					return
				}
			}
			if c.Priority < 1 {
				apiErr(w, 400, "priority: must be >= 1")
				return
			}
			rule := &PolicyRule{ID: f.nextRule, Priority: c.Priority, Description: c.Description, Effect: c.Effect, Roles: c.Roles,
				AccountTypes: c.AccountTypes, SubjectUUID: c.SubjectUUID, Actions: c.Actions, Repositories: c.Repositories,
				Enabled: c.Enabled == nil || *c.Enabled, CreatedBy: user, UpdatedBy: user, CreatedAt: time.Now(), UpdatedAt: time.Now()}
			f.rules[rule.ID] = rule
			f.nextRule++
			writeJSON(w, 201, rule)
		}
		return
	}
	id, _ := strconv.ParseInt(idText, 10, 64)
	rule, ok := f.rules[id]
	if !ok {
		apiErr(w, 404, "policy rule not found")
		return
	}
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, 200, rule)
	case http.MethodPatch:
		var p RulePatch
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			apiErr(w, 400, "malformed JSON: "+err.Error())
			return
		}
		if p.Priority != nil {
			rule.Priority = *p.Priority
		}
		if p.Description != nil {
			rule.Description = *p.Description
		}
		if p.Enabled != nil {
			rule.Enabled = *p.Enabled
		}
		rule.UpdatedBy = user
		writeJSON(w, 200, rule)
	case http.MethodDelete:
		delete(f.rules, id)
		w.WriteHeader(204)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
