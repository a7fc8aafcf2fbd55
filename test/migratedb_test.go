package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"git.wntrmute.dev/kyle/mcr/internal/pgtest"
	"git.wntrmute.dev/kyle/mcr/store"
	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// metaSummary is what must survive a migration.
type metaSummary struct {
	Repos  map[string][]string // repository → tags
	Users  []string
	Rules  int
	Audit  int64
	Pushes int64
}

func summarize(t *testing.T, st *store.Store) metaSummary {
	t.Helper()
	ctx := context.Background()
	s := metaSummary{Repos: map[string][]string{}}
	repos, _, err := st.ListRepositories(ctx, "", "", 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range repos {
		d, err := st.Repository(ctx, r.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, tg := range d.Tags {
			s.Repos[r.Name] = append(s.Repos[r.Name], tg.Name+"="+tg.Digest)
		}
	}
	_, s.Rules, err = st.ListPolicyRules(ctx, 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	users, err := st.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		s.Users = append(s.Users, u.Username+"/"+u.UUID+"/"+u.PasswordHash)
	}
	if s.Audit, err = st.CountAudit(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if s.Pushes, err = st.CountAudit(ctx, "manifest_pushed"); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMigrateDB moves a populated single node from SQLite to PostgreSQL
// with `mcrsrv migrate-db`: repositories, tags, rules, accounts and the
// audit log are equal afterwards, and the node serves from PostgreSQL
// (sign-in, pulls, new rules get fresh ids).
func TestMigrateDB(t *testing.T) {
	t.Parallel()
	pgtest.Require(t)
	srv := mcrtest.Start(t)
	srv.AddUser(t, "erin", "erin-password-1", "user", "human")
	refs := map[string]v1.Hash{}
	for i, r := range []string{"mig/one:a", "mig/one:b", "mig/two:latest"} {
		img, err := random.Image(2048, int64(1+i))
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref(t, srv, r), img, remoteOpts(t, srv, adminAuth(), nil)...); err != nil {
			t.Fatal(err)
		}
		refs[r], _ = img.Digest()
	}
	admin := srv.Login(t, "admin", mcrtest.AdminPassword)
	polCreateRule(t, srv, admin, map[string]any{"priority": 20, "effect": "deny", "roles": []string{"guest"},
		"actions": []string{"registry:push"}, "repositories": []string{"mig/*"}})
	gcPullAll(t, srv, refs)
	if err := srv.Stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}

	lite, err := store.Open(filepath.Join(srv.Dir, "mcr.db"))
	if err != nil {
		t.Fatal(err)
	}
	before := summarize(t, lite)
	_ = lite.Close()

	// migrate-db reads the source without writing it (no migration, no
	// statistics): the file is byte for byte what it was.
	srcBefore, err := os.ReadFile(filepath.Join(srv.Dir, "mcr.db"))
	if err != nil {
		t.Fatal(err)
	}
	dsn := pgtest.DSN(t)
	pgEnv := []string{"MCR_DATABASE_DRIVER=postgres", "MCR_DATABASE_DSN=" + dsn}
	cmd := exec.Command(mcrtest.Binary(t, "mcrsrv"), "migrate-db", "--config", srv.ConfigPath, "--from", filepath.Join(srv.Dir, "mcr.db"))
	cmd.Env = append(cmd.Environ(), pgEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("migrate-db: %v\n%s", err, out)
	}
	t.Logf("migrate-db:\n%s", out)
	if srcAfter, err := os.ReadFile(filepath.Join(srv.Dir, "mcr.db")); err != nil || !bytes.Equal(srcAfter, srcBefore) {
		t.Fatalf("migrate-db changed its source (%v)", err)
	}
	// A second run refuses: the destination is no longer empty.
	cmd = exec.Command(mcrtest.Binary(t, "mcrsrv"), "migrate-db", "--config", srv.ConfigPath, "--from", filepath.Join(srv.Dir, "mcr.db"))
	cmd.Env = append(cmd.Environ(), pgEnv...)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "not empty") {
		t.Errorf("second migrate-db: %v\n%s", err, out)
	}

	pg, err := store.OpenPostgres(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	after := summarize(t, pg)
	_ = pg.Close()
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("metadata differs after the migration\nSQLite:     %+v\nPostgreSQL: %+v", before, after)
	}
	if len(before.Repos) != 2 || before.Rules != 1 || len(before.Users) != 2 || before.Pushes < 3 {
		t.Fatalf("the source was not populated as intended: %+v", before)
	}
	t.Logf("equal after migration: %d repositories, %d rules, %d accounts, %d audit events", len(after.Repos), after.Rules, len(after.Users), after.Audit)

	// The same node, now on PostgreSQL.
	srv2 := mcrtest.Start(t, mcrtest.WithDir(srv.Dir), mcrtest.WithEnv(pgEnv...))
	srv2.Token(t, "erin", "erin-password-1", "repository:mig/one:pull")
	gcPullAll(t, srv2, refs)
	admin = srv2.Login(t, "admin", mcrtest.AdminPassword)
	id := polCreateRule(t, srv2, admin, map[string]any{"priority": 30, "effect": "allow", "roles": []string{"user"},
		"actions": []string{"registry:pull"}, "repositories": []string{"mig/*"}})
	if id <= 1 {
		t.Errorf("new rule id %d after migrating rule 1: the id sequence did not continue", id)
	}
	code, obj, raw := polAPI(t, srv2, http.MethodGet, fmt.Sprintf("/v1/policy/rules/%d", id), admin, nil)
	if code != http.StatusOK || obj == nil {
		t.Errorf("new rule: %d %s", code, raw)
	}
}
