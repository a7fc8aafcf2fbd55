package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
)

const (
	adminPassword = "bench-admin-password"
	benchUser     = "bench"
	benchPassword = "bench-user-password"
)

// process is a server started by the bench.
type process struct {
	name    string
	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{}
	exit    error
	logPath string
}

func startProcess(name, logPath string, env []string, bin string, args ...string) (*process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = f
	cmd.Stderr = f
	if err := cmd.Start(); err != nil {
		_ = f.Close() // the start error is the one to report
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, logFile: f, done: make(chan struct{})}
	go func() { p.exit = cmd.Wait(); _ = f.Close(); close(p.done) }()
	return p, nil
}

// stop sends SIGTERM, waits up to 15 s, then kills. Idempotent.
func (p *process) stop() {
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// logTail returns the last lines of the server's log, for error messages.
func (p *process) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 25 {
		lines = lines[len(lines)-25:]
	}
	return strings.Join(lines, "\n")
}

// memKiB reads a field (VmHWM, VmRSS) of /proc/<pid>/status in KiB.
func (p *process) memKiB(field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }() // read-only
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("%s not in /proc/%d/status", field, p.cmd.Process.Pid)
}

// cpuTime is the CPU time (user+system, all threads) the process has used,
// from /proc/<pid>/stat (clock ticks of 10 ms, USER_HZ=100 on Linux).
func (p *process) cpuTime() time.Duration {
	u, s := p.cpuSplit()
	return u + s
}

// cpuSplit is the user and system CPU time the process has used.
func (p *process) cpuSplit() (user, sys time.Duration) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	// Fields after the command name, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut) * 10 * time.Millisecond, time.Duration(st) * 10 * time.Millisecond
}

// waitReady polls url until check accepts the status code.
func waitReady(ctx context.Context, p *process, hc *http.Client, url string, ok func(int) bool) error {
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %w\n--- log ---\n%s", p.name, p.exit, p.logTail())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err == nil {
			drain(resp)
			if ok(resp.StatusCode) {
				return nil
			}
			last = fmt.Errorf("status %d", resp.StatusCode)
		} else {
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready at %s: %w\n--- log ---\n%s", p.name, url, last, p.logTail())
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = l.Close() }() // only its address was wanted
	return l.Addr().String(), nil
}

func certPool(certPath string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(certPath)
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", certPath)
	}
	return p, nil
}

func baseEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		// Settings of the bench, not of an operator's shell.
		if strings.HasPrefix(kv, "MCR_") || strings.HasPrefix(kv, "REGISTRY_") || strings.HasPrefix(kv, "OTEL_") ||
			strings.HasPrefix(kv, "PORT=") || strings.HasPrefix(kv, "PORT_GRPC=") {
			continue
		}
		env = append(env, kv)
	}
	// Upstream's registry always installs an OpenTelemetry tracer; with no
	// collector here, "none" keeps it from trying to export (its best case).
	env = append(env, "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none")
	return append(env, extra...)
}

// mcrInit runs `mcrsrv init` and adds the bench account. certFrom, if set,
// is a data dir whose certificate is reused (init keeps existing certs).
func mcrInit(mcrsrv, dir, addr, webAddr, certFrom string) error {
	if certFrom != "" {
		if err := os.MkdirAll(filepath.Join(dir, "certs"), 0o700); err != nil {
			return err
		}
		for _, f := range []string{"cert.pem", "key.pem"} {
			b, err := os.ReadFile(filepath.Join(certFrom, "certs", f))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, "certs", f), b, 0o600); err != nil {
				return err
			}
		}
	}
	cmd := exec.Command(mcrsrv, "init", "--dir", dir, "--hostname", "localhost", "--listen", addr, "--grpc-listen", "", "--web-listen", webAddr)
	cmd.Env = baseEnv("MCR_ADMIN_PASSWORD=" + adminPassword)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mcrsrv init: %w\n%s", err, out)
	}
	cmd = exec.Command(mcrsrv, "user", "add", "--config", filepath.Join(dir, "mcr.toml"), "--username", benchUser,
		"--role", "user", "--account-type", "human", "--password-stdin")
	cmd.Env = baseEnv()
	cmd.Stdin = strings.NewReader(benchPassword + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mcrsrv user add: %w\n%s", err, out)
	}
	return nil
}

// configuredDriver reads storage.driver from mcr.toml ("" if not set).
func configuredDriver(cfgPath string) string {
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		return ""
	}
	section := ""
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "[") {
			section = strings.Trim(l, "[] ")
			continue
		}
		if section != "storage" {
			continue
		}
		if k, v, ok := strings.Cut(l, "="); ok && strings.TrimSpace(k) == "driver" {
			v, _, _ = strings.Cut(v, "#")
			return strings.Trim(strings.TrimSpace(v), `"'`)
		}
	}
	return ""
}

// adminLogin returns an identity (session) token from POST /v1/auth/login.
func adminLogin(ctx context.Context, hc *http.Client, baseURL, user, pass string) (string, error) {
	b, _ := json.Marshal(map[string]string{"username": user, "password": pass})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/v1/auth/login", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("login %s: status %d: %s", user, resp.StatusCode, snippet(resp))
	}
	var body struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", err
	}
	return body.Token, nil
}

// policyRules returns n realistic rules none of which matches the bench
// user (role user, account type human, repositories bench/...): they deny
// guests, grant system (CI) accounts, pin single subjects and protect other
// teams' production repositories. Evaluation has to walk all of them.
func policyRules(n int) []map[string]any {
	teams := []string{"payments", "search", "identity", "infra", "data", "mobile", "web", "ml", "billing", "edge"}
	var rules []map[string]any
	for i := 0; len(rules) < n; i++ {
		team := teams[i%len(teams)]
		prio := 10 + len(rules)
		var r map[string]any
		switch i % 5 {
		case 0:
			r = map[string]any{
				"description": fmt.Sprintf("CI for %s may push its images", team), "effect": "allow",
				"account_types": []string{"system"}, "actions": []string{"registry:pull", "registry:push"},
				"repositories": []string{fmt.Sprintf("%s/*", team), fmt.Sprintf("ci/%s/*", team)},
			}
		case 1:
			r = map[string]any{
				"description": fmt.Sprintf("guests never write to %s", team), "effect": "deny",
				"roles": []string{"guest"}, "actions": []string{"registry:push", "registry:delete"},
				"repositories": []string{fmt.Sprintf("%s/*", team)},
			}
		case 2:
			r = map[string]any{
				"description": fmt.Sprintf("production images of %s are immutable (no delete)", team), "effect": "deny",
				"actions":      []string{"registry:delete"},
				"repositories": []string{fmt.Sprintf("prod/%s/*", team), fmt.Sprintf("prod/%s/*/*", team)},
			}
		case 3:
			r = map[string]any{
				"description": fmt.Sprintf("deploy bot %d may pull %s releases", i, team), "effect": "allow",
				"subject_uuid": fmt.Sprintf("00000000-0000-4000-8000-%012d", i), "account_types": []string{"system"},
				"actions": []string{"registry:pull"}, "repositories": []string{fmt.Sprintf("releases/%s/*", team)},
			}
		case 4:
			r = map[string]any{
				"description": fmt.Sprintf("guests may pull public %s images", team), "effect": "allow",
				"roles": []string{"guest"}, "actions": []string{"registry:pull"},
				"repositories": []string{fmt.Sprintf("public/%s/*", team), fmt.Sprintf("public/%s-[0-9]*", team)},
			}
		}
		r["priority"] = prio
		rules = append(rules, r)
	}
	return rules
}

// createRules POSTs the rules to /v1/policy/rules and returns the total the
// API then reports.
func createRules(ctx context.Context, hc *http.Client, baseURL, adminToken string, rules []map[string]any) (int, error) {
	for _, r := range rules {
		b, _ := json.Marshal(r)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/v1/policy/rules", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusCreated {
			msg := snippet(resp)
			drain(resp)
			return 0, fmt.Errorf("POST /v1/policy/rules: status %d: %s (rule %s)", resp.StatusCode, msg, b)
		}
		drain(resp)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/v1/policy/rules?n=1", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer drain(resp)
	var body struct {
		Total int `json:"total"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, fmt.Errorf("GET /v1/policy/rules: %w", err)
	}
	return body.Total, nil
}

// auditStatus reports what the audit API holds after the run, if it
// exists: the newest event id (ids count events) and the types of the last
// 1000 events.
func auditStatus(ctx context.Context, hc *http.Client, baseURL, adminToken string) map[string]any {
	out := map[string]any{}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/v1/audit?n=1000", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := hc.Do(req)
	if err != nil {
		out["error"] = err.Error()
		return out
	}
	defer drain(resp)
	out["status"] = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		return out
	}
	var body struct {
		Events []struct {
			Type string `json:"event_type"`
			ID   int64  `json:"id"`
		} `json:"events"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&body); err != nil {
		out["error"] = err.Error()
		return out
	}
	types := map[string]int{}
	for _, e := range body.Events {
		types[e.Type]++
	}
	if len(body.Events) > 0 {
		out["newest_event_id"] = body.Events[0].ID
	}
	out["last_1000_by_type"] = types
	return out
}

// upstreamConfig writes config.yml for distribution's registry binary:
// filesystem storage with the in-memory blob descriptor cache (as in
// upstream's example config), delete enabled, TLS 1.3 with the MCR
// certificate, access log off, and htpasswd auth when htpasswd != "".
// logLevel "warn" matches what mcrsrv logs per request (nothing: it keeps
// distribution's per-request lines at debug).
func upstreamConfig(dir, addr, cert, key, htpasswd, cache, logLevel string) (string, error) {
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	var b strings.Builder
	fmt.Fprintf(&b, `version: 0.1
log:
  level: %s
  formatter: text
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  redirect:
    disable: true
`, logLevel, filepath.Join(dir, "data"))
	if cache != "" && cache != "none" {
		fmt.Fprintf(&b, "  cache:\n    blobdescriptor: %s\n", cache)
	}
	fmt.Fprintf(&b, `http:
  addr: %s
  secret: %s
  tls:
    certificate: %s
    key: %s
    minimumtls: tls1.3
  headers:
    X-Content-Type-Options: [nosniff]
`, addr, hex.EncodeToString(secret), cert, key)
	if htpasswd != "" {
		fmt.Fprintf(&b, "auth:\n  htpasswd:\n    realm: mcrbench\n    path: %s\n", htpasswd)
	}
	p := filepath.Join(dir, "config.yml")
	return p, os.WriteFile(p, []byte(b.String()), 0o600)
}

// writeHtpasswd writes a bcrypt htpasswd file. Cost 5 is what
// `htpasswd -B` (the recipe in distribution's docs) uses by default.
func writeHtpasswd(path, user, pass string, cost int) error {
	h, err := bcrypt.GenerateFromPassword([]byte(pass), cost)
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(user+":"+string(h)+"\n"), 0o600)
}
