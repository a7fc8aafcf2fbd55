package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// incCheckpoint folds the WAL into the database file, so that damage to
// the file is what the next process reads.
func incCheckpoint(t *testing.T, dbPath string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	}()
	if _, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
}

// incDamage overwrites count pages of the database starting at page first
// (1-based) with garbage.
func incDamage(t *testing.T, dbPath string, first, count int) {
	t.Helper()
	f, err := os.OpenFile(dbPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	}()
	const page = 4096
	junk := []byte(strings.Repeat("\xde\xad\xbe\xef", page/4))
	for p := first; p < first+count; p++ {
		if _, err := f.WriteAt(junk, int64(p-1)*page); err != nil {
			t.Fatal(err)
		}
	}
}

// incServeOnce runs `mcrsrv server` expecting it to refuse to start.
func incServeOnce(t *testing.T, srv *mcrtest.Server) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, mcrtest.Binary(t, "mcrsrv"), "server", "--config", srv.ConfigPath)
	cmd.Env = srv.Env
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("mcrsrv server kept running on a damaged database:\n%s", out)
	}
	return string(out), err == nil
}

func incRepoNames(t *testing.T, srv *mcrtest.Server, tok string) []string {
	t.Helper()
	var l struct {
		Repositories []struct {
			Name string `json:"name"`
		} `json:"repositories"`
	}
	gcAPI(t, srv, http.MethodGet, "/v1/repositories", tok, nil, &l)
	var names []string
	for _, r := range l.Repositories {
		names = append(names, r.Name)
	}
	return names
}

// TestCorruptDatabaseRefusedThenRestored: a database whose pages were
// overwritten is refused at start-up with a message that names the
// database and the restore procedure (whichever step trips over the
// damage: the header, the schema, or only the integrity check); the
// runbook's restore then works, and an image pushed after the snapshot is
// listed again without `mcrsrv reindex`.
func TestCorruptDatabaseRefusedThenRestored(t *testing.T) {
	srv := mcrtest.Start(t)
	session := srv.Login(t, "admin", mcrtest.AdminPassword)
	auth := adminAuth()
	before := gcImage(t, nil, 2, 8<<10)
	if err := remote.Write(ref(t, srv, "inc/before:v1"), before, remoteOpts(t, srv, auth, nil)...); err != nil {
		t.Fatal(err)
	}
	snap := ctlRun(t, "", []string{"MCR_TOKEN=" + session}, "snapshot", "--addr", srv.URL, "--ca-cert", srv.CACert).want(t, 0, "snapshot")
	snapPath := strings.TrimSpace(snap.stdout)
	after := gcImage(t, nil, 2, 8<<10)
	if err := remote.Write(ref(t, srv, "inc/after:v1"), after, remoteOpts(t, srv, auth, nil)...); err != nil {
		t.Fatal(err)
	}
	// Enough audit rows for pages beyond the schema.
	for i := range 200 {
		gcAPI(t, srv, http.MethodGet, "/v1/repositories?q="+strings.Repeat("x", i%7), session, nil, nil)
		if _, err := remote.Head(ref(t, srv, "inc/before:v1"), remoteOpts(t, srv, auth, nil)...); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	dbPath := filepath.Join(srv.Dir, "mcr.db")
	incCheckpoint(t, dbPath)
	fi, err := os.Stat(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	pages := int(fi.Size() / 4096)
	if pages < 12 {
		t.Fatalf("database has only %d pages", pages)
	}
	good, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, dmg := range []struct {
		name         string
		first, count int
	}{
		{"header page", 1, 1},
		{"schema and early tables", 2, 4},
		{"last pages (indexes, audit rows)", pages - 4, 4},
	} {
		if err := os.WriteFile(dbPath, good, 0o600); err != nil {
			t.Fatal(err)
		}
		incDamage(t, dbPath, dmg.first, dmg.count)
		out, ok := incServeOnce(t, srv)
		if ok {
			t.Fatalf("%s damaged: the server exited 0:\n%s", dmg.name, out)
		}
		for _, want := range []string{"database: " + dbPath + " is corrupt; refusing to start", "Restore it from the newest snapshot", "docs/runbook.md"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s damaged: start-up failure lacks %q:\n%s", dmg.name, want, out)
			}
		}
		if strings.Contains(out, "gc: store") {
			t.Errorf("%s damaged: the failure blames gc:\n%s", dmg.name, out)
		}
	}

	// The runbook's restore: keep the damaged file, copy the snapshot in,
	// start.
	for _, sfx := range []string{"", "-wal", "-shm"} {
		if err := os.Rename(dbPath+sfx, dbPath+".corrupt"+sfx); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	gcCopy(t, snapPath, dbPath)
	srv.Restart(t)
	if code, checks := healthDetail(t, srv); code != http.StatusOK || checks["database"] != "ok" {
		t.Fatalf("health after restore: %d %v", code, checks)
	}
	session = srv.Login(t, "admin", mcrtest.AdminPassword)
	var names []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if names = incRepoNames(t, srv, session); strings.Join(names, ",") == "inc/after,inc/before" {
			break
		}
	}
	if strings.Join(names, ",") != "inc/after,inc/before" {
		t.Fatalf("repo list after restore: %v, want inc/after and inc/before (no manual reindex)", names)
	}
	ctlRun(t, "", []string{"MCR_TOKEN=" + session}, "repo", "list", "--addr", srv.URL, "--ca-cert", srv.CACert).want(t, 0, "repo list", "inc/after", "inc/before")
	gcPullAll(t, srv, map[string]v1.Hash{"inc/before:v1": mustDigest(t, before), "inc/after:v1": mustDigest(t, after)})
	if !strings.Contains(srv.Output.String(), "index: reconciled with storage") {
		t.Fatalf("no reconcile in the log:\n%s", srv.Output.String())
	}
}

// TestIndexRepairedAfterFailedWrite: a manifest deletion reaches storage
// but its index write fails (an injected SQLite trigger aborts it); the
// index is re-derived from storage as soon as the database takes writes
// again. And an emptied repository is listed by /v2/_catalog and the index
// alike, and `mcrctl repo delete` removes it from both.
func TestIndexRepairedAfterFailedWrite(t *testing.T) {
	srv := mcrtest.Start(t)
	session := srv.Login(t, "admin", mcrtest.AdminPassword)
	auth := adminAuth()
	opts := remoteOpts(t, srv, auth, nil)
	img1, img2 := gcImage(t, nil, 1, 4<<10), gcImage(t, nil, 1, 4<<10)
	for r, img := range map[string]v1.Image{"rep/a:v1": img1, "rep/a:v2": img2} {
		if err := remote.Write(ref(t, srv, r), img, opts...); err != nil {
			t.Fatal(err)
		}
	}
	manifests := func() int64 {
		var d struct {
			Manifests []json.RawMessage `json:"manifests"`
		}
		gcAPI(t, srv, http.MethodGet, "/v1/repositories/rep/a", session, nil, &d)
		return int64(len(d.Manifests))
	}
	if n := manifests(); n != 2 {
		t.Fatalf("rep/a: %d manifests indexed, want 2", n)
	}

	db, err := sql.Open("sqlite3", "file:"+filepath.Join(srv.Dir, "mcr.db")+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	}()
	if _, err := db.Exec(`CREATE TRIGGER inject_fail BEFORE DELETE ON manifests BEGIN SELECT RAISE(ABORT, 'injected failure'); END`); err != nil {
		t.Fatal(err)
	}
	d2 := mustDigest(t, img2)
	// distribution logs a listener error on delete and answers 202: the
	// index write failed after storage changed, the drift the issue saw.
	_ = remote.Delete(ref(t, srv, "rep/a@"+d2.String()), opts...)
	if _, err := remote.Head(ref(t, srv, "rep/a@"+d2.String()), opts...); err == nil {
		t.Fatal("the manifest is still on storage: the failure came too early to test a repair")
	}
	if n := manifests(); n != 2 {
		t.Fatalf("index changed although every write to it fails: %d manifests", n)
	}
	if !strings.Contains(srv.Output.String(), "repairing it from storage") {
		t.Fatalf("the failed index write was not noticed:\n%s", srv.Output.String())
	}
	if _, err := db.Exec(`DROP TRIGGER inject_fail`); err != nil {
		t.Fatal(err)
	}
	var n int64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if n = manifests(); n == 1 {
			break
		}
	}
	if n != 1 {
		t.Fatalf("index not repaired from storage: %d manifests, want 1\n%s", n, srv.Output.String())
	}

	// Empty repository: delete its only manifest.
	img3 := gcImage(t, nil, 1, 4<<10)
	if err := remote.Write(ref(t, srv, "rep/empty:v1"), img3, opts...); err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(ref(t, srv, "rep/empty@"+mustDigest(t, img3).String()), opts...); err != nil {
		t.Fatal(err)
	}
	catalog := func() []string {
		tok := srv.Token(t, "admin", mcrtest.AdminPassword, "registry:catalog:*")
		var c struct {
			Repositories []string `json:"repositories"`
		}
		if err := json.Unmarshal(expectStatus(t, srv.Do(t, http.MethodGet, "/v2/_catalog", tok, nil), http.StatusOK), &c); err != nil {
			t.Fatal(err)
		}
		return c.Repositories
	}
	if c, idx := catalog(), incRepoNames(t, srv, session); strings.Join(c, ",") != strings.Join(idx, ",") || !strings.Contains(strings.Join(c, ","), "rep/empty") {
		t.Fatalf("catalog %v and index %v disagree on the emptied repository", c, idx)
	}
	ctlRun(t, "", []string{"MCR_TOKEN=" + session}, "repo", "delete", "--yes", "rep/empty", "--addr", srv.URL, "--ca-cert", srv.CACert).want(t, 0, "repo delete rep/empty")
	if c, idx := catalog(), incRepoNames(t, srv, session); strings.Join(c, ",") != "rep/a" || strings.Join(idx, ",") != "rep/a" {
		t.Fatalf("after repo delete: catalog %v, index %v; want rep/a only", c, idx)
	}
}
