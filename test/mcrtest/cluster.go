package mcrtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Cluster is MCR scaled out on loopback: replicas sharing one PostgreSQL
// database, one versitygw bucket, a token-signing key directory and the
// upload-state secret, behind HAProxy (round-robin per request, no
// affinity, TLS re-terminated).
type Cluster struct {
	Replicas []*Server
	// LB is the balancer, usable like a server (Addr, URL, CACert,
	// Client, Token, Login, Do); it has no process of its own here.
	LB      *Server
	S3      *S3
	DSN     string
	KeysDir string
	Secret  string
	// Env is what every replica (and its init) runs with.
	Env []string

	haproxy *exec.Cmd
	lbDone  chan struct{}
	opts    []Option
}

// StartCluster starts n replicas and HAProxy in front of them, all
// stopped when the test ends. opts apply to every replica.
func StartCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	haproxy := Tool(t, "haproxy", "/usr/sbin")
	c := &Cluster{S3: StartS3(t), KeysDir: t.TempDir(), opts: opts}
	c.DSN, _ = Postgres(t)
	var b [32]byte
	_, _ = rand.Read(b[:])
	c.Secret = hex.EncodeToString(b[:])
	c.Env = []string{"MCR_DATABASE_DRIVER=postgres", "MCR_DATABASE_DSN=" + c.DSN,
		"MCR_IDENTITY_KEYS_DIR=" + c.KeysDir, "MCR_SERVER_HTTP_SECRET=" + c.Secret}
	for range n {
		c.Replicas = append(c.Replicas, c.startReplica(t))
	}
	c.startLB(t, haproxy)
	t.Cleanup(func() {
		if t.Failed() {
			for i, r := range c.Replicas {
				if os.Getenv("MCR_TEST_DUMP") != "" { // goroutine dump into the output
					_ = r.Signal(syscall.SIGQUIT)
					select {
					case <-r.Done():
					case <-time.After(5 * time.Second):
					}
				}
				f, err := os.CreateTemp("", fmt.Sprintf("mcr-replica%d-*.log", i))
				if err == nil {
					_, _ = f.WriteString(r.Output.String())
					_ = f.Close()
				}
				t.Logf("--- replica %d (%s): full output in %s; last lines ---\n%s", i, r.Addr, f.Name(), tail(r.Output.String(), 15))
			}
		}
	})
	return c
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (c *Cluster) startReplica(t testing.TB, extra ...Option) *Server {
	t.Helper()
	// Tests reach replicas both directly and through the balancer, under
	// different ports of 127.0.0.1, so no one server.hostname names them
	// all: the token realm follows the Host each client sent (a deployment
	// sets server.hostname to the balancer's name instead).
	noHostname := WithConfig("server.hostname", `""`)
	// Each replica gets its own metrics listener, so a test can read
	// per-replica state (e.g. the GC gate gauge) of every member.
	metricsAddr := FreeAddr(t)
	metrics := WithConfig("server.metrics_addr", strconv.Quote(metricsAddr))
	all := append(append(append([]Option{WithEnv(c.Env...), noHostname, metrics}, c.S3.Options()...), c.opts...), extra...)
	srv := Start(t, all...)
	srv.MetricsAddr = metricsAddr
	return srv
}

// AddReplica starts one more replica of the cluster (not behind the
// balancer) with extra options, e.g. a test hook in its environment.
func (c *Cluster) AddReplica(t testing.TB, extra ...Option) *Server {
	t.Helper()
	return c.startReplica(t, extra...)
}

func (c *Cluster) startLB(t testing.TB, bin string) {
	t.Helper()
	dir := t.TempDir()
	first := c.Replicas[0]
	cert, err := os.ReadFile(first.CACert)
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(first.Dir, "certs", "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pem := filepath.Join(dir, "lb.pem")
	if err := os.WriteFile(pem, append(append(cert, '\n'), key...), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	var servers strings.Builder
	for i, r := range c.Replicas {
		// Health checks every 300 ms take a killed replica out of the
		// rotation; idempotent requests that hit it are retried on
		// another (the client retries the rest).
		fmt.Fprintf(&servers, "  server r%d %s ssl verify none check inter 300ms fall 2 rise 2\n", i, r.Addr)
	}
	cfg := haproxyConfig(t, addr, pem, servers.String())
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	out := &SafeBuffer{}
	c.haproxy = exec.Command(bin, "-db", "-f", cfgPath)
	c.haproxy.Stdout, c.haproxy.Stderr = out, out
	if err := c.haproxy.Start(); err != nil {
		t.Fatalf("start haproxy: %v", err)
	}
	c.lbDone = make(chan struct{})
	go func() { _ = c.haproxy.Wait(); close(c.lbDone) }()
	t.Cleanup(func() {
		_ = c.haproxy.Process.Kill()
		<-c.lbDone
	})
	c.LB = &Server{Dir: first.Dir, ConfigPath: first.ConfigPath, Addr: addr, URL: "https://" + addr,
		CACert: first.CACert, Output: out, bin: first.bin, Env: first.Env}
	if err := c.LB.waitHealthy(20 * time.Second); err != nil {
		t.Fatalf("haproxy not serving: %v\n%s", err, out.String())
	}
}

// haproxyConfig is the shipped deploy/cluster/haproxy.cfg with the
// frontend bound to addr with the certificate pem and its compose
// replicas replaced by servers: the tests run the configuration operators
// get, not a copy of it.
func haproxyConfig(t testing.TB, addr, pem, servers string) []byte {
	t.Helper()
	shipped, err := os.ReadFile(filepath.Join(ModuleRoot(), "deploy", "cluster", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for line := range strings.Lines(string(shipped)) {
		switch {
		case strings.HasPrefix(line, "  bind "):
			fmt.Fprintf(&b, "  bind %s ssl crt %s\n", addr, pem)
		case strings.HasPrefix(line, "  server "), strings.HasPrefix(line, "  default-server "):
		default:
			b.WriteString(line)
		}
	}
	b.WriteString(servers)
	return []byte(b.String())
}
