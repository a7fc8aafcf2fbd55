package e2e

// End-to-end tests of the audit log (issue 4, DESIGN §7): which events a
// push, a pull, a HEAD probe, a failed sign-in and a policy denial record;
// durability across kill -9 and SIGTERM; the /v1/audit query API (filters,
// keyset pagination, bad input, authorization).

import (
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	_ "github.com/mattn/go-sqlite3" // read the database file of a stopped server

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// audEvent is one row of GET /v1/audit.
type audEvent struct {
	Time       time.Time      `json:"event_time"`
	Type       string         `json:"event_type"`
	ActorID    string         `json:"actor_id"`
	Actor      string         `json:"actor"`
	Repository string         `json:"repository"`
	Digest     string         `json:"digest"`
	Tag        string         `json:"tag"`
	Details    map[string]any `json:"details"`
	IP         string         `json:"ip"`
	ID         int64          `json:"id"`
}

type audPage struct {
	Next   string     `json:"next"`
	Events []audEvent `json:"events"`
}

// audGet calls GET /v1/audit?query and returns the status, the decoded page
// (on 200) and the raw body.
func audGet(t testing.TB, srv *mcrtest.Server, tok, query string) (int, audPage, string) {
	t.Helper()
	resp := srv.Do(t, http.MethodGet, "/v1/audit?"+query, tok, nil)
	body := readAll(t, resp)
	var p audPage
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("GET /v1/audit?%s: %v: %s", query, err, body)
		}
	}
	return resp.StatusCode, p, string(body)
}

// audAll walks every page of GET /v1/audit?query (newest first) with the
// `next` cursor and n=pageSize, failing on a duplicate row or a cursor
// that does not move.
func audAll(t testing.TB, srv *mcrtest.Server, tok, query string, pageSize int) []audEvent {
	t.Helper()
	var out []audEvent
	seen := map[int64]bool{}
	before := ""
	for pages := 0; ; pages++ {
		if pages > 100000 {
			t.Fatal("audit pagination does not end")
		}
		q := query + "&n=" + strconv.Itoa(pageSize)
		if before != "" {
			q += "&before=" + before
		}
		status, p, raw := audGet(t, srv, tok, q)
		if status != http.StatusOK {
			t.Fatalf("GET /v1/audit?%s: %d %s", q, status, raw)
		}
		if len(p.Events) > pageSize {
			t.Fatalf("GET /v1/audit?%s: %d events, more than n=%d", q, len(p.Events), pageSize)
		}
		for _, e := range p.Events {
			if seen[e.ID] {
				t.Fatalf("audit row %d returned twice while paging %q", e.ID, query)
			}
			seen[e.ID] = true
			if len(out) > 0 && e.ID >= out[len(out)-1].ID {
				t.Fatalf("audit rows not newest first: %d after %d", e.ID, out[len(out)-1].ID)
			}
			out = append(out, e)
		}
		if p.Next == "" {
			if len(p.Events) == pageSize {
				t.Fatalf("GET /v1/audit?%s: a full page without a next cursor", q)
			}
			return out
		}
		if p.Next == before {
			t.Fatalf("next cursor %s does not move", p.Next)
		}
		before = p.Next
	}
}

// audWait polls GET /v1/audit?query (all pages) until cond holds (pull
// events may be committed asynchronously) and returns the last result.
func audWait(t testing.TB, srv *mcrtest.Server, tok, query string, what string, cond func([]audEvent) bool) []audEvent {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		evs := audAll(t, srv, tok, query, 1000)
		if cond(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit log never showed %s (query %q); last result:\n%s", what, query, audDump(evs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func audDump(evs []audEvent) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %d %s actor=%s/%s repo=%s tag=%s digest=%s details=%v\n", e.ID, e.Type, e.Actor, e.ActorID, e.Repository, e.Tag, e.Digest, e.Details)
	}
	return b.String()
}

func audOfType(evs []audEvent, typ string) []audEvent {
	var out []audEvent
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// audSubject returns the subject (sub claim) of user's registry tokens.
func audSubject(t testing.TB, srv *mcrtest.Server, user, pass string) string {
	t.Helper()
	tok := srv.Token(t, user, pass)
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token is not a JWT: %q", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(raw, &c); err != nil || c.Sub == "" {
		t.Fatalf("token payload %s has no sub (%v)", raw, err)
	}
	return c.Sub
}

// audOpenDB opens the database file of a server that is no longer running,
// read-only.
func audOpenDB(t testing.TB, srv *mcrtest.Server) *sql.DB {
	t.Helper()
	select {
	case <-srv.Done():
	default:
		t.Fatal("audOpenDB: the server is still running")
	}
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(srv.Dir, "mcr.db")+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

func audDBCount(t testing.TB, db *sql.DB, where string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM audit_log WHERE `+where, args...).Scan(&n); err != nil {
		t.Fatalf("count audit rows where %s: %v", where, err)
	}
	return n
}

// audWantJSONError checks a {"error":"..."} body (and only that) with status.
func audWantJSONError(t testing.TB, what string, resp *http.Response, want int) {
	t.Helper()
	body := readAll(t, resp)
	if resp.StatusCode != want {
		t.Errorf("%s: status %d, want %d; body %s", what, resp.StatusCode, want, body)
		return
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	var obj map[string]any
	if err := json.Unmarshal(body, &obj); err != nil {
		t.Errorf("%s: body is not JSON: %q", what, body)
		return
	}
	if msg, ok := obj["error"].(string); !ok || msg == "" || len(obj) != 1 {
		t.Errorf("%s: want exactly {\"error\":\"...\"}, got %s", what, body)
	}
}

// A push records blob_uploaded per uploaded blob and one manifest_pushed
// naming who pushed what where; a pull records manifest_pulled, a HEAD
// probe nothing; a wrong password records login_fail without the
// password; a policy denial records policy_deny.
func TestAuditRecordsRegistryAndSecurityEvents(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	const bobPass = "bob-password-1"
	srv.AddUser(t, "bob", bobPass, "user", "human")
	bobSub := audSubject(t, srv, "bob", bobPass)
	adminTok := srv.Login(t, "admin", mcrtest.AdminPassword)
	bob := remoteOpts(t, srv, basicAuth("bob", bobPass), nil)

	// ---- push ----
	img, err := random.Image(2048, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, srv, "audit/app:v1"), img, bob...); err != nil {
		t.Fatalf("push: %v", err)
	}
	imgDigest, _ := img.Digest()
	cfgDigest, _ := img.ConfigName()
	wantBlobs := []string{cfgDigest.String()}
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		wantBlobs = append(wantBlobs, d.String())
	}
	slices.Sort(wantBlobs)

	// Change events are committed before the push's responses: no waiting.
	evs := audAll(t, srv, adminTok, "repository=audit/app", 1000)
	var gotBlobs []string
	for _, e := range audOfType(evs, "blob_uploaded") {
		gotBlobs = append(gotBlobs, e.Digest)
		if e.Actor != "bob" || e.ActorID != bobSub {
			t.Errorf("blob_uploaded %s: actor %q/%q, want bob/%s", e.Digest, e.Actor, e.ActorID, bobSub)
		}
	}
	slices.Sort(gotBlobs)
	if !slices.Equal(gotBlobs, wantBlobs) {
		t.Errorf("blob_uploaded digests after the push:\n got %v\nwant %v (config + 3 layers, once each)\n%s", gotBlobs, wantBlobs, audDump(evs))
	}
	pushed := audOfType(evs, "manifest_pushed")
	if len(pushed) != 1 {
		t.Fatalf("manifest_pushed rows after one push: %d, want 1\n%s", len(pushed), audDump(evs))
	}
	p := pushed[0]
	if p.Actor != "bob" || p.ActorID != bobSub || p.Repository != "audit/app" || p.Tag != "v1" || p.Digest != imgDigest.String() {
		t.Errorf("manifest_pushed = actor %q id %q repo %q tag %q digest %q; want bob %s audit/app v1 %s",
			p.Actor, p.ActorID, p.Repository, p.Tag, p.Digest, bobSub, imgDigest)
	}
	if p.IP != "127.0.0.1" {
		t.Errorf("manifest_pushed ip %q, want 127.0.0.1", p.IP)
	}
	if time.Since(p.Time) > time.Minute || time.Until(p.Time) > 5*time.Second {
		t.Errorf("manifest_pushed event_time %v is not now", p.Time)
	}
	if len(audOfType(evs, "manifest_pulled")) != 0 {
		t.Errorf("a push recorded manifest_pulled:\n%s", audDump(evs))
	}

	// ---- pull ----
	pulled, err := remote.Image(ref(t, srv, "audit/app:v1"), bob...)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	compareImages(t, img, pulled) // reads every layer
	pulls := audWait(t, srv, adminTok, "event_type=manifest_pulled&repository=audit/app", "the pull",
		func(evs []audEvent) bool { return len(evs) >= 1 })
	if len(pulls) != 1 {
		t.Errorf("one pull recorded %d manifest_pulled rows:\n%s", len(pulls), audDump(pulls))
	}
	if pl := pulls[0]; pl.Actor != "bob" || pl.ActorID != bobSub || pl.Digest != imgDigest.String() {
		t.Errorf("manifest_pulled = actor %q/%q digest %q; want bob/%s %s", pl.Actor, pl.ActorID, pl.Digest, bobSub, imgDigest)
	}

	// ---- HEAD probes record nothing ----
	for i := 0; i < 3; i++ {
		if _, err := remote.Head(ref(t, srv, "audit/app:v1"), bob...); err != nil {
			t.Fatalf("HEAD: %v", err)
		}
	}
	if _, err := remote.Head(ref(t, srv, "audit/app@"+imgDigest.String()), bob...); err != nil {
		t.Fatalf("HEAD by digest: %v", err)
	}
	// A later GET in another repository is a marker: pulls are committed in
	// order, so once it is there, anything the HEADs recorded is too.
	marker, _ := random.Image(256, 1)
	if err := remote.Write(ref(t, srv, "audit/marker:m"), marker, bob...); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Get(ref(t, srv, "audit/marker:m"), bob...); err != nil {
		t.Fatal(err)
	}
	audWait(t, srv, adminTok, "event_type=manifest_pulled&repository=audit/marker", "the marker pull",
		func(evs []audEvent) bool { return len(evs) == 1 })
	if n := len(audAll(t, srv, adminTok, "event_type=manifest_pulled&repository=audit/app", 1000)); n != 1 {
		t.Errorf("manifest_pulled rows for audit/app after 4 HEAD probes: %d, want still 1", n)
	}

	// ---- wrong password ----
	const wrong = "Wr0ng-Passw0rd-Zebra-4471"
	expectStatus(t, tokenGET(t, srv, "bob", wrong, "", url.Values{"scope": {"repository:audit/app:pull"}}), http.StatusUnauthorized)
	fails := audWait(t, srv, adminTok, "event_type=login_fail", "the failed sign-in",
		func(evs []audEvent) bool { return len(evs) >= 1 })
	if len(fails) != 1 || fails[0].Actor != "bob" {
		t.Errorf("login_fail rows after one wrong password: want 1 naming bob, got\n%s", audDump(fails))
	}
	// The same through /v1/auth/login.
	b, _ := json.Marshal(map[string]string{"username": "bob", "password": wrong + "-v1"})
	resp := srv.Do(t, http.MethodPost, "/v1/auth/login", "", b, "Content-Type", "application/json")
	audWantJSONError(t, "POST /v1/auth/login with a wrong password", resp, http.StatusUnauthorized)
	fails = audAll(t, srv, adminTok, "event_type=login_fail", 1000)
	if len(fails) != 2 {
		t.Errorf("login_fail rows after two wrong passwords: %d, want 2\n%s", len(fails), audDump(fails))
	}
	_, _, raw := audGet(t, srv, adminTok, "n=1000")
	if strings.Contains(raw, wrong) || strings.Contains(raw, "Zebra") {
		t.Errorf("the wrong password appears in the audit log: %s", raw)
	}
	if strings.Contains(srv.Output.String(), wrong) {
		t.Error("the wrong password appears in the server log")
	}

	// ---- policy denial ----
	rule, _ := json.Marshal(map[string]any{
		"priority": 1, "effect": "deny", "roles": []string{"user"},
		"actions": []string{"registry:push"}, "repositories": []string{"locked/*"},
	})
	expectStatus(t, srv.Do(t, http.MethodPost, "/v1/policy/rules", adminTok, rule, "Content-Type", "application/json"), http.StatusCreated)
	denied, _ := random.Image(512, 1)
	if err := remote.Write(ref(t, srv, "locked/x:v1"), denied, bob...); err == nil {
		t.Fatal("push to locked/x succeeded despite the deny rule")
	}
	denies := audWait(t, srv, adminTok, "event_type=policy_deny&repository=locked/x", "the denied push",
		func(evs []audEvent) bool { return len(evs) >= 1 })
	for _, d := range denies {
		if d.Actor != "bob" || d.ActorID != bobSub || d.Details["action"] != "registry:push" {
			t.Errorf("policy_deny = actor %q/%q details %v; want bob/%s action registry:push", d.Actor, d.ActorID, d.Details, bobSub)
		}
	}
	if n := len(audAll(t, srv, adminTok, "event_type=manifest_pushed&repository=locked/x", 1000)); n != 0 {
		t.Errorf("a denied push recorded %d manifest_pushed rows", n)
	}
	// The rule change itself is audited.
	if n := len(audAll(t, srv, adminTok, "event_type=policy_rule_created", 1000)); n != 1 {
		t.Errorf("policy_rule_created rows: %d, want 1", n)
	}

	// ---- actor filter ----
	byBob := audAll(t, srv, adminTok, "actor_id="+url.QueryEscape(bobSub), 1000)
	if len(byBob) == 0 {
		t.Fatal("actor_id filter found nothing for bob")
	}
	for _, e := range byBob {
		if e.ActorID != bobSub {
			t.Errorf("actor_id=%s returned a row of %q", bobSub, e.ActorID)
		}
	}
}

// kill -9 right after pushes return: every push whose response was
// received has its manifest_pushed row after a restart.
func TestAuditKill9KeepsAcknowledgedPushes(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)

	const workers, perWorker = 8, 5
	var (
		mu    sync.Mutex
		acked = map[string]string{} // digest -> repo:tag
		count atomic.Int32
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			opts := remoteOpts(t, srv, adminAuth(), nil)
			// Keep pushing past perWorker until the server is killed, so
			// pushes are in flight at the moment of the kill.
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				img, err := random.Image(512, 2)
				if err != nil {
					t.Error(err)
					return
				}
				r := fmt.Sprintf("kill/w%d:t%d", w, i)
				if err := remote.Write(ref(t, srv, r), img, opts...); err != nil {
					return // the server died under this push
				}
				d, _ := img.Digest()
				mu.Lock()
				acked[d.String()] = r
				mu.Unlock()
				count.Add(1)
			}
		}(w)
	}
	for count.Load() < workers*perWorker {
		time.Sleep(time.Millisecond)
	}
	srv.Kill()
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(acked) < workers*perWorker {
		t.Fatalf("only %d pushes acknowledged", len(acked))
	}

	// The database file alone, before any restart.
	db := audOpenDB(t, srv)
	for d, r := range acked {
		if n := audDBCount(t, db, `event_type = 'manifest_pushed' AND digest = ?`, d); n != 1 {
			t.Errorf("after kill -9: %d manifest_pushed rows for acknowledged push %s (%s), want 1", n, r, d)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// And through the API of a server restarted on the same directory.
	srv2 := mcrtest.Start(t, mcrtest.WithDir(srv.Dir))
	tok := srv2.Login(t, "admin", mcrtest.AdminPassword)
	rows := audAll(t, srv2, tok, "event_type=manifest_pushed", 200)
	have := map[string]audEvent{}
	for _, e := range rows {
		have[e.Digest] = e
	}
	for d, r := range acked {
		e, ok := have[d]
		if !ok {
			t.Errorf("after kill -9 and restart: acknowledged push %s (%s) has no manifest_pushed row", r, d)
			continue
		}
		repo, tag, _ := strings.Cut(r, ":")
		if e.Repository != repo || e.Tag != tag || e.Actor != "admin" {
			t.Errorf("manifest_pushed for %s: repo %q tag %q actor %q, want %s %s admin", d, e.Repository, e.Tag, e.Actor, repo, tag)
		}
	}
	t.Logf("%d pushes acknowledged before kill -9; %d manifest_pushed rows after restart", len(acked), len(rows))
}

// SIGTERM loses nothing: 1,000 concurrent manifest pushes and pulls, then
// SIGTERM right after the last response; the database holds exactly one
// row per successful operation, asynchronous pulls included.
func TestAuditSIGTERMLosesNothing(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	const repo = "sigterm/app"
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:"+repo+":pull,push")

	raw := audRawRepo(t, srv, repo, tok)
	expectStatus(t, raw.put(t, srv.Client(), "base", -1), http.StatusCreated)

	const ops, workers = 1000, 16
	client := srv.Client()
	tr, ok := client.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("client transport %T", client.Transport)
	}
	tr.MaxIdleConnsPerHost = workers
	var pushes, pulls, failures atomic.Int32
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				var req *http.Request
				if i%2 == 0 {
					req = raw.putRequest("p"+strconv.Itoa(i), i)
				} else {
					req, _ = http.NewRequest(http.MethodGet, srv.URL+"/v2/"+repo+"/manifests/base", nil)
					req.Header.Set("Accept", audOCIManifest)
					req.Header.Set("Authorization", "Bearer "+tok)
				}
				resp, err := client.Do(req)
				if err != nil {
					failures.Add(1)
					t.Errorf("%s %s: %v", req.Method, req.URL.Path, err)
					continue
				}
				body := readAll(t, resp)
				switch {
				case req.Method == http.MethodPut && resp.StatusCode == http.StatusCreated:
					pushes.Add(1)
				case req.Method == http.MethodGet && resp.StatusCode == http.StatusOK:
					pulls.Add(1)
				default:
					failures.Add(1)
					t.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, body)
				}
			}
		}()
	}
	start := time.Now()
	for i := 0; i < ops; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	took := time.Since(start)
	if err := srv.Stop(t); err != nil {
		t.Errorf("mcrsrv exited with %v after SIGTERM\n%s", err, srv.Output.String())
	}
	t.Logf("%d pushes + %d pulls (%d failed) in %v, then SIGTERM", pushes.Load(), pulls.Load(), failures.Load(), took.Round(time.Millisecond))

	db := audOpenDB(t, srv)
	// +1: the "base" manifest pushed before the run.
	if got, want := audDBCount(t, db, `event_type = 'manifest_pushed' AND repository = ?`, repo), int(pushes.Load())+1; got != want {
		t.Errorf("manifest_pushed rows: %d, want %d (successful pushes + base)", got, want)
	}
	if got, want := audDBCount(t, db, `event_type = 'manifest_pulled' AND repository = ?`, repo), int(pulls.Load()); got != want {
		t.Errorf("manifest_pulled rows: %d, want %d (successful GETs)", got, want)
	}
	if got := audDBCount(t, db, `event_type = 'blob_uploaded' AND repository = ?`, repo); got != 2 {
		t.Errorf("blob_uploaded rows: %d, want 2", got)
	}
	if pushes.Load() != ops/2 || pulls.Load() != ops/2 {
		t.Errorf("%d pushes and %d pulls succeeded, want %d each", pushes.Load(), pulls.Load(), ops/2)
	}
}

const audOCIManifest = "application/vnd.oci.image.manifest.v1+json"

// audRaw pushes tiny manifests to one repository by raw HTTP: one shared
// layer and config uploaded once, every manifest distinct (annotation).
type audRaw struct {
	srv           *mcrtest.Server
	repo, tok     string
	layer, config []byte
}

func audRawRepo(t testing.TB, srv *mcrtest.Server, repo, tok string) *audRaw {
	t.Helper()
	r := &audRaw{srv: srv, repo: repo, tok: tok,
		layer:  []byte("one shared layer for every manifest of " + repo),
		config: []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)}
	for _, blob := range [][]byte{r.layer, r.config} {
		resp := srv.Do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", tok, nil)
		expectStatus(t, resp, http.StatusAccepted)
		u, _ := url.Parse(srv.URL)
		loc, err := u.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		q := loc.Query()
		q.Set("digest", audDigest(blob))
		loc.RawQuery = q.Encode()
		expectStatus(t, srv.Do(t, http.MethodPut, loc.RequestURI(), tok, blob, "Content-Type", "application/octet-stream"), http.StatusCreated)
	}
	return r
}

func (r *audRaw) manifest(i int) []byte {
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     audOCIManifest,
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": audDigest(r.config), "size": len(r.config)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": audDigest(r.layer), "size": len(r.layer)}},
		"annotations":   map[string]string{"n": strconv.Itoa(i)},
	})
	return m
}

func (r *audRaw) putRequest(tag string, i int) *http.Request {
	req, _ := http.NewRequest(http.MethodPut, r.srv.URL+"/v2/"+r.repo+"/manifests/"+tag, strings.NewReader(string(r.manifest(i))))
	req.Header.Set("Content-Type", audOCIManifest)
	req.Header.Set("Authorization", "Bearer "+r.tok)
	return req
}

// put pushes manifest i as tag.
func (r *audRaw) put(t testing.TB, c *http.Client, tag string, i int) *http.Response {
	t.Helper()
	resp, err := c.Do(r.putRequest(tag, i))
	if err != nil {
		t.Fatalf("PUT manifest %s:%s: %v", r.repo, tag, err)
	}
	return resp
}

// audDigest is the sha256 digest string of b.
func audDigest(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

// GET /v1/audit: filters select exactly the matching rows; the `next`
// cursor walks every row once; `offset` agrees with the cursor; bad input
// is a 400 JSON error; only admins may read the log.
func TestAuditQueryFiltersPaginationAndErrors(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	const bobPass = "bob-password-1"
	srv.AddUser(t, "bob", bobPass, "user", "human")
	adminTok := srv.Login(t, "admin", mcrtest.AdminPassword)
	bobTok := srv.Login(t, "bob", bobPass)

	// ~130 rows: manifest pushes by raw HTTP (each committed before its
	// response, so ids and times grow with the loop), a few failed sign-ins
	// and two pushes by bob.
	const pushes = 120
	raw := audRawRepo(t, srv, "page/raw", srv.Token(t, "admin", mcrtest.AdminPassword, "repository:page/raw:pull,push"))
	client := srv.Client()
	for i := 0; i < pushes; i++ {
		expectStatus(t, raw.put(t, client, "t"+strconv.Itoa(i), i), http.StatusCreated)
	}
	const fails = 3
	for i := 0; i < fails; i++ {
		expectStatus(t, tokenGET(t, srv, "nobody", "wrong", "", nil), http.StatusUnauthorized)
	}
	bob := remoteOpts(t, srv, basicAuth("bob", bobPass), nil)
	for i := 0; i < 2; i++ {
		img, _ := random.Image(256, 1)
		if err := remote.Write(ref(t, srv, fmt.Sprintf("page/app%d:v1", i)), img, bob...); err != nil {
			t.Fatal(err)
		}
	}

	all := audAll(t, srv, adminTok, "", 1000)
	if len(all) < pushes+fails+6 {
		t.Fatalf("only %d audit rows", len(all))
	}
	for _, size := range []int{1, 7, 50, len(all)} {
		walked := audAll(t, srv, adminTok, "", size)
		if len(walked) != len(all) {
			t.Errorf("walking with n=%d: %d rows, want %d", size, len(walked), len(all))
			continue
		}
		for i := range walked {
			if walked[i].ID != all[i].ID {
				t.Errorf("walking with n=%d: row %d is id %d, want %d", size, i, walked[i].ID, all[i].ID)
				break
			}
		}
	}
	// Filtered walk.
	mp := audAll(t, srv, adminTok, "event_type=manifest_pushed", 9)
	if len(mp) != pushes+2 {
		t.Errorf("event_type=manifest_pushed walked %d rows, want %d", len(mp), pushes+2)
	}
	for _, e := range mp {
		if e.Type != "manifest_pushed" {
			t.Errorf("event_type=manifest_pushed returned %s", e.Type)
		}
	}
	if lf := audAll(t, srv, adminTok, "event_type=login_fail", 2); len(lf) != fails {
		t.Errorf("event_type=login_fail walked %d rows, want %d", len(lf), fails)
	}
	// Default page size is 50.
	if _, p, _ := audGet(t, srv, adminTok, ""); len(p.Events) != 50 || p.Next == "" {
		t.Errorf("default page: %d events, next %q; want 50 and a cursor", len(p.Events), p.Next)
	}
	// offset agrees with the cursor.
	if _, p, raw := audGet(t, srv, adminTok, "n=5&offset=3"); len(p.Events) != 5 || p.Events[0].ID != all[3].ID || p.Events[4].ID != all[7].ID {
		t.Errorf("n=5&offset=3: %s; want ids %d..%d", raw, all[3].ID, all[7].ID)
	}
	// Repository filter.
	repoRows := audAll(t, srv, adminTok, "repository=page/app1", 1000)
	if len(audOfType(repoRows, "manifest_pushed")) != 1 {
		t.Errorf("repository=page/app1: want one manifest_pushed, got\n%s", audDump(repoRows))
	}
	for _, e := range repoRows {
		if e.Repository != "page/app1" {
			t.Errorf("repository=page/app1 returned a row of %q", e.Repository)
		}
	}
	// since/until select by time, bounds inclusive.
	mid := all[len(all)/2]
	since := audAll(t, srv, adminTok, "since="+url.QueryEscape(mid.Time.Format(time.RFC3339Nano)), 1000)
	until := audAll(t, srv, adminTok, "until="+url.QueryEscape(mid.Time.Format(time.RFC3339Nano)), 1000)
	var wantSince, wantUntil int
	for _, e := range all {
		if !e.Time.Before(mid.Time) {
			wantSince++
		}
		if !e.Time.After(mid.Time) {
			wantUntil++
		}
	}
	if len(since) != wantSince || len(until) != wantUntil {
		t.Errorf("since=%s: %d rows (want %d); until: %d rows (want %d)", mid.Time.Format(time.RFC3339Nano), len(since), wantSince, len(until), wantUntil)
	}
	for _, e := range since {
		if e.Time.Before(mid.Time) {
			t.Errorf("since=%v returned an event of %v", mid.Time, e.Time)
		}
	}
	if rows := audAll(t, srv, adminTok, "since=2000-01-01&until=2000-01-02", 1000); len(rows) != 0 {
		t.Errorf("a day in 2000 has %d rows", len(rows))
	}
	if rows := audAll(t, srv, adminTok, "since="+time.Now().Add(-time.Hour).UTC().Format("2006-01-02"), 1000); len(rows) == 0 {
		t.Errorf("since=<date> found nothing")
	}
	// Combined filters.
	combo := audAll(t, srv, adminTok, "event_type=manifest_pushed&repository=page/app0&actor_id="+url.QueryEscape(audSubject(t, srv, "bob", bobPass)), 1000)
	if len(combo) != 1 {
		t.Errorf("event_type+repository+actor_id: %d rows, want 1\n%s", len(combo), audDump(combo))
	}

	// ---- bad input ----
	for _, q := range []string{
		"event_type=nope", "event_type=MANIFEST_PUSHED", "since=garbage", "until=yesterday", "since=2026-13-45",
		"n=100000", "n=1001", "n=0", "n=-1", "n=abc", "offset=-1", "offset=x",
		"before=abc", "before=0", "before=-5",
		"since=2026-01-02&until=2026-01-01",
	} {
		resp := srv.Do(t, http.MethodGet, "/v1/audit?"+q, adminTok, nil)
		audWantJSONError(t, "GET /v1/audit?"+q, resp, http.StatusBadRequest)
	}
	if status, p, raw := audGet(t, srv, adminTok, "n=1000"); status != http.StatusOK || len(p.Events) == 0 {
		t.Errorf("n=1000 (the maximum): %d %s", status, raw)
	}

	// ---- authorization ----
	audWantJSONError(t, "GET /v1/audit without a token", srv.Do(t, http.MethodGet, "/v1/audit", "", nil), http.StatusUnauthorized)
	audWantJSONError(t, "GET /v1/audit as a user", srv.Do(t, http.MethodGet, "/v1/audit", bobTok, nil), http.StatusForbidden)
	audWantJSONError(t, "GET /v1/audit with a garbage token", srv.Do(t, http.MethodGet, "/v1/audit", "not-a-token", nil), http.StatusUnauthorized)
	regTok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:page/app0:pull")
	audWantJSONError(t, "GET /v1/audit with a registry token", srv.Do(t, http.MethodGet, "/v1/audit", regTok, nil), http.StatusUnauthorized)
}

// A locked database delays a push's response until its event is committed
// (retried past the busy timeout, never dropped); pulls are not held up
// and are recorded once the lock is gone.
func TestAuditBusyDatabaseIsRetried(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	const repo = "busy/app"
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:"+repo+":pull,push")
	adminTok := srv.Login(t, "admin", mcrtest.AdminPassword)
	raw := audRawRepo(t, srv, repo, tok)
	client := srv.Client()
	expectStatus(t, raw.put(t, client, "base", 0), http.StatusCreated)

	// Another process holds the write lock longer than the server's busy
	// timeout (5 s).
	tx := lockDatabase(t, filepath.Join(srv.Dir, "mcr.db"))
	locked := time.Now()
	const hold = 7 * time.Second

	type result struct {
		at     time.Time
		status int
	}
	pushed := make(chan result, 1)
	go func() {
		resp, err := client.Do(raw.putRequest("during-lock", 1))
		if err != nil {
			t.Errorf("push during the lock: %v", err)
			pushed <- result{}
			return
		}
		resp.Body.Close()
		pushed <- result{time.Now(), resp.StatusCode}
	}()

	// A pull answers while the database is locked.
	t0 := time.Now()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/"+repo+"/manifests/base", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", audOCIManifest)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, resp, http.StatusOK)
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("a pull took %v while the audit database was locked (pull events should not block)", d)
	}

	select {
	case r := <-pushed:
		t.Errorf("the push answered %d after %v, while its event could not be committed", r.status, r.at.Sub(locked))
	case <-time.After(time.Until(locked.Add(hold))):
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	select {
	case r := <-pushed:
		if r.status != http.StatusCreated {
			t.Fatalf("push during the lock: status %d, want 201", r.status)
		}
		t.Logf("push answered %v after the lock was released (held %v)", r.at.Sub(released).Round(time.Millisecond), hold)
	case <-time.After(30 * time.Second):
		t.Fatal("the push never answered after the lock was released")
	}
	evs := audAll(t, srv, adminTok, "event_type=manifest_pushed&repository="+repo, 100)
	if len(evs) != 2 || evs[0].Tag != "during-lock" {
		t.Errorf("manifest_pushed rows: want base and during-lock, got\n%s", audDump(evs))
	}
	audWait(t, srv, adminTok, "event_type=manifest_pulled&repository="+repo, "the pull made during the lock",
		func(evs []audEvent) bool { return len(evs) == 1 })
}

// lockDatabase takes SQLite's write lock on the database at path from a
// second connection, as another process would, and returns the open
// transaction: committing or rolling it back releases the lock (the test's
// end does too).
func lockDatabase(t *testing.T, path string) *sql.Tx {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_txlock=immediate&_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	tx, err := db.Begin()
	if err != nil {
		t.Fatalf("take the write lock: %v", err)
	}
	t.Cleanup(func() { _ = tx.Rollback() }) // a no-op once the test ended it
	if _, err := tx.Exec(`UPDATE audit_log SET ip = ip WHERE id = 0`); err != nil {
		t.Fatal(err)
	}
	return tx
}
