package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// cfgProc is an mcrsrv process started by a config test.
type cfgProc struct {
	cmd            *exec.Cmd
	stdout, stderr *mcrtest.SafeBuffer
	done           chan struct{}
	err            error
}

// cleanEnv is the test's environment without anything that would change
// mcrsrv's configuration behind the test's back.
func cfgCleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "MCR_") || k == "PORT" || k == "PORT_GRPC" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

func cfgStartProc(t *testing.T, env []string, args ...string) *cfgProc {
	t.Helper()
	p := &cfgProc{stdout: &mcrtest.SafeBuffer{}, stderr: &mcrtest.SafeBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(mcrtest.Binary(t, "mcrsrv"), args...)
	p.cmd.Env = env
	p.cmd.Stdout = p.stdout
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start mcrsrv %v: %v", args, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func cfgExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// expectStartFailure runs `mcrsrv server --config cfg` and requires it to
// exit non-zero within 20 s with every string of mention on stderr.
func cfgExpectStartFailure(t *testing.T, cfg string, env []string, mention ...string) string {
	t.Helper()
	p := cfgStartProc(t, env, "server", "--config", cfg)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("mcrsrv kept running with a broken configuration\nstderr:\n%s", p.stderr.String())
	}
	stderr := p.stderr.String()
	if code := cfgExitCode(p.err); code == 0 || code == -1 {
		t.Fatalf("mcrsrv exited with %v, want a non-zero exit code\nstderr:\n%s", p.err, stderr)
	}
	for _, m := range mention {
		if !strings.Contains(stderr, m) {
			t.Errorf("stderr does not mention %q:\n%s", m, stderr)
		}
	}
	return stderr
}

// removeKey deletes `key = ...` inside [section] of a TOML file.
func cfgRemoveKey(t *testing.T, path, section, key string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	cur, removed := "", false
	for _, l := range strings.Split(string(data), "\n") {
		tl := strings.TrimSpace(l)
		if strings.HasPrefix(tl, "[") && strings.HasSuffix(tl, "]") {
			cur = strings.Trim(tl, "[]")
		}
		if k, _, ok := strings.Cut(tl, "="); ok && cur == section && strings.TrimSpace(k) == key {
			removed = true
			continue
		}
		out = append(out, l)
	}
	if !removed {
		t.Fatalf("%s has no %s.%s to remove", path, section, key)
	}
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// setKey sets section.key to a raw TOML value in an existing file.
func cfgSetKey(t *testing.T, path, section, key, raw string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	cur, done := "", false
	for _, l := range strings.Split(string(data), "\n") {
		tl := strings.TrimSpace(l)
		if strings.HasPrefix(tl, "[") && strings.HasSuffix(tl, "]") {
			if cur == section && !done {
				out = append(out, key+" = "+raw)
				done = true
			}
			cur = strings.Trim(tl, "[]")
		}
		if k, _, ok := strings.Cut(tl, "="); ok && cur == section && strings.TrimSpace(k) == key {
			out = append(out, key+" = "+raw)
			done = true
			continue
		}
		out = append(out, l)
	}
	if !done {
		out = append(out, "", "["+section+"]", key+" = "+raw)
	}
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// freshConfig initialises a data directory and returns its mcr.toml.
func cfgFreshConfig(t *testing.T) string {
	t.Helper()
	dir := mcrtest.Init(t, mcrtest.FreeAddr(t))
	return filepath.Join(dir, "mcr.toml")
}

func TestConfigMissingRequiredKey(t *testing.T) {
	t.Parallel()
	for _, key := range []string{
		"server.listen_addr",
		"server.tls_cert",
		"server.tls_key",
		"database.path",
		"storage.layers_path",
	} {
		t.Run(key, func(t *testing.T) {
			cfg := cfgFreshConfig(t)
			section, k, _ := strings.Cut(key, ".")
			cfgRemoveKey(t, cfg, section, k)
			cfgExpectStartFailure(t, cfg, cfgCleanEnv(), key)
		})
	}
	t.Run("server.listen_addr empty", func(t *testing.T) {
		cfg := cfgFreshConfig(t)
		cfgSetKey(t, cfg, "server", "listen_addr", `""`)
		cfgExpectStartFailure(t, cfg, cfgCleanEnv(), "server.listen_addr")
	})
	t.Run("several keys at once", func(t *testing.T) {
		cfg := cfgFreshConfig(t)
		cfgRemoveKey(t, cfg, "server", "tls_key")
		cfgRemoveKey(t, cfg, "storage", "layers_path")
		cfgExpectStartFailure(t, cfg, cfgCleanEnv(), "server.tls_key", "storage.layers_path")
	})
}

func TestConfigUnreadableCertificate(t *testing.T) {
	t.Parallel()
	t.Run("nonexistent cert", func(t *testing.T) {
		cfg := cfgFreshConfig(t)
		cfgSetKey(t, cfg, "server", "tls_cert", `"/nonexistent/mcr/cert.pem"`)
		cfgExpectStartFailure(t, cfg, cfgCleanEnv(), "server.tls_cert", "/nonexistent/mcr/cert.pem")
	})
	t.Run("garbage cert", func(t *testing.T) {
		cfg := cfgFreshConfig(t)
		garbage := filepath.Join(t.TempDir(), "garbage.pem")
		if err := os.WriteFile(garbage, []byte("this is not a certificate\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfgSetKey(t, cfg, "server", "tls_cert", `"`+garbage+`"`)
		cfgExpectStartFailure(t, cfg, cfgCleanEnv(), "server.tls_cert")
	})
	t.Run("cert is a directory", func(t *testing.T) {
		cfg := cfgFreshConfig(t)
		cfgSetKey(t, cfg, "server", "tls_cert", `"`+t.TempDir()+`"`)
		cfgExpectStartFailure(t, cfg, cfgCleanEnv(), "server.tls_cert")
	})
	t.Run("garbage key", func(t *testing.T) {
		cfg := cfgFreshConfig(t)
		garbage := filepath.Join(t.TempDir(), "garbage-key.pem")
		if err := os.WriteFile(garbage, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfgSetKey(t, cfg, "server", "tls_key", `"`+garbage+`"`)
		cfgExpectStartFailure(t, cfg, cfgCleanEnv(), "server.tls_key")
	})
}

func TestConfigBadTOML(t *testing.T) {
	t.Parallel()
	t.Run("syntax error", func(t *testing.T) {
		cfg := cfgFreshConfig(t)
		data, _ := os.ReadFile(cfg)
		if err := os.WriteFile(cfg, append(data, []byte("\n[server\nlisten_addr = \n")...), 0o600); err != nil {
			t.Fatal(err)
		}
		cfgExpectStartFailure(t, cfg, cfgCleanEnv(), cfg)
	})
	t.Run("unterminated string", func(t *testing.T) {
		cfg := cfgFreshConfig(t)
		cfgSetKey(t, cfg, "log", "level", `"info`)
		cfgExpectStartFailure(t, cfg, cfgCleanEnv(), cfg)
	})
	t.Run("missing file", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope", "mcr.toml")
		cfgExpectStartFailure(t, missing, cfgCleanEnv(), missing)
	})
	t.Run("invalid duration", func(t *testing.T) {
		cfg := cfgFreshConfig(t)
		cfgSetKey(t, cfg, "server", "shutdown_timeout", `"soon"`)
		cfgExpectStartFailure(t, cfg, cfgCleanEnv(), "shutdown_timeout")
	})
	t.Run("invalid log level", func(t *testing.T) {
		cfg := cfgFreshConfig(t)
		cfgSetKey(t, cfg, "log", "level", `"chatty"`)
		cfgExpectStartFailure(t, cfg, cfgCleanEnv(), "log.level")
	})
	t.Run("invalid identity provider", func(t *testing.T) {
		cfg := cfgFreshConfig(t)
		cfgSetKey(t, cfg, "identity", "provider", `"ldap"`)
		cfgExpectStartFailure(t, cfg, cfgCleanEnv(), "identity.provider")
	})
	t.Run("invalid value through the environment", func(t *testing.T) {
		cfg := cfgFreshConfig(t)
		cfgExpectStartFailure(t, cfg, cfgCleanEnv("MCR_LOG_LEVEL=chatty"), "log.level")
	})
}

// waitHealthy polls https://addr/v1/health, trusting the data directory's
// certificate, until it answers 200 or the process exits.
func cfgWaitHealthy(t *testing.T, p *cfgProc, addr, certFile string) {
	t.Helper()
	pemData, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemData)
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(20 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("mcrsrv exited (%v) instead of listening on %s\n%s", p.err, addr, p.stderr.String())
		default:
		}
		resp, err := c.Get("https://" + addr + "/v1/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Errorf("status %d", resp.StatusCode)
		} else {
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("mcrsrv not healthy on %s: %v\n%s", addr, last, p.stderr.String())
}

// stopProc sends SIGTERM and requires a clean exit.
func cfgStopProc(t *testing.T, p *cfgProc) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("mcrsrv did not exit after SIGTERM")
	}
	if p.err != nil {
		t.Errorf("mcrsrv exited with %v after SIGTERM\n%s", p.err, p.stderr.String())
	}
}

func cfgRefusesConnections(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	_ = c.Close() // only whether it connects matters
	return false
}

func TestConfigListenAddrOverrides(t *testing.T) {
	t.Parallel()
	t.Run("MCR_SERVER_LISTEN_ADDR", func(t *testing.T) {
		fileAddr := mcrtest.FreeAddr(t)
		dir := mcrtest.Init(t, fileAddr)
		cfg := filepath.Join(dir, "mcr.toml")
		cfgSetKey(t, cfg, "server", "listen_addr", `"`+fileAddr+`"`)
		envAddr := mcrtest.FreeAddr(t)
		p := cfgStartProc(t, cfgCleanEnv("MCR_SERVER_LISTEN_ADDR="+envAddr), "server", "--config", cfg)
		cfgWaitHealthy(t, p, envAddr, filepath.Join(dir, "certs", "cert.pem"))
		if !cfgRefusesConnections(fileAddr) {
			t.Errorf("mcrsrv also listens on the file's listen_addr %s", fileAddr)
		}
		cfgStopProc(t, p)
	})
	t.Run("PORT", func(t *testing.T) {
		fileAddr := mcrtest.FreeAddr(t)
		dir := mcrtest.Init(t, fileAddr)
		cfg := filepath.Join(dir, "mcr.toml")
		cfgSetKey(t, cfg, "server", "listen_addr", `"`+fileAddr+`"`)
		_, port, _ := net.SplitHostPort(mcrtest.FreeAddr(t))
		p := cfgStartProc(t, cfgCleanEnv("PORT="+port), "server", "--config", cfg)
		cfgWaitHealthy(t, p, "127.0.0.1:"+port, filepath.Join(dir, "certs", "cert.pem"))
		if !cfgRefusesConnections(fileAddr) {
			t.Errorf("mcrsrv also listens on the file's listen_addr %s", fileAddr)
		}
		cfgStopProc(t, p)
	})
}

// snapshotDir reads every regular file under dir (path → content).
func cfgSnapshotDir(t *testing.T, dir string, skip ...string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		for _, s := range skip {
			if rel == s || strings.HasPrefix(rel, s+"-") {
				return nil
			}
		}
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files[rel] = b
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestInitIdempotent(t *testing.T) {
	t.Parallel()
	bin := mcrtest.Binary(t, "mcrsrv")
	dir := filepath.Join(t.TempDir(), "srv")
	addr := mcrtest.FreeAddr(t)
	run := func(password, listen string) string {
		cmd := exec.Command(bin, "init", "--dir", dir, "--hostname", "localhost", "--listen", listen)
		cmd.Env = cfgCleanEnv("MCR_ADMIN_PASSWORD=" + password)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mcrsrv init: %v\n%s", err, out)
		}
		return string(out)
	}
	run(mcrtest.AdminPassword, addr)
	// mcr.db is compared through its users, not its bytes (SQLite may
	// checkpoint its WAL on open).
	before := cfgSnapshotDir(t, dir, "mcr.db")
	out := run("another-password-2", "127.0.0.1:1")
	after := cfgSnapshotDir(t, dir, "mcr.db")

	for _, want := range []string{"mcr.toml", "certs/cert.pem", "certs/key.pem"} {
		if _, ok := before[want]; !ok {
			t.Errorf("init did not create %s", want)
		}
	}
	keys := 0
	for p := range before {
		if strings.HasPrefix(p, "keys/") {
			keys++
		}
	}
	if keys != 1 {
		t.Errorf("init created %d signing keys, want 1", keys)
	}
	for p, b := range before {
		a, ok := after[p]
		if !ok {
			t.Errorf("second init removed %s", p)
			continue
		}
		if !bytes.Equal(a, b) {
			t.Errorf("second init changed %s", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("second init created %s", p)
		}
	}
	if strings.Contains(out, "another-password-2") {
		t.Errorf("init printed the password from the environment:\n%s", out)
	}

	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %o, want 700", st.Mode().Perm())
	}
	st, err = os.Stat(filepath.Join(dir, "mcr.db"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mcr.db mode %o, want 600", st.Mode().Perm())
	}
	for _, secret := range []string{"certs/key.pem", "mcr.toml"} {
		if st, err := os.Stat(filepath.Join(dir, secret)); err == nil && st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s mode %o is readable by others", secret, st.Mode().Perm())
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "keys", "*.pem")); len(m) == 1 {
		if st, err := os.Stat(m[0]); err == nil && st.Mode().Perm()&0o077 != 0 {
			t.Errorf("signing key mode %o is readable by others", st.Mode().Perm())
		}
	}

	// The admin account kept its first password: the second init's
	// MCR_ADMIN_PASSWORD did nothing.
	srv := mcrtest.Start(t, mcrtest.WithDir(dir))
	srv.Token(t, "admin", mcrtest.AdminPassword)
	resp := tokenGET(t, srv, "admin", "another-password-2", "", nil)
	expectOCIError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED")
	// The database's WAL companions are as private as the database.
	dbFiles, _ := filepath.Glob(filepath.Join(dir, "mcr.db*"))
	for _, f := range dbFiles {
		if st, err := os.Stat(f); err == nil && st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s mode %o is readable by others", filepath.Base(f), st.Mode().Perm())
		}
	}
	users, err := srv.Run(t, "", "user", "list", "--config", srv.ConfigPath)
	if err != nil {
		t.Fatalf("user list: %v\n%s", err, users)
	}
	if strings.Count(users, "admin") < 1 {
		t.Errorf("user list after two inits:\n%s", users)
	}
}
