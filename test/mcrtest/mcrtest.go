// Package mcrtest starts real mcrsrv processes for end-to-end tests and
// benchmarks: it builds the binaries once, initialises a data directory,
// starts the server on a free loopback port over TLS and gives clients
// that trust its self-signed certificate. Test code only.
//
//	func TestMain(m *testing.M) { os.Exit(mcrtest.Main(m)) }
//
//	func TestPush(t *testing.T) {
//		srv := mcrtest.Start(t)
//		srv.AddUser(t, "alice", "alice-password", "user", "human")
//		tok := srv.Token(t, "alice", "alice-password", "repository:a/b:pull,push")
//		...
//	}
package mcrtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"git.wntrmute.dev/kyle/mcr/grpcclient"
	"git.wntrmute.dev/kyle/mcr/internal/pgtest"
)

// AdminPassword is the password of the `admin` account every server starts with.
const AdminPassword = "admin-password-1"

var (
	binDir   string
	buildErr error
	once     sync.Once
)

// ModuleRoot is the directory holding go.mod.
func ModuleRoot() string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		panic(fmt.Sprintf("go env GOMOD: %v", err))
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// Main builds the binaries, runs the tests and cleans up.
func Main(m *testing.M) int {
	code := m.Run()
	pgtest.Stop()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	return code
}

// Binary returns the path of a freshly built command from cmd/ (built once
// per test process).
func Binary(t testing.TB, name string) string {
	t.Helper()
	once.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "mcrtest-bin-")
		if buildErr != nil {
			return
		}
		root := ModuleRoot()
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./cmd/...")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/...: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	p := filepath.Join(binDir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("binary %s not built: %v", name, err)
	}
	return p
}

// FreeAddr returns a loopback address with a port nobody listens on.
//
// The port comes from below the kernel's ephemeral range (32768-60999 by
// default), picked at random and checked by binding it: a port the kernel
// handed out for ":0" and that was closed again can be handed out again at
// once — to another test's listener or to any outgoing connection — before
// the server started here binds it ("address already in use"). Ports below
// the range are never chosen by the kernel, and each process remembers what
// it gave out.
func FreeAddr(t testing.TB) string {
	t.Helper()
	freeMu.Lock()
	defer freeMu.Unlock()
	for range 200 {
		port := 20000 + rand.IntN(12000)
		if freeGiven[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		_ = l.Close()
		freeGiven[port] = true
		return fmt.Sprintf("127.0.0.1:%d", port)
	}
	t.Fatal("mcrtest: no free loopback port in 20000-31999")
	return ""
}

var (
	freeMu    sync.Mutex
	freeGiven = map[int]bool{}
)

// SafeBuffer is a goroutine-safe bytes.Buffer for process output.
type SafeBuffer struct {
	b  bytes.Buffer
	mu sync.Mutex
}

func (s *SafeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SafeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Server is a running mcrsrv.
type Server struct {
	Dir        string // data directory
	ConfigPath string
	Addr       string // 127.0.0.1:port
	GRPCAddr   string // 127.0.0.1:port of the gRPC admin API
	URL        string // https://127.0.0.1:port
	CACert     string // PEM file of the self-signed certificate
	Output     *SafeBuffer
	// MetricsAddr is the loopback metrics listener (server.metrics_addr)
	// where the harness set one: every cluster replica has its own.
	MetricsAddr string

	cmd  *exec.Cmd
	done chan struct{}
	exit error
	bin  string

	Env []string

	stopMu sync.Mutex
}

// Option adjusts a server before it starts.
type Option func(*options)

type options struct {
	config   []string // extra TOML lines appended per section: "section.key = value"
	dir      string
	hostname string
	env      []string
}

// WithConfig sets "section.key" to a raw TOML value (quote strings yourself).
func WithConfig(key, rawValue string) Option {
	return func(o *options) { o.config = append(o.config, key+"="+rawValue) }
}

// WithEnv adds environment variables (KEY=VALUE) to the server process.
func WithEnv(kv ...string) Option { return func(o *options) { o.env = append(o.env, kv...) } }

// WithHostname sets server.hostname to host:<the server's port>: the name
// clients reach the registry under, named in its token realm.
func WithHostname(host string) Option { return func(o *options) { o.hostname = host } }

// WithDir reuses an existing data directory (e.g. to restart a server).
func WithDir(dir string) Option { return func(o *options) { o.dir = dir } }

// Init creates a data directory with `mcrsrv init` and returns it.
// Extra environment (e.g. MCR_DATABASE_DRIVER/MCR_DATABASE_DSN) applies
// to init as it will to the server.
func Init(t testing.TB, addr string, env ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "srv")
	InitIn(t, dir, addr, env...)
	return dir
}

// InitIn is Init into a given directory (one on a small filesystem, say);
// pass it to Start with WithDir.
func InitIn(t testing.TB, dir, addr string, env ...string) {
	t.Helper()
	// Port 0 for gRPC: a server started from this directory never
	// collides with another on :9443 (Start picks a known free port).
	// --hostname 127.0.0.1: the address tests reach the server at, so the
	// token realm init writes into server.hostname matches it.
	cmd := exec.Command(Binary(t, "mcrsrv"), "init", "--dir", dir, "--hostname", "127.0.0.1", "--listen", addr, "--grpc-listen", "127.0.0.1:0")
	cmd.Env = append(append(os.Environ(), "MCR_ADMIN_PASSWORD="+AdminPassword), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mcrsrv init: %v\n%s", err, out)
	}
}

// Start initialises a data directory and starts mcrsrv on it, stopping it
// (SIGTERM) when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	addr, grpcAddr := FreeAddr(t), FreeAddr(t)
	dir := o.dir
	if dir == "" {
		dir = Init(t, addr, o.env...)
	}
	s := &Server{
		Dir: dir, ConfigPath: filepath.Join(dir, "mcr.toml"), Addr: addr, GRPCAddr: grpcAddr,
		URL: "https://" + addr, CACert: filepath.Join(dir, "certs", "cert.pem"),
		Output: &SafeBuffer{}, bin: Binary(t, "mcrsrv"),
	}
	// database.reserve off unless a test asks for it: 16 MiB written per
	// server start adds up over the suite (TestDiskFullDatabaseReserve
	// turns it on).
	base := []string{`server.listen_addr="` + addr + `"`, `server.grpc_addr="` + grpcAddr + `"`, `web.grpc_addr="` + grpcAddr + `"`, `database.reserve="0"`}
	_, port, _ := net.SplitHostPort(addr)
	switch {
	case o.hostname != "":
		base = append(base, `server.hostname="`+o.hostname+`:`+port+`"`)
	case o.dir != "": // a reused directory: `init` wrote another port into server.hostname
		base = append(base, `server.hostname="127.0.0.1:`+port+`"`)
	}
	if err := setConfig(s.ConfigPath, append(base, o.config...)); err != nil {
		t.Fatal(err)
	}
	s.Env = append(os.Environ(), o.env...)
	s.start(t)
	t.Cleanup(func() {
		if err := s.Stop(t); err != nil {
			t.Logf("mcrsrv exit: %v", err)
		}
	})
	return s
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	s.cmd = exec.Command(s.bin, "server", "--config", s.ConfigPath)
	s.cmd.Env = s.Env
	s.cmd.Stdout = s.Output
	s.cmd.Stderr = s.Output
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start mcrsrv: %v", err)
	}
	s.done = make(chan struct{})
	go func() { s.exit = s.cmd.Wait(); close(s.done) }()
	if err := s.waitHealthy(20 * time.Second); err != nil {
		_ = s.cmd.Process.Kill()
		<-s.done
		t.Fatalf("mcrsrv did not become healthy: %v\n--- output ---\n%s", err, s.Output.String())
	}
}

// Restart stops (SIGTERM) and starts the server again on the same address.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.Stop(t); err != nil {
		t.Logf("mcrsrv exited before the restart: %v", err)
	}
	s.start(t)
}

func (s *Server) waitHealthy(d time.Duration) error {
	c := s.Client()
	c.Timeout = time.Second
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("exited: %w", s.exit)
		default:
		}
		resp, err := c.Get(s.URL + "/v1/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			last = fmt.Errorf("status %d", resp.StatusCode)
		} else {
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return last
}

// Stop sends SIGTERM and waits for exit (idempotent). It returns the
// process's exit error.
func (s *Server) Stop(t testing.TB) error {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	select {
	case <-s.done:
		return s.exit
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(90 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		t.Errorf("mcrsrv did not exit within 90s of SIGTERM")
	}
	return s.exit
}

// PID is the server process's id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Signal sends sig to the server process.
func (s *Server) Signal(sig os.Signal) error { return s.cmd.Process.Signal(sig) }

// Kill sends SIGKILL and waits.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Done is closed when the process exits.
func (s *Server) Done() <-chan struct{} { return s.done }

// ExitErr is the process's exit error once Done is closed.
func (s *Server) ExitErr() error { return s.exit }

// CertPool returns a pool trusting the server's self-signed certificate.
func (s *Server) CertPool() *x509.CertPool {
	pem, err := os.ReadFile(s.CACert)
	if err != nil {
		panic(err)
	}
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(pem)
	return p
}

// GRPCClient dials the server's gRPC API (trusting its certificate); the
// connection closes when the test ends.
func (s *Server) GRPCClient(t testing.TB) *grpcclient.Client {
	t.Helper()
	c, err := grpcclient.Dial(s.GRPCAddr, &tls.Config{RootCAs: s.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("closing the gRPC connection: %v", err)
		}
	})
	return c
}

// Transport trusts the server's certificate.
func (s *Server) Transport() *http.Transport {
	def, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		panic("mcrtest: http.DefaultTransport is not an *http.Transport")
	}
	tr := def.Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: s.CertPool(), MinVersion: tls.VersionTLS12}
	return tr
}

// Client is an HTTP client trusting the server's certificate.
func (s *Server) Client() *http.Client {
	return &http.Client{Transport: s.Transport(), Timeout: 60 * time.Second}
}

// Run runs an mcrsrv subcommand against this server's config and returns
// its combined output.
func (s *Server) Run(t testing.TB, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(s.bin, args...)
	cmd.Env = s.Env
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// AddUser creates a local account.
func (s *Server) AddUser(t testing.TB, username, password, role, accountType string) {
	t.Helper()
	out, err := s.Run(t, password+"\n", "user", "add", "--config", s.ConfigPath, "--username", username,
		"--role", role, "--account-type", accountType, "--password-stdin")
	if err != nil {
		t.Fatalf("user add %s: %v\n%s", username, err, out)
	}
}

// Token fetches a registry token with Basic credentials for the scopes.
func (s *Server) Token(t testing.TB, username, password string, scopes ...string) string {
	t.Helper()
	q := url.Values{"service": {"mcr"}}
	for _, sc := range scopes {
		q.Add("scope", sc)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/v2/token?"+q.Encode(), nil)
	req.SetBasicAuth(username, password)
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("token for %s: status %d", username, resp.StatusCode)
	}
	var body struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Token
}

// Login calls /v1/auth/login and returns the identity (session) token.
func (s *Server) Login(t testing.TB, username, password string) string {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"username": username, "password": password})
	resp, err := s.Client().Post(s.URL+"/v1/auth/login", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("login %s: status %d", username, resp.StatusCode)
	}
	var body struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Token
}

// Do sends a request with an optional bearer token.
func (s *Server) Do(t testing.TB, method, path, token string, body []byte, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, s.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// setConfig rewrites "section.key=value" entries in a TOML file: replaces
// the key inside its section, or appends it to the section (creating it).
func setConfig(path string, kvs []string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := strings.Split(string(data), "\n")
	for _, kv := range kvs {
		eq := strings.IndexByte(kv, '=')
		full, val := kv[:eq], kv[eq+1:]
		dot := strings.IndexByte(full, '.')
		section, key := full[:dot], full[dot+1:]
		lines = setKey(lines, section, key, val)
	}
	return os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600)
}

func setKey(lines []string, section, key, val string) []string {
	cur := ""
	secEnd := -1
	for i, l := range lines {
		tl := strings.TrimSpace(l)
		if strings.HasPrefix(tl, "[") && strings.HasSuffix(tl, "]") {
			cur = strings.Trim(tl, "[]")
			if cur == section {
				secEnd = i + 1
			}
			continue
		}
		if cur != section {
			continue
		}
		secEnd = i + 1
		if k, _, ok := strings.Cut(tl, "="); ok && strings.TrimSpace(k) == key {
			lines[i] = key + " = " + val
			return lines
		}
	}
	if secEnd < 0 {
		return append(lines, "", "["+section+"]", key+" = "+val)
	}
	out := append([]string{}, lines[:secEnd]...)
	out = append(out, key+" = "+val)
	return append(out, lines[secEnd:]...)
}

// SetConfig edits the server's mcr.toml (takes effect on Restart).
func (s *Server) SetConfig(t testing.TB, key, rawValue string) {
	t.Helper()
	if err := setConfig(s.ConfigPath, []string{key + "=" + rawValue}); err != nil {
		t.Fatal(err)
	}
}
