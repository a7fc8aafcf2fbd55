// Command mcrbench benchmarks MCR against the upstream distribution
// registry it embeds. It starts both servers on loopback over TLS with the
// same self-signed certificate, drives them with the same clients in
// alternating rounds and prints a table, a JSON file and a ratio line.
// See bench/README.md; bench/run.sh builds everything and runs it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

type options struct {
	MCRSrv        string `json:"-"`
	Registry      string `json:"-"`
	Out           string `json:"-"`
	UpstreamCache string `json:"upstream_blobdescriptor_cache"`
	UpstreamLog   string `json:"upstream_log_level"`
	Only          string `json:"only,omitempty"`
	Styles        string `json:"push_styles"`
	Perf          string `json:"-"`
	AltEnv        string `json:"alt_env,omitempty"`
	AltMCRSrv     string `json:"alt_mcrsrv,omitempty"`
	MCREnv        string `json:"mcr_env,omitempty"`

	only   map[string]bool
	styles []pushStyle

	Rounds          int     `json:"rounds"`
	BlobMiB         int     `json:"blob_mib"`
	BlobRounds      int     `json:"blob_rounds"`
	BlobPulls       int     `json:"blob_pulls_per_round"`
	Images          int     `json:"images"`
	ImageClients    int     `json:"image_clients"`
	ManifestClients int     `json:"manifest_clients"`
	ManifestSecs    float64 `json:"manifest_secs"`
	TokenClients    int     `json:"token_clients"`
	TokenSecs       float64 `json:"token_secs"`
	Rules           int     `json:"policy_rules"`
	HtpasswdCost    int     `json:"htpasswd_bcrypt_cost"`
	HtpasswdRounds  int     `json:"htpasswd_rounds"`
	ChunkMiB        int     `json:"chunk_mib"`
	ArtClients      int     `json:"artifact_clients"`
	Artifacts       int     `json:"artifacts_per_run"`
	Smoke           bool    `json:"smoke"`
	H2              bool    `json:"http2"`
	FSAll           bool    `json:"mcr_filesystem_all_scenarios"`
	Keep            bool    `json:"-"`
}

// scenarioNames are the values --only accepts.
var scenarioNames = []string{"blob", "images", "manifest", "token", "artifacts"}

func (o *options) runs(scenario string) bool { return len(o.only) == 0 || o.only[scenario] }

func main() {
	if len(os.Args) > 1 && os.Args[1] == floorCommand {
		if err := serveFloor(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "mcrbench:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.MCRSrv, "mcrsrv", "", "path of the mcrsrv binary (required)")
	flag.StringVar(&o.Registry, "registry", "", "path of upstream distribution's registry binary (required)")
	flag.StringVar(&o.Out, "out", "bench/results/latest.json", "JSON results file")
	flag.BoolVar(&o.Smoke, "smoke", false, "tiny sizes, one round: proves the harness works (~30-60 s)")
	flag.IntVar(&o.Rounds, "rounds", 0, "rounds of each scenario (default 3, smoke 1)")
	flag.IntVar(&o.BlobMiB, "blob-mib", 0, "size of the large blob in MiB (default 512, smoke 16)")
	flag.IntVar(&o.BlobRounds, "blob-rounds", 0, "rounds of scenario 1 (default 3, smoke 1)")
	flag.IntVar(&o.BlobPulls, "blob-pulls", 0, "pulls of the large blob per round, timed together (default 3, smoke 1): one pull takes about half a second")
	flag.IntVar(&o.Images, "images", 0, "small images per round (default 300, smoke 20)")
	flag.IntVar(&o.ImageClients, "image-clients", 8, "concurrent clients for the small images")
	flag.IntVar(&o.ManifestClients, "manifest-clients", 16, "concurrent clients for manifest GET/HEAD")
	flag.Float64Var(&o.ManifestSecs, "manifest-secs", 0, "seconds of manifest GET and of HEAD per run (default 5, smoke 2)")
	flag.IntVar(&o.TokenClients, "token-clients", 8, "concurrent clients for the token issue rate")
	flag.Float64Var(&o.TokenSecs, "token-secs", 0, "seconds of each token run (default 3, smoke 1)")
	flag.IntVar(&o.Rules, "rules", 100, "policy rules created in MCR")
	flag.BoolVar(&o.H2, "h2", false, "let clients negotiate HTTP/2 (default HTTP/1.1, as Docker's daemon)")
	flag.StringVar(&o.UpstreamCache, "upstream-cache", "inmemory", `upstream's storage.cache.blobdescriptor ("inmemory" as in its example config, or "none")`)
	flag.IntVar(&o.HtpasswdCost, "htpasswd-cost", 5, "bcrypt cost of the upstream htpasswd file (5 = `htpasswd -B` default)")
	flag.StringVar(&o.UpstreamLog, "upstream-log-level", "warn", `upstream's log.level ("warn": no per-request lines, like mcrsrv at info; "info": upstream's default)`)
	flag.IntVar(&o.HtpasswdRounds, "htpasswd-rounds", 1, "rounds the up+htpasswd variant takes part in (it is informational; saves time)")
	flag.BoolVar(&o.FSAll, "fs-all", false, "run the second MCR variant (the other storage driver) in scenarios 2, 3 and 6 too (diagnosis: driver vs the rest of MCR)")
	flag.StringVar(&o.Only, "only", "", "comma-separated scenarios to run: "+strings.Join(scenarioNames, ",")+" (default all; peak RSS needs blob,images,manifest)")
	flag.StringVar(&o.Styles, "styles", "put,patch,chunked", "push styles of scenario 1: put (POST + one PUT with the body), patch (POST + one PATCH + PUT), chunked (PATCHes of --chunk-mib)")
	flag.IntVar(&o.ChunkMiB, "chunk-mib", 5, "PATCH size of the chunked push style in MiB")
	flag.IntVar(&o.ArtClients, "artifact-clients", 64, "concurrent clients of scenario 6 (tiny artifacts)")
	flag.IntVar(&o.Artifacts, "artifacts", 0, "artifacts pushed per run of scenario 6 (default 512, smoke 128)")
	flag.StringVar(&o.AltMCRSrv, "alt-mcrsrv", "", "path of another mcrsrv build for the second MCR variant, with the same settings as the first (A/B of two builds in one run, e.g. before and after a change); --alt-env still applies")
	flag.StringVar(&o.AltEnv, "alt-env", "", "comma-separated KEY=VALUE settings for the second MCR variant instead of the other storage driver (A/B of one setting, e.g. MCR_STORAGE_DIRECT_IO=false); they override --mcr-env's")
	flag.StringVar(&o.MCREnv, "mcr-env", "", "comma-separated KEY=VALUE settings for both MCR variants (e.g. MCR_SERVER_METRICS_ADDR=127.0.0.1:9100,MCR_SERVER_PPROF=true to profile)")
	flag.StringVar(&o.Perf, "perf", "", "directory for `perf record` profiles of every scenario-1 push (needs perf)")
	flag.BoolVar(&o.Keep, "keep", false, "keep the work directory (data dirs, server logs)")
	flag.Parse()
	if o.MCRSrv == "" || o.Registry == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: mcrbench -mcrsrv PATH -registry PATH [--smoke] [flags]")
		flag.PrintDefaults()
		os.Exit(2)
	}
	def := func(v *int, full, smoke int) {
		if *v == 0 {
			*v = full
			if o.Smoke {
				*v = smoke
			}
		}
	}
	def(&o.Rounds, 3, 1)
	def(&o.BlobMiB, 512, 16)
	def(&o.BlobRounds, 3, 1)
	def(&o.BlobPulls, 3, 1)
	def(&o.Images, 300, 20)
	def(&o.Artifacts, 512, 128)
	if o.Only != "" {
		o.only = map[string]bool{}
		for _, n := range strings.Split(o.Only, ",") {
			if n = strings.TrimSpace(n); !slices.Contains(scenarioNames, n) {
				fmt.Fprintf(os.Stderr, "mcrbench: --only: unknown scenario %q (want %s)\n", n, strings.Join(scenarioNames, ","))
				os.Exit(2)
			}
			o.only[n] = true
		}
	}
	for _, n := range strings.Split(o.Styles, ",") {
		st, ok := parseStyle(strings.TrimSpace(n))
		if !ok {
			fmt.Fprintf(os.Stderr, "mcrbench: --styles: unknown push style %q (want put, patch, chunked)\n", n)
			os.Exit(2)
		}
		o.styles = append(o.styles, st)
	}
	if o.ManifestSecs == 0 {
		o.ManifestSecs = map[bool]float64{false: 5, true: 2}[o.Smoke]
	}
	if o.TokenSecs == 0 {
		o.TokenSecs = map[bool]float64{false: 3, true: 1}[o.Smoke]
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Every loop is bounded; this is the backstop.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	res, err := run(ctx, &o) // stops the servers and removes the work directory
	if err == nil {
		err = report(res, &o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcrbench:", err)
		os.Exit(1)
	}
}

// ---- results ------------------------------------------------------------

type metric struct {
	Key    string               `json:"key"`
	Title  string               `json:"title"`
	Values map[string][]float64 `json:"values"`
	Median map[string]float64   `json:"median"`
	Min    map[string]float64   `json:"min"`
	Max    map[string]float64   `json:"max"`
	Ratio  *float64             `json:"ratio_mcr_vs_upstream,omitempty"`
	Unit   string               `json:"unit"`
	Higher bool                 `json:"higher_is_better"`
}

type variantInfo struct {
	Name        string `json:"name"`
	Label       string `json:"label"`
	Description string `json:"description"`
}

type results struct {
	Started     time.Time          `json:"started"`
	Options     *options           `json:"options"`
	Machine     map[string]any     `json:"machine"`
	Variants    []variantInfo      `json:"variants"`
	Metrics     []*metric          `json:"metrics"`
	Ratios      map[string]float64 `json:"ratios"`
	MCR         map[string]any     `json:"mcr"`
	Checks      []check            `json:"checks"`
	Floor       []string           `json:"floor"`
	byKey       map[string]*metric
	Notes       []string `json:"notes"`
	DurationSec float64  `json:"duration_sec"`
}

func (r *results) define(key, title, unit string, higher bool) {
	m := &metric{Key: key, Title: title, Unit: unit, Higher: higher, Values: map[string][]float64{},
		Median: map[string]float64{}, Min: map[string]float64{}, Max: map[string]float64{}}
	r.Metrics = append(r.Metrics, m)
	r.byKey[key] = m
}

func (r *results) add(key, variant string, v float64) {
	m := r.byKey[key]
	m.Values[variant] = append(m.Values[variant], v)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func (r *results) finish() {
	for _, m := range r.Metrics {
		for k, v := range m.Values {
			m.Median[k] = median(v)
			m.Min[k], m.Max[k] = slices.Min(v), slices.Max(v)
		}
		mc, ok1 := m.Median["mcr"]
		up, ok2 := m.Median["upstream"]
		if ok1 && ok2 && up > 0 {
			ratio := mc / up
			m.Ratio = &ratio
		}
	}
}

func fmtNum(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// table prints one row per metric: for each variant the median over rounds
// and, when there was more than one round, [min-max].
func (r *results) table(w io.Writer) {
	const title, cell = 40, 22
	fmt.Fprintf(w, "%-*s", title, "metric: median [min-max] of rounds")
	for _, v := range r.Variants {
		fmt.Fprintf(w, " %*s", cell, v.Label)
	}
	fmt.Fprintf(w, " %9s\n", "MCR/up")
	fmt.Fprintln(w, strings.Repeat("-", title+(cell+1)*len(r.Variants)+10))
	for _, m := range r.Metrics {
		if len(m.Median) == 0 {
			continue
		}
		fmt.Fprintf(w, "%-*s", title, m.Title+" ("+m.Unit+")")
		for _, v := range r.Variants {
			c := "-"
			if med, ok := m.Median[v.Name]; ok {
				c = fmtNum(med)
				if len(m.Values[v.Name]) > 1 {
					c += " [" + fmtNum(m.Min[v.Name]) + "-" + fmtNum(m.Max[v.Name]) + "]"
				}
			}
			fmt.Fprintf(w, " %*s", cell, c)
		}
		if m.Ratio != nil {
			fmt.Fprintf(w, " %8.2fx", *m.Ratio)
		}
		fmt.Fprintln(w)
	}
}

// ---- run ----------------------------------------------------------------

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

var storageRe = regexp.MustCompile(`storage=("?)([A-Za-z0-9_-]+)`)

// effectiveDriver reads the driver mcrsrv logged at startup.
func effectiveDriver(p *process) string {
	b, _ := os.ReadFile(p.logPath)
	if m := storageRe.FindSubmatch(b); m != nil {
		return string(m[2])
	}
	return ""
}

// removeBlob deletes a blob's data from a storage root (untimed, between
// runs), so gigabytes of dirty pages of earlier runs are not written back
// while a later run is measured.
func removeBlob(root, digest string) {
	hex := strings.TrimPrefix(digest, "sha256:")
	_ = os.RemoveAll(filepath.Join(root, "docker", "registry", "v2", "blobs", "sha256", hex[:2], hex))
}

// loadAvg is the 1-minute load average.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	var l float64
	_, _ = fmt.Sscan(string(b), &l)
	return l
}

func describeAudit(v any) string {
	m, _ := v.(map[string]any)
	if m == nil {
		return "n/a"
	}
	if st, _ := m["status"].(int); st != 200 {
		return fmt.Sprintf("GET /v1/audit answered %v %v", m["status"], m["error"])
	}
	return fmt.Sprintf("%v events recorded; last 1000 by type: %v", m["newest_event_id"], m["last_1000_by_type"])
}

func run(ctx context.Context, o *options) (*results, error) {
	began := time.Now()
	work, err := os.MkdirTemp("", "mcrbench-")
	if err != nil {
		return nil, err
	}
	if o.Keep {
		logf("work directory %s (kept)", work)
	} else {
		defer func() {
			t0 := time.Now()
			_ = removeTree(work)
			logf("removed work directory in %.1f s", time.Since(t0).Seconds())
		}()
	}
	res := &results{Started: began, Options: o, byKey: map[string]*metric{}, MCR: map[string]any{}, Ratios: map[string]float64{}}
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`(?m)^model name\s*:\s*(.*)$`).FindSubmatch(b); m != nil {
			model = string(m[1])
		}
	}
	res.Machine = map[string]any{"cpus": runtime.NumCPU(), "cpu_model": model, "go": runtime.Version(), "goos": runtime.GOOS,
		"loadavg_start": loadAvg()}

	var procs []*process
	defer func() {
		t0 := time.Now()
		for _, p := range procs {
			p.stop()
		}
		logf("stopped servers in %.1f s", time.Since(t0).Seconds())
	}()
	fail := func(err error) error {
		for _, p := range procs {
			fmt.Fprintf(os.Stderr, "--- last lines of %s log ---\n%s\n", p.name, p.logTail())
		}
		return err
	}

	// MCR, everything on: TLS 1.3, local identity with bcrypt, signed
	// registry tokens, policy with o.Rules rules, whatever audit exists.
	logf("setting up MCR (mcrsrv init, %d policy rules) and upstream registry", o.Rules)
	mcrDir := filepath.Join(work, "mcr")
	mcrFSDir := filepath.Join(work, "mcr-filesystem")
	var mcrAddr, mcrFSAddr, upAddr, upHAddr, floorAddr string
	for _, a := range []*string{&mcrAddr, &mcrFSAddr, &upAddr, &upHAddr, &floorAddr} {
		if *a, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	webAddr1, _ := freeAddr()
	webAddr2, _ := freeAddr()
	if err := mcrInit(o.MCRSrv, mcrDir, mcrAddr, webAddr1, ""); err != nil {
		return nil, err
	}
	altBin := o.MCRSrv
	if o.AltMCRSrv != "" {
		altBin = o.AltMCRSrv
	}
	if err := mcrInit(altBin, mcrFSDir, mcrFSAddr, webAddr2, mcrDir); err != nil {
		return nil, err
	}
	cert, key := filepath.Join(mcrDir, "certs", "cert.pem"), filepath.Join(mcrDir, "certs", "key.pem")
	pool, err := certPool(cert)
	if err != nil {
		return nil, err
	}
	conns := max(o.ImageClients, o.ManifestClients, o.TokenClients) + 4
	newClient := func() *http.Client { return newHTTPClient(pool, conns, o.H2) }

	defaultDriver := configuredDriver(filepath.Join(mcrDir, "mcr.toml"))
	startMCRVariant := func(name, bin, dir string, env ...string) (*process, error) {
		p, err := startProcess(name, filepath.Join(dir, "server.log"), baseEnv(env...), bin,
			"server", "--config", filepath.Join(dir, "mcr.toml"))
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
		return p, nil
	}
	var mcrEnv []string
	if o.MCREnv != "" {
		mcrEnv = strings.Split(o.MCREnv, ",")
	}
	mcrP, err := startMCRVariant("mcr", o.MCRSrv, mcrDir, mcrEnv...)
	if err != nil {
		return nil, err
	}
	// The second MCR variant runs the other storage driver.
	altDriver := "filesystem"
	if defaultDriver == "filesystem" {
		altDriver = "mcrfs"
	}
	altEnv := []string{"MCR_STORAGE_DRIVER=" + altDriver}
	altWhat := "MCR_STORAGE_DRIVER=" + altDriver + " (the other storage driver)"
	switch {
	case o.AltMCRSrv != "": // another build, as the first is run (plus --alt-env)
		altEnv, altWhat = mcrEnv, "the build "+o.AltMCRSrv
		if o.AltEnv != "" {
			altEnv, altWhat = append(append([]string(nil), mcrEnv...), strings.Split(o.AltEnv, ",")...), altWhat+", "+o.AltEnv
		}
	case o.AltEnv != "": // the same build and driver, one setting changed
		// --mcr-env applies to both; --alt-env comes last and wins
		// (exec.Cmd keeps a duplicated key's last value).
		altEnv, altWhat = append(append([]string(nil), mcrEnv...), strings.Split(o.AltEnv, ",")...), o.AltEnv
	}
	mcrFSP, err := startMCRVariant("mcr-alt", altBin, mcrFSDir, altEnv...)
	if err != nil {
		return nil, err
	}

	// Upstream: the same certificate, filesystem storage, delete enabled.
	upDir, upHDir := filepath.Join(work, "upstream"), filepath.Join(work, "upstream-htpasswd")
	for _, d := range []string{upDir, upHDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	upCfg, err := upstreamConfig(upDir, upAddr, cert, key, "", o.UpstreamCache, o.UpstreamLog)
	if err != nil {
		return nil, err
	}
	htp := filepath.Join(upHDir, "htpasswd")
	if err := writeHtpasswd(htp, benchUser, benchPassword, o.HtpasswdCost); err != nil {
		return nil, err
	}
	upHCfg, err := upstreamConfig(upHDir, upHAddr, cert, key, htp, o.UpstreamCache, o.UpstreamLog)
	if err != nil {
		return nil, err
	}
	upP, err := startProcess("upstream", filepath.Join(upDir, "server.log"), baseEnv(), o.Registry, "serve", upCfg)
	if err != nil {
		return nil, err
	}
	procs = append(procs, upP)
	upHP, err := startProcess("upstream-htpasswd", filepath.Join(upHDir, "server.log"), baseEnv(), o.Registry, "serve", upHCfg)
	if err != nil {
		return nil, err
	}
	procs = append(procs, upHP)
	// The floor server (scenario 1 only): TLS receive and one SHA-256,
	// nothing else; see floor.go.
	var floorP *process
	if o.runs("blob") {
		if floorP, err = startFloor(filepath.Join(work, "floor.log"), floorAddr, cert, key); err != nil {
			return nil, err
		}
		procs = append(procs, floorP)
	}

	probe := newClient()
	is := func(codes ...int) func(int) bool { return func(c int) bool { return slices.Contains(codes, c) } }
	for _, w := range []struct {
		p   *process
		ok  func(int) bool
		url string
	}{
		{mcrP, is(200), "https://" + mcrAddr + "/v1/health"},
		{mcrFSP, is(200), "https://" + mcrFSAddr + "/v1/health"},
		{upP, is(200), "https://" + upAddr + "/v2/"},
		{upHP, is(401), "https://" + upHAddr + "/v2/"},
		{floorP, is(200), "https://" + floorAddr + "/v2/"},
	} {
		if w.p == nil {
			continue
		}
		if err := waitReady(ctx, w.p, probe, w.url, w.ok); err != nil {
			return nil, fail(err)
		}
	}
	rules := policyRules(o.Rules)
	var adminTok string
	for _, m := range []struct{ name, url string }{{"mcr", "https://" + mcrAddr}, {"mcr-alt", "https://" + mcrFSAddr}} {
		tok, err := adminLogin(ctx, probe, m.url, "admin", adminPassword)
		if err != nil {
			return nil, fail(fmt.Errorf("%s: %w", m.name, err))
		}
		total, err := createRules(ctx, probe, m.url, tok, rules)
		if err != nil {
			return nil, fail(fmt.Errorf("%s: %w", m.name, err))
		}
		if total != len(rules) {
			return nil, fail(fmt.Errorf("%s: policy has %d rules after creating %d", m.name, total, len(rules)))
		}
		if m.name == "mcr" {
			adminTok = tok
		}
	}
	drv, drvFS := effectiveDriver(mcrP), effectiveDriver(mcrFSP)
	if drv == "" {
		drv = defaultDriver
	}
	res.MCR["storage_driver_default"] = drv
	res.MCR["storage_driver_init_writes"] = defaultDriver
	res.MCR["storage_driver_second_row"] = drvFS
	res.MCR["policy_rules"] = len(rules)
	logf("MCR storage driver: %s (mcr.toml from init says %q); second MCR row: %s", drv, defaultDriver, drvFS)

	mcr := &target{Name: "mcr", Label: "MCR(" + drv + ")", URL: "https://" + mcrAddr, Auth: authBearer,
		User: benchUser, Pass: benchPassword, srv: mcrP, hc: newClient(),
		Desc: "mcrsrv: TLS 1.3, bearer tokens from /v2/token (local identity, bcrypt), " +
			fmt.Sprint(len(rules)) + " policy rules, audit as built, storage.driver=" + drv}
	altLabel := "MCR(" + drvFS + ")"
	if o.AltEnv != "" || o.AltMCRSrv != "" {
		altLabel = "MCR(alt)"
	}
	mcrFS := &target{Name: "mcr-alt", Label: altLabel, URL: "https://" + mcrFSAddr, Auth: authBearer,
		User: benchUser, Pass: benchPassword, srv: mcrFSP, hc: newClient(),
		Desc: "mcrsrv as above with " + altWhat}
	up := &target{Name: "upstream", Label: "upstream", URL: "https://" + upAddr, Auth: authNone, srv: upP, hc: newClient(),
		Desc: "distribution v3.1.2 registry binary, TLS 1.3, no auth, filesystem driver, blobdescriptor cache " + o.UpstreamCache}
	upH := &target{Name: "upstream-htpasswd", Label: "up+htpasswd", URL: "https://" + upHAddr, Auth: authBasic,
		User: benchUser, Pass: benchPassword, srv: upHP, hc: newClient(),
		Desc: fmt.Sprintf("as upstream, with htpasswd Basic auth (bcrypt cost %d, checked on every request)", o.HtpasswdCost)}
	floor := &target{Name: "floor", Label: "floor", URL: "https://" + floorAddr, Auth: authNone, srv: floorP, hc: newClient(),
		Desc: "no registry: TLS 1.3 receive and one SHA-256 pass over each pushed body, nothing stored (bench/cmd/mcrbench/floor.go); large-blob push only"}
	all := []*target{mcr, mcrFS, up, upH}
	main3 := []*target{mcr, up, upH}
	if o.FSAll {
		main3 = []*target{mcr, mcrFS, up, upH}
	} else {
		mcrFS.Desc += "; large blob only"
	}
	if !o.runs("blob") && !o.FSAll {
		all = main3
	}
	blobTargets := all
	if o.runs("blob") {
		blobTargets = append(slices.Clone(all), floor)
	}
	for _, t := range blobTargets {
		res.Variants = append(res.Variants, variantInfo{Name: t.Name, Label: t.Label, Description: t.Desc})
	}
	order := func(ts []*target, round int) []*target {
		out := slices.DeleteFunc(slices.Clone(ts), func(t *target) bool { return t == upH && round >= o.HtpasswdRounds })
		if round%2 == 1 {
			slices.Reverse(out)
		}
		return out
	}

	mib := fmt.Sprint(o.BlobMiB)
	for _, st := range o.styles {
		k, d := "blob_push_"+st.String(), st.describe(o.ChunkMiB)
		res.define(k, "1. push "+mib+" MiB, "+d, "MB/s", true)
		res.define(k+"_cpu", "1. "+st.String()+" server CPU/GB", "s", false)
		res.define(k+"_user", "1. "+st.String()+" server user CPU/GB", "s", false)
		res.define(k+"_sys", "1. "+st.String()+" server sys CPU/GB", "s", false)
		res.define(k+"_client", "1. "+st.String()+" client CPU/GB", "s", false)
	}
	res.define("blob_pull", "1. pull "+mib+" MiB blob", "MB/s", true)
	res.define("blob_pull_cpu", "1. pull server CPU per GB", "s", false)
	res.define("images_push", fmt.Sprintf("2. push %d small images", o.Images), "img/s", true)
	res.define("images_pull", fmt.Sprintf("2. pull %d small images", o.Images), "img/s", true)
	res.define("images_push_cpu", "2. push server CPU per image", "ms", false)
	res.define("images_pull_cpu", "2. pull server CPU per image", "ms", false)
	res.define("manifest_get", "3. manifest GET", "req/s", true)
	res.define("manifest_get_p50", "3. manifest GET p50", "ms", false)
	res.define("manifest_get_p99", "3. manifest GET p99", "ms", false)
	res.define("manifest_get_cpu", "3. GET server CPU per req", "us", false)
	res.define("manifest_head", "3. manifest HEAD", "req/s", true)
	res.define("manifest_head_p50", "3. manifest HEAD p50", "ms", false)
	res.define("manifest_head_p99", "3. manifest HEAD p99", "ms", false)
	res.define("manifest_head_cpu", "3. HEAD server CPU per req", "us", false)
	res.define("token_basic", "4. token issue, Basic", "tok/s", true)
	res.define("token_basic_p50", "4. token issue, Basic p50", "ms", false)
	res.define("token_bearer", "4. token issue, identity tok", "tok/s", true)
	res.define("token_bearer_p50", "4. token issue, identity p50", "ms", false)
	res.define("peak_rss", "5. peak RSS during 1-3", "MiB", false)
	res.define("art_one", fmt.Sprintf("6. %d clients, 1 KiB, one repo", o.ArtClients), "art/s", true)
	res.define("art_many", fmt.Sprintf("6. %d clients, 1 KiB, %d repos", o.ArtClients, o.ArtClients), "art/s", true)
	res.define("art_one_cpu", "6. one repo server CPU/artifact", "ms", false)
	res.define("art_many_cpu", "6. many repos server CPU/artifact", "ms", false)

	// 1. One large blob per push style: every round uses new content for
	// each style (each digest worked out before the clock starts). Within a
	// round the styles rotate and the variants alternate, so a style's
	// variants run next to each other in time.
	size := int64(o.BlobMiB) << 20
	chunk := int64(o.ChunkMiB) << 20
	if o.Perf != "" {
		if err := os.MkdirAll(o.Perf, 0o755); err != nil {
			return nil, err
		}
	}
	for round := range o.BlobRounds {
		if !o.runs("blob") {
			break
		}
		styles := slices.Clone(o.styles)
		if len(styles) > 0 {
			r := round % len(styles)
			styles = append(styles[r:], styles[:r]...)
		}
		for _, st := range styles {
			b, err := newBigBlob(round*8+int(st), size)
			if err != nil {
				return nil, err
			}
			for _, t := range order(blobTargets, round) {
				syscall.Sync()
				pulls := 0
				if t != floor && (st == pushPatch || len(o.styles) == 1) {
					pulls = o.BlobPulls
				}
				perfOut := ""
				if o.Perf != "" {
					perfOut = filepath.Join(o.Perf, fmt.Sprintf("r%d-%s-%s.data", round+1, st, t.Name))
				}
				r, err := runBigBlob(ctx, t, b, "bench/big", st, chunk, pulls, o.Smoke, perfOut)
				if err != nil {
					return nil, fail(fmt.Errorf("scenario 1 (%s, %s): %w", t.Name, st, err))
				}
				gb := float64(size) / 1e9
				cpu := r.PushUser + r.PushSys
				line := fmt.Sprintf("1. round %d %-7s %-18s push %7.1f MB/s  server CPU %.2f s/GB (user %.2f, sys %.2f), client %.2f s/GB",
					round+1, st, t.Name, r.Push, cpu.Seconds()/gb, r.PushUser.Seconds()/gb, r.PushSys.Seconds()/gb, r.ClientCPU.Seconds()/gb)
				k := "blob_push_" + st.String()
				res.add(k, t.Name, r.Push)
				res.add(k+"_cpu", t.Name, cpu.Seconds()/gb)
				res.add(k+"_user", t.Name, r.PushUser.Seconds()/gb)
				res.add(k+"_sys", t.Name, r.PushSys.Seconds()/gb)
				res.add(k+"_client", t.Name, r.ClientCPU.Seconds()/gb)
				if pulls > 0 {
					line += fmt.Sprintf("  pull %7.1f MB/s (%.2f s/GB)", r.Pull, r.PullCPU.Seconds()/gb)
					res.add("blob_pull", t.Name, r.Pull)
					res.add("blob_pull_cpu", t.Name, r.PullCPU.Seconds()/gb)
				}
				if r.PerfNote != "" {
					line += "  " + r.PerfNote
				}
				logf("%s", line)
				for _, root := range []string{filepath.Join(mcrDir, "layers"), filepath.Join(mcrFSDir, "layers"),
					filepath.Join(upDir, "data"), filepath.Join(upHDir, "data")} {
					removeBlob(root, b.digest)
				}
			}
		}
	}
	if !o.FSAll {
		if o.runs("blob") {
			if kib, err := mcrFSP.memKiB("VmHWM"); err == nil {
				res.add("peak_rss", mcrFS.Name, float64(kib)/1024)
			}
		}
		mcrFSP.stop()
	}

	// 2. Small images.
	for round := range o.Rounds {
		if !o.runs("images") {
			break
		}
		imgs := make([]image, o.Images)
		for i := range imgs {
			imgs[i] = makeImage(round, i)
		}
		for _, t := range order(main3, round) {
			push, pull, cpu, err := runSmallImages(ctx, t, imgs, o.ImageClients, fmt.Sprintf("bench/small-r%d", round))
			if err != nil {
				return nil, fail(fmt.Errorf("scenario 2 (%s): %w", t.Name, err))
			}
			n := float64(len(imgs))
			logf("2. round %d %-18s push %7.1f img/s  pull %7.1f img/s  (server CPU %.2f s / %.2f s)",
				round+1, t.Name, push, pull, cpu[0].Seconds(), cpu[1].Seconds())
			res.add("images_push", t.Name, push)
			res.add("images_pull", t.Name, pull)
			res.add("images_push_cpu", t.Name, ms(cpu[0])/n)
			res.add("images_pull_cpu", t.Name, ms(cpu[1])/n)
		}
	}

	// 3. Manifest GET and HEAD by tag.
	app := makeImage(9999, 0)
	for _, t := range main3 {
		if !o.runs("manifest") {
			break
		}
		s, err := newSession(ctx, t, "pull,push")
		if err == nil {
			err = s.pushImage("bench/app", "latest", &app)
		}
		if err != nil {
			return nil, fail(fmt.Errorf("scenario 3 setup (%s): %w", t.Name, err))
		}
	}
	d := time.Duration(o.ManifestSecs * float64(time.Second))
	for round := range o.Rounds {
		if !o.runs("manifest") {
			break
		}
		for _, t := range order(main3, round) {
			for _, head := range []bool{false, true} {
				r, err := runManifestLoad(ctx, t, "bench/app", "latest", head, o.ManifestClients, d)
				if err != nil {
					return nil, fail(fmt.Errorf("scenario 3 (%s): %w", t.Name, err))
				}
				k := map[bool]string{false: "manifest_get", true: "manifest_head"}[head]
				logf("3. round %d %-18s %-4s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  (%d requests, server CPU %.2f s)",
					round+1, t.Name, strings.ToUpper(strings.TrimPrefix(k, "manifest_")), r.RPS, r.P50, r.P99, r.Requests, r.CPU.Seconds())
				if r.Requests > 0 {
					res.add(k+"_cpu", t.Name, float64(r.CPU.Microseconds())/float64(r.Requests))
				}
				res.add(k, t.Name, r.RPS)
				res.add(k+"_p50", t.Name, r.P50)
				res.add(k+"_p99", t.Name, r.P99)
			}
		}
	}

	// 5. Peak RSS over 1-3 (VmHWM: the high-water mark since start).
	for _, t := range main3 {
		if !o.runs("blob") && !o.runs("images") && !o.runs("manifest") {
			break
		}
		kib, err := t.srv.memKiB("VmHWM")
		if err != nil {
			return nil, fail(fmt.Errorf("%s: %w", t.Name, err))
		}
		res.add("peak_rss", t.Name, float64(kib)/1024)
	}

	// 6. Tiny artifacts from many clients, into one repository and into one
	// repository per client (the same number of pushes either way).
	for round := range o.Rounds {
		if !o.runs("artifacts") {
			break
		}
		for _, t := range order(main3, round) {
			if t == upH {
				continue // informational variant; its cost is bcrypt, shown in 2.
			}
			for _, one := range []bool{true, false} {
				run := round*2 + map[bool]int{true: 0, false: 1}[one]
				arts := make([]artifact, o.Artifacts)
				for i := range arts {
					arts[i] = makeArtifact(run, i)
				}
				repo := func(k int) string { return fmt.Sprintf("bench/art-r%d-many/c%d", round, k) }
				key := "art_many"
				if one {
					repo = func(int) string { return fmt.Sprintf("bench/art-r%d-one", round) }
					key = "art_one"
				}
				rate, cpu, err := runArtifacts(ctx, t, arts, o.ArtClients, repo)
				if err != nil {
					return nil, fail(fmt.Errorf("scenario 6 (%s, %s): %w", t.Name, key, err))
				}
				logf("6. round %d %-18s %-8s %7.1f artifacts/s  (server CPU %.2f ms/artifact)",
					round+1, t.Name, key, rate, ms(cpu)/float64(len(arts)))
				res.add(key, t.Name, rate)
				res.add(key+"_cpu", t.Name, ms(cpu)/float64(len(arts)))
			}
		}
	}

	// 4. Token issue rate, MCR only.
	benchIdentity, err := adminLogin(ctx, probe, mcr.URL, benchUser, benchPassword)
	if err != nil {
		return nil, fail(err)
	}
	td := time.Duration(o.TokenSecs * float64(time.Second))
	for round := range o.Rounds {
		if !o.runs("token") {
			break
		}
		for _, ident := range []string{"", benchIdentity} {
			r, err := runTokenLoad(ctx, mcr, "repository:bench/app:pull", ident, o.TokenClients, td)
			if err != nil {
				return nil, fail(fmt.Errorf("scenario 4: %w", err))
			}
			k, what := "token_basic", "Basic"
			if ident != "" {
				k, what = "token_bearer", "identity token"
			}
			logf("4. round %d %-18s %-14s %8.1f tokens/s  p50 %6.2f ms  p99 %6.2f ms", round+1, mcr.Name, what, r.RPS, r.P50, r.P99)
			res.add(k, mcr.Name, r.RPS)
			res.add(k+"_p50", mcr.Name, r.P50)
		}
	}
	res.MCR["audit"] = auditStatus(ctx, probe, mcr.URL, adminTok)

	res.finish()
	for _, st := range o.styles {
		if m := res.byKey["blob_push_"+st.String()]; m.Ratio != nil {
			res.Ratios["blob_push_"+st.String()] = *m.Ratio
		}
	}
	for _, k := range []string{"blob_pull", "manifest_get"} {
		if m := res.byKey[k]; m.Ratio != nil {
			res.Ratios[k] = *m.Ratio
		}
	}
	res.Checks = targetChecks(res, o)
	res.Floor = floorLines(res, o)
	if m := res.byKey["manifest_get_p99"]; m.Ratio != nil {
		res.Ratios["manifest_get_p99"] = *m.Ratio
	}
	res.Notes = []string{
		"Ratios are MCR median / upstream (no auth) median; for ms and MiB rows lower is better.",
		"Both servers: TLS 1.3, the same ECDSA P-256 self-signed certificate, loopback; clients speak " +
			map[bool]string{false: "HTTP/1.1", true: "HTTP/2 where offered"}[o.H2] + ".",
		"Upstream runs with log.level " + o.UpstreamLog + ", access log off and OTEL_TRACES_EXPORTER=none; its built-in tracer still samples every request.",
		"Scenario 1 excludes the token fetch; scenario 2 includes each client's ping and token fetch; scenario 3 fetches tokens before the clock starts.",
	}
	res.DurationSec = time.Since(began).Seconds()
	res.Machine["loadavg_end"] = loadAvg()
	if ctx.Err() != nil {
		return nil, errors.New("interrupted")
	}
	return res, nil
}

// report prints the table and the ratio line (last) and writes the JSON.
func report(res *results, o *options) error {
	fmt.Println()
	res.table(os.Stdout)
	fmt.Println()
	for _, v := range res.Variants {
		fmt.Printf("%-12s %s\n", v.Label+":", v.Description)
	}
	fmt.Printf("MCR audit after the run: %s\n", describeAudit(res.MCR["audit"]))
	if len(res.Checks) > 0 {
		fmt.Println("\ntargets (issue 19), MCR vs upstream without auth, this run:")
		for _, c := range res.Checks {
			mark := "MET    "
			if !c.Met {
				mark = "NOT MET"
			}
			fmt.Printf("  %s %-58s %s\n", mark, c.What, c.Got)
		}
		fmt.Println()
	}
	if len(res.Floor) > 0 {
		fmt.Println("server CPU per GB against the floor (TLS receive + SHA-256 only), medians, this run:")
		for _, l := range res.Floor {
			fmt.Println("  " + l)
		}
		fmt.Println()
	}
	fmt.Printf("load average (1 min) at start %.2f, at end %.2f on %d CPUs; total time %.0f s\n",
		res.Machine["loadavg_start"], res.Machine["loadavg_end"], runtime.NumCPU(), res.DurationSec)
	if l, _ := res.Machine["loadavg_start"].(float64); l > float64(runtime.NumCPU()) {
		fmt.Println("WARNING: other work was running on this machine; absolute numbers are skewed (the A/B alternation keeps ratios comparable)")
	}
	if o.Out != "" {
		if err := os.MkdirAll(filepath.Dir(o.Out), 0o755); err != nil {
			return err
		}
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(o.Out, append(b, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Printf("results: %s\n", o.Out)
	}
	ratio := func(k string) string {
		if v, ok := res.Ratios[k]; ok {
			return fmt.Sprintf("%.2f", v)
		}
		return "NaN"
	}
	fmt.Printf("push_put_ratio=%s push_patch_ratio=%s push_chunked_ratio=%s pull_ratio=%s manifest_get_ratio=%s\n",
		ratio("blob_push_put"), ratio("blob_push_patch"), ratio("blob_push_chunked"), ratio("blob_pull"), ratio("manifest_get"))
	return nil
}
