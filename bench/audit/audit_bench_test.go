// Package auditbench measures MCR's audit log at scale (issue 4): the
// /v1/audit queries on a database of 10 million rows, through the store and
// through a real mcrsrv, and manifest GET throughput with pull auditing on
// versus off. Nothing runs under a plain `go test`; run
//
//	go test -run '^$' -bench . -benchtime 200x -timeout 0 ./bench/audit/
//
// MCR_AUDIT_BENCH_ROWS scales the table (default 10,000,000). The generated
// database is cached in os.TempDir() (mcr-audit-bench-v<gen>-<rows>.db), so
// only the first run pays for it. Each query sub-benchmark takes b.N samples
// (use -benchtime 200x) within a 30 s budget; MCR_AUDIT_BENCH_TP_SECONDS and
// MCR_AUDIT_BENCH_TP_ROUNDS set the throughput phases (default 4 s × 4
// rounds per mode, alternating); MCR_AUDIT_BENCH_TP_REPOS spreads the GETs
// over that many repositories (default 1); MCR_AUDIT_BENCH_PPROF=DIR saves
// a CPU profile of each server's first measured phase.
//
// BenchmarkApplyBatchPulls in store/ measures the database's share alone.
package auditbench

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"git.wntrmute.dev/kyle/mcr/store"
	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// genVersion changes whenever the generator's output changes, so a stale
// cached database is never reused.
const genVersion = 1

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// ---- data generation -------------------------------------------------------

const (
	numRepos  = 1000
	numActors = 200
	span      = 90 * 24 * time.Hour
)

// eventMix is a realistic mix: mostly pulls, then blob uploads of pushes,
// sign-ins, a few denials, deletions and rare admin events.
var eventMix = []struct {
	typ    string
	weight float64
}{
	{"manifest_pulled", 55}, {"blob_uploaded", 16}, {"login_ok", 12}, {"manifest_pushed", 6},
	{"login_fail", 3}, {"blob_mounted", 2}, {"policy_deny", 1.5}, {"manifest_deleted", 1},
	{"blob_deleted", 1.5}, {"tag_deleted", 0.8}, {"repo_deleted", 0.02}, {"policy_rule_created", 0.02},
	{"policy_rule_updated", 0.02}, {"policy_rule_deleted", 0.01}, {"gc_started", 0.03}, {"gc_completed", 0.03},
	{"snapshot_created", 0.01},
}

func repoName(i int) string  { return fmt.Sprintf("team%02d/service-%04d", i%37, i) }
func actorID(i int) string   { return fmt.Sprintf("6f1c0a52-%04x-4b7e-9a1d-%012x", i, i*7919) }
func actorName(i int) string { return fmt.Sprintf("user%03d", i) }

// generator yields events in time (and so id) order.
type generator struct {
	rng     *rand.Rand
	zipf    *rand.Zipf
	start   time.Time
	digests [256]string
	cum     []float64
	total   float64
	rows    int
}

func newGenerator(rows int, end time.Time) *generator {
	g := &generator{rng: rand.New(rand.NewPCG(1, uint64(rows))), rows: rows, start: end.Add(-span)}
	g.zipf = rand.NewZipf(g.rng, 1.1, 4, numRepos-1)
	for _, m := range eventMix {
		g.total += m.weight
		g.cum = append(g.cum, g.total)
	}
	return g
}

func (g *generator) digest() string {
	var b [32]byte
	for i := 0; i < 4; i++ {
		v := g.rng.Uint64()
		for j := 0; j < 8; j++ {
			b[i*8+j] = byte(v >> (8 * j))
		}
	}
	return "sha256:" + hex.EncodeToString(b[:])
}

func (g *generator) event(i int) store.AuditEvent {
	x := g.rng.Float64() * g.total
	k, _ := slices.BinarySearch(g.cum, x)
	typ := eventMix[min(k, len(eventMix)-1)].typ
	at := g.start.Add(time.Duration(float64(span) * (float64(i) + g.rng.Float64()*0.5) / float64(g.rows)))
	actor := int(g.rng.Uint64N(numActors))
	repo := int(g.zipf.Uint64())
	ev := store.AuditEvent{Time: at, Type: typ, ActorID: actorID(actor), Actor: actorName(actor),
		IP: fmt.Sprintf("10.%d.%d.%d", actor%7, actor, 1+i%250)}
	switch typ {
	case "manifest_pulled", "manifest_pushed":
		ev.Repository, ev.Tag = repoName(repo), "v1."+strconv.Itoa(int(g.rng.Uint64N(40)))
		// Pulls mostly hit a few hot digests per repository.
		if typ == "manifest_pulled" && g.rng.Uint64N(4) > 0 {
			ev.Digest = g.digests[repo%len(g.digests)]
		} else {
			ev.Digest = g.digest()
			g.digests[repo%len(g.digests)] = ev.Digest
		}
		ev.Details = map[string]any{"media_type": "application/vnd.oci.image.manifest.v1+json"}
		if typ == "manifest_pushed" {
			ev.Details["size"] = 400 + g.rng.IntN(3000)
		}
	case "blob_uploaded", "blob_mounted", "blob_deleted", "manifest_deleted":
		ev.Repository, ev.Digest = repoName(repo), g.digest()
		if typ != "manifest_deleted" {
			ev.Details = map[string]any{"size": g.rng.IntN(200 << 20)}
		}
		if typ == "blob_mounted" {
			ev.Details["from"] = repoName(int(g.zipf.Uint64()))
		}
	case "tag_deleted", "repo_deleted":
		ev.Repository, ev.Tag = repoName(repo), "v1."+strconv.Itoa(int(g.rng.Uint64N(40)))
	case "login_ok":
	case "login_fail":
		ev.ActorID = ""
		ev.Details = map[string]any{"reason": "invalid credentials"}
	case "policy_deny":
		ev.Repository = repoName(repo)
		ev.Details = map[string]any{"action": "registry:push", "rule_id": 1 + g.rng.IntN(30), "method": "PUT",
			"path": "/v2/" + ev.Repository + "/manifests/latest"}
	default: // admin events
		ev.Details = map[string]any{"rule_id": 1 + g.rng.IntN(30)}
	}
	return ev
}

var (
	dbOnce sync.Once
	dbPath string
	dbEnd  time.Time
	dbErr  error
)

// benchDB returns the cached database of `rows` audit rows, generating it
// (through store.Open and store.ApplyBatch, in big transactions) if absent.
func benchDB(b *testing.B, rows int) (string, time.Time) {
	b.Helper()
	dbOnce.Do(func() {
		dbPath = filepath.Join(os.TempDir(), fmt.Sprintf("mcr-audit-bench-v%d-%d.db", genVersion, rows))
		if fi, err := os.Stat(dbPath); err == nil && fi.Size() > 0 {
			st, err := store.Open(dbPath) // migrates a cached file forward
			if err != nil {
				dbErr = err
				return
			}
			var maxT int64
			err = st.DB().QueryRow(`SELECT MAX(event_time) FROM audit_log`).Scan(&maxT)
			if cerr := st.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				dbErr = err
				return
			}
			dbEnd = time.Unix(0, maxT)
			fmt.Fprintf(os.Stderr, "auditbench: using cached %s (%.1f GB)\n", dbPath, float64(fi.Size())/1e9)
			return
		}
		dbEnd, dbErr = generate(b, dbPath, rows)
	})
	if dbErr != nil {
		b.Fatal(dbErr)
	}
	return dbPath, dbEnd
}

func generate(_ *testing.B, path string, rows int) (time.Time, error) {
	tmp := path + ".tmp"
	for _, p := range []string{tmp, tmp + "-wal", tmp + "-shm"} {
		_ = os.Remove(p)
	}
	st, err := store.Open(tmp)
	if err != nil {
		return time.Time{}, err
	}
	db := st.DB()
	db.SetMaxOpenConns(1) // the pragmas below apply to the one connection
	db.SetConnMaxIdleTime(0)
	// Bulk load: a big page cache and no WAL round trip (each page written
	// once); the file is switched back to WAL mode at the end.
	for _, p := range []string{`PRAGMA journal_mode=MEMORY`, `PRAGMA synchronous=OFF`, `PRAGMA cache_size=-1500000`} {
		if _, err := db.Exec(p); err != nil {
			_ = st.Close() // the error below is the one to report
			return time.Time{}, fmt.Errorf("%s: %w", p, err)
		}
	}
	end := time.Now().Add(-time.Minute).Truncate(time.Second)
	const batch = 250_000
	// Generate the next batch while the current one is inserted.
	batches := make(chan []store.AuditEvent, 1)
	go func() {
		defer close(batches)
		g := newGenerator(rows, end)
		for i := 0; i < rows; i += batch {
			evs := make([]store.AuditEvent, 0, batch)
			for j := i; j < min(i+batch, rows); j++ {
				evs = append(evs, g.event(j))
			}
			batches <- evs
		}
	}()
	start := time.Now()
	ctx := context.Background()
	done := 0
	for evs := range batches {
		if err := st.ApplyBatch(ctx, evs, nil); err != nil {
			for range batches {
			}
			_ = st.Close() // the error below is the one to report
			return time.Time{}, err
		}
		done += len(evs)
		if done%2_000_000 == 0 || done == rows {
			el := time.Since(start)
			fmt.Fprintf(os.Stderr, "auditbench: generated %d/%d audit rows in %v (%.0f rows/s)\n", done, rows, el.Round(time.Second), float64(done)/el.Seconds())
		}
	}
	if _, err := db.Exec(`PRAGMA journal_mode=WAL`); err != nil {
		_ = st.Close() // the error below is the one to report
		return time.Time{}, err
	}
	// No explicit ANALYZE: the planner's statistics come from what
	// production runs, store.Open's PRAGMA optimize (the next Open, below
	// and in benchDB, analyzes the new table within analysis_limit).
	if err := st.Close(); err != nil {
		return time.Time{}, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return time.Time{}, err
	}
	_ = os.Remove(tmp + "-wal")
	_ = os.Remove(tmp + "-shm")
	fi, _ := os.Stat(path)
	fmt.Fprintf(os.Stderr, "auditbench: generated %s: %d rows, %.1f GB, in %v\n", path, rows, float64(fi.Size())/1e9, time.Since(start).Round(time.Second))
	return end, nil
}

// ---- measurement -----------------------------------------------------------

type query struct {
	name   string
	filter store.AuditFilter
}

// queries are the /v1/audit requests an operator makes, as store filters.
func queries(rows int, end time.Time) []query {
	deep := int64(rows / 2)
	hot := repoName(4)    // a busy repository (Zipf head)
	cold := repoName(777) // a quiet one
	day := end.Add(-45 * 24 * time.Hour)
	day60 := end.Add(-60 * 24 * time.Hour)
	return []query{
		{"first_page", store.AuditFilter{}},
		{"first_page_type", store.AuditFilter{EventType: "manifest_pushed"}},
		{"first_page_rare_type", store.AuditFilter{EventType: "policy_rule_deleted"}},
		{"deep_page", store.AuditFilter{Before: deep}},
		{"deep_page_type", store.AuditFilter{EventType: "manifest_pushed", Before: deep}},
		{"deep_page_repo", store.AuditFilter{Repository: hot, Before: deep}},
		{"repo_hot", store.AuditFilter{Repository: hot}},
		{"repo_cold", store.AuditFilter{Repository: cold}},
		{"actor", store.AuditFilter{ActorID: actorID(17)}},
		{"since_until_1day", store.AuditFilter{Since: day, Until: day.Add(24 * time.Hour)}},
		{"since_until_1day_type", store.AuditFilter{EventType: "login_fail", Since: day, Until: day.Add(24 * time.Hour)}},
		{"since_last_hour", store.AuditFilter{Since: end.Add(-time.Hour)}},
		{"until_80d_ago_type", store.AuditFilter{EventType: "manifest_pulled", Until: end.Add(-80 * 24 * time.Hour)}},
		{"repo_and_type_rare", store.AuditFilter{Repository: hot, EventType: "repo_deleted"}},
		{"offset_10k", store.AuditFilter{Offset: 10_000}},
		// Issue 17's slow shape: a repository and one day, 60 days back.
		{"repo_hot_1day_60d_ago", store.AuditFilter{Repository: hot, Since: day60, Until: day60.Add(24 * time.Hour)}},
		{"repo_cold_1day_60d_ago", store.AuditFilter{Repository: cold, Since: day60, Until: day60.Add(24 * time.Hour)}},
		{"actor_1day_60d_ago", store.AuditFilter{ActorID: actorID(17), Since: day60, Until: day60.Add(24 * time.Hour)}},
	}
}

// combos are every combination of /v1/audit's filters: event type, actor,
// repository, a time bound (none, since, until, a one-day window 60 days
// back) and a page cursor (before, half-way down the table). Names list the
// filters present ("none" for none).
func combos(rows int, end time.Time) []query {
	day60 := end.Add(-60 * 24 * time.Hour)
	var out []query
	for mask := 0; mask < 8; mask++ {
		for tb := 0; tb < 4; tb++ {
			for _, before := range []bool{false, true} {
				var f store.AuditFilter
				var parts []string
				if mask&1 != 0 {
					f.EventType = "manifest_pushed"
					parts = append(parts, "type")
				}
				if mask&2 != 0 {
					f.ActorID = actorID(17)
					parts = append(parts, "actor")
				}
				if mask&4 != 0 {
					f.Repository = repoName(4)
					parts = append(parts, "repo")
				}
				switch tb {
				case 1:
					f.Since = day60
					parts = append(parts, "since60d")
				case 2:
					f.Until = day60
					parts = append(parts, "until60d")
				case 3:
					f.Since, f.Until = day60, day60.Add(24*time.Hour)
					parts = append(parts, "day60d")
				}
				if before {
					f.Before = int64(rows / 2)
					parts = append(parts, "before")
				}
				name := strings.Join(parts, "+")
				if name == "" {
					name = "none"
				}
				out = append(out, query{name: name, filter: f})
			}
		}
	}
	return out
}

// toQuery renders a filter as GET /v1/audit parameters.
func toQuery(f store.AuditFilter) string {
	v := url.Values{}
	if f.EventType != "" {
		v.Set("event_type", f.EventType)
	}
	if f.ActorID != "" {
		v.Set("actor_id", f.ActorID)
	}
	if f.Repository != "" {
		v.Set("repository", f.Repository)
	}
	if !f.Since.IsZero() {
		v.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		v.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	if f.Before > 0 {
		v.Set("before", strconv.FormatInt(f.Before, 10))
	}
	if f.Offset > 0 {
		v.Set("offset", strconv.Itoa(f.Offset))
	}
	v.Set("n", "50")
	return v.Encode()
}

type latency struct {
	p50, p99, mean time.Duration
	runs           int
}

// measure calls fn up to runs times (stopping early after budget) and
// returns its latency percentiles.
func measure(runs int, budget time.Duration, fn func() error) (latency, error) {
	var ds []time.Duration
	start := time.Now()
	for i := 0; i < runs; i++ {
		t0 := time.Now()
		if err := fn(); err != nil {
			return latency{}, err
		}
		ds = append(ds, time.Since(t0))
		if time.Since(start) > budget && len(ds) >= 10 {
			break
		}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	p := func(q float64) time.Duration { return ds[max(0, int(math.Ceil(q*float64(len(ds))))-1)] }
	return latency{p50: p(0.50), p99: p(0.99), mean: sum / time.Duration(len(ds)), runs: len(ds)}, nil
}

func report(b *testing.B, l latency) {
	b.ReportMetric(float64(l.p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(l.p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(l.runs), "runs")
	b.ReportMetric(float64(l.mean.Nanoseconds()), "ns/op")
}

// cached runs each measurement once however often the framework calls
// the sub-benchmark (it probes with b.N=1 first).
type cache[T any] struct {
	m  map[string]T
	mu sync.Mutex
}

func (c *cache[T]) get(key string, f func() (T, error)) (T, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[key]; ok {
		return v, nil
	}
	v, err := f()
	if err != nil {
		return v, err
	}
	if c.m == nil {
		c.m = map[string]T{}
	}
	c.m[key] = v
	return v, nil
}

var tpCache cache[throughput]

// queryBudget bounds the time spent on one query's samples: a slow plan
// is reported with fewer runs rather than stalling the run for hours.
const queryBudget = 30 * time.Second

// BenchmarkAuditQuery: store.ListAudit on the big table, then the same
// queries as GET /v1/audit against a real mcrsrv on a copy of it. Each
// sub-benchmark reports p50/p99 over its b.N runs (-benchtime 200x).
func BenchmarkAuditQuery(b *testing.B) {
	rows := envInt("MCR_AUDIT_BENCH_ROWS", 10_000_000)
	path, end := benchDB(b, rows)
	qs := queries(rows, end)
	for _, c := range combos(rows, end) {
		qs = append(qs, query{name: "combo/" + c.name, filter: c.filter})
	}

	st, err := store.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, q := range qs {
		b.Run("store/"+q.name, func(b *testing.B) {
			f := q.filter
			f.Limit = 50
			var n int
			l, err := measure(b.N, queryBudget, func() error {
				evs, err := st.ListAudit(ctx, f)
				n = len(evs)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			if b.N > 1 {
				b.Logf("%s: %d rows on the page; p50 %v p99 %v over %d runs", q.name, n, l.p50, l.p99, l.runs)
			}
			report(b, l)
		})
	}
	if err := st.Close(); err != nil {
		b.Error(err)
	}

	srv := startOnCopy(b, path, true)
	tok := srv.Login(b, "admin", mcrtest.AdminPassword)
	client := srv.Client()
	for _, q := range qs {
		b.Run("http/"+q.name, func(b *testing.B) {
			u := srv.URL + "/v1/audit?" + toQuery(q.filter)
			l, err := measure(b.N, queryBudget, func() error {
				req, _ := http.NewRequest(http.MethodGet, u, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("GET %s: %d", u, resp.StatusCode)
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			report(b, l)
		})
	}
}

// startOnCopy starts mcrsrv on a fresh data directory whose database is a
// copy of the big one (plus the accounts `mcrsrv init` created).
func startOnCopy(b *testing.B, bigDB string, recordPulls bool, opts ...mcrtest.Option) *mcrtest.Server {
	b.Helper()
	dir := mcrtest.Init(b, mcrtest.FreeAddr(b))
	initDB := filepath.Join(dir, "mcr.db")
	dst := filepath.Join(dir, "big.db")
	t0 := time.Now()
	if err := copyFile(bigDB, dst); err != nil {
		b.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+dst)
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`ATTACH DATABASE ? AS init`, initDB); err != nil {
		b.Fatal(err)
	}
	trows, err := db.Query(`SELECT name FROM init.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
		AND name NOT IN ('audit_log', 'schema_migrations')`)
	if err != nil {
		b.Fatal(err)
	}
	var tables []string
	for trows.Next() {
		var n string
		_ = trows.Scan(&n)
		tables = append(tables, n)
	}
	if err := trows.Close(); err != nil {
		b.Fatal(err)
	}
	for _, tbl := range tables {
		for _, q := range []string{`DELETE FROM main."` + tbl + `"`, `INSERT INTO main."` + tbl + `" SELECT * FROM init."` + tbl + `"`} {
			if _, err := db.Exec(q); err != nil {
				b.Fatalf("%s: %v", q, err)
			}
		}
	}
	if _, err := db.Exec(`DETACH DATABASE init`); err != nil {
		b.Fatal(err)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	for _, p := range []string{initDB, initDB + "-wal", initDB + "-shm"} {
		_ = os.Remove(p)
	}
	if err := os.Rename(dst, initDB); err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "auditbench: data dir with a copy of the big database ready in %v\n", time.Since(t0).Round(time.Millisecond))
	return mcrtest.Start(b, append([]mcrtest.Option{mcrtest.WithDir(dir),
		mcrtest.WithConfig("audit.retention_days", "0"), // keep every row while measuring
		// quick_check of a 3.7 GB file outlasts mcrtest's start-up wait;
		// the check is not what is measured here.
		mcrtest.WithConfig("database.check_timeout", `"3s"`),
		mcrtest.WithConfig("audit.record_pulls", strconv.FormatBool(recordPulls))}, opts...)...)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }() // read-only
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close() // the copy error is the one to report
		return err
	}
	return out.Close()
}

// ---- manifest GET throughput -------------------------------------------------

type throughput struct {
	on, off       float64 // requests per second
	cpuOn, cpuOff float64 // server CPU µs per GET
	rounds        int
	batch         float64 // events per audit group commit while audited
	commitMs      float64 // mean commit latency
}

// scrape reads the un-labelled samples of an mcrsrv /metrics endpoint.
func scrape(b *testing.B, addr string) map[string]float64 {
	b.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || line[0] == '#' || strings.Contains(line, "{") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = v
		}
	}
	return out
}

// pushTiny pushes a one-layer image as repo:latest by raw HTTP.
func pushTiny(b *testing.B, srv *mcrtest.Server, repo, tok string) {
	b.Helper()
	layer := []byte("throughput layer")
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	dg := func(x []byte) string { h := sha256.Sum256(x); return "sha256:" + hex.EncodeToString(h[:]) }
	base, _ := url.Parse(srv.URL)
	for _, blob := range [][]byte{layer, config} {
		resp := srv.Do(b, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", tok, nil)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			b.Fatalf("start upload: %d", resp.StatusCode)
		}
		loc, err := base.Parse(resp.Header.Get("Location"))
		if err != nil {
			b.Fatal(err)
		}
		q := loc.Query()
		q.Set("digest", dg(blob))
		loc.RawQuery = q.Encode()
		resp = srv.Do(b, http.MethodPut, loc.RequestURI(), tok, blob, "Content-Type", "application/octet-stream")
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			b.Fatalf("upload: %d", resp.StatusCode)
		}
	}
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": dg(config), "size": len(config)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": dg(layer), "size": len(layer)}},
	})
	resp := srv.Do(b, http.MethodPut, "/v2/"+repo+"/manifests/latest", tok, m, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b.Fatalf("push manifest: %d", resp.StatusCode)
	}
}

// load runs `clients` goroutines GETting repo:latest for d and returns
// requests per second and the number of successful requests.
func load(srv *mcrtest.Server, repos []string, tok string, clients int, d time.Duration) (float64, int64, error) {
	tr := srv.Transport()
	tr.MaxIdleConnsPerHost = clients
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	urls := make([]string, len(repos))
	for i, r := range repos {
		urls[i] = srv.URL + "/v2/" + r + "/manifests/latest"
	}
	var n atomic.Int64
	var firstErr atomic.Value
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			for ; time.Now().Before(stop); k++ {
				u := urls[k%len(urls)]
				req, _ := http.NewRequest(http.MethodGet, u, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
				resp, err := c.Do(req)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					firstErr.CompareAndSwap(nil, fmt.Errorf("GET %s: %d", u, resp.StatusCode))
					return
				}
				n.Add(1)
			}
		}(i)
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, 0, err
	}
	return float64(n.Load()) / time.Since(start).Seconds(), n.Load(), nil
}

// countPulls counts manifest_pulled rows of repositories named prefix or
// prefix-*.
func countPulls(b *testing.B, srv *mcrtest.Server, prefix string) int64 {
	b.Helper()
	st, err := store.Open(filepath.Join(srv.Dir, "mcr.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			b.Error(err)
		}
	}()
	var n int64
	if err := st.DB().QueryRow(`SELECT COUNT(*) FROM audit_log WHERE event_type = 'manifest_pulled' AND (repository = ?1 OR repository LIKE ?1 || '-%')`, prefix).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkManifestGetThroughput: 16 concurrent clients GET one manifest
// from two real servers on copies of the big database, one with
// audit.record_pulls = true and one with false, alternating phases in the
// same run. Reports both rates and their ratio, and — steadier on a shared
// machine — each server's CPU time per GET (process_cpu_seconds_total, read
// after the audit queue has drained) and that ratio.
func BenchmarkManifestGetThroughput(b *testing.B) {
	tp, err := tpCache.get("tp", func() (throughput, error) {
		rows := envInt("MCR_AUDIT_BENCH_ROWS", 10_000_000)
		secs := envInt("MCR_AUDIT_BENCH_TP_SECONDS", 4)
		rounds := envInt("MCR_AUDIT_BENCH_TP_ROUNDS", 4)
		// MCR_AUDIT_BENCH_TP_REPOS spreads the GETs over that many
		// repositories (default 1): each audited pull then lands in another
		// part of the audit indexes, the dearer case for the database.
		nrepos := envInt("MCR_AUDIT_BENCH_TP_REPOS", 1)
		const clients, repoPrefix = 16, "bench/tp"
		repos := make([]string, nrepos)
		scopes := make([]string, nrepos)
		for i := range repos {
			repos[i] = repoPrefix
			if nrepos > 1 {
				repos[i] = fmt.Sprintf("%s-%d", repoPrefix, i)
			}
			scopes[i] = "repository:" + repos[i] + ":pull,push"
		}
		path, _ := benchDB(b, rows)
		type side struct {
			srv     *mcrtest.Server
			tok     string
			metrics string
			audited bool
			reqs    int64   // successful GETs, warm-up included
			rps     float64 // sum over measured phases
			cpu     float64 // server CPU seconds in measured phases
			n       int64   // GETs in measured phases
		}
		// Both with a metrics listener (it also turns on distribution's
		// instrumentation, so both pay for it).
		// MCR_AUDIT_BENCH_PPROF=DIR: CPU profiles of each side's first
		// measured phase go to DIR/{on,off}.pprof.
		profDir := strings.TrimSpace(os.Getenv("MCR_AUDIT_BENCH_PPROF"))
		var sides [2]*side
		for i, audited := range []bool{true, false} {
			m := mcrtest.FreeAddr(b)
			srv := startOnCopy(b, path, audited, mcrtest.WithConfig("server.metrics_addr", `"`+m+`"`),
				mcrtest.WithConfig("server.pprof", strconv.FormatBool(profDir != "")))
			tok := srv.Token(b, "admin", mcrtest.AdminPassword, scopes...)
			for _, repo := range repos {
				pushTiny(b, srv, repo, tok)
			}
			sides[i] = &side{srv: srv, tok: tok, metrics: m, audited: audited}
		}
		on, off := sides[0], sides[1]
		// drained waits for the audit queue to empty, then returns the
		// server's metrics.
		drained := func(s *side) map[string]float64 {
			deadline := time.Now().Add(30 * time.Second)
			for {
				m := scrape(b, s.metrics)
				if m["mcr_audit_queue_depth"] == 0 || time.Now().After(deadline) {
					return m
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		for _, s := range sides { // warm-up: TLS sessions, caches
			_, n, err := load(s.srv, repos, s.tok, clients, time.Second)
			if err != nil {
				return throughput{}, err
			}
			s.reqs += n
		}
		m0 := drained(on)
		var roundLog []string
		for r := 0; r < rounds; r++ {
			order := []*side{on, off}
			if r%2 == 1 {
				order = []*side{off, on}
			}
			for _, s := range order {
				before := drained(s)
				var prof chan error
				if profDir != "" && r == 0 {
					prof = make(chan error, 1)
					name := map[bool]string{true: "on", false: "off"}[s.audited]
					go func() { prof <- cpuProfile(s.metrics, secs, filepath.Join(profDir, name+".pprof")) }()
				}
				rps, n, err := load(s.srv, repos, s.tok, clients, time.Duration(secs)*time.Second)
				if err != nil {
					return throughput{}, err
				}
				if prof != nil {
					if err := <-prof; err != nil {
						return throughput{}, err
					}
				}
				after := drained(s)
				cpu := after["process_cpu_seconds_total"] - before["process_cpu_seconds_total"]
				s.reqs += n
				s.n += n
				s.rps += rps
				s.cpu += cpu
				roundLog = append(roundLog, fmt.Sprintf("round %d record_pulls=%v: %.0f manifest GET/s, server CPU %.0f µs/GET", r+1, s.audited, rps, cpu/float64(n)*1e6))
			}
		}
		defer func() { b.Logf("phases:\n%s", strings.Join(roundLog, "\n")) }()
		res := throughput{rounds: rounds, on: on.rps / float64(rounds), off: off.rps / float64(rounds),
			cpuOn: on.cpu / float64(on.n) * 1e6, cpuOff: off.cpu / float64(off.n) * 1e6}
		m1 := drained(on)
		commits := m1["mcr_audit_batch_events_count"] - m0["mcr_audit_batch_events_count"]
		events := m1["mcr_audit_batch_events_sum"] - m0["mcr_audit_batch_events_sum"]
		commitSecs := m1["mcr_audit_commit_seconds_sum"] - m0["mcr_audit_commit_seconds_sum"]
		if commits > 0 {
			res.batch = events / commits
			res.commitMs = commitSecs / commits * 1000
			b.Logf("audited phases: %.0f events in %.0f group commits (%.2f events/commit), %.3f ms per commit, %.1f s committing",
				events, commits, res.batch, res.commitMs, commitSecs)
		}
		// Every audited GET was recorded (flushed on SIGTERM), none of the others.
		_ = on.srv.Stop(b)
		_ = off.srv.Stop(b)
		gotOn, gotOff := countPulls(b, on.srv, repoPrefix), countPulls(b, off.srv, repoPrefix)
		b.Logf("manifest_pulled rows for %d repositories %s*: record_pulls=true %d (of %d GETs), record_pulls=false %d", nrepos, repoPrefix, gotOn, on.reqs, gotOff)
		if gotOn != on.reqs || gotOff != 0 {
			b.Errorf("pull auditing lost or invented rows: %d rows for %d audited GETs; %d rows with record_pulls=false", gotOn, on.reqs, gotOff)
		}
		return res, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(tp.on, "GET/s-audit-on")
	b.ReportMetric(tp.off, "GET/s-audit-off")
	b.ReportMetric(tp.on/tp.off, "ratio-on/off")
	b.ReportMetric(tp.cpuOn, "cpu-us/GET-on")
	b.ReportMetric(tp.cpuOff, "cpu-us/GET-off")
	b.ReportMetric(tp.cpuOff/tp.cpuOn, "cpu-ratio-off/on")
	b.ReportMetric(tp.batch, "events/commit")
	b.ReportMetric(tp.commitMs, "ms/commit")
	if strings.TrimSpace(os.Getenv("MCR_AUDIT_BENCH_ENFORCE")) != "" && tp.on/tp.off < 0.95 {
		b.Errorf("throughput with pull auditing is %.3f× that without (want ≥ 0.95)", tp.on/tp.off)
	}
}

// cpuProfile saves a CPU profile of secs seconds from a server's metrics
// listener (server.pprof on).
func cpuProfile(metricsAddr string, secs int, path string) error {
	c := &http.Client{Timeout: time.Duration(secs+30) * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", metricsAddr, secs))
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cpu profile: status %d", resp.StatusCode)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close() // the copy error is the one to report
		return fmt.Errorf("cpu profile: %w", err)
	}
	return f.Close()
}
