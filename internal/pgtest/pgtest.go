// Package pgtest runs a throwaway PostgreSQL cluster for tests: initdb and
// pg_ctl from Debian's postgresql package, started once per test process
// on a free loopback port under a temporary directory (as the postgres
// user when the tests run as root, since PostgreSQL refuses to run as
// root), with a fresh database for each test that asks. Nothing is
// downloaded. Test code only.
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	func TestX(t *testing.T) {
//		dsn := pgtest.DSN(t) // postgres://mcr:…@127.0.0.1:port/t_1?sslmode=disable
//	}
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Superuser and password of the test cluster.
const (
	User     = "mcr"
	Password = "mcr-test-password"
)

var (
	once    sync.Once
	cl      *cluster
	startEr error
	dbSeq   atomic.Int64
)

type cluster struct {
	cred *syscall.Credential // non-nil: run programs as the postgres user (tests run as root)
	proc *exec.Cmd           // the postmaster
	done chan struct{}
	log  *os.File
	bin  string // directory of initdb, postgres
	dir  string // temporary root: data/, log, socket
	port int
}

// Main runs the tests and stops the cluster if one was started.
func Main(m *testing.M) int {
	code := m.Run()
	Stop()
	return code
}

// Stop shuts the cluster down (immediate mode) and removes its files. A
// test process that dies without calling it takes the cluster with it:
// the postmaster runs with a parent-death signal.
func Stop() {
	if cl == nil {
		return
	}
	_ = cl.proc.Process.Signal(syscall.SIGQUIT)
	select {
	case <-cl.done:
	case <-time.After(30 * time.Second):
		_ = cl.proc.Process.Kill()
		<-cl.done
	}
	_ = cl.log.Close()
	_ = os.RemoveAll(cl.dir)
	cl = nil
}

// BinDir finds Debian's PostgreSQL binaries (the newest version
// installed), or "".
func BinDir() string {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(m, func(i, j int) bool { return version(m[i]) > version(m[j]) })
	if len(m) == 0 {
		return ""
	}
	return filepath.Dir(m[0])
}

func version(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

// Available reports whether PostgreSQL is installed.
func Available() bool { return BinDir() != "" }

// Require skips (or, in CI, fails) a test when PostgreSQL is not
// installed.
func Require(t testing.TB) {
	t.Helper()
	if Available() {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("PostgreSQL (initdb, pg_ctl) not found: CI must install the postgresql package (see .ci/run)")
	}
	t.Skip("PostgreSQL not installed (apt-get install postgresql)")
}

// DSN creates a fresh database for the test and returns its connection
// string. The database is left for the cluster's removal at exit.
func DSN(t testing.TB) string {
	t.Helper()
	Require(t)
	once.Do(func() { cl, startEr = start() })
	if startEr != nil {
		t.Fatalf("start PostgreSQL: %v", startEr)
	}
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, cl.dsn("postgres"))
	if err != nil {
		t.Fatalf("connect to the test cluster: %v", err)
	}
	defer func() { _ = conn.Close(ctx) }() // the database was created; closing is best effort
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	return cl.dsn(name)
}

// Port is the cluster's port (0 before the first DSN).
func Port() int {
	if cl == nil {
		return 0
	}
	return cl.port
}

func (c *cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *cluster) dsn(db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(User, Password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

func (c *cluster) command(prog string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, prog), args...)
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGKILL}
	return cmd
}

func start() (*cluster, error) {
	c := &cluster{bin: BinDir(), done: make(chan struct{})}
	dir, err := os.MkdirTemp("", "mcr-pgtest-")
	if err != nil {
		return nil, err
	}
	c.dir = dir
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user (created by the postgresql package): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
	}
	pw := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pw, []byte(Password+"\n"), 0o644); err != nil {
		return nil, err
	}
	initdb := c.command("initdb", "-D", c.data(), "-U", User, "--pwfile", pw, "--auth", "scram-sha-256",
		"-E", "UTF8", "--locale", "C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if c.log, err = os.Create(filepath.Join(dir, "log")); err != nil {
		return nil, err
	}
	// PostgreSQL cannot be given port 0: probe for a free one.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return nil, fmt.Errorf("listener address %v is not TCP", l.Addr())
	}
	c.port = addr.Port
	_ = l.Close()
	c.proc = c.command("postgres", "-D", c.data(), "-c", "listen_addresses=127.0.0.1", "-p", strconv.Itoa(c.port),
		"-c", "unix_socket_directories="+dir, "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=300")
	c.proc.Stdout, c.proc.Stderr = c.log, c.log
	if err := c.proc.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	go func() { _ = c.proc.Wait(); close(c.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, c.dsn("postgres"))
		cancel()
		if err == nil {
			_ = conn.Close(context.Background())
			return c, nil
		}
		select {
		case <-c.done:
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			return nil, fmt.Errorf("postgres exited: %v\n%s", c.proc.ProcessState, log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			return nil, errors.Join(err, fmt.Errorf("server log:\n%s", log))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
