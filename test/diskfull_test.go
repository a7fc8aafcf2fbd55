package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	_ "github.com/mattn/go-sqlite3" // integrity_check on the server's database
	"github.com/opencontainers/go-digest"
	"google.golang.org/grpc/codes"

	"git.wntrmute.dev/kyle/mcr/adminapi/apitypes"
	"git.wntrmute.dev/kyle/mcr/grpcclient"
	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// mountTmpfs mounts a tmpfs of size bytes for the test (the suite runs as
// root in CI; without mount privileges it skips locally and fails in CI).
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("mounting a tmpfs needs root: %v: %s", err, out)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func statfsFree(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// fillTo writes a filler file until at most leave bytes are free (0: until
// the filesystem refuses a write).
func fillTo(t *testing.T, dir, name string, leave int64) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		free := statfsFree(t, dir)
		if leave > 0 && free <= leave {
			return p
		}
		chunk := buf
		if leave > 0 && free-leave < int64(len(chunk)) {
			chunk = buf[:free-leave]
		}
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return p
			}
			t.Fatal(err)
		}
	}
}

// expectStorageFull checks err is a 507 with the storage-full message and
// no path.
func expectStorageFull(t *testing.T, err error, layers, what string) {
	t.Helper()
	var te *transport.Error
	if !asTransportError(err, &te) {
		t.Fatalf("%s: want a 507 from the registry, got %v", what, err)
	}
	if te.StatusCode != http.StatusInsufficientStorage {
		t.Fatalf("%s: status %d, want 507: %v", what, te.StatusCode, err)
	}
	if len(te.Errors) == 0 || te.Errors[0].Message != "registry storage is full" {
		t.Fatalf("%s: errors %+v, want message %q", what, te.Errors, "registry storage is full")
	}
	for _, leak := range []string{layers, "_uploads", "/docker/registry", "no space left"} {
		if strings.Contains(err.Error(), leak) {
			t.Fatalf("%s: error leaks %q: %v", what, leak, err)
		}
	}
}

func healthDetail(t *testing.T, srv *mcrtest.Server) (int, map[string]string) {
	t.Helper()
	resp := srv.Do(t, http.MethodGet, "/v1/health?detail=1", "", nil)
	var body struct {
		Checks map[string]string `json:"checks"`
	}
	raw := readAll(t, resp)
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("health detail: %v: %s", err, raw)
	}
	return resp.StatusCode, body.Checks
}

func noUploadData(t *testing.T, layers, repo string) {
	t.Helper()
	root := filepath.Join(layers, "docker/registry/v2/repositories", repo)
	_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && fi.Name() == "data" && strings.Contains(p, "/_uploads/") && fi.Size() > 0 {
			t.Errorf("partial upload left behind: %s (%d bytes)", strings.TrimPrefix(p, layers), fi.Size())
		}
		return nil
	})
}

// TestDiskFull is the disk-full incident of the runbook on a real 40 MiB
// tmpfs (the database stays on the data directory's filesystem, as
// docs/runbook.md recommends): pushes fail with 507 and no path, pulls keep
// working, health reports storage failing, repo delete + `mcrctl gc --grace
// 0s` frees the space, pushes work again; at 100 % full the server starts
// read-only and recovers when space returns; the database passes
// integrity_check and every remaining image pulls and verifies.
func TestDiskFull(t *testing.T) {
	layers := mountTmpfs(t, 40<<20)
	metricsAddr := mcrtest.FreeAddr(t)
	srv := mcrtest.Start(t,
		mcrtest.WithConfig("storage.layers_path", `"`+layers+`"`),
		mcrtest.WithConfig("storage.min_free", `"2MiB"`),
		mcrtest.WithConfig("server.metrics_addr", `"`+metricsAddr+`"`))
	auth := adminAuth()
	pushed := map[string]v1.Hash{}
	pushN := func(r string, layers int, size int64) error {
		img := gcImage(t, nil, layers, size)
		if err := remote.Write(ref(t, srv, r), img, remoteOpts(t, srv, auth, nil)...); err != nil {
			return err
		}
		d, _ := img.Digest()
		pushed[r] = d
		return nil
	}
	push := func(r string) error { return pushN(r, 3, 2<<20) }

	// 1. One monolithic upload larger than the filesystem: 507, and the
	// partial data does not stay behind.
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:fill/raw:pull,push")
	big := gcRandom(t, int(statfsFree(t, layers))+(4<<20))
	resp := srv.Do(t, http.MethodPost, "/v2/fill/raw/blobs/uploads/", tok, nil)
	readAll(t, resp)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start upload: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if i := strings.Index(loc, "/v2/"); i > 0 {
		loc = loc[i:]
	}
	resp = srv.Do(t, http.MethodPut, loc+"&digest="+digest.FromBytes(big).String(), tok, big, "Content-Type", "application/octet-stream")
	body := expectOCIError(t, resp, http.StatusInsufficientStorage, "UNKNOWN")
	if strings.Contains(string(body), layers) || strings.Contains(string(body), "/docker/") {
		t.Fatalf("507 body leaks a path: %s", body)
	}
	noUploadData(t, layers, "fill/raw")
	if code, _ := gcBlobStatus(t, srv, tok, "fill/raw", digest.FromBytes(big).String()); code != http.StatusNotFound {
		t.Fatalf("blob of the failed upload: %d, want 404", code)
	}

	// Push until full: the failing push answers 507, no path.
	var fullErr error
	for i := range 20 {
		if err := push(fmt.Sprintf("fill/img%d:v1", i)); err != nil {
			fullErr = err
			break
		}
	}
	if fullErr == nil {
		t.Fatal("20 pushes of 6 MiB fit on a 40 MiB filesystem")
	}
	expectStorageFull(t, fullErr, layers, "push on a full disk")
	if len(pushed) < 3 {
		t.Fatalf("only %d images fit before the disk was full", len(pushed))
	}
	// The client abandons its other uploads of that image: stale uploads,
	// which `mcrctl uploads purge` removes (below).
	noUploadData(t, layers, "fill/raw")

	// Keep it full (under storage.min_free) for what follows.
	filler := fillTo(t, layers, "filler", 1<<20)
	// A manifest push (existing content, new tag) is refused the same way.
	var anyRef string
	for r := range pushed {
		anyRef = r
		break
	}
	img, err := remote.Image(ref(t, srv, anyRef), remoteOpts(t, srv, auth, nil)...)
	if err != nil {
		t.Fatalf("pull %s on a full disk: %v", anyRef, err)
	}
	err = remote.Write(ref(t, srv, strings.Split(anyRef, ":")[0]+":retag"), img, remoteOpts(t, srv, auth, nil)...)
	expectStorageFull(t, err, layers, "manifest push on a full disk")
	// Starting an upload under storage.min_free: 507 and an OCI body.
	resp = srv.Do(t, http.MethodPost, "/v2/fill/raw/blobs/uploads/", tok, nil)
	body = expectOCIError(t, resp, http.StatusInsufficientStorage, "UNKNOWN")
	if strings.Contains(string(body), layers) || strings.Contains(string(body), "/docker/") {
		t.Fatalf("507 body leaks a path: %s", body)
	}

	// 2. Pulls keep working; 3. health says storage is failing; the free
	// space is exported.
	gcPullAll(t, srv, pushed)
	code, checks := healthDetail(t, srv)
	if code != http.StatusServiceUnavailable || !strings.Contains(checks["storage"], "registry storage is full") {
		t.Fatalf("health detail on a full disk: %d %v", code, checks)
	}
	mresp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mbody, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if !strings.Contains(string(mbody), "\nmcr_storage_free_bytes ") {
		t.Fatalf("mcr_storage_free_bytes not exported")
	}

	// 4. repo delete + `mcrctl gc --grace 0s` frees the space (the blobs
	// are minutes old, far inside gc.grace = 1h).
	session := srv.Login(t, "admin", mcrtest.AdminPassword)
	ctl := func(args ...string) ctlResult {
		return ctlRun(t, "", []string{"MCR_TOKEN=" + session}, append(args, "--addr", srv.URL, "--ca-cert", srv.CACert)...)
	}
	// The pushes the client abandoned are stale uploads: listed, then
	// purged (audited), and their space is back.
	ul := ctl("uploads", "list").want(t, 0, "uploads list", "REPOSITORY", "UPLOAD ID", "SIZE", "AGE")
	if !strings.Contains(ul.stdout, "fill/img") {
		t.Fatalf("uploads list shows no abandoned upload of the failed push:\n%s", ul.stdout)
	}
	beforePurge := statfsFree(t, layers)
	ctl("uploads", "purge", "--older-than", "0s").want(t, 0, "uploads purge", "purged ")
	if statfsFree(t, layers) <= beforePurge {
		t.Fatalf("uploads purge freed nothing")
	}
	if ul := ctl("uploads", "list").want(t, 0, "uploads list after purge"); !strings.Contains(ul.stdout, "0 uploads") {
		t.Fatalf("uploads left after purge:\n%s", ul.stdout)
	}
	ctl("audit", "tail", "--n", "5").want(t, 0, "audit tail", "uploads_purged")
	before := statfsFree(t, layers)
	var deleted []string
	for r := range pushed {
		if len(deleted) == 2 {
			break
		}
		repo := strings.Split(r, ":")[0]
		ctl("repo", "delete", "--yes", repo).want(t, 0, "repo delete "+repo)
		deleted = append(deleted, r)
	}
	for _, r := range deleted {
		delete(pushed, r)
	}
	g := ctl("gc", "--grace", "0s", "--wait").want(t, 0, "gc --grace 0s", "blobs removed:")
	if !strings.Contains(g.stderr, "may lose their blobs") {
		t.Fatalf("gc --grace 0s printed no warning: %q", g.stderr)
	}
	after := statfsFree(t, layers)
	if after-before < 2*6<<20-(1<<20) {
		t.Fatalf("gc freed %d bytes, want about 12 MiB (two 6 MiB images)\n%s", after-before, g.stdout)
	}
	// 5. Pushes work again.
	if err := push("fill/again:v1"); err != nil {
		t.Fatalf("push after gc: %v", err)
	}

	// 6. 100 % full: the server starts read-only and recovers.
	if err := srv.Stop(t); err != nil {
		t.Fatalf("stopping mcrsrv: %v", err)
	}
	full := fillTo(t, layers, "filler-2", 0)
	srv.Restart(t) // waits for /v1/health 200
	if code, checks := healthDetail(t, srv); code != http.StatusServiceUnavailable || checks["storage"] == "ok" {
		t.Fatalf("health detail at 100%% full: %d %v", code, checks)
	}
	gcPullAll(t, srv, pushed)
	expectStorageFull(t, push("fill/ro:v1"), layers, "push at 100% full")
	if !strings.Contains(srv.Output.String(), "starting read-only") {
		t.Fatalf("no read-only notice in the log:\n%s", srv.Output.String())
	}
	for _, p := range []string{full, filler} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if free := statfsFree(t, layers); free < 3<<20 {
		t.Fatalf("only %d bytes free after the filler went", free)
	}
	if err := pushN("fill/back:v1", 1, 512<<10); err != nil {
		t.Fatalf("push after space returned: %v", err)
	}
	if code, checks := healthDetail(t, srv); code != http.StatusOK {
		t.Fatalf("health detail after space returned: %d %v", code, checks)
	}

	// 7. Nothing corrupt.
	gcPullAll(t, srv, pushed)
	if err := srv.Stop(t); err != nil {
		t.Fatalf("stopping mcrsrv: %v", err)
	}
	integrityOK(t, filepath.Join(srv.Dir, "mcr.db"))
}

// TestDiskFullDatabaseReserve: the whole data directory, database
// included, on one 48 MiB tmpfs filled to 100 %. SQLite cannot open a
// database there; start-up deletes the database reserve (4 MiB here),
// starts read-only (pulls work, pushes get 507), and repo delete + gc
// --grace 0s through the server frees the space; the next start recreates
// the reserve.
func TestDiskFullDatabaseReserve(t *testing.T) {
	small := mountTmpfs(t, 48<<20)
	dir := filepath.Join(small, "srv")
	mcrtest.InitIn(t, dir, mcrtest.FreeAddr(t))
	srv := mcrtest.Start(t, mcrtest.WithDir(dir), mcrtest.WithConfig("database.reserve", `"4MiB"`),
		mcrtest.WithConfig("storage.min_free", `"1MiB"`))
	reserve := filepath.Join(dir, "mcr.db.reserve")
	if fi, err := os.Stat(reserve); err != nil || fi.Size() != 4<<20 {
		t.Fatalf("database reserve: %v %v", fi, err)
	}
	auth := adminAuth()
	keep, gone := gcImage(t, nil, 2, 1<<20), gcImage(t, nil, 4, 2<<20)
	for r, img := range map[string]v1.Image{"db/keep:v1": keep, "db/gone:v1": gone} {
		if err := remote.Write(ref(t, srv, r), img, remoteOpts(t, srv, auth, nil)...); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Stop(t); err != nil {
		t.Fatal(err)
	}
	fillTo(t, small, "filler", 0)
	srv.Restart(t) // healthy only if the database opened
	if !strings.Contains(srv.Output.String(), "released the database reserve") {
		t.Fatalf("no reserve release in the log:\n%s", srv.Output.String())
	}
	if _, err := os.Stat(reserve); !os.IsNotExist(err) {
		t.Fatalf("reserve still there: %v", err)
	}
	gcPullAll(t, srv, map[string]v1.Hash{"db/keep:v1": mustDigest(t, keep)})
	expectStorageFull(t, remote.Write(ref(t, srv, "db/new:v1"), gcImage(t, nil, 1, 256<<10), remoteOpts(t, srv, auth, nil)...), small, "push with the disk full")
	session := srv.Login(t, "admin", mcrtest.AdminPassword)
	ctl := func(args ...string) ctlResult {
		return ctlRun(t, "", []string{"MCR_TOKEN=" + session}, append(args, "--addr", srv.URL, "--ca-cert", srv.CACert)...)
	}
	ctl("repo", "delete", "--yes", "db/gone").want(t, 0, "repo delete")
	ctl("gc", "--grace", "0s", "--wait").want(t, 0, "gc --grace 0s", "blobs removed:")
	if err := remote.Write(ref(t, srv, "db/new:v1"), gcImage(t, nil, 1, 256<<10), remoteOpts(t, srv, auth, nil)...); err != nil {
		t.Fatalf("push after gc: %v", err)
	}
	// Room again (the filler keeps most of it): the next start recreates
	// the reserve only if it fits twice; make it fit.
	if err := os.Remove(filepath.Join(small, "filler")); err != nil {
		t.Fatal(err)
	}
	srv.Restart(t)
	if fi, err := os.Stat(reserve); err != nil || fi.Size() != 4<<20 {
		t.Fatalf("database reserve not recreated: %v %v", fi, err)
	}
	gcPullAll(t, srv, map[string]v1.Hash{"db/keep:v1": mustDigest(t, keep)})
}

// TestDiskFullDatabaseAtRuntime: the database on its own 16 MiB tmpfs,
// blobs on another filesystem, and the database's filesystem fills while
// the server runs. Storage takes every write; the audit and index rows do
// not (SQLITE_FULL). A manifest push, a blob upload and a client's whole
// push answer 507 with the storage-full message and no path (not 503, not
// 500); pulls keep working; health reports storage failing. When space
// returns, the same pushes succeed and each change has exactly one audit
// row; the database passes integrity_check.
func TestDiskFullDatabaseAtRuntime(t *testing.T) {
	small := mountTmpfs(t, 16<<20)
	dir := filepath.Join(small, "srv")
	mcrtest.InitIn(t, dir, mcrtest.FreeAddr(t))
	layers := filepath.Join(t.TempDir(), "layers")
	srv := mcrtest.Start(t, mcrtest.WithDir(dir), mcrtest.WithConfig("database.reserve", `"0"`),
		mcrtest.WithConfig("storage.layers_path", `"`+layers+`"`))
	const repo, imgRepo = "dbfull/app", "dbfull/img"
	// Credentials first: nothing below signs in while the disk is full.
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:"+repo+":pull,push", "repository:"+imgRepo+":pull,push")
	adminTok := srv.Login(t, "admin", mcrtest.AdminPassword)
	bearer := authn.FromConfig(authn.AuthConfig{RegistryToken: tok})
	client := srv.Client()
	raw := audRawRepo(t, srv, repo, tok)
	expectStatus(t, raw.put(t, client, "base", 0), http.StatusCreated)
	keep := gcImage(t, nil, 2, 256<<10)
	if err := remote.Write(ref(t, srv, imgRepo+":keep"), keep, remoteOpts(t, srv, bearer, nil)...); err != nil {
		t.Fatal(err)
	}

	filler := fillTo(t, small, "filler", 0)
	full := func(what string, status int, body []byte) {
		t.Helper()
		if status != http.StatusInsufficientStorage {
			t.Fatalf("%s with the database's disk full: %d %s, want 507", what, status, body)
		}
		var e ociErrors
		if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 || e.Errors[0].Code != "UNKNOWN" ||
			e.Errors[0].Message != "registry storage is full" {
			t.Fatalf("%s: body %s, want UNKNOWN %q", what, body, "registry storage is full")
		}
		for _, leak := range []string{dir, layers, "database or disk is full", "no space left"} {
			if strings.Contains(string(body), leak) {
				t.Fatalf("%s: body leaks %q: %s", what, leak, body)
			}
		}
	}
	// A manifest push: storage takes the manifest, the database not its rows.
	resp := raw.put(t, client, "full", 1)
	full("manifest push", resp.StatusCode, readAll(t, resp))
	// A blob upload: the blob lands in storage, its audit row does not.
	blob := []byte("a blob uploaded while the database's disk is full")
	status, body := audUploadBlob(t, srv, repo, tok, blob)
	full("blob upload", status, body)
	// A client's push (go-containerregistry) fails on its first change.
	img := gcImage(t, nil, 2, 256<<10)
	expectStorageFull(t, remote.Write(ref(t, srv, imgRepo+":new"), img, remoteOpts(t, srv, bearer, nil)...), dir, "client push with the database's disk full")

	// An admin write, on /v1 and on gRPC: 507 and RESOURCE_EXHAUSTED with
	// STORAGE_FULL, not 500/INTERNAL (the request was fine; the disk is not).
	rule := apitypes.RuleCreate{Priority: 5, RuleMatch: apitypes.RuleMatch{Effect: "deny", Actions: []string{"registry:push"}, Repositories: []string{"full/*"}}}
	ruleJSON, err := json.Marshal(rule)
	if err != nil {
		t.Fatal(err)
	}
	resp = srv.Do(t, http.MethodPost, "/v1/policy/rules", adminTok, ruleJSON, "Content-Type", "application/json")
	body = readAll(t, resp)
	var v1err struct {
		Error string `json:"error"`
	}
	if resp.StatusCode != http.StatusInsufficientStorage || json.Unmarshal(body, &v1err) != nil || v1err.Error != "registry database storage is full" {
		t.Fatalf("POST /v1/policy/rules with the database's disk full: %d %s, want 507 {\"error\":\"registry database storage is full\"}", resp.StatusCode, body)
	}
	gcl := srv.GRPCClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = gcl.CreateRule(ctx, adminTok, rule)
	var ge *grpcclient.Error
	if !errors.As(err, &ge) || ge.Code != codes.ResourceExhausted || ge.HTTPStatus() != http.StatusInsufficientStorage ||
		ge.Message != "registry database storage is full" {
		t.Fatalf("gRPC CreatePolicyRule with the database's disk full: %v (%#v), want RESOURCE_EXHAUSTED STORAGE_FULL", err, ge)
	}
	if rules := srv.Do(t, http.MethodGet, "/v1/policy/rules", adminTok, nil); strings.Contains(string(readAll(t, rules)), "full/*") {
		t.Fatal("a policy rule refused for a full disk was stored")
	}

	// Health reports storage failing; pulls keep working.
	if code, checks := healthDetail(t, srv); code != http.StatusServiceUnavailable || !strings.Contains(checks["storage"], "registry storage is full") ||
		strings.Contains(checks["storage"], dir) {
		t.Fatalf("health detail with the database's disk full: %d %v", code, checks)
	}
	gcPullAllAs(t, srv, bearer, map[string]v1.Hash{imgRepo + ":keep": mustDigest(t, keep)})
	expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/manifests/base", tok, nil, "Accept", audOCIManifest), http.StatusOK)

	// Space returns: the same changes succeed, each recorded once.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	expectStatus(t, raw.put(t, client, "full", 1), http.StatusCreated)
	if status, body := audUploadBlob(t, srv, repo, tok, blob); status != http.StatusCreated {
		t.Fatalf("blob upload after space returned: %d %s", status, body)
	}
	if err := remote.Write(ref(t, srv, imgRepo+":new"), img, remoteOpts(t, srv, bearer, nil)...); err != nil {
		t.Fatalf("client push after space returned: %v", err)
	}
	if code, checks := healthDetail(t, srv); code != http.StatusOK {
		t.Fatalf("health detail after space returned: %d %v", code, checks)
	}
	pushes := audAll(t, srv, adminTok, "event_type=manifest_pushed&repository="+repo, 100)
	if len(pushes) != 2 || len(audWithTag(pushes, "full")) != 1 {
		t.Errorf("manifest_pushed rows of %s: want base and one full, got\n%s", repo, audDump(pushes))
	}
	n := 0
	for _, e := range audAll(t, srv, adminTok, "event_type=blob_uploaded&repository="+repo, 100) {
		if e.Digest == audDigest(blob) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d blob_uploaded rows for the blob uploaded again, want 1", n)
	}
	newPushes := audWithTag(audAll(t, srv, adminTok, "event_type=manifest_pushed&repository="+imgRepo, 100), "new")
	if len(newPushes) != 1 || newPushes[0].Digest != mustDigest(t, img).String() {
		t.Errorf("manifest_pushed rows of %s:new: want one of %s, got\n%s", imgRepo, mustDigest(t, img), audDump(newPushes))
	}
	gcPullAllAs(t, srv, bearer, map[string]v1.Hash{imgRepo + ":keep": mustDigest(t, keep), imgRepo + ":new": mustDigest(t, img)})

	if err := srv.Stop(t); err != nil {
		t.Fatalf("stopping mcrsrv: %v", err)
	}
	integrityOK(t, filepath.Join(dir, "mcr.db"))
}

// integrityOK checks the SQLite database at path with PRAGMA
// integrity_check, read-only.
func integrityOK(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	}()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check: %q %v", res, err)
	}
}
