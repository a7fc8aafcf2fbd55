package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// TestAuditUnrecordedChangeFails: while another connection holds the
// database's write lock longer than audit.commit_timeout, a manifest push
// and a blob upload fail with 503 and an OCI error (not 201, not a hang);
// health detail reports the audit path and the failure is counted. After
// the lock goes, the same requests succeed and each change has exactly one
// audit row.
func TestAuditUnrecordedChangeFails(t *testing.T) {
	t.Parallel()
	metricsAddr := mcrtest.FreeAddr(t)
	const commitTimeout = time.Second
	srv := mcrtest.Start(t, mcrtest.WithConfig("audit.commit_timeout", `"1s"`),
		mcrtest.WithConfig("server.metrics_addr", `"`+metricsAddr+`"`))
	const repo = "durable/app"
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:"+repo+":pull,push")
	adminTok := srv.Login(t, "admin", mcrtest.AdminPassword)
	raw := audRawRepo(t, srv, repo, tok)
	client := srv.Client()
	expectStatus(t, raw.put(t, client, "base", 0), http.StatusCreated)

	// Another process holds the write lock (BEGIN IMMEDIATE).
	tx := lockDatabase(t, filepath.Join(srv.Dir, "mcr.db"))

	// The commit gives up after audit.commit_timeout plus at most one
	// SQLite busy wait (5 s).
	const bound = commitTimeout + 5*time.Second + 3*time.Second
	start := time.Now()
	resp := raw.put(t, client, "locked", 1)
	took := time.Since(start)
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("push with the audit log locked: %d %s, want 503", resp.StatusCode, body)
	}
	audWantOCIError(t, "push with the audit log locked", body, "UNAVAILABLE", srv.Dir)
	t.Logf("the push with the audit log locked answered 503 after %v", took.Round(time.Millisecond))
	if took > bound {
		t.Errorf("the push answered after %v, want within %v", took, bound)
	}

	// A new blob's upload fails the same way.
	blob := []byte("a blob uploaded while the audit log is locked")
	status, body := audUploadBlob(t, srv, repo, tok, blob)
	if status != http.StatusServiceUnavailable {
		t.Fatalf("blob upload with the audit log locked: %d %s, want 503", status, body)
	}
	audWantOCIError(t, "blob upload with the audit log locked", body, "UNAVAILABLE", srv.Dir)

	code, checks := healthDetail(t, srv)
	if code != http.StatusServiceUnavailable || checks["audit"] == "ok" || checks["audit"] == "" {
		t.Errorf("health detail with the audit log locked: %d %v, want 503 and the audit failure", code, checks)
	}
	if strings.Contains(checks["audit"], srv.Dir) {
		t.Errorf("health detail names a server path: %q", checks["audit"])
	}
	if v, ok := metSum(metParse(t, metScrape(t, metricsAddr)), "mcr_audit_write_failures_total", nil); !ok || v < 2 {
		t.Errorf("mcr_audit_write_failures_total = %v (present %v), want ≥ 2", v, ok)
	}

	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}

	// The retries succeed and record each change once.
	expectStatus(t, raw.put(t, client, "locked", 1), http.StatusCreated)
	if status, body := audUploadBlob(t, srv, repo, tok, blob); status != http.StatusCreated {
		t.Fatalf("blob upload after the lock: %d %s, want 201", status, body)
	}
	if code, checks := healthDetail(t, srv); code != http.StatusOK || checks["audit"] != "ok" {
		t.Errorf("health detail after recovery: %d %v", code, checks)
	}
	pushes := audAll(t, srv, adminTok, "event_type=manifest_pushed&repository="+repo, 100)
	if len(pushes) != 2 || len(audWithTag(pushes, "locked")) != 1 {
		t.Errorf("manifest_pushed rows: want base and one locked, got\n%s", audDump(pushes))
	}
	uploads := audAll(t, srv, adminTok, "event_type=blob_uploaded&repository="+repo, 100)
	n := 0
	for _, e := range uploads {
		if e.Digest == audDigest(blob) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d blob_uploaded rows for the retried blob, want 1:\n%s", n, audDump(uploads))
	}
}

// TestAuditLockedDatabaseDoesNotHoldSIGTERM: with the database locked by
// another connection for good, a push in flight answers 503 within the
// commit timeout (plus one busy wait) and SIGTERM stops the server
// cleanly; before, the commit was retried forever and held both.
func TestAuditLockedDatabaseDoesNotHoldSIGTERM(t *testing.T) {
	t.Parallel()
	metricsAddr := mcrtest.FreeAddr(t)
	srv := mcrtest.Start(t, mcrtest.WithConfig("audit.commit_timeout", `"1s"`),
		mcrtest.WithConfig("server.metrics_addr", `"`+metricsAddr+`"`))
	const repo = "durable/term"
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:"+repo+":pull,push")
	raw := audRawRepo(t, srv, repo, tok)
	client := srv.Client()

	lockDatabase(t, filepath.Join(srv.Dir, "mcr.db")) // held until the end on purpose

	pushed := make(chan int, 1)
	go func() {
		resp, err := client.Do(raw.putRequest("v1", 0))
		if err != nil {
			pushed <- 0
			return
		}
		_ = resp.Body.Close()
		pushed <- resp.StatusCode
	}()
	gcWaitGauge(t, metricsAddr, "mcr_audit_queue_depth", 1) // the push waits for its commit
	start := time.Now()
	if err := srv.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	const bound = 1*time.Second + 5*time.Second + 10*time.Second // commit timeout, one busy wait, slack
	select {
	case <-srv.Done():
	case <-time.After(bound):
		t.Fatalf("mcrsrv still running %v after SIGTERM with the database locked", bound)
	}
	t.Logf("SIGTERM to exit with the database locked: %v", time.Since(start).Round(time.Millisecond))
	if err := srv.ExitErr(); err != nil {
		t.Errorf("exit: %v", err)
	}
	if code := <-pushed; code != http.StatusServiceUnavailable {
		t.Errorf("the push in flight answered %d, want 503 (its event was never committed)", code)
	}
}

// audUploadBlob uploads blob monolithically (POST, then PUT with the
// digest) and returns the PUT's status and body.
func audUploadBlob(t testing.TB, srv *mcrtest.Server, repo, tok string, blob []byte) (int, []byte) {
	t.Helper()
	resp := srv.Do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", tok, nil)
	expectStatus(t, resp, http.StatusAccepted)
	u, _ := url.Parse(srv.URL)
	loc, err := u.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	q.Set("digest", audDigest(blob))
	loc.RawQuery = q.Encode()
	put := srv.Do(t, http.MethodPut, loc.RequestURI(), tok, blob, "Content-Type", "application/octet-stream")
	return put.StatusCode, readAll(t, put)
}

// audWantOCIError checks an OCI error body with code and no server path.
func audWantOCIError(t testing.TB, what string, body []byte, code, serverDir string) {
	t.Helper()
	var e struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 || e.Errors[0].Code != code {
		t.Errorf("%s: body %s, want an OCI error %s", what, body, code)
	}
	if strings.Contains(string(body), serverDir) {
		t.Errorf("%s: body names a server path: %s", what, body)
	}
}

func audWithTag(evs []audEvent, tag string) []audEvent {
	var out []audEvent
	for _, e := range evs {
		if e.Tag == tag {
			out = append(out, e)
		}
	}
	return out
}
