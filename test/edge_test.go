package e2e

// End-to-end tests of the /v2 edge: every request is authenticated once,
// before anything reads its body, parses a form, writes a row or remembers
// a digest (issue 13). Each test is an attack that worked before the edge.

import (
	"bufio"
	"crypto/rand"
	"crypto/sha512"
	"crypto/tls"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// edgeTempDir starts a server whose TMPDIR is a fresh directory and
// returns both.
func edgeTempDir(t *testing.T, opts ...mcrtest.Option) (*mcrtest.Server, string) {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	return mcrtest.Start(t, append(opts, mcrtest.WithEnv("TMPDIR="+tmp))...), tmp
}

// edgeMultipart sends a multipart/form-data body of size bytes (one file
// part, like `curl -F file=@big`) and returns the status.
func edgeMultipart(t *testing.T, srv *mcrtest.Server, method, path, token string, size int64) int {
	t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		fw, err := mw.CreateFormFile("file", "big.bin")
		if err == nil {
			_, err = io.CopyN(fw, zeroReader{}, size)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequest(method, srv.URL+path, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		// The server may answer and close before the whole body is sent.
		t.Logf("%s %s: %v", method, path, err)
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func edgeDirEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// A multipart body sent to any /v2/<name>/… route, unauthenticated or not,
// leaves nothing in the server's TMPDIR (distribution's dispatcher parses
// the form before its access controller runs, on a copy net/http never
// cleans up).
func TestEdgeMultipartLeavesNoTempFiles(t *testing.T) {
	srv, tmp := edgeTempDir(t)
	const size = 50 << 20
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/v2/any/app/blobs/uploads/"},
		{http.MethodPost, "/v2/any/app/blobs/uploads/?from=other/app&mount=sha256:" + strings.Repeat("a", 64)},
		{http.MethodGet, "/v2/any/app/tags/list"},
		{http.MethodPut, "/v2/any/app/manifests/v1"},
		{http.MethodPatch, "/v2/any/app/blobs/uploads/0f3c2a9e-1111-2222-3333-444455556666"},
	} {
		if code := edgeMultipart(t, srv, c.method, c.path, "", size); code != 0 && code != http.StatusUnauthorized {
			t.Errorf("unauthenticated %s %s: %d, want 401", c.method, c.path, code)
		}
	}
	// An authenticated caller cannot make the dispatcher spool a form
	// either.
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:any/app:pull,push")
	edgeMultipart(t, srv, http.MethodPost, "/v2/any/app/blobs/uploads/?from=other/app&mount=sha256:"+strings.Repeat("b", 64), tok, size)
	if names := edgeDirEntries(t, tmp); len(names) != 0 {
		t.Fatalf("server TMPDIR holds %v after multipart requests", names)
	}
}

func edgeDB(t *testing.T, srv *mcrtest.Server, query string) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(srv.Dir, "mcr.db")+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	var n int
	if err := db.QueryRow(query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// An unauthenticated manifest PUT by sha512 digest is answered 401 and
// writes nothing: no digest_aliases row.
func TestEdgeUnauthenticatedAliasRow(t *testing.T) {
	srv := mcrtest.Start(t)
	body := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`)
	sum := sha512.Sum512(body)
	path := "/v2/x/app/manifests/sha512:" + hex.EncodeToString(sum[:])
	for _, token := range []string{"", "forged.not.valid"} {
		resp := srv.Do(t, http.MethodPut, path, token, body, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
		expectOCIError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED")
	}
	if n := edgeDB(t, srv, `SELECT COUNT(*) FROM digest_aliases`); n != 0 {
		t.Fatalf("digest_aliases rows after unauthenticated PUTs: %d, want 0", n)
	}
	// The same PUT, authenticated, records the alias (and answers 201).
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:x/app:pull,push")
	if r := polUploadBlob(t, srv, tok, "x/app", []byte("{}")); r.Status != http.StatusCreated {
		t.Fatalf("config blob: %s", r)
	}
	resp := srv.Do(t, http.MethodPut, path, tok, body, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	expectStatus(t, resp, http.StatusCreated)
	if n := edgeDB(t, srv, `SELECT COUNT(*) FROM digest_aliases`); n != 1 {
		t.Fatalf("digest_aliases rows after the authenticated PUT: %d, want 1", n)
	}
}

// edgeAge makes a blob's data file look older than any grace period.
func edgeAge(t *testing.T, srv *mcrtest.Server, dgst string) {
	t.Helper()
	hexd := strings.TrimPrefix(dgst, "sha256:")
	p := filepath.Join(srv.Dir, "layers", "docker", "registry", "v2", "blobs", "sha256", hexd[:2], hexd, "data")
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
}

// A request carrying a forged Authorization header pins no digest: the
// orphan blob it names is collected.
func TestEdgeUnauthenticatedGCPin(t *testing.T) {
	srv := mcrtest.Start(t, mcrtest.WithConfig("gc.grace", `"1h"`))
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:pin/app:pull,push")
	blob := []byte("an orphan blob nobody references " + strconv.FormatInt(time.Now().UnixNano(), 10))
	r := polUploadBlob(t, srv, tok, "pin/app", blob)
	if r.Status != http.StatusCreated {
		t.Fatalf("upload: %s", r)
	}
	dgst := polDigest(blob)
	edgeAge(t, srv, dgst)
	// The upload itself remembered the digest (in memory); a restart
	// forgets it, so only what follows could pin it.
	srv.Restart(t)
	admin := srv.Login(t, "admin", mcrtest.AdminPassword)
	tok = srv.Token(t, "admin", mcrtest.AdminPassword, "repository:pin/app:pull,push")

	// Forged bearers name the digest in every way the gate remembers.
	for _, c := range []struct{ method, path string }{
		{http.MethodHead, "/v2/pin/app/blobs/" + dgst},
		{http.MethodGet, "/v2/pin/app/blobs/" + dgst},
		{http.MethodPut, "/v2/pin/app/blobs/uploads/0f3c2a9e-1111-2222-3333-444455556666?digest=" + dgst},
		{http.MethodPost, "/v2/pin/app/blobs/uploads/?mount=" + dgst + "&from=pin/app"},
	} {
		resp := srv.Do(t, c.method, c.path, "forged-token", nil)
		if readAll(t, resp); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("forged %s %s: %d, want 401", c.method, c.path, resp.StatusCode)
		}
	}
	var started struct {
		ID int64 `json:"id"`
	}
	if code := gcAPI(t, srv, http.MethodPost, "/v1/gc", admin, nil, &started); code != http.StatusAccepted {
		t.Fatalf("POST /v1/gc: %d", code)
	}
	run := gcWait(t, srv, admin, started.ID)
	if run.Error != "" || run.BlobsRemoved != 1 {
		t.Fatalf("gc run: %+v, want the orphan removed", run)
	}
	if code, _ := gcBlobStatus(t, srv, tok, "pin/app", dgst); code != http.StatusNotFound {
		t.Fatalf("orphan blob after GC: %d, want 404 (pinned by a forged request)", code)
	}
}

// edgeRSS is the server's resident set size in bytes.
func edgeRSS(t *testing.T, srv *mcrtest.Server) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", srv.PID()))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmRSS in /proc/%d/status", srv.PID())
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// edgeStall opens a TLS connection and sends a PUT's headers announcing a
// 4 MiB body, and one byte of it; the connection stays open until the test
// ends.
func edgeStall(t *testing.T, srv *mcrtest.Server, path, authz string) net.Conn {
	t.Helper()
	conn, err := tls.Dial("tcp", srv.Addr, &tls.Config{RootCAs: srv.CertPool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	h := ""
	if authz != "" {
		h = "Authorization: " + authz + "\r\n"
	}
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: %s\r\n%sContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: %d\r\n\r\n{",
		path, srv.Addr, h, 4<<20)
	return conn
}

// 30 stalled unauthenticated manifest PUTs (and one stalled authenticated
// one) hold neither memory nor a collection: RSS stays bounded and a GC
// completes within gc.max_wait + 1 s; the authenticated push still
// succeeds once its body arrives.
func TestEdgeStalledPutsHoldNothing(t *testing.T) {
	const maxWait = 5 * time.Second
	srv := mcrtest.Start(t, mcrtest.WithConfig("gc.max_wait", `"5s"`))
	admin := srv.Login(t, "admin", mcrtest.AdminPassword)
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:stall/app:pull,push")
	img, _ := random.Image(1024, 1)
	if err := remote.Write(ref(t, srv, "stall/app:v1"), img, remoteOpts(t, srv, adminAuth(), nil)...); err != nil {
		t.Fatal(err)
	}
	manifest, _ := img.RawManifest()
	before := edgeRSS(t, srv)

	conns := make([]net.Conn, 30)
	for i := range conns {
		authz := ""
		if i%2 == 1 {
			authz = "Bearer forged-token"
		}
		conns[i] = edgeStall(t, srv, fmt.Sprintf("/v2/stall/app%d/manifests/v1", i), authz)
	}
	// Each is answered 401 at once, body unread.
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("stalled PUT %d: no answer: %v", i, err)
		}
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("stalled unauthenticated PUT %d: %d, want 401", i, resp.StatusCode)
		}
		resp.Body.Close()
	}
	finish := gcSlowPut(t, srv, tok, "/v2/stall/app/manifests/v2", manifest)

	start := time.Now()
	var started struct {
		ID int64 `json:"id"`
	}
	if code := gcAPI(t, srv, http.MethodPost, "/v1/gc", admin, nil, &started); code != http.StatusAccepted {
		t.Fatalf("POST /v1/gc: %d", code)
	}
	run := gcWait(t, srv, admin, started.ID)
	took := time.Since(start)
	if run.Error != "" {
		t.Fatalf("gc run: %s", run.Error)
	}
	t.Logf("GC with 31 stalled PUTs took %s", took)
	if took > maxWait+time.Second {
		t.Errorf("GC took %s, want <= gc.max_wait + 1s (%s)", took, maxWait+time.Second)
	}
	after := edgeRSS(t, srv)
	t.Logf("RSS %d MiB before, %d MiB with 31 stalled PUTs", before>>20, after>>20)
	if after-before > 40<<20 {
		t.Errorf("RSS grew by %d MiB with stalled PUTs", (after-before)>>20)
	}
	if code := finish(); code != http.StatusCreated {
		t.Fatalf("stalled authenticated PUT after GC: %d, want 201", code)
	}
	gcPullAll(t, srv, map[string]v1.Hash{"stall/app:v2": mustDigest(t, img)})
}

// 1,000 requests with random paths and methods leave fewer than 50
// distinct mcr_http_requests_total label sets.
func TestEdgeMetricLabelsBounded(t *testing.T) {
	metricsAddr := mcrtest.FreeAddr(t)
	srv := mcrtest.Start(t, mcrtest.WithConfig("server.metrics_addr", `"`+metricsAddr+`"`))
	methods := []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "FOOBAR", "PROPFIND", "XRND"}
	prefixes := []string{"/v2/", "/v1/", "/", "/v2/a/b/", "/v1/rnd", "/v2/_catalog", "/v2/x/manifests/", "/v2/x/blobs/uploads/"}
	c := srv.Client()
	for i := range 1000 {
		m := methods[edgeRandN(t, len(methods))]
		if m == "XRND" {
			m = strings.ToUpper(edgeRand(t, 4+edgeRandN(t, 8), "ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
		}
		p := prefixes[edgeRandN(t, len(prefixes))] + edgeRand(t, 1+edgeRandN(t, 12), "")
		if i%3 == 0 {
			p += "/" + edgeRand(t, 8, "")
		}
		req, err := http.NewRequest(m, srv.URL+p, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", m, p, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	sets := map[string]bool{}
	for _, s := range metParse(t, metScrape(t, metricsAddr)) {
		if s.Name != "mcr_http_requests_total" {
			continue
		}
		sets[fmt.Sprint(s.Labels)] = true
	}
	t.Logf("%d distinct label sets: %v", len(sets), sets)
	if len(sets) >= 50 {
		t.Fatalf("%d distinct mcr_http_requests_total label sets after random requests (want < 50): %v", len(sets), sets)
	}
}

func edgeRandN(t *testing.T, n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		t.Fatal(err)
	}
	return int(v.Int64())
}

func edgeRand(t *testing.T, n int, alphabet string) string {
	if alphabet == "" {
		alphabet = "abcdefghijklmnopqrstuvwxyz0123456789_-.:"
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[edgeRandN(t, len(alphabet))]
	}
	return string(b)
}

// Malformed input is a client error with an OCI body naming no server
// path, and the server logs no 5xx for it.
func TestEdgeBadInput(t *testing.T) {
	srv := mcrtest.Start(t)
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:bad/app:pull,push", "registry:catalog:*")
	img, _ := random.Image(512, 1)
	if err := remote.Write(ref(t, srv, "bad/app:v1"), img, remoteOpts(t, srv, adminAuth(), nil)...); err != nil {
		t.Fatal(err)
	}
	upload := func() string {
		resp := srv.Do(t, http.MethodPost, "/v2/bad/app/blobs/uploads/", tok, nil)
		readAll(t, resp)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("start upload: %d", resp.StatusCode)
		}
		u, err := url.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		return u.RequestURI()
	}
	for _, c := range []struct {
		name, method, path string
		code               string
		header             []string
		want               int
	}{
		{"catalog last=NUL", http.MethodGet, "/v2/_catalog?last=%00", "NAME_INVALID", nil, 400},
		{"tags last=NUL", http.MethodGet, "/v2/bad/app/tags/list?last=%00", "TAG_INVALID", nil, 400},
		{"PATCH text/plain", http.MethodPatch, upload(), "CONTENT_TYPE_INVALID", []string{"Content-Type", "text/plain"}, 400},
		{"Content-Range bytes=a-b", http.MethodPatch, upload(), "RANGE_INVALID", []string{"Content-Type", "application/octet-stream", "Content-Range", "bytes=a-b"}, 416},
		{"Content-Range overflow", http.MethodPatch, upload(), "RANGE_INVALID", []string{"Content-Range", "0-99999999999999999999"}, 416},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp := srv.Do(t, c.method, c.path, tok, []byte("abc"), append(c.header, "Content-Length", "3")...)
			body := expectOCIError(t, resp, c.want, c.code)
			for _, leak := range []string{srv.Dir, "/docker/registry", "layers"} {
				if strings.Contains(string(body), leak) {
					t.Errorf("body names a server path (%q): %s", leak, body)
				}
			}
		})
	}
	if m := regexp.MustCompile(`(?m)^.*(http\.response\.status[=":]+5\d\d|status=5\d\d).*$`).FindString(srv.Output.String()); m != "" {
		t.Errorf("server logged a 5xx: %s", m)
	}
}

// A fresh install's challenge names server.hostname, written by init, not
// the Host header the client sent.
func TestEdgeChallengeIgnoresHostHeader(t *testing.T) {
	srv := mcrtest.Start(t)
	_, port, _ := net.SplitHostPort(srv.Addr)
	cfg, err := os.ReadFile(srv.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^hostname\s*=\s*"127\.0\.0\.1:` + port + `"`).Match(cfg) {
		t.Fatalf("mcrsrv init did not write server.hostname = \"127.0.0.1:%s\":\n%s", port, cfg)
	}
	for _, path := range []string{"/v2/", "/v2/x/app/manifests/v1", "/v2/_catalog"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Host = "evil.example"
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		ch := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(ch, `realm="https://127.0.0.1:`+port+`/v2/token"`) || strings.Contains(ch, "evil.example") {
			t.Errorf("GET %s with Host: evil.example: %d %q, want the realm on 127.0.0.1:%s", path, resp.StatusCode, ch, port)
		}
	}
}

// edgeCatalog follows the catalog's Link pages with page size n.
func edgeCatalog(t *testing.T, srv *mcrtest.Server, token string, n int) ([]string, int) {
	t.Helper()
	var all []string
	pages := 0
	next := "/v2/_catalog?n=" + strconv.Itoa(n)
	for next != "" && pages < 100 {
		resp := srv.Do(t, http.MethodGet, next, token, nil)
		body := expectStatus(t, resp, http.StatusOK)
		var page struct {
			Repositories []string `json:"repositories"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("catalog page %s: %v", body, err)
		}
		if len(page.Repositories) > n {
			t.Fatalf("catalog page of %d entries with n=%d", len(page.Repositories), n)
		}
		all = append(all, page.Repositories...)
		pages++
		next = ""
		if l := resp.Header.Get("Link"); l != "" {
			m := regexp.MustCompile(`<([^>]+)>`).FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("bad Link %q", l)
			}
			u, err := url.Parse(m[1])
			if err != nil {
				t.Fatal(err)
			}
			next = u.RequestURI()
		}
	}
	return all, pages
}

// /v2/_catalog lists only the repositories the caller may pull, with
// pagination intact; a system account without rules gets no catalog.
func TestEdgeCatalogFilteredByPolicy(t *testing.T) {
	srv := mcrtest.Start(t)
	adminTok := srv.Login(t, "admin", mcrtest.AdminPassword)
	img, _ := random.Image(256, 1)
	repos := []string{"open/a", "open/b", "open/c", "secret/a", "secret/b", "zz/open"}
	for _, r := range repos {
		if err := remote.Write(ref(t, srv, r+":v1"), img, remoteOpts(t, srv, adminAuth(), nil)...); err != nil {
			t.Fatal(err)
		}
	}
	polCreateRule(t, srv, adminTok, map[string]any{
		"priority": 1, "effect": "deny", "roles": []string{"user"},
		"actions": []string{"registry:pull"}, "repositories": []string{"secret/*"},
	})
	srv.AddUser(t, "bob", "bob-password-1", "user", "human")
	srv.AddUser(t, "ci", "ci-password-12", "user", "system")
	bob := srv.Token(t, "bob", "bob-password-1", "registry:catalog:*")
	admin := srv.Token(t, "admin", mcrtest.AdminPassword, "registry:catalog:*")

	want := []string{"open/a", "open/b", "open/c", "zz/open"}
	for _, n := range []int{1, 2, 3, 100} {
		got, pages := edgeCatalog(t, srv, bob, n)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("bob's catalog (n=%d, %d pages): %v, want %v", n, pages, got, want)
		}
	}
	if got, _ := edgeCatalog(t, srv, admin, 2); len(got) != len(repos) {
		t.Errorf("admin's catalog: %v, want all of %v", got, repos)
	}
	ci := srv.Token(t, "ci", "ci-password-12", "registry:catalog:*")
	resp := srv.Do(t, http.MethodGet, "/v2/_catalog", ci, nil)
	body := readAll(t, resp)
	emptyOK := resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"repositories":[]`)
	if resp.StatusCode != http.StatusForbidden && !emptyOK {
		t.Errorf("system account without rules: %d %s, want 403 or an empty catalog", resp.StatusCode, body)
	}
}
