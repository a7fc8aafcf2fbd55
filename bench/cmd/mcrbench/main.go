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
	MCRSrv          string  `json:"-"`
	Registry        string  `json:"-"`
	Out             string  `json:"-"`
	Smoke           bool    `json:"smoke"`
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
	H2              bool    `json:"http2"`
	UpstreamCache   string  `json:"upstream_blobdescriptor_cache"`
	HtpasswdCost    int     `json:"htpasswd_bcrypt_cost"`
	UpstreamLog     string  `json:"upstream_log_level"`
	HtpasswdRounds  int     `json:"htpasswd_rounds"`
	FSAll           bool    `json:"mcr_filesystem_all_scenarios"`
	Keep            bool    `json:"-"`
}

func main() {
	var o options
	flag.StringVar(&o.MCRSrv, "mcrsrv", "", "path of the mcrsrv binary (required)")
	flag.StringVar(&o.Registry, "registry", "", "path of upstream distribution's registry binary (required)")
	flag.StringVar(&o.Out, "out", "bench/results/latest.json", "JSON results file")
	flag.BoolVar(&o.Smoke, "smoke", false, "tiny sizes, one round: proves the harness works (~30-60 s)")
	flag.IntVar(&o.Rounds, "rounds", 0, "rounds of each scenario (default 3, smoke 1)")
	flag.IntVar(&o.BlobMiB, "blob-mib", 0, "size of the large blob in MiB (default 512, smoke 16)")
	flag.IntVar(&o.BlobRounds, "blob-rounds", 0, "rounds of scenario 1, which is short and noisy (default 5, smoke 1)")
	flag.IntVar(&o.BlobPulls, "blob-pulls", 0, "pulls of the large blob per round, timed together (default 3, smoke 1): one pull takes about half a second")
	flag.IntVar(&o.Images, "images", 0, "small images per round (default 500, smoke 20)")
	flag.IntVar(&o.ImageClients, "image-clients", 8, "concurrent clients for the small images")
	flag.IntVar(&o.ManifestClients, "manifest-clients", 16, "concurrent clients for manifest GET/HEAD")
	flag.Float64Var(&o.ManifestSecs, "manifest-secs", 0, "seconds of manifest GET and of HEAD per run (default 10, smoke 2)")
	flag.IntVar(&o.TokenClients, "token-clients", 8, "concurrent clients for the token issue rate")
	flag.Float64Var(&o.TokenSecs, "token-secs", 0, "seconds of each token run (default 3, smoke 1)")
	flag.IntVar(&o.Rules, "rules", 100, "policy rules created in MCR")
	flag.BoolVar(&o.H2, "h2", false, "let clients negotiate HTTP/2 (default HTTP/1.1, as Docker's daemon)")
	flag.StringVar(&o.UpstreamCache, "upstream-cache", "inmemory", `upstream's storage.cache.blobdescriptor ("inmemory" as in its example config, or "none")`)
	flag.IntVar(&o.HtpasswdCost, "htpasswd-cost", 5, "bcrypt cost of the upstream htpasswd file (5 = `htpasswd -B` default)")
	flag.StringVar(&o.UpstreamLog, "upstream-log-level", "warn", `upstream's log.level ("warn": no per-request lines, like mcrsrv at info; "info": upstream's default)`)
	flag.IntVar(&o.HtpasswdRounds, "htpasswd-rounds", 1, "rounds the up+htpasswd variant takes part in (it is informational; saves time)")
	flag.BoolVar(&o.FSAll, "fs-all", false, "run the MCR(fs) variant in scenarios 2 and 3 too (diagnosis: driver vs the rest of MCR)")
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
	def(&o.BlobRounds, 5, 1)
	def(&o.BlobPulls, 3, 1)
	def(&o.Images, 500, 20)
	if o.ManifestSecs == 0 {
		o.ManifestSecs = map[bool]float64{false: 10, true: 2}[o.Smoke]
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
	Unit   string               `json:"unit"`
	Higher bool                 `json:"higher_is_better"`
	Values map[string][]float64 `json:"values"`
	Median map[string]float64   `json:"median"`
	Ratio  *float64             `json:"ratio_mcr_vs_upstream,omitempty"`
}

type variantInfo struct {
	Name        string `json:"name"`
	Label       string `json:"label"`
	Description string `json:"description"`
}

type results struct {
	Started     time.Time          `json:"started"`
	DurationSec float64            `json:"duration_sec"`
	Options     *options           `json:"options"`
	Machine     map[string]any     `json:"machine"`
	Variants    []variantInfo      `json:"variants"`
	Metrics     []*metric          `json:"metrics"`
	Ratios      map[string]float64 `json:"ratios"`
	MCR         map[string]any     `json:"mcr"`
	Notes       []string           `json:"notes"`
	byKey       map[string]*metric
}

func (r *results) define(key, title, unit string, higher bool) {
	m := &metric{Key: key, Title: title, Unit: unit, Higher: higher, Values: map[string][]float64{}, Median: map[string]float64{}}
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

func (r *results) table(w io.Writer) {
	cols := []string{}
	for _, v := range r.Variants {
		cols = append(cols, v.Name)
	}
	fmt.Fprintf(w, "%-34s", "metric (median of rounds)")
	for _, v := range r.Variants {
		fmt.Fprintf(w, " %14s", v.Label)
	}
	fmt.Fprintf(w, " %9s\n", "MCR/up")
	fmt.Fprintln(w, strings.Repeat("-", 34+15*len(cols)+10))
	for _, m := range r.Metrics {
		if len(m.Median) == 0 {
			continue
		}
		fmt.Fprintf(w, "%-34s", m.Title+" ("+m.Unit+")")
		for _, c := range cols {
			if v, ok := m.Median[c]; ok {
				fmt.Fprintf(w, " %14s", fmtNum(v))
			} else {
				fmt.Fprintf(w, " %14s", "-")
			}
		}
		if m.Ratio != nil {
			fmt.Fprintf(w, " %8.2fx", *m.Ratio)
		} else {
			fmt.Fprintf(w, " %9s", "")
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
	var mcrAddr, mcrFSAddr, upAddr, upHAddr string
	for _, a := range []*string{&mcrAddr, &mcrFSAddr, &upAddr, &upHAddr} {
		if *a, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	webAddr1, _ := freeAddr()
	webAddr2, _ := freeAddr()
	if err := mcrInit(o.MCRSrv, mcrDir, mcrAddr, webAddr1, ""); err != nil {
		return nil, err
	}
	if err := mcrInit(o.MCRSrv, mcrFSDir, mcrFSAddr, webAddr2, mcrDir); err != nil {
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
	startMCRVariant := func(name, dir string, env ...string) (*process, error) {
		p, err := startProcess(name, filepath.Join(dir, "server.log"), baseEnv(env...), o.MCRSrv,
			"server", "--config", filepath.Join(dir, "mcr.toml"))
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
		return p, nil
	}
	mcrP, err := startMCRVariant("mcr", mcrDir)
	if err != nil {
		return nil, err
	}
	mcrFSP, err := startMCRVariant("mcr-filesystem", mcrFSDir, "MCR_STORAGE_DRIVER=filesystem")
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

	probe := newClient()
	is := func(codes ...int) func(int) bool { return func(c int) bool { return slices.Contains(codes, c) } }
	for _, w := range []struct {
		p   *process
		url string
		ok  func(int) bool
	}{
		{mcrP, "https://" + mcrAddr + "/v1/health", is(200)},
		{mcrFSP, "https://" + mcrFSAddr + "/v1/health", is(200)},
		{upP, "https://" + upAddr + "/v2/", is(200)},
		{upHP, "https://" + upHAddr + "/v2/", is(401)},
	} {
		if err := waitReady(ctx, w.p, probe, w.url, w.ok); err != nil {
			return nil, fail(err)
		}
	}
	rules := policyRules(o.Rules)
	var adminTok string
	for _, m := range []struct{ name, url string }{{"mcr", "https://" + mcrAddr}, {"mcr-filesystem", "https://" + mcrFSAddr}} {
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
	mcrFS := &target{Name: "mcr-filesystem", Label: "MCR(fs)", URL: "https://" + mcrFSAddr, Auth: authBearer,
		User: benchUser, Pass: benchPassword, srv: mcrFSP, hc: newClient(),
		Desc: "mcrsrv as above with MCR_STORAGE_DRIVER=filesystem (upstream's driver)"}
	up := &target{Name: "upstream", Label: "upstream", URL: "https://" + upAddr, Auth: authNone, srv: upP, hc: newClient(),
		Desc: "distribution v3.1.2 registry binary, TLS 1.3, no auth, filesystem driver, blobdescriptor cache " + o.UpstreamCache}
	upH := &target{Name: "upstream-htpasswd", Label: "up+htpasswd", URL: "https://" + upHAddr, Auth: authBasic,
		User: benchUser, Pass: benchPassword, srv: upHP, hc: newClient(),
		Desc: fmt.Sprintf("as upstream, with htpasswd Basic auth (bcrypt cost %d, checked on every request)", o.HtpasswdCost)}
	all := []*target{mcr, mcrFS, up, upH}
	main3 := []*target{mcr, up, upH}
	if o.FSAll {
		main3 = []*target{mcr, mcrFS, up, upH}
	} else {
		mcrFS.Desc += "; large blob only"
	}
	for _, t := range all {
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
	res.define("blob_push", "1. push "+mib+" MiB blob", "MB/s", true)
	res.define("blob_pull", "1. pull "+mib+" MiB blob", "MB/s", true)
	res.define("blob_push_cpu", "1. push server CPU per GB", "s", false)
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

	// 1. One large blob.
	size := int64(o.BlobMiB) << 20
	for round := range o.BlobRounds {
		b, err := newBigBlob(round, size)
		if err != nil {
			return nil, err
		}
		for _, t := range order(all, round) {
			syscall.Sync()
			push, pull, cpu, pushSys, err := runBigBlob(ctx, t, b, "bench/big", o.BlobPulls, o.Smoke)
			if err != nil {
				return nil, fail(fmt.Errorf("scenario 1 (%s): %w", t.Name, err))
			}
			gb := float64(size) / 1e9
			logf("1. round %d %-18s push %7.1f MB/s  pull %7.1f MB/s  (server CPU push %.2f s of which sys %.2f s, pull %.2f s)",
				round+1, t.Name, push, pull, cpu[0].Seconds(), pushSys.Seconds(), cpu[1].Seconds())
			res.add("blob_push", t.Name, push)
			res.add("blob_pull", t.Name, pull)
			res.add("blob_push_cpu", t.Name, cpu[0].Seconds()/gb)
			res.add("blob_pull_cpu", t.Name, cpu[1].Seconds()/gb)
			for _, root := range []string{filepath.Join(mcrDir, "layers"), filepath.Join(mcrFSDir, "layers"),
				filepath.Join(upDir, "data"), filepath.Join(upHDir, "data")} {
				removeBlob(root, b.digest)
			}
		}
	}
	if !o.FSAll {
		if kib, err := mcrFSP.memKiB("VmHWM"); err == nil {
			res.add("peak_rss", mcrFS.Name, float64(kib)/1024)
		}
		mcrFSP.stop()
	}

	// 2. Small images.
	for round := range o.Rounds {
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
		kib, err := t.srv.memKiB("VmHWM")
		if err != nil {
			return nil, fail(fmt.Errorf("%s: %w", t.Name, err))
		}
		res.add("peak_rss", t.Name, float64(kib)/1024)
	}

	// 4. Token issue rate, MCR only.
	benchIdentity, err := adminLogin(ctx, probe, mcr.URL, benchUser, benchPassword)
	if err != nil {
		return nil, fail(err)
	}
	td := time.Duration(o.TokenSecs * float64(time.Second))
	for round := range o.Rounds {
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
	for _, k := range []string{"blob_push", "blob_pull", "manifest_get"} {
		if m := res.byKey[k]; m.Ratio != nil {
			res.Ratios[k] = *m.Ratio
		}
	}
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
	fmt.Printf("push_ratio=%s pull_ratio=%s manifest_get_ratio=%s\n", ratio("blob_push"), ratio("blob_pull"), ratio("manifest_get"))
	return nil
}
