package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// ctlResult is one mcrctl invocation.
type ctlResult struct {
	stdout, stderr string
	code           int
}

// ctlRun runs mcrctl with args, stdin and extra environment; MCR_*
// variables of the test process are not inherited.
func ctlRun(t *testing.T, stdin string, env []string, args ...string) ctlResult {
	t.Helper()
	cmd := exec.Command(mcrtest.Binary(t, "mcrctl"), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MCR_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := ctlResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("mcrctl %v: %v", args, err)
	}
	return res
}

func (r ctlResult) want(t *testing.T, code int, what string, stdoutHas ...string) ctlResult {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, r.code, code, r.stdout, r.stderr)
	}
	for _, s := range stdoutHas {
		if !strings.Contains(r.stdout, s) {
			t.Fatalf("%s: stdout lacks %q:\n%s\nstderr: %s", what, s, r.stdout, r.stderr)
		}
	}
	return r
}

// TestMcrctlRunbook exercises every mcrctl command of the runbook, written
// as the runbook writes them, against a real server; plus the error paths
// (TLS, connection, wrong token, permission, usage).
func TestMcrctlRunbook(t *testing.T) { testMcrctlRunbook(t, false) }

// TestMcrctlRunbookGRPC is the same runbook with --grpc: every command
// over the gRPC API, with the same output and errors.
func TestMcrctlRunbookGRPC(t *testing.T) { testMcrctlRunbook(t, true) }

func testMcrctlRunbook(t *testing.T, overGRPC bool) {
	srv := mcrtest.Start(t)
	addr := []string{"--addr", srv.URL, "--ca-cert", srv.CACert}
	if overGRPC {
		// The REST address is unreachable: nothing may silently use it.
		addr = []string{"--addr", "https://" + mcrtest.FreeAddr(t), "--grpc", srv.GRPCAddr, "--ca-cert", srv.CACert}
	}
	ctl := func(stdin string, env []string, args ...string) ctlResult {
		t.Helper()
		return ctlRun(t, stdin, env, append(args, addr...)...)
	}

	// Health: `mcrctl status --addr https://localhost:8443` prints ok.
	ctl("", nil, "status").want(t, 0, "status", "ok\n")
	var r ctlResult
	if overGRPC {
		if r := ctlRun(t, "", []string{"MCR_GRPC=" + srv.GRPCAddr, "MCR_CA_CERT=" + srv.CACert}, "status"); r.stdout != "ok\n" {
			t.Fatalf("status from $MCR_GRPC: %+v", r)
		}
		r = ctlRun(t, "", nil, "status", "--grpc", srv.GRPCAddr)
		if r.code != 1 || !strings.Contains(r.stderr, "TLS") || !strings.Contains(r.stderr, "--ca-cert") {
			t.Fatalf("untrusted certificate: %+v", r)
		}
		r = ctlRun(t, "", nil, "status", "--grpc", mcrtest.FreeAddr(t), "--ca-cert", srv.CACert)
		if r.code != 1 || !strings.Contains(r.stderr, "connection refused") {
			t.Fatalf("nothing listening: %+v", r)
		}
		ctlRun(t, "", nil, "status", "--grpc", "https://x:1").want(t, 2, "--grpc with a URL")
	} else {
		if r := ctlRun(t, "", nil, "status", "--server", srv.URL, "--ca-cert", srv.CACert); r.stdout != "ok\n" {
			t.Fatalf("status with --server: %+v", r)
		}
		if r := ctlRun(t, "", []string{"MCR_ADDR=" + srv.URL, "MCR_CA_CERT=" + srv.CACert}, "status"); r.stdout != "ok\n" {
			t.Fatalf("status from $MCR_ADDR: %+v", r)
		}
		// Clear connection and TLS errors (exit 1).
		r = ctlRun(t, "", nil, "status", "--addr", srv.URL)
		if r.code != 1 || !strings.Contains(r.stderr, "TLS") || !strings.Contains(r.stderr, "--ca-cert") {
			t.Fatalf("untrusted certificate: %+v", r)
		}
		for _, opt := range []string{"--ca-cert", "$MCR_CA_CERT", "--config"} {
			if !strings.Contains(r.stderr, opt) {
				t.Fatalf("untrusted certificate: the message does not name %s: %s", opt, r.stderr)
			}
		}
		// --config: the server's own certificate, and (without --addr) its
		// listen address; $MCR_CA_CERT wins over --config; --ca-cert wins
		// over $MCR_CA_CERT.
		ctlRun(t, "", nil, "status", "--config", srv.ConfigPath).want(t, 0, "status --config", "ok\n")
		ctlRun(t, "", nil, "status", "--addr", srv.URL, "--config", srv.ConfigPath).want(t, 0, "status --addr --config", "ok\n")
		bogus := filepath.Join(t.TempDir(), "other.pem")
		if err := os.WriteFile(bogus, otherCertPEM(t), 0o600); err != nil {
			t.Fatal(err)
		}
		r = ctlRun(t, "", []string{"MCR_CA_CERT=" + bogus}, "status", "--config", srv.ConfigPath)
		if r.code != 1 || !strings.Contains(r.stderr, "tried --ca-cert/$MCR_CA_CERT") {
			t.Fatalf("$MCR_CA_CERT should win over --config: %+v", r)
		}
		ctlRun(t, "", []string{"MCR_CA_CERT=" + bogus}, "status", "--config", srv.ConfigPath, "--ca-cert", srv.CACert).want(t, 0, "--ca-cert over $MCR_CA_CERT", "ok\n")
		r = ctlRun(t, "", nil, "status", "--addr", "https://"+mcrtest.FreeAddr(t))
		if r.code != 1 || !strings.Contains(r.stderr, "connection refused") {
			t.Fatalf("nothing listening: %+v", r)
		}
	}

	// Login: prompted, --password-stdin, --json, wrong password.
	tok := strings.TrimSpace(ctl("admin\n"+mcrtest.AdminPassword+"\n", nil, "login").want(t, 0, "login (prompted)").stdout)
	if tok == "" || strings.Contains(tok, "\n") {
		t.Fatalf("login printed %q", tok)
	}
	tok = strings.TrimSpace(ctl(mcrtest.AdminPassword+"\n", nil, "login", "--username", "admin", "--password-stdin").want(t, 0, "login").stdout)
	var lj struct {
		Token string   `json:"token"`
		Roles []string `json:"roles"`
	}
	if err := json.Unmarshal([]byte(ctl(mcrtest.AdminPassword+"\n", nil, "login", "--username", "admin", "--password-stdin", "--json").want(t, 0, "login --json").stdout), &lj); err != nil || lj.Token == "" {
		t.Fatalf("login --json: %v %+v", err, lj)
	}
	r = ctl("wrong\n", nil, "login", "--username", "admin", "--password-stdin")
	if r.code != 1 || !strings.Contains(r.stderr, "login failed") {
		t.Fatalf("wrong password: %+v", r)
	}
	env := []string{"MCR_TOKEN=" + tok}

	// Content to list and delete.
	for _, rr := range []string{"ops/keep:v1", "ops/drop:v1"} {
		if err := remote.Write(ref(t, srv, rr), gcImage(t, nil, 1, 2048), remoteOpts(t, srv, adminAuth(), nil)...); err != nil {
			t.Fatal(err)
		}
	}

	// repo list (table and JSON).
	ctl("", env, "repo", "list").want(t, 0, "repo list", "NAME", "ops/keep", "ops/drop")
	var rl struct {
		Repositories []struct {
			Name     string `json:"name"`
			TagCount int    `json:"tag_count"`
		} `json:"repositories"`
	}
	if err := json.Unmarshal([]byte(ctl("", env, "repo", "list", "--json").want(t, 0, "repo list --json").stdout), &rl); err != nil || len(rl.Repositories) != 2 {
		t.Fatalf("repo list --json: %v %+v", err, rl)
	}

	// repo delete asks for confirmation.
	r = ctl("n\n", env, "repo", "delete", "ops/drop")
	if r.code != 1 || !strings.Contains(r.stderr, "not confirmed") {
		t.Fatalf("repo delete answered n: %+v", r)
	}
	ctl("y\n", env, "repo", "delete", "ops/drop").want(t, 0, "repo delete (confirmed)", "deleted ops/drop")
	if out := ctl("", env, "repo", "list").stdout; strings.Contains(out, "ops/drop") {
		t.Fatalf("deleted repository still listed:\n%s", out)
	}
	ctl("", env, "repo", "delete", "ops/nothing", "--yes").want(t, 1, "repo delete of a missing repository")

	// gc, gc status, gc --reconcile (the runbook's spellings), and --wait.
	started := regexp.MustCompile(`gc started \(run (\d+)\)`)
	out := ctl("", env, "gc").want(t, 0, "gc", "gc started").stdout
	if !started.MatchString(out) {
		t.Fatalf("gc: %q", out)
	}
	ctl("", env, "gc", "status").want(t, 0, "gc status", "running:", "last run:")
	ctl("", env, "gc", "--reconcile").want(t, 0, "gc --reconcile", "reconcile started")
	ctl("", env, "gc", "--dry-run", "--wait").want(t, 0, "gc --dry-run --wait", "dry run", "blobs to remove:")
	var st struct {
		Running bool `json:"running"`
		LastRun struct {
			ID     int64 `json:"id"`
			DryRun bool  `json:"dry_run"`
		} `json:"last_run"`
	}
	if err := json.Unmarshal([]byte(ctl("", env, "gc", "status", "--json").want(t, 0, "gc status --json").stdout), &st); err != nil || !st.LastRun.DryRun {
		t.Fatalf("gc status --json: %v %+v", err, st)
	}

	// policy list|create|update|delete.
	ctl("", env, "policy", "list").want(t, 0, "policy list", "PRIORITY", "EFFECT")
	created := regexp.MustCompile(`created rule (\d+)`)
	out = ctl("", env, "policy", "create", "--priority", "10", "--effect", "deny", "--actions", "registry:push",
		"--repositories", "production/*", "--roles", "user", "--description", "no pushes to production").want(t, 0, "policy create").stdout
	m := created.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("policy create: %q", out)
	}
	id := m[1]
	ctl("", env, "policy", "list").want(t, 0, "policy list", "production/*", "no pushes to production")
	ctl("", env, "policy", "update", id, "--enabled=false", "--actions", "registry:push,registry:delete").want(t, 0, "policy update", "updated rule "+id)
	var pl struct {
		Rules []struct {
			Actions      []string `json:"actions"`
			Repositories []string `json:"repositories"`
			ID           int64    `json:"id"`
			Enabled      bool     `json:"enabled"`
		} `json:"rules"`
	}
	if err := json.Unmarshal([]byte(ctl("", env, "policy", "list", "--json").want(t, 0, "policy list --json").stdout), &pl); err != nil || len(pl.Rules) != 1 ||
		pl.Rules[0].Enabled || len(pl.Rules[0].Actions) != 2 || len(pl.Rules[0].Repositories) != 1 {
		t.Fatalf("after update: %v %+v", err, pl)
	}
	fromFile := `{"priority":20,"effect":"allow","actions":["registry:pull"],"account_types":["system"],"description":"ci pulls"}`
	out = ctl(fromFile, env, "policy", "create", "--file", "-").want(t, 0, "policy create --file").stdout
	m2 := created.FindStringSubmatch(out)
	if m2 == nil {
		t.Fatalf("policy create --file: %q", out)
	}
	ctl("", env, "policy", "delete", id).want(t, 0, "policy delete", "deleted rule "+id)
	ctl("", env, "policy", "delete", m2[1]).want(t, 0, "policy delete", "deleted rule "+m2[1])
	ctl("", env, "policy", "delete", id).want(t, 1, "policy delete of a deleted rule")
	ctl("", env, "policy", "create", "--priority", "5").want(t, 2, "policy create without effect/actions")
	ctl("", env, "policy", "create", "--priority", "5", "--effect", "maybe", "--actions", "registry:pull").want(t, 1, "policy create with a bad effect")

	// account unlock|revoke (the sign-in lockout runbook).
	ctl("", env, "account", "unlock", "carl").want(t, 0, "account unlock", "carl had no failed sign-ins")
	ctl("", env, "account", "revoke", "nobody").want(t, 1, "account revoke of an unknown account")

	// snapshot.
	path := strings.TrimSpace(ctl("", env, "snapshot").want(t, 0, "snapshot", "/backups/mcr-").stdout)
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("snapshot %q: %v", path, err)
	}

	// audit tail --n 20 shows what happened, oldest first.
	out = ctl("", env, "audit", "tail", "--n", "20").want(t, 0, "audit tail", "EVENT", "gc_started", "gc_completed", "policy_rule_created", "snapshot_created", "repo_deleted").stdout
	if strings.Index(out, "policy_rule_created") > strings.Index(out, "snapshot_created") {
		t.Fatalf("audit tail is not oldest first:\n%s", out)
	}
	var al struct {
		Events []struct {
			Type string `json:"event_type"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(ctl("", env, "audit", "tail", "--n", "3", "--event-type", "gc_completed", "--json").want(t, 0, "audit tail --json").stdout), &al); err != nil ||
		len(al.Events) != 3 || al.Events[0].Type != "gc_completed" {
		t.Fatalf("audit tail --json: %v %+v", err, al)
	}

	// Authentication and permission errors: exit 1 with a clear message.
	r = ctl("", []string{"MCR_TOKEN=not-a-token"}, "repo", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "authentication failed") || !strings.Contains(r.stderr, "mcrctl login") {
		t.Fatalf("wrong token: %+v", r)
	}
	r = ctl("", nil, "gc", "--token", "not-a-token")
	if r.code != 1 || !strings.Contains(r.stderr, "authentication failed") {
		t.Fatalf("wrong --token: %+v", r)
	}
	srv.AddUser(t, "carol", "carol-password-1", "user", "human")
	carol := strings.TrimSpace(ctl("carol-password-1\n", nil, "login", "--username", "carol", "--password-stdin").want(t, 0, "login carol").stdout)
	r = ctl("", []string{"MCR_TOKEN=" + carol}, "gc")
	if r.code != 1 || !strings.Contains(r.stderr, "permission denied") {
		t.Fatalf("gc as a user: %+v", r)
	}

	// Usage errors: exit 2.
	for _, args := range [][]string{
		{"frobnicate"},
		{"repo"},
		{"repo", "frobnicate"},
		{"repo", "delete"},
		{"gc", "extra"},
		{"policy", "delete", "abc"},
		{"audit", "tail", "--n", "0"},
		{"status", "--no-such-flag"},
	} {
		ctl("", env, args...).want(t, 2, "mcrctl "+strings.Join(args, " "))
	}
	ctl("", nil, "repo", "list").want(t, 2, "repo list without a token")
	if !overGRPC {
		ctlRun(t, "", nil, "status", "--addr", "::bad").want(t, 2, "bad --addr")
	}
}

// otherCertPEM is a self-signed certificate nobody serves.
func otherCertPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
