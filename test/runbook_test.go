package e2e

import (
	"bufio"
	"bytes"
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

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// rbBlock is one ```sh block of docs/runbook.md.
type rbBlock struct {
	section string
	script  string
	expect  []string
	line    int
}

// rbBlocks extracts every ```sh block with the section it is under and its
// "# expect: TEXT" lines.
func rbBlocks(t *testing.T, doc string) []rbBlock {
	t.Helper()
	var out []rbBlock
	var cur *rbBlock
	section := ""
	sc := bufio.NewScanner(strings.NewReader(doc))
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(l, "#"):
			section = strings.TrimSpace(strings.TrimLeft(l, "#"))
		case cur == nil && strings.TrimSpace(l) == "```sh":
			cur = &rbBlock{section: section, line: n}
		case cur != nil && strings.TrimSpace(l) == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.script += l + "\n"
			if e, ok := strings.CutPrefix(strings.TrimSpace(l), "# expect:"); ok {
				cur.expect = append(cur.expect, strings.TrimSpace(e))
			}
		}
	}
	if cur != nil {
		t.Fatalf("runbook: unterminated ```sh block at line %d", cur.line)
	}
	return out
}

// rbShims are the service manager as the runbook spells it, acting on the
// test's mcrsrv: `systemctl start|stop|restart mcr` starts (and waits for
// /v1/health) or stops (SIGTERM, waits for exit) the real server process;
// `journalctl -u mcr` prints its log.
const rbSystemctl = `#!/usr/bin/env bash
set -eo pipefail
[ "$2" = mcr ] || { echo "systemctl (test): unit $2 is not managed here" >&2; exit 1; }
alive() { [ -f "$PIDFILE" ] && p=$(cat "$PIDFILE") && [ -d /proc/$p ] && [ "$(awk '{print $3}' /proc/$p/stat)" != Z ]; }
stop() {
  if alive; then kill -TERM "$(cat "$PIDFILE")"; fi
  while alive; do sleep 0.1; done
  rm -f "$PIDFILE"
}
start() {
  alive && return 0
  "$MCRSRV" server --config "$CONFIG" >>"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 600); do
    curl -sf --cacert "$CERT" "$URL/v1/health" >/dev/null && return 0
    alive || { echo "systemctl (test): mcrsrv exited; see journalctl -u mcr" >&2; exit 1; }
    sleep 0.1
  done
  echo "systemctl (test): mcrsrv not healthy after 60s" >&2; exit 1
}
case "$1" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  *) echo "systemctl (test): $1 not supported" >&2; exit 1 ;;
esac
`

const rbJournalctl = `#!/usr/bin/env bash
cat "$LOG"
`

// rbRequired are the operations issue 17 wants the runbook to carry; the
// test fails if one disappears from docs/runbook.md.
var rbRequired = []string{
	"/v1/health", "/v1/health?detail=1", "https://localhost:8443/v2/", "mcrctl status", "AdminService/Health",
	"systemctl stop mcr", "systemctl start mcr", "systemctl restart mcr", "journalctl -u mcr",
	"mcrsrv snapshot --config", "mcrctl snapshot", "mcrctl login",
	"cp \"$SNAP\" /srv/mcr/mcr.db", "mcrctl repo list", "/v2/token?service=mcr",
	"mcrctl gc --wait", "mcrctl gc status", "-X POST", "/v1/gc", "mcrctl gc --reconcile",
	"mcrctl uploads list", "mcrctl uploads purge --older-than", "mcrctl repo delete", "mcrctl gc --grace 0s",
	"df -h", "PRAGMA integrity_check", "openssl x509", "mcrctl policy list", "mcrctl audit tail",
	"mcrctl index reconcile",
}

// TestRunbook executes every command of docs/runbook.md, in order, against
// a real mcrsrv over TLS, and checks each block's "# expect:" lines. The
// setup only puts in place what the runbook's commands act on: images to
// pull and delete, one pushed after the snapshot (the restore must bring it
// back into the index by itself), and a stale upload.
func TestRunbook(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(mcrtest.ModuleRoot(), "docs", "runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	for _, op := range rbRequired {
		if !strings.Contains(doc, op) {
			t.Errorf("docs/runbook.md lost an operation: %q", op)
		}
	}
	blocks := rbBlocks(t, doc)
	if len(blocks) < 10 {
		t.Fatalf("docs/runbook.md has %d sh blocks", len(blocks))
	}
	for _, tool := range []string{"curl", "sqlite3", "openssl", "grpcurl", "timeout", "awk", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			if home, _ := os.UserHomeDir(); tool == "grpcurl" {
				if _, err := os.Stat(filepath.Join(home, "go", "bin", "grpcurl")); err == nil {
					continue
				}
			}
			msg := fmt.Sprintf("the runbook needs %s: %v", tool, err)
			if os.Getenv("CI") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}

	// A data directory as `mcrsrv init` makes it, on free loopback ports.
	root := t.TempDir()
	dataDir := filepath.Join(root, "srv", "mcr")
	backupDir := filepath.Join(root, "backup", "mcr")
	addr, grpcAddr, webAddr := mcrtest.FreeAddr(t), mcrtest.FreeAddr(t), mcrtest.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	_, grpcPort, _ := net.SplitHostPort(grpcAddr)
	initCmd := exec.Command(mcrtest.Binary(t, "mcrsrv"), "init", "--dir", dataDir, "--hostname", "localhost",
		"--listen", addr, "--grpc-listen", grpcAddr, "--web-listen", webAddr)
	initCmd.Env = append(os.Environ(), "MCR_ADMIN_PASSWORD="+mcrtest.AdminPassword)
	if out, err := initCmd.CombinedOutput(); err != nil {
		t.Fatalf("mcrsrv init: %v\n%s", err, out)
	}

	bin := filepath.Join(root, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"systemctl": rbSystemctl, "journalctl": rbJournalctl} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil { //nolint:gosec // an executable shim
			t.Fatal(err)
		}
	}
	for _, name := range []string{"mcrctl", "mcrsrv"} {
		if err := os.Symlink(mcrtest.Binary(t, name), filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	home, _ := os.UserHomeDir()
	url := "https://localhost:" + port
	pidFile, logFile := filepath.Join(root, "mcrsrv.pid"), filepath.Join(root, "mcrsrv.log")
	env := []string{
		"PATH=" + bin + ":" + filepath.Join(home, "go", "bin") + ":" + os.Getenv("PATH"),
		"HOME=" + home, "MCRSRV=" + mcrtest.Binary(t, "mcrsrv"), "CONFIG=" + filepath.Join(dataDir, "mcr.toml"),
		"LOG=" + logFile, "PIDFILE=" + pidFile, "CERT=" + filepath.Join(dataDir, "certs", "cert.pem"), "URL=" + url,
	}
	state := filepath.Join(root, "state.sh")
	if err := os.WriteFile(state, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Stop whatever the runbook left running.
		if b, err := os.ReadFile(pidFile); err == nil {
			var pid int
			if _, err := fmt.Sscan(string(b), &pid); err == nil {
				if p, err := os.FindProcess(pid); err == nil {
					_ = p.Signal(syscall.SIGTERM)
					for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
						if p.Signal(syscall.Signal(0)) != nil {
							break
						}
					}
				}
			}
		}
	})
	run := func(what, script string) string {
		t.Helper()
		body := "set -eo pipefail\nsource " + state + "\n" + script + "\nexport -p > " + state + "\n"
		cmd := exec.Command("bash", "-c", body)
		cmd.Env = env
		cmd.Dir = root
		cmd.Stdin = strings.NewReader(mcrtest.AdminPassword + "\n")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			log, _ := os.ReadFile(logFile)
			t.Fatalf("%s: %v\n--- script ---\n%s--- stdout ---\n%s--- stderr ---\n%s--- mcrsrv log (tail) ---\n%s",
				what, err, script, out.String(), errb.String(), tail(string(log), 40))
		}
		return out.String()
	}
	subst := strings.NewReplacer("/srv/mcr", dataDir, "/backup/mcr", backupDir,
		"https://localhost:8443", url, "localhost:9443", "localhost:"+grpcPort)

	run("start the service", "systemctl start mcr")
	srv := &mcrtest.Server{Dir: dataDir, Addr: addr, URL: "https://" + addr, CACert: filepath.Join(dataDir, "certs", "cert.pem")}
	push := func(r string) {
		t.Helper()
		if err := remote.Write(ref(t, srv, r), gcImage(t, nil, 2, 16<<10), remoteOpts(t, srv, adminAuth(), nil)...); err != nil {
			t.Fatalf("push %s: %v", r, err)
		}
	}
	setup := map[string]func(){
		"Backup (snapshot)": func() { push("team/old-app:v1") },
		// After the snapshot: the restore must list it again by itself.
		"Restore from a snapshot": func() { push("team/app:v1") },
		"Incident: disk full": func() {
			tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:team/stale:pull,push")
			resp := srv.Do(t, http.MethodPost, "/v2/team/stale/blobs/uploads/", tok, nil)
			readAll(t, resp)
			loc := resp.Header.Get("Location")
			if i := strings.Index(loc, "/v2/"); i > 0 {
				loc = loc[i:]
			}
			readAll(t, srv.Do(t, http.MethodPatch, loc, tok, gcRandom(t, 64<<10), "Content-Type", "application/octet-stream"))
		},
	}
	done := map[string]bool{}
	for i, b := range blocks {
		if f := setup[b.section]; f != nil && !done[b.section] {
			f()
			done[b.section] = true
		}
		what := fmt.Sprintf("runbook block %d (%q, docs/runbook.md:%d)", i+1, b.section, b.line)
		out := run(what, subst.Replace(b.script))
		t.Logf("%s: ok (%d expectations)", what, len(b.expect))
		for _, e := range b.expect {
			if !strings.Contains(out, subst.Replace(e)) {
				t.Errorf("%s: output lacks %q:\n%s", what, e, out)
			}
		}
	}
	for s := range setup {
		if !done[s] {
			t.Errorf("docs/runbook.md has no section %q with commands (the test prepares one)", s)
		}
	}
	log, _ := os.ReadFile(logFile)
	if !strings.Contains(string(log), "index: reconciled with storage") {
		t.Errorf("the restore's start-up did not reconcile the index")
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}
