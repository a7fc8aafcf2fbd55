package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// TestCluster: three replicas on PostgreSQL and versitygw behind HAProxy
// (round-robin, no affinity).
func TestCluster(t *testing.T) {
	t.Parallel()
	c := mcrtest.StartCluster(t, 3)
	t.Run("conformance-through-balancer", func(t *testing.T) {
		tot, out, results := runConformanceAt(t, c.LB)
		if _, ok := tot["Total"]; !ok {
			t.Fatalf("no totals in the conformance output:\n%s", out)
		}
		t.Logf("default profile through HAProxy, 3 replicas: %d failed, %d errors, %d passed, %d skipped of %d",
			tot["FAIL"], tot["Error"], tot["Pass"], tot["Skip"], tot["Total"])
		if tot["FAIL"] != 0 || tot["Error"] != 0 || tot["Pass"] <= 800 {
			for _, l := range failingLines(out) {
				t.Log(l)
			}
			t.Logf("results: %s", keepResults(results))
			t.Errorf("conformance through the balancer: %d failed, %d errors, %d passed; want 0, 0, > 800", tot["FAIL"], tot["Error"], tot["Pass"])
		}
	})
	t.Run("chunks-on-different-replicas", func(t *testing.T) { clusterChunkedUploads(t, c) })
	t.Run("push-via-balancer-pull-each-replica", func(t *testing.T) { clusterPushPull(t, c) })
	t.Run("rule-change-applies-everywhere", func(t *testing.T) { clusterPolicy(t, c) })
	t.Run("account-change-applies-everywhere", func(t *testing.T) { clusterAccountChanges(t, c) })
	t.Run("kill-9-mid-upload", func(t *testing.T) { clusterKillMidUpload(t, c) }) // last: a replica is gone after it
}

// clusterKillMidUpload: a replica is killed (SIGKILL) while a chunk of an
// upload is streaming into it; the client asks the balancer where the
// upload stands, resumes from there and completes it on the survivors.
func clusterKillMidUpload(t *testing.T, c *mcrtest.Cluster) {
	victim := c.Replicas[len(c.Replicas)-1]
	tok := c.LB.Token(t, "admin", mcrtest.AdminPassword, "repository:kill/app:pull,push")
	content := make([]byte, 3<<20)
	_, _ = rand.Read(content)
	first := 1 << 20
	resp := c.LB.Do(t, http.MethodPost, "/v2/kill/app/blobs/uploads/", tok, nil)
	expectStatus(t, resp, http.StatusAccepted)
	loc := uploadURL(t, c.LB, resp.Header.Get("Location"))
	resp = c.LB.Do(t, http.MethodPatch, loc.RequestURI(), tok, content[:first], "Content-Type", "application/octet-stream")
	expectStatus(t, resp, http.StatusAccepted)
	loc = uploadURL(t, c.LB, resp.Header.Get("Location"))

	// The second chunk goes to the victim and is cut off by its death.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPatch, victim.URL+loc.RequestURI(), pr)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/octet-stream")
	errc := make(chan error, 1)
	go func() {
		resp, err := victim.Client().Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		errc <- err
	}()
	if _, err := pw.Write(content[first : first+512<<10]); err != nil {
		t.Fatal(err)
	}
	victim.Kill()
	_ = pw.CloseWithError(io.ErrUnexpectedEOF)
	t.Logf("PATCH cut off by the kill: %v", <-errc)

	// Retry: where does the upload stand? (any replica, through the LB)
	var offset int64
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp = c.LB.Do(t, http.MethodGet, loc.RequestURI(), tok, nil)
		readAll(t, resp)
		if resp.StatusCode == http.StatusNoContent {
			offset = parseRange(t, resp.Header.Get("Range"))
			loc = uploadURL(t, c.LB, resp.Header.Get("Location"))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("upload status after the kill: %d", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond) // the balancer is still taking the dead replica out
	}
	if offset < int64(first) || offset > int64(len(content)) {
		t.Fatalf("upload offset after the kill: %d (first chunk was %d bytes)", offset, first)
	}
	resp = c.LB.Do(t, http.MethodPatch, loc.RequestURI(), tok, content[offset:], "Content-Type", "application/octet-stream",
		"Content-Range", fmt.Sprintf("%d-%d", offset, len(content)-1))
	expectStatus(t, resp, http.StatusAccepted)
	loc = uploadURL(t, c.LB, resp.Header.Get("Location"))
	d := digest.FromBytes(content).String()
	q := loc.Query()
	q.Set("digest", d)
	loc.RawQuery = q.Encode()
	expectStatus(t, c.LB.Do(t, http.MethodPut, loc.RequestURI(), tok, nil), http.StatusCreated)
	resp = c.LB.Do(t, http.MethodGet, "/v2/kill/app/blobs/"+d, tok, nil)
	if body := expectStatus(t, resp, http.StatusOK); digest.FromBytes(body).String() != d {
		t.Fatalf("blob after the resumed upload: %d bytes, wrong digest", len(body))
	}
	t.Logf("upload resumed at byte %d of %d after the replica was killed, completed through the survivors", offset, len(content))
}

// clusterChunkedUploads: 200 chunked uploads, each chunk sent to the next
// replica (POST on one, PATCHes on the others in turn, PUT on the next),
// 8 at a time; every blob then reads back through the balancer intact.
func clusterChunkedUploads(t *testing.T, c *mcrtest.Cluster) {
	const uploads, workers = 200, 8
	tok := c.LB.Token(t, "admin", mcrtest.AdminPassword, "repository:chunks/app:pull,push")
	type done struct {
		d    string
		size int
	}
	results := make(chan done, uploads)
	errs := make(chan error, uploads)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				content := make([]byte, 3000+i*37)
				_, _ = rand.Read(content)
				d, err := chunkedUpload(c, tok, "chunks/app", content, i)
				if err != nil {
					errs <- fmt.Errorf("upload %d: %w", i, err)
					continue
				}
				results <- done{d, len(content)}
			}
		}()
	}
	for i := range uploads {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	close(results)
	failed := 0
	for err := range errs {
		failed++
		t.Error(err)
	}
	verified := 0
	for r := range results {
		resp := c.LB.Do(t, http.MethodGet, "/v2/chunks/app/blobs/"+r.d, tok, nil)
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusOK || len(body) != r.size || digest.FromBytes(body).String() != r.d {
			t.Errorf("blob %s: %d, %d bytes (want %d)", r.d, resp.StatusCode, len(body), r.size)
			continue
		}
		verified++
	}
	t.Logf("%d chunked uploads across 3 replicas (consecutive chunks on different replicas): %d failed, %d blobs verified", uploads, failed, verified)
}

// chunkedUpload sends POST, three PATCH chunks and the closing PUT, each
// request to the replica after the previous one's.
func chunkedUpload(c *mcrtest.Cluster, tok, repo string, content []byte, start int) (string, error) {
	n := len(c.Replicas)
	at := func(k int) *mcrtest.Server { return c.Replicas[(start+k)%n] }
	do := func(srv *mcrtest.Server, method, loc string, body []byte, hdr ...string) (*http.Response, error) {
		u, err := url.Parse(loc)
		if err != nil {
			return nil, err
		}
		target := srv.URL + u.Path
		if u.RawQuery != "" {
			target += "?" + u.RawQuery
		}
		req, err := http.NewRequest(method, target, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, nil
	}
	resp, err := do(at(0), http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("POST: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	third := len(content) / 3
	for k, chunk := range [][]byte{content[:third], content[third : 2*third], content[2*third:]} {
		off := k * third
		resp, err := do(at(k+1), http.MethodPatch, loc, chunk, "Content-Type", "application/octet-stream",
			"Content-Range", fmt.Sprintf("%d-%d", off, off+len(chunk)-1), "Content-Length", strconv.Itoa(len(chunk)))
		if err != nil {
			return "", fmt.Errorf("PATCH %d: %w", k, err)
		}
		if resp.StatusCode != http.StatusAccepted {
			return "", fmt.Errorf("PATCH %d on replica %d: %d", k, (start+k+1)%n, resp.StatusCode)
		}
		loc = resp.Header.Get("Location")
	}
	d := digest.FromBytes(content).String()
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	resp, err = do(at(4), http.MethodPut, loc+sep+"digest="+d, nil)
	if err != nil {
		return "", fmt.Errorf("PUT: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("PUT on replica %d: %d", (start+4)%n, resp.StatusCode)
	}
	return d, nil
}

// clusterPushPull: images pushed through the balancer pull from every
// replica directly with the same digests, with a token one replica
// issued.
func clusterPushPull(t *testing.T, c *mcrtest.Cluster) {
	refs := map[string]v1.Hash{}
	for i := range 4 {
		img, err := random.Image(32<<10, 3)
		if err != nil {
			t.Fatal(err)
		}
		r := fmt.Sprintf("spread/app:v%d", i)
		if err := remote.Write(ref(t, c.LB, r), img, remoteOpts(t, c.LB, adminAuth(), nil)...); err != nil {
			t.Fatalf("push %s through the balancer: %v", r, err)
		}
		refs[r], _ = img.Digest()
	}
	scopes := []string{"repository:spread/app:pull"}
	tok := c.Replicas[0].Token(t, "admin", mcrtest.AdminPassword, scopes...)
	for i, srv := range c.Replicas {
		gcPullAllAs(t, srv, authn.FromConfig(authn.AuthConfig{RegistryToken: tok}), refs)
		resp := srv.Do(t, http.MethodGet, "/v2/spread/app/tags/list", tok, nil)
		if body := expectStatus(t, resp, http.StatusOK); !strings.Contains(string(body), `"v3"`) {
			t.Errorf("replica %d tags: %s", i, body)
		}
	}
}

// clusterPolicy: a deny rule created through one replica denies, on the
// very next request, on the others (the API answers once every replica
// has reloaded); deleting it there allows again.
func clusterPolicy(t *testing.T, c *mcrtest.Cluster) {
	c.Replicas[1].AddUser(t, "dana", "dana-password-1", "user", "human")
	tok := c.LB.Token(t, "dana", "dana-password-1", "repository:team/app:pull,push")
	polMustPush(t, c.Replicas[1], tok, "team/app")
	for i, srv := range c.Replicas {
		polWantStatus(t, fmt.Sprintf("pull on replica %d before the rule", i), polPull(t, srv, tok, "team/app", "latest"), http.StatusOK)
	}
	admin := c.Replicas[0].Login(t, "admin", mcrtest.AdminPassword)
	for round := range 3 {
		id := polCreateRule(t, c.Replicas[0], admin, map[string]any{
			"priority": 5, "description": "freeze team/*", "effect": "deny", "roles": []string{"user"},
			"actions": []string{"registry:pull"}, "repositories": []string{"team/*"},
		})
		for i, srv := range c.Replicas {
			polWantDenied(t, fmt.Sprintf("round %d: pull on replica %d right after the deny rule", round, i), polPull(t, srv, tok, "team/app", "latest"))
		}
		polDeleteRule(t, c.Replicas[2], admin, id)
		for i, srv := range c.Replicas {
			polWantStatus(t, fmt.Sprintf("round %d: pull on replica %d right after deleting it", round, i), polPull(t, srv, tok, "team/app", "latest"), http.StatusOK)
		}
	}
}

// TestClusterGC: GC torture across replicas, two collections started at
// once, and a collecting replica that dies.
func TestClusterGC(t *testing.T) {
	t.Parallel()
	// Collections pass straight through the hold hook while the file is
	// absent; pulls-never-wait creates it to keep one inside its gate.
	hold := filepath.Join(t.TempDir(), "gc-hold")
	c := mcrtest.StartCluster(t, 3, mcrtest.WithConfig("gc.grace", `"30s"`), mcrtest.WithConfig("gc.max_wait", `"60s"`),
		mcrtest.WithConfig("gc.lease_ttl", `"3s"`), mcrtest.WithEnv("MCR_TEST_GC_HOLD_FILE="+hold))
	t.Run("torture", func(t *testing.T) { clusterGCTorture(t, c) })
	t.Run("pulls-never-wait", func(t *testing.T) { clusterGCPullsNeverWait(t, c, hold) })
	t.Run("two-at-once", func(t *testing.T) { clusterGCTwoAtOnce(t, c) })
	t.Run("collector-dies", func(t *testing.T) { clusterGCCollectorDies(t, c) })
}

// clusterGCTorture: pushers on every replica and pullers through the
// balancer while GC runs again and again on one replica: no push fails,
// no request is answered 503, every image pulls intact afterwards.
func clusterGCTorture(t *testing.T, c *mcrtest.Cluster) {
	admin := c.Replicas[0].Login(t, "admin", mcrtest.AdminPassword)
	noRetry := []remote.Option{remote.WithRetryStatusCodes(), remote.WithRetryBackoff(remote.Backoff{Steps: 1})}
	var scopes []string
	for p := range 6 {
		scopes = append(scopes, fmt.Sprintf("repository:torture/p%d:pull,push", p))
	}
	regAuth := authn.FromConfig(authn.AuthConfig{RegistryToken: c.LB.Token(t, "admin", mcrtest.AdminPassword, scopes...)})
	shared, err := random.Layer(16<<10, "application/vnd.oci.image.layer.v1.tar")
	if err != nil {
		t.Fatal(err)
	}
	var unavailable atomic.Int64
	stop := time.Now().Add(8 * time.Second)
	var mu sync.Mutex
	pushed := map[string]v1.Hash{}
	var pushErrs []error
	var wg sync.WaitGroup
	for p := range 6 {
		srv := c.Replicas[p%len(c.Replicas)]
		tr := &gcCountingTransport{inner: srv.Transport()}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { unavailable.Add(tr.unavailable.Load()) }()
			for i := 0; time.Now().Before(stop); i++ {
				r := fmt.Sprintf("torture/p%d:v%d", p, i)
				img, err := gcImageE([]v1.Layer{shared}, 2, 12<<10)
				if err == nil {
					err = remote.Write(ref(t, srv, r), img, remoteOpts(t, srv, regAuth, tr, noRetry...)...)
				}
				mu.Lock()
				if err != nil {
					pushErrs = append(pushErrs, fmt.Errorf("push %s on %s: %w", r, srv.Addr, err))
				} else {
					pushed[r], _ = img.Digest()
				}
				mu.Unlock()
			}
		}()
	}
	var runs int
	var gcErrs []error
	type window struct{ from, to time.Time }
	var windows []window
	wg.Add(1)
	go func() {
		defer wg.Done()
		for time.Now().Before(stop) {
			from := time.Now()
			_, err := gcRunE(c.Replicas[0], admin)
			mu.Lock()
			windows = append(windows, window{from, time.Now()})
			mu.Unlock()
			if err != nil {
				gcErrs = append(gcErrs, err)
			}
			runs++
			// A run is recorded complete a moment before the runner is
			// free (it audits, then releases the lease): wait for that.
			if err := gcIdleE(c.Replicas[0], admin); err != nil {
				gcErrs = append(gcErrs, err)
			}
		}
	}()
	var pulls atomic.Int64
	var pullErrs []error
	type sample struct {
		from time.Time
		took time.Duration
	}
	var samples []sample
	lbTr := &gcCountingTransport{inner: c.LB.Transport()}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for time.Now().Before(stop) {
			mu.Lock()
			var r string
			for k := range pushed {
				r = k
				break
			}
			mu.Unlock()
			if r == "" {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			began := time.Now()
			img, err := remote.Image(ref(t, c.LB, r), remoteOpts(t, c.LB, regAuth, lbTr, noRetry...)...)
			if err == nil {
				err = gcVerify(img)
			}
			pulls.Add(1)
			mu.Lock()
			samples = append(samples, sample{began, time.Since(began)})
			mu.Unlock()
			if err != nil {
				mu.Lock()
				pullErrs = append(pullErrs, fmt.Errorf("pull %s: %w", r, err))
				mu.Unlock()
			}
		}
	}()
	wg.Wait()
	unavailable.Add(lbTr.unavailable.Load())
	for _, err := range append(append(pushErrs, pullErrs...), gcErrs...) {
		t.Error(err)
	}
	if n := unavailable.Load(); n != 0 {
		t.Errorf("%d requests answered 503", n)
	}
	if runs < 3 {
		t.Errorf("only %d GC runs", runs)
	}
	gcRun(t, c.Replicas[0], admin, nil)
	for _, srv := range c.Replicas {
		gcPullAllAs(t, srv, regAuth, pushed)
	}
	var during, outside time.Duration
	var nDuring int
	for _, sm := range samples {
		in := false
		for _, w := range windows {
			if sm.from.Before(w.to) && sm.from.Add(sm.took).After(w.from) {
				in = true
				break
			}
		}
		if in {
			during, nDuring = max(during, sm.took), nDuring+1
		} else {
			outside = max(outside, sm.took)
		}
	}
	t.Logf("longest pull (manifest, config and every layer through the balancer): %s overlapping a GC run (%d pulls), %s otherwise",
		during.Round(time.Millisecond), nDuring, outside.Round(time.Millisecond))
	t.Logf("GC torture on 3 replicas: %d images pushed (%d failed), %d pulls (%d failed), %d GC runs on one replica, %d 503s",
		len(pushed), len(pushErrs), pulls.Load(), len(pullErrs), runs, unavailable.Load())
}

// clusterGCPullsNeverWait holds one replica's collection inside its gated
// section (test hook) so the cluster write gate stays closed on every
// replica, and shows, without timing thresholds, that pulls do not wait
// for it: an image pulls in full (manifest, config, every layer, digests
// verified) from each replica directly and through the balancer while
// every gate still reads closed, and a push started during the hold stays
// pending, not failed, until the hold is released, then succeeds.
func clusterGCPullsNeverWait(t *testing.T, c *mcrtest.Cluster, hold string) {
	admin := c.Replicas[0].Login(t, "admin", mcrtest.AdminPassword)
	regAuth := authn.FromConfig(authn.AuthConfig{RegistryToken: c.LB.Token(t, "admin", mcrtest.AdminPassword, "repository:held/app:pull,push")})
	img := gcImage(t, nil, 2, 8<<10)
	if err := remote.Write(ref(t, c.LB, "held/app:v1"), img, remoteOpts(t, c.LB, regAuth, nil)...); err != nil {
		t.Fatal(err)
	}
	existing := map[string]v1.Hash{"held/app:v1": mustDigest(t, img)}
	waitNoGC(t, c.Replicas[0], admin)

	if err := os.WriteFile(hold, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(hold) }) // never leave later subtests held
	const held = "holding the collection"
	before := strings.Count(c.Replicas[0].Output.String(), held)
	var started struct {
		ID int64 `json:"id"`
	}
	if code := gcAPI(t, c.Replicas[0], http.MethodPost, "/v1/gc", admin, nil, &started); code != http.StatusAccepted || started.ID == 0 {
		t.Fatalf("POST /v1/gc: %d", code)
	}
	for deadline := time.Now().Add(30 * time.Second); strings.Count(c.Replicas[0].Output.String(), held) == before; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the collection never reached the hold")
		}
	}
	for _, srv := range c.Replicas {
		gcWaitGauge(t, srv.MetricsAddr, "mcr_gc_gate_closed", 1)
	}

	// A push started now waits at the closed gates.
	next := gcImage(t, nil, 1, 8<<10)
	pushed := make(chan error, 1)
	tr := &uploadSeenTransport{inner: c.LB.Transport(), seen: make(chan struct{})}
	go func() {
		pushed <- remote.Write(ref(t, c.LB, "held/app:v2"), next, remoteOpts(t, c.LB, regAuth, tr)...)
	}()
	select { // the push has sent its first write (starting an upload)
	case <-tr.seen:
	case err := <-pushed:
		t.Fatalf("the push ended before it started an upload: %v", err)
	}

	// Pulls complete from every replica and through the balancer.
	for _, srv := range append(append([]*mcrtest.Server{}, c.Replicas...), c.LB) {
		gcPullAllAs(t, srv, regAuth, existing)
	}
	if t.Failed() {
		t.Fatal("a pull failed while the collection held the gates")
	}
	// ...while the collection still holds every gate: they did not wait.
	for i, srv := range c.Replicas {
		if v, ok := metSum(metParse(t, metScrape(t, srv.MetricsAddr)), "mcr_gc_gate_closed", nil); !ok || v != 1 {
			t.Fatalf("replica %d: mcr_gc_gate_closed = %v (present %v) after the pulls, want 1 (the hold still closes it)", i, v, ok)
		}
	}
	var st gcStatusJSON
	if code := gcAPI(t, c.Replicas[1], http.MethodGet, "/v1/gc/status", admin, nil, &st); code != 200 || !st.Running {
		t.Fatalf("status on another replica during the hold: %d running=%v", code, st.Running)
	}
	select {
	case err := <-pushed:
		t.Fatalf("the push finished while every gate was closed (err %v)", err)
	default:
	}

	if err := os.Remove(hold); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-pushed:
		if err != nil {
			t.Fatalf("push held by the collection: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("push still waiting 60 s after the hold was released")
	}
	if run := gcWait(t, c.Replicas[0], admin, started.ID); run.Error != "" {
		t.Fatalf("held collection: %s", run.Error)
	}
	existing["held/app:v2"] = mustDigest(t, next)
	for _, srv := range c.Replicas {
		gcWaitGauge(t, srv.MetricsAddr, "mcr_gc_gate_closed", 0)
		gcPullAllAs(t, srv, regAuth, existing)
	}
	waitNoGC(t, c.Replicas[0], admin)
}

// uploadSeenTransport closes seen once a request starting a blob upload
// has been sent (the first write of a push, which a closed gate holds).
type uploadSeenTransport struct {
	inner http.RoundTripper
	seen  chan struct{}
	once  sync.Once
}

func (u *uploadSeenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/blobs/uploads/") {
		u.once.Do(func() { close(u.seen) })
	}
	return u.inner.RoundTrip(req)
}

// clusterGCTwoAtOnce: collections requested on two replicas at the same
// moment: one runs, the other is told one is running (409), and status on
// the third replica reports it.
func clusterGCTwoAtOnce(t *testing.T, c *mcrtest.Cluster) {
	admin := c.Replicas[0].Login(t, "admin", mcrtest.AdminPassword)
	for attempt := range 5 {
		codes := make([]int, 2)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				codes[i] = gcAPI(t, c.Replicas[i], http.MethodPost, "/v1/gc", admin, map[string]bool{"dry_run": true}, nil)
			}()
		}
		close(start)
		wg.Wait()
		ok, conflict := 0, 0
		for _, code := range codes {
			switch code {
			case http.StatusAccepted:
				ok++
			case http.StatusConflict:
				conflict++
			}
		}
		if ok == 2 {
			t.Fatalf("attempt %d: both replicas started a collection", attempt)
		}
		if ok == 1 && conflict == 1 {
			t.Logf("attempt %d: one replica started the collection, the other answered 409", attempt)
			waitNoGC(t, c.Replicas[2], admin)
			return
		}
		// The first finished before the second asked: try again.
		t.Logf("attempt %d: codes %v", attempt, codes)
		waitNoGC(t, c.Replicas[2], admin)
	}
	t.Fatal("never saw two simultaneous requests overlap")
}

// gcIdleE polls /v1/gc/status until no collection runs (for goroutines).
func gcIdleE(srv *mcrtest.Server, token string) error {
	c := srv.Client()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/gc/status", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		var st gcStatusJSON
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if !st.Running {
			return nil
		}
	}
	return errors.New("collection still running after 60s")
}

func waitNoGC(t *testing.T, srv *mcrtest.Server, token string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var st gcStatusJSON
		if code := gcAPI(t, srv, http.MethodGet, "/v1/gc/status", token, nil, &st); code != 200 {
			t.Fatalf("gc status: %d", code)
		}
		if !st.Running {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("collection still running after 60s")
}

// clusterGCCollectorDies: a replica killed with SIGKILL mid-collection
// (after the metadata phase, holding the lease, every gate closed): a push
// through the others waits while it hangs, completes once its lease has
// expired, and another replica then collects.
func clusterGCCollectorDies(t *testing.T, c *mcrtest.Cluster) {
	doomed := c.AddReplica(t, mcrtest.WithEnv("MCR_TEST_GC_HANG_AFTER=metadata"))
	admin := doomed.Login(t, "admin", mcrtest.AdminPassword)
	tok := c.LB.Token(t, "admin", mcrtest.AdminPassword, "repository:after/crash:pull,push")
	img, err := random.Image(4096, 1)
	if err != nil {
		t.Fatal(err)
	}
	if code := gcAPI(t, doomed, http.MethodPost, "/v1/gc", admin, nil, nil); code != http.StatusAccepted {
		t.Fatalf("start gc on the doomed replica: %d", code)
	}
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(doomed.Output.String(), "collection hanging"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the doomed replica's collection never reached the hang")
		}
	}
	// Status on a survivor reports the collection (the lease).
	var st gcStatusJSON
	if code := gcAPI(t, c.Replicas[1], http.MethodGet, "/v1/gc/status", admin, nil, &st); code != 200 || !st.Running {
		t.Errorf("status on another replica while the doomed one collects: %d running=%v", code, st.Running)
	}
	pushed := make(chan error, 1)
	go func() {
		pushed <- remote.Write(ref(t, c.LB, "after/crash:v1"), img, remoteOpts(t, c.LB, authn.FromConfig(authn.AuthConfig{RegistryToken: tok}), nil)...)
	}()
	// The push is held at the closed gates (it cannot finish before the kill).
	for range 10 {
		select {
		case err := <-pushed:
			t.Fatalf("a push completed while every gate was closed: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	doomed.Kill()
	died := time.Now()
	select {
	case err := <-pushed:
		if err != nil {
			t.Fatalf("push after the collector was killed: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("push still waiting 60 s after the collector was killed")
	}
	t.Logf("kill -9 of the collecting replica: the held push completed %s later (gc.lease_ttl 3s)", time.Since(died).Round(time.Millisecond))
	waitNoGC(t, c.Replicas[1], admin)
	run := gcRun(t, c.Replicas[2], admin, nil)
	if run.Error != "" {
		t.Fatalf("collection after the kill: %+v", run)
	}
}

// clusterAccountChanges: an account's tokens are refused on the very next
// request to every replica after `mcrsrv user passwd` (an operator command,
// not a member) and after an admin revocation through one replica.
func clusterAccountChanges(t *testing.T, c *mcrtest.Cluster) {
	c.Replicas[0].AddUser(t, "erin", "erin-password-1", "user", "human")
	want := func(what, tok string, status int) {
		t.Helper()
		for i, srv := range c.Replicas {
			resp := srv.Do(t, http.MethodGet, "/v2/", tok, nil)
			_ = readAll(t, resp)
			if resp.StatusCode != status {
				t.Fatalf("%s: replica %d answered %d, want %d", what, i, resp.StatusCode, status)
			}
		}
	}
	tok := c.LB.Token(t, "erin", "erin-password-1")
	want("before", tok, http.StatusOK) // now remembered by every replica
	if out, err := c.Replicas[0].Run(t, "erin-password-2\n", "user", "passwd", "--config", c.Replicas[0].ConfigPath, "--username", "erin"); err != nil {
		t.Fatalf("mcrsrv user passwd: %v\n%s", err, out)
	}
	want("after mcrsrv user passwd", tok, http.StatusUnauthorized)

	tok = c.LB.Token(t, "erin", "erin-password-2")
	want("new password", tok, http.StatusOK)
	admin := c.Replicas[1].Login(t, "admin", mcrtest.AdminPassword)
	resp := c.Replicas[1].Do(t, http.MethodPost, "/v1/accounts/erin/revoke", admin, nil)
	if b := readAll(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d %s", resp.StatusCode, b)
	}
	want("after an admin revocation through replica 1", tok, http.StatusUnauthorized)
}
