package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"git.wntrmute.dev/kyle/mcr/internal/pgtest"
	"git.wntrmute.dev/kyle/mcr/policyplugin"
)

func TestRebind(t *testing.T) {
	cases := []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`a = ? AND b = ?`, `a = $1 AND b = $2`},
		{`x = ?2, y = ?1 WHERE z = ?1`, `x = $2, y = $1 WHERE z = $1`},
		{`?2 then ?`, `$2 then $3`},
		{`s = '?' AND t = ? AND u = "a?b"`, `s = '?' AND t = $1 AND u = "a?b"`},
		{`s = 'it''s ?' AND t = ?`, `s = 'it''s ?' AND t = $1`},
		{"-- why?\nx = ?", "-- why?\nx = $1"},
		{`unterminated '?`, `unterminated '?`},
	}
	for _, c := range cases {
		if got := rebind(c.in); got != c.want {
			t.Errorf("rebind(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestMigrationsHaveBothDialects: every migration has a PostgreSQL twin,
// and both leave the same tables, columns and (named) indexes.
func TestMigrationsHaveBothDialects(t *testing.T) {
	if len(pgMigrations) != len(migrations) {
		t.Fatalf("%d SQLite migrations, %d PostgreSQL migrations: add the twin to pgMigrations (postgres.go)", len(migrations), len(pgMigrations))
	}
	ctx := context.Background()
	lite := openSQLite(t)
	pg, err := OpenPostgres(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := pg.Close(); err != nil {
			t.Error(err)
		}
	}()
	liteSchema := schemaOf(t, lite, `SELECT m.name || '.' || p.name FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`)
	pgSchema := schemaOf(t, pg, `SELECT table_name || '.' || column_name FROM information_schema.columns WHERE table_schema = 'public'`)
	if !slices.Equal(liteSchema, pgSchema) {
		t.Errorf("columns differ\n sqlite:   %v\n postgres: %v", liteSchema, pgSchema)
	}
	liteIdx := schemaOf(t, lite, `SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex_%'`)
	pgIdx := schemaOf(t, pg, `SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT LIKE '%_pkey' AND indexname NOT LIKE '%_key'`)
	if !slices.Equal(liteIdx, pgIdx) {
		t.Errorf("indexes differ\n sqlite:   %v\n postgres: %v", liteIdx, pgIdx)
	}
	for _, st := range []*Store{lite, pg} {
		if v, err := st.SchemaVersion(ctx); err != nil || v != len(migrations) {
			t.Errorf("%s: schema version %d (%v), want %d", st.Dialect(), v, err, len(migrations))
		}
		if err := st.Migrate(ctx); err != nil {
			t.Errorf("%s: second migrate: %v", st.Dialect(), err)
		}
	}
}

func schemaOf(t *testing.T, st *Store, q string) []string {
	t.Helper()
	rows, err := st.db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", st.Dialect(), err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// TestConcurrentOpenPostgres: replicas starting at once on an empty
// database migrate it exactly once and all open.
func TestConcurrentOpenPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := OpenPostgres(context.Background(), dsn)
			if err == nil {
				err = st.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("open %d: %v", i, err)
		}
	}
	st, err := OpenPostgres(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	}()
	var n int
	if err := st.db.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(migrations) {
		t.Fatalf("schema_migrations rows: %d (%v), want %d", n, err, len(migrations))
	}
}

func TestOpenPostgresErrorsHideThePassword(t *testing.T) {
	pgtest.Require(t)
	for _, dsn := range []string{
		"postgres://mcr:s3cret-pw@127.0.0.1:1/mcr?sslmode=disable&connect_timeout=2",
		"postgres://mcr:s3cret-pw@[bad",
	} {
		_, err := OpenPostgres(context.Background(), dsn)
		if err == nil {
			t.Fatalf("%q: no error", dsn)
		}
		if strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

func TestUsers(t *testing.T) { eachDialect(t, testUsers) }

func testUsers(t *testing.T, st *Store) {
	ctx := context.Background()
	a := &User{Username: "alice", PasswordHash: "h1", Role: "admin", AccountType: "human"}
	b := &User{Username: "bob", PasswordHash: "h2", Role: "user", AccountType: "system"}
	for _, u := range []*User{a, b} {
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if a.ID == 0 || b.ID == 0 || a.ID == b.ID || a.UUID == "" {
		t.Fatalf("ids %d %d uuid %q", a.ID, b.ID, a.UUID)
	}
	if err := st.CreateUser(ctx, &User{Username: "alice", PasswordHash: "x", Role: "user", AccountType: "human"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate user: %v, want ErrConflict", err)
	}
	got, err := st.UserByName(ctx, "alice")
	if err != nil || got.UUID != a.UUID || got.Role != "admin" || got.CreatedAt.IsZero() {
		t.Fatalf("by name: %+v %v", got, err)
	}
	if got, err := st.UserByUUID(ctx, b.UUID); err != nil || got.Username != "bob" {
		t.Fatalf("by uuid: %+v %v", got, err)
	}
	if _, err := st.UserByName(ctx, "carol"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing user: %v", err)
	}
	list, err := st.ListUsers(ctx)
	if err != nil || len(list) != 2 || list[0].Username != "alice" {
		t.Fatalf("list: %+v %v", list, err)
	}
	if n, err := st.CountUsers(ctx); err != nil || n != 2 {
		t.Fatalf("count %d %v", n, err)
	}
	if err := st.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteUser(ctx, "bob"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	exp := time.Now().Add(time.Hour)
	for range 2 { // revoking twice is fine
		if err := st.RevokeToken(ctx, "jti-1", exp); err != nil {
			t.Fatal(err)
		}
	}
	for jti, want := range map[string]bool{"jti-1": true, "jti-2": false} {
		if got, err := st.TokenRevoked(ctx, jti); err != nil || got != want {
			t.Errorf("revoked(%s) = %v %v, want %v", jti, got, err, want)
		}
	}
}

func TestPolicyRules(t *testing.T) { eachDialect(t, testPolicyRules) }

func testPolicyRules(t *testing.T, st *Store) {
	ctx := context.Background()
	r1 := &PolicyRule{Rule: policyplugin.Rule{Priority: 50, Description: "readers", Effect: policyplugin.EffectAllow, Enabled: true,
		Roles: []string{"user"}, Actions: []policyplugin.Action{policyplugin.ActionPull}, Repositories: []string{"pub/*"}}}
	r2 := &PolicyRule{Rule: policyplugin.Rule{Priority: 10, Effect: policyplugin.EffectDeny, Enabled: false,
		Actions: []policyplugin.Action{policyplugin.ActionPush}}}
	for _, r := range []*PolicyRule{r1, r2} {
		if err := st.CreatePolicyRule(ctx, r, "admin"); err != nil {
			t.Fatal(err)
		}
	}
	if r1.ID == 0 || r2.ID == 0 || r1.ID == r2.ID {
		t.Fatalf("rule ids %d %d", r1.ID, r2.ID)
	}
	list, total, err := st.ListPolicyRules(ctx, 10, 0)
	if err != nil || total != 2 || list[0].ID != r2.ID || list[1].Description != "readers" {
		t.Fatalf("list: %+v %d %v", list, total, err)
	}
	enabled, err := st.EnabledRules(ctx)
	if err != nil || len(enabled) != 1 || enabled[0].ID != r1.ID || enabled[0].Repositories[0] != "pub/*" {
		t.Fatalf("enabled: %+v %v", enabled, err)
	}
	r2.Enabled = true
	if err := st.UpdatePolicyRule(ctx, r2, "root"); err != nil {
		t.Fatal(err)
	}
	got, err := st.PolicyRule(ctx, r2.ID)
	if err != nil || !got.Enabled || got.UpdatedBy != "root" || got.CreatedBy != "admin" {
		t.Fatalf("updated: %+v %v", got, err)
	}
	if err := st.DeletePolicyRule(ctx, r1.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PolicyRule(ctx, r1.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted rule: %v", err)
	}
	if err := st.UpdatePolicyRule(ctx, r1, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update deleted: %v", err)
	}
}

func TestRepositoryIndex(t *testing.T) { eachDialect(t, testRepositoryIndex) }

func testRepositoryIndex(t *testing.T, st *Store) {
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	put := func(repo, digest, tag, subject string, size int64, refs ...Ref) IndexOp {
		return IndexOp{Kind: OpManifestPut, Repository: repo, Digest: digest, MediaType: "application/vnd.oci.image.manifest.v1+json",
			Size: size, Tag: tag, Subject: subject, Refs: refs, Time: at}
	}
	layer := Ref{Digest: "sha256:l1", MediaType: "layer", Size: 1000}
	ops := []IndexOp{
		put("app/web", "sha256:m1", "v1", "", 100, layer, Ref{Digest: "sha256:c1", MediaType: "config", Size: 10}),
		put("app/web", "sha256:m2", "v2", "", 200, layer), // shares the layer: counted once
		put("app/web", "sha256:sig", "", "sha256:m1", 50),
		put("lib/base", "sha256:b1", "latest", "", 70),
	}
	// Two batches, the same manifest twice: idempotent.
	if err := st.ApplyBatch(ctx, []AuditEvent{{Type: "manifest_pushed", Repository: "app/web"}}, ops[:2]); err != nil {
		t.Fatal(err)
	}
	if err := st.ApplyBatch(ctx, nil, ops); err != nil {
		t.Fatal(err)
	}
	repos, total, err := st.ListRepositories(ctx, "", "", 10, 0)
	if err != nil || total != 2 || len(repos) != 2 {
		t.Fatalf("repositories: %+v %d %v", repos, total, err)
	}
	web := repos[0]
	if web.Name != "app/web" || web.ManifestCount != 3 || web.TagCount != 2 || web.TotalSize != 100+200+50+1000+10 || !web.LastPush.Equal(at) {
		t.Fatalf("app/web summary: %+v", web)
	}
	if f, n, err := st.ListRepositories(ctx, "base", "", 10, 0); err != nil || n != 1 || f[0].Name != "lib/base" {
		t.Fatalf("filter: %+v %d %v", f, n, err)
	}
	if f, _, err := st.ListRepositories(ctx, "", "app/web", 10, 0); err != nil || len(f) != 1 || f[0].Name != "lib/base" {
		t.Fatalf("keyset after app/web: %+v %v", f, err)
	}
	d, err := st.Repository(ctx, "app/web")
	if err != nil || len(d.Tags) != 2 || len(d.Manifests) != 3 {
		t.Fatalf("detail: %+v %v", d, err)
	}
	refs, err := st.Referrers(ctx, "app/web", "sha256:m1")
	if err != nil || len(refs) != 1 || refs[0].Digest != "sha256:sig" {
		t.Fatalf("referrers: %+v %v", refs, err)
	}
	// Retag v1 onto m2, delete tag v2, delete m1: stats follow.
	if err := st.ApplyBatch(ctx, nil, []IndexOp{
		put("app/web", "sha256:m2", "v1", "", 200, layer),
		{Kind: OpTagDelete, Repository: "app/web", Tag: "v2"},
		{Kind: OpManifestDelete, Repository: "app/web", Digest: "sha256:m1"},
	}); err != nil {
		t.Fatal(err)
	}
	d, err = st.Repository(ctx, "app/web")
	if err != nil || d.TagCount != 1 || d.Tags[0].Digest != "sha256:m2" || d.ManifestCount != 2 || d.TotalSize != 200+50+1000 {
		t.Fatalf("after changes: %+v %v", d, err)
	}
	if err := st.ApplyBatch(ctx, nil, []IndexOp{{Kind: OpRepoDelete, Repository: "lib/base"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Repository(ctx, "lib/base"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted repository: %v", err)
	}
	// Reindex replaces everything.
	if err := st.ReplaceIndex(ctx, []IndexOp{put("new/one", "sha256:n1", "t", "", 5)}); err != nil {
		t.Fatal(err)
	}
	if repos, total, err = st.ListRepositories(ctx, "", "", 10, 0); err != nil || total != 1 || repos[0].Name != "new/one" {
		t.Fatalf("after reindex: %+v %v", repos, err)
	}
}

// TestConcurrentBatches: writers (replicas) pushing into the same new
// repositories at once all commit; the repository rows are created once.
func TestConcurrentBatches(t *testing.T) { eachDialect(t, testConcurrentBatches) }

func testConcurrentBatches(t *testing.T, st *Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 8 {
				repo := fmt.Sprintf("race/%d", i%3)
				op := IndexOp{Kind: OpManifestPut, Repository: repo, Digest: fmt.Sprintf("sha256:%d-%d", w, i), MediaType: "m", Size: 1,
					Tag: fmt.Sprintf("t%d", w), Refs: []Ref{{Digest: "sha256:shared", Size: 10}}}
				if err := st.ApplyBatch(ctx, []AuditEvent{{Type: "manifest_pushed", Repository: repo}}, []IndexOp{op}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	repos, total, err := st.ListRepositories(ctx, "race/", "", 10, 0)
	if err != nil || total != 3 {
		t.Fatalf("repositories: %+v %d %v", repos, total, err)
	}
	var manifests int64
	for _, r := range repos {
		manifests += r.ManifestCount
	}
	if n, _ := st.CountAudit(ctx, "manifest_pushed"); manifests != 64 || n != 64 {
		t.Fatalf("%d manifests indexed, %d audit rows; want 64 each", manifests, n)
	}
}

func TestAliasesAndGCRuns(t *testing.T) { eachDialect(t, testAliasesAndGCRuns) }

func testAliasesAndGCRuns(t *testing.T, st *Store) {
	ctx := context.Background()
	if err := st.PutDigestAlias(ctx, "sha512:a", "sha256:a", "blob"); err != nil {
		t.Fatal(err)
	}
	if err := st.PutDigestAlias(ctx, "sha512:a", "sha256:b", "manifest"); err != nil {
		t.Fatal(err)
	}
	if c, err := st.CanonicalDigest(ctx, "sha512:a"); err != nil || c != "sha256:b" {
		t.Fatalf("canonical: %q %v", c, err)
	}
	if _, err := st.CanonicalDigest(ctx, "sha512:none"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing alias: %v", err)
	}
	if m, err := st.AliasesOf(ctx, "manifest"); err != nil || m["sha256:b"] != "sha512:a" {
		t.Fatalf("aliases: %v %v", m, err)
	}

	run := &GCRun{Actor: "admin", DryRun: true}
	if err := st.CreateGCRun(ctx, run); err != nil || run.ID == 0 {
		t.Fatalf("create run: %d %v", run.ID, err)
	}
	run2 := &GCRun{Kind: GCKindReconcile}
	if err := st.CreateGCRun(ctx, run2); err != nil {
		t.Fatal(err)
	}
	run.BlobsRemoved, run.BytesFreed, run.Details = 3, 300, map[string]any{"mark_ms": 1.5}
	if err := st.CompleteGCRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	got, err := st.GCRunByID(ctx, run.ID)
	if err != nil || got.Running() || got.BlobsRemoved != 3 || !got.DryRun || got.Details["mark_ms"] != 1.5 {
		t.Fatalf("completed run: %+v %v", got, err)
	}
	if last, err := st.LastGCRun(ctx); err != nil || last.ID != run2.ID || !last.Running() {
		t.Fatalf("last: %+v %v", last, err)
	}
	if n, err := st.FailUnfinishedGCRuns(ctx, "died"); err != nil || n != 1 {
		t.Fatalf("fail unfinished: %d %v", n, err)
	}
	if runs, err := st.ListGCRuns(ctx, 10); err != nil || len(runs) != 2 || runs[0].Error != "died" {
		t.Fatalf("list: %+v %v", runs, err)
	}
}
