package e2e

import (
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// TestPostgres runs MCR with its metadata in PostgreSQL: the conformance
// default profile (index, referrers, sha512 aliases all in PostgreSQL),
// and two servers initialised against one database — the second init
// keeps the first one's admin account, accounts added through one are
// usable on the other, and both servers' audit events land in one table.
func TestPostgres(t *testing.T) {
	t.Parallel()
	t.Run("conformance-default-profile", func(t *testing.T) {
		t.Parallel()
		_, pg := mcrtest.Postgres(t)
		srv := mcrtest.Start(t, pg)
		tot, out, results := runConformanceAt(t, srv)
		if _, ok := tot["Total"]; !ok {
			t.Fatalf("no totals in the conformance output:\n%s", out)
		}
		t.Logf("default profile on PostgreSQL: %d failed, %d errors, %d passed of %d", tot["FAIL"], tot["Error"], tot["Pass"], tot["Total"])
		if tot["FAIL"] != 0 || tot["Error"] != 0 || tot["Pass"] <= 800 {
			for _, l := range failingLines(out) {
				t.Log(l)
			}
			t.Logf("results: %s", keepResults(results))
			t.Errorf("conformance on PostgreSQL: %d failed, %d errors, %d passed", tot["FAIL"], tot["Error"], tot["Pass"])
		}
		if strings.Contains(srv.Output.String(), "mcr-test-password") {
			t.Errorf("the server logged the database password")
		}
	})
	t.Run("shared-database", func(t *testing.T) {
		t.Parallel()
		dsn, pg := mcrtest.Postgres(t)
		a := mcrtest.Start(t, pg)
		// The second server's init runs with another admin password: it
		// must keep the account the first one created.
		dirB := t.TempDir() + "/srv"
		cmd := exec.Command(mcrtest.Binary(t, "mcrsrv"), "init", "--dir", dirB, "--hostname", "localhost",
			"--listen", mcrtest.FreeAddr(t), "--grpc-listen", "127.0.0.1:0")
		cmd.Env = append(cmd.Environ(), "MCR_ADMIN_PASSWORD=another-password-2", "MCR_DATABASE_DRIVER=postgres", "MCR_DATABASE_DSN="+dsn)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("second init: %v\n%s", err, out)
		}
		if strings.Contains(string(out), "created local account admin") {
			t.Errorf("second init against the shared database:\n%s", out)
		}
		b := mcrtest.Start(t, mcrtest.WithDir(dirB), pg)
		b.Token(t, "admin", mcrtest.AdminPassword, "repository:shared/app:pull") // the first admin password works on b
		a.AddUser(t, "carol", "carol-password-1", "admin", "human")
		img, err := random.Image(2048, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref(t, a, "shared/app:v1"), img, remoteOpts(t, a, basicAuth("carol", "carol-password-1"), nil)...); err != nil {
			t.Fatalf("push through a: %v", err)
		}
		// b's repository index (the same tables; the blobs are in a's
		// storage) lists what a received.
		admin := b.Login(t, "admin", mcrtest.AdminPassword)
		var repo struct {
			Tags []struct {
				Name string `json:"name"`
			} `json:"tags"`
		}
		if code := gcAPI(t, b, http.MethodGet, "/v1/repositories/shared/app", admin, nil, &repo); code != http.StatusOK || len(repo.Tags) != 1 || repo.Tags[0].Name != "v1" {
			t.Fatalf("repository on b: %d %+v", code, repo)
		}
		var page struct {
			Events []struct {
				Type  string `json:"event_type"`
				Actor string `json:"actor"`
			} `json:"events"`
		}
		gcAPI(t, b, http.MethodGet, "/v1/audit?event_type=login_ok&limit=100", admin, nil, &page)
		logins := map[string]bool{}
		for _, e := range page.Events {
			logins[e.Actor] = true
		}
		if !logins["carol"] || !logins["admin"] {
			t.Errorf("audit on b lacks logins recorded by a and b: %+v", page.Events)
		}
	})
	// The offline commands refuse a shared database (other replicas may be
	// serving) and name the online command instead; nothing runs.
	t.Run("offline-commands-refuse", func(t *testing.T) {
		t.Parallel()
		dsn, _ := mcrtest.Postgres(t)
		env := []string{"MCR_DATABASE_DRIVER=postgres", "MCR_DATABASE_DSN=" + dsn}
		dir := mcrtest.Init(t, mcrtest.FreeAddr(t), env...)
		for _, c := range []struct{ cmd, online string }{{"gc", "collect online with `mcrctl gc`"}, {"reindex", "reconcile online with `mcrctl index reconcile`"}} {
			cmd := exec.Command(mcrtest.Binary(t, "mcrsrv"), c.cmd, "--config", filepath.Join(dir, "mcr.toml"))
			cmd.Env = append(cmd.Environ(), env...)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), "refusing to run offline on a shared PostgreSQL database: "+c.online) {
				t.Errorf("mcrsrv %s on PostgreSQL: %v\n%s", c.cmd, err, out)
			}
			if strings.Contains(string(out), "mcr-test-password") {
				t.Errorf("mcrsrv %s printed the database password", c.cmd)
			}
		}
	})
}
