package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"git.wntrmute.dev/kyle/mcr/store"
	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// ---- helpers (prefixed gc) ----

// gcCountingTransport counts 503 answers and times pulls.
type gcCountingTransport struct {
	inner       http.RoundTripper
	unavailable atomic.Int64
}

func (c *gcCountingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.inner.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusServiceUnavailable {
		c.unavailable.Add(1)
	}
	return resp, err
}

// gcImageE builds an image from shared and fresh random layers.
func gcImageE(shared []v1.Layer, fresh int, size int64) (v1.Image, error) {
	layers := append([]v1.Layer(nil), shared...)
	for range fresh {
		l, err := random.Layer(size, types.DockerLayer)
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	return mutate.AppendLayers(empty.Image, layers...)
}

func gcImage(t testing.TB, shared []v1.Layer, fresh int, size int64) v1.Image {
	t.Helper()
	img, err := gcImageE(shared, fresh, size)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// gcAPI calls the admin API with a session token and decodes the answer.
func gcAPI(t testing.TB, srv *mcrtest.Server, method, path, token string, body any, out any) int {
	t.Helper()
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	resp := srv.Do(t, method, path, token, b, "Content-Type", "application/json")
	raw := readAll(t, resp)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

type gcRunJSON struct {
	Kind             string         `json:"kind"`
	Completed        *time.Time     `json:"completed"`
	Details          map[string]any `json:"details"`
	Error            string         `json:"error"`
	ID               int64          `json:"id"`
	BlobsRemoved     int64          `json:"blobs_removed"`
	BytesFreed       int64          `json:"bytes_freed"`
	ManifestsRemoved int64          `json:"manifests_removed"`
	DryRun           bool           `json:"dry_run"`
}

type gcStatusJSON struct {
	LastRun *gcRunJSON `json:"last_run"`
	Running bool       `json:"running"`
}

// gcWait polls /v1/gc/status until run id has completed.
func gcWait(t testing.TB, srv *mcrtest.Server, token string, id int64) gcRunJSON {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var st gcStatusJSON
		if code := gcAPI(t, srv, http.MethodGet, "/v1/gc/status", token, nil, &st); code != 200 {
			t.Fatalf("gc status: %d", code)
		}
		if st.LastRun != nil && st.LastRun.ID == id && st.LastRun.Completed != nil && !st.Running {
			return *st.LastRun
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("gc run %d did not finish", id)
	return gcRunJSON{}
}

// gcRunE starts a collection and waits for it, without testing.T (for
// goroutines).
func gcRunE(srv *mcrtest.Server, token string) (gcRunJSON, error) {
	c := srv.Client()
	call := func(method, path string, out any) (int, error) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
	}
	var started struct {
		ID int64 `json:"id"`
	}
	if code, err := call(http.MethodPost, "/v1/gc", &started); err != nil || code != http.StatusAccepted {
		return gcRunJSON{}, fmt.Errorf("POST /v1/gc: %d %w", code, err)
	}
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var st gcStatusJSON
		if code, err := call(http.MethodGet, "/v1/gc/status", &st); err != nil || code != 200 {
			return gcRunJSON{}, fmt.Errorf("gc status: %d %w", code, err)
		}
		if st.LastRun != nil && st.LastRun.ID == started.ID && st.LastRun.Completed != nil {
			if st.LastRun.Error != "" {
				return *st.LastRun, errors.New(st.LastRun.Error)
			}
			return *st.LastRun, nil
		}
	}
	return gcRunJSON{}, fmt.Errorf("gc run %d did not finish", started.ID)
}

// gcRun starts a collection and waits for it.
func gcRun(t testing.TB, srv *mcrtest.Server, token string, body any) gcRunJSON {
	t.Helper()
	var started struct {
		ID int64 `json:"id"`
	}
	if code := gcAPI(t, srv, http.MethodPost, "/v1/gc", token, body, &started); code != http.StatusAccepted || started.ID == 0 {
		t.Fatalf("POST /v1/gc: %d %+v", code, started)
	}
	run := gcWait(t, srv, token, started.ID)
	if run.Error != "" {
		t.Fatalf("gc run %d failed: %s", run.ID, run.Error)
	}
	return run
}

// gcUpload uploads a blob with POST + PUT and returns its digest.
func gcUpload(t testing.TB, srv *mcrtest.Server, token, repo string, content []byte) string {
	t.Helper()
	resp := srv.Do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", token, nil)
	readAll(t, resp)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start upload: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	d := digest.FromBytes(content).String()
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	if i := strings.Index(loc, "/v2/"); i > 0 {
		loc = loc[i:]
	}
	resp = srv.Do(t, http.MethodPut, loc+sep+"digest="+d, token, content, "Content-Type", "application/octet-stream")
	readAll(t, resp)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("finish upload: %d", resp.StatusCode)
	}
	return d
}

func gcRandom(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// gcBlobStatus answers GET /v2/<repo>/blobs/<digest> with the status and
// body length.
func gcBlobStatus(t testing.TB, srv *mcrtest.Server, token, repo, d string) (int, int) {
	t.Helper()
	resp := srv.Do(t, http.MethodGet, "/v2/"+repo+"/blobs/"+d, token, nil)
	b := readAll(t, resp)
	return resp.StatusCode, len(b)
}

// gcVerify reads an image's config and every layer and checks their
// digests and sizes.
func gcVerify(img v1.Image) error {
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if h, _, _ := v1.SHA256(bytes.NewReader(raw)); h != cfgName {
		return fmt.Errorf("config digest %s, want %s", h, cfgName)
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		want, err := l.Digest()
		if err != nil {
			return err
		}
		size, err := l.Size()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return fmt.Errorf("layer %s: %w", want, err)
		}
		h, n, err := v1.SHA256(rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("layer %s: %w", want, err)
		}
		if h != want || n != size {
			return fmt.Errorf("layer %s: read %d bytes with digest %s, want %d", want, n, h, size)
		}
	}
	return nil
}

func gcPullAll(t testing.TB, srv *mcrtest.Server, refs map[string]v1.Hash) {
	t.Helper()
	gcPullAllAs(t, srv, adminAuth(), refs)
}

func gcPullAllAs(t testing.TB, srv *mcrtest.Server, auth authn.Authenticator, refs map[string]v1.Hash) {
	t.Helper()
	type job struct {
		ref  string
		want v1.Hash
	}
	jobs := make(chan job)
	errs := make(chan error, len(refs))
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				img, err := remote.Image(ref(t, srv, j.ref), remoteOpts(t, srv, auth, nil)...)
				if err != nil {
					errs <- fmt.Errorf("pull %s: %w", j.ref, err)
					continue
				}
				if d, _ := img.Digest(); d != j.want {
					errs <- fmt.Errorf("pull %s: digest %s, want %s", j.ref, d, j.want)
					continue
				}
				if err := gcVerify(img); err != nil {
					errs <- fmt.Errorf("pull %s: %w", j.ref, err)
				}
			}
		}()
	}
	for r, want := range refs {
		jobs <- job{r, want}
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// ---- tests ----

// TestGCUnderLoad is the torture test: 8 clients push distinct multi-layer
// images (some layers shared) while 2 clients pull and GC runs again and
// again. Afterwards every image pulls completely with correct digests; no
// push failed; nothing got 503; pulls during GC did not wait on the gate.
func TestGCUnderLoad(t *testing.T) {
	srv := mcrtest.Start(t, mcrtest.WithConfig("gc.grace", `"30s"`), mcrtest.WithConfig("gc.max_wait", `"30s"`))
	admin := srv.Login(t, "admin", mcrtest.AdminPassword)
	counter := &gcCountingTransport{inner: srv.Transport()}
	noRetry := []remote.Option{remote.WithRetryStatusCodes(), remote.WithRetryBackoff(remote.Backoff{Steps: 1})}

	var shared []v1.Layer
	for range 3 {
		l, err := random.Layer(16<<10, types.DockerLayer)
		if err != nil {
			t.Fatal(err)
		}
		shared = append(shared, l)
	}

	const pushers, pullers = 8, 2
	// One registry token for every repository of the test: clients skip
	// the password check (bcrypt) on every operation, which would
	// dominate on a small machine.
	var scopes []string
	for p := range pushers {
		scopes = append(scopes, fmt.Sprintf("repository:load/client%d:pull,push", p))
	}
	regAuth := authn.FromConfig(authn.AuthConfig{RegistryToken: srv.Token(t, "admin", mcrtest.AdminPassword, scopes...)})
	duration := 6 * time.Second
	stop := time.Now().Add(duration)
	var mu sync.Mutex
	pushed := map[string]v1.Hash{}
	var pushErrs []error
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				r := fmt.Sprintf("load/client%d:v%d", p, i)
				img, err := gcImageE(shared[:p%4], 2, 24<<10) // clients 1..3 share layers
				if err == nil {
					err = remote.Write(ref(t, srv, r), img, remoteOpts(t, srv, regAuth, counter, noRetry...)...)
				}
				mu.Lock()
				if err != nil {
					pushErrs = append(pushErrs, fmt.Errorf("push %s: %w", r, err))
				} else {
					d, _ := img.Digest()
					pushed[r] = d
				}
				mu.Unlock()
			}
		}()
	}

	// GC runs back to back; its windows are recorded.
	type window struct{ from, to time.Time }
	var windows []window
	var runs int
	var gcErrs []error
	var maxGateWait, maxMarkSweep float64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for time.Now().Before(stop) {
			from := time.Now()
			run, err := gcRunE(srv, admin)
			if err != nil {
				gcErrs = append(gcErrs, err)
			}
			w, _ := run.Details["gate_wait_ms"].(float64)
			m, _ := run.Details["mark_ms"].(float64)
			sw, _ := run.Details["sweep_ms"].(float64)
			maxGateWait, maxMarkSweep = max(maxGateWait, w), max(maxMarkSweep, m+sw)
			windows = append(windows, window{from, time.Now()})
			runs++
			time.Sleep(400 * time.Millisecond)
		}
	}()

	// Pullers time every pull.
	type sample struct {
		from time.Time
		took time.Duration
	}
	var samples []sample
	var pullErrs []error
	var pullWG sync.WaitGroup
	for range pullers {
		pullWG.Add(1)
		go func() {
			defer pullWG.Done()
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
				start := time.Now()
				img, err := remote.Image(ref(t, srv, r), remoteOpts(t, srv, regAuth, counter, noRetry...)...)
				if err == nil {
					err = gcVerify(img)
				}
				took := time.Since(start)
				mu.Lock()
				if err != nil {
					pullErrs = append(pullErrs, fmt.Errorf("pull %s: %w", r, err))
				}
				samples = append(samples, sample{start, took})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	pullWG.Wait()
	t.Logf("load phase done after %s", time.Since(stop.Add(-duration)).Round(time.Millisecond))

	for _, err := range pushErrs {
		t.Error(err)
	}
	for _, err := range pullErrs {
		t.Error(err)
	}
	for _, err := range gcErrs {
		t.Error(err)
	}
	if n := counter.unavailable.Load(); n != 0 {
		t.Errorf("%d requests were answered 503", n)
	}
	if runs < 3 {
		t.Errorf("only %d GC runs during the load", runs)
	}
	if len(pushed) < pushers {
		t.Fatalf("only %d images pushed", len(pushed))
	}
	// Every pushed image pulls completely after the last collection, and
	// after one more (nothing referenced may go).
	gcRun(t, srv, admin, nil)
	gcPullAllAs(t, srv, regAuth, pushed)

	var during, outside []time.Duration
	for _, s := range samples {
		in := false
		for _, w := range windows {
			if s.from.Before(w.to) && s.from.Add(s.took).After(w.from) {
				in = true
				break
			}
		}
		if in {
			during = append(during, s.took)
		} else {
			outside = append(outside, s.took)
		}
	}
	maxOf := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		if len(d) == 0 {
			return 0
		}
		return d[len(d)-1]
	}
	t.Logf("torture: %d images pushed by %d clients in %s, %d GC runs, %d pulls (%d overlapping a GC run)",
		len(pushed), pushers, duration, runs, len(samples), len(during))
	t.Logf("longest pull latency: %s during GC, %s without GC", maxOf(during), maxOf(outside))
	t.Logf("longest gate hold (mark+sweep): %.0f ms; longest wait to close the gate: %.0f ms", maxMarkSweep, maxGateWait)
}

// TestGCSweepsOrphansAfterGrace: a deleted image's unique blobs and an
// orphan upload go (bytes_freed matches their sizes), shared layers stay,
// a blob uploaded just now survives until the grace period has passed, and
// a swept blob answers 404 (no descriptor cache answering 200).
func TestGCSweepsOrphansAfterGrace(t *testing.T) { testGCSweepsOrphansAfterGrace(t) }

// testGCSweepsOrphansAfterGrace runs on a server started with opts (e.g.
// on S3, see s3_test.go).
func testGCSweepsOrphansAfterGrace(t *testing.T, opts ...mcrtest.Option) {
	srv := mcrtest.Start(t, append([]mcrtest.Option{mcrtest.WithConfig("gc.grace", `"2s"`)}, opts...)...)
	admin := srv.Login(t, "admin", mcrtest.AdminPassword)
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:gc/app:pull,push,delete")

	sharedLayer, err := random.Layer(8<<10, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	imgA := gcImage(t, []v1.Layer{sharedLayer}, 1, 8<<10)
	imgB := gcImage(t, []v1.Layer{sharedLayer}, 1, 12<<10)
	for r, img := range map[string]v1.Image{"gc/app:a": imgA, "gc/app:b": imgB} {
		if err := remote.Write(ref(t, srv, r), img, remoteOpts(t, srv, adminAuth(), nil)...); err != nil {
			t.Fatal(err)
		}
	}
	orphan := gcRandom(t, 5000)
	orphanDigest := gcUpload(t, srv, tok, "gc/app", orphan)

	// Delete image b by digest: its unique layer, config and manifest become garbage.
	bDigest, _ := imgB.Digest()
	bManifest, _ := imgB.RawManifest()
	bConfig, _ := imgB.RawConfigFile()
	bLayers, _ := imgB.Layers()
	bUnique := bLayers[1]
	bUniqueDigest, _ := bUnique.Digest()
	bUniqueSize, _ := bUnique.Size()
	resp := srv.Do(t, http.MethodDelete, "/v2/gc/app/manifests/"+bDigest.String(), tok, nil)
	expectStatus(t, resp, http.StatusAccepted)
	sharedDigest, _ := sharedLayer.Digest()

	gcWaitRemovable(t, srv, admin, 4) // past the grace period of b's blobs and the orphan
	young := gcRandom(t, 777)
	youngDigest := gcUpload(t, srv, tok, "gc/app", young) // layers in, manifest not yet

	run := gcRun(t, srv, admin, nil)
	want := int64(len(bManifest)) + int64(len(bConfig)) + bUniqueSize + int64(len(orphan))
	if run.BlobsRemoved != 4 || run.BytesFreed != want {
		t.Errorf("run: %d blobs removed, %d bytes freed; want 4 (b's layer, config, manifest; the orphan), %d bytes", run.BlobsRemoved, run.BytesFreed, want)
	}
	for _, d := range []string{bUniqueDigest.String(), orphanDigest} {
		if code, n := gcBlobStatus(t, srv, tok, "gc/app", d); code != http.StatusNotFound {
			t.Errorf("swept blob %s: status %d (%d bytes), want 404", d, code, n)
		}
		resp := srv.Do(t, http.MethodHead, "/v2/gc/app/blobs/"+d, tok, nil)
		readAll(t, resp)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("HEAD swept blob %s: %d", d, resp.StatusCode)
		}
	}
	if code, n := gcBlobStatus(t, srv, tok, "gc/app", sharedDigest.String()); code != 200 || n == 0 {
		t.Errorf("shared layer: %d (%d bytes)", code, n)
	}
	if code, n := gcBlobStatus(t, srv, tok, "gc/app", youngDigest); code != 200 || n != len(young) {
		t.Errorf("young upload inside the grace period: %d (%d bytes)", code, n)
	}
	aDigest, _ := imgA.Digest()
	gcPullAll(t, srv, map[string]v1.Hash{"gc/app:a": aDigest})

	// Once the grace period has passed the unreferenced upload goes too.
	run = gcWaitRemovable(t, srv, admin, 1)
	if run.BlobsRemoved != 1 || run.BytesFreed != int64(len(young)) || !run.DryRun {
		t.Errorf("dry run: %+v", run)
	}
	if code, _ := gcBlobStatus(t, srv, tok, "gc/app", youngDigest); code != 200 {
		t.Errorf("dry run removed a blob: %d", code)
	}
	gcWaitRemovable(t, srv, admin, 1) // the probe above renewed the grace
	run = gcRun(t, srv, admin, nil)
	if run.BlobsRemoved != 1 || run.BytesFreed != int64(len(young)) {
		t.Errorf("after the grace period: %+v", run)
	}
	if code, _ := gcBlobStatus(t, srv, tok, "gc/app", youngDigest); code != http.StatusNotFound {
		t.Errorf("young upload after the grace period: %d", code)
	}
	gcPullAll(t, srv, map[string]v1.Hash{"gc/app:a": aDigest})

	// Every run is recorded and audited: the two collections and the dry
	// runs that waited for the grace periods to pass.
	var audit struct {
		Events []struct {
			Type    string         `json:"event_type"`
			Details map[string]any `json:"details"`
			Actor   string         `json:"actor"`
		} `json:"events"`
	}
	gcAPI(t, srv, http.MethodGet, "/v1/audit?event_type=gc_completed&n=1000", admin, nil, &audit)
	completed, collections := len(audit.Events), 0
	for _, e := range audit.Events {
		if e.Actor != "admin" {
			t.Errorf("gc_completed by %q, want admin", e.Actor)
		}
		if e.Details["dry_run"] == false {
			collections++
		}
	}
	if collections != 2 || completed < 3 {
		t.Errorf("gc_completed: %d events, %d collections; want the 2 collections and at least one dry run", completed, collections)
	}
	gcAPI(t, srv, http.MethodGet, "/v1/audit?event_type=gc_started&n=1000", admin, nil, &audit)
	if len(audit.Events) != completed {
		t.Errorf("%d gc_started events, want one per gc_completed (%d)", len(audit.Events), completed)
	}
}

// gcSlowPut starts a manifest PUT whose body it holds back (one byte sent),
// so the request is in flight, its body unread, until finish is called.
func gcSlowPut(t *testing.T, srv *mcrtest.Server, token, path string, body []byte) (finish func() int) {
	t.Helper()
	conn, err := tls.Dial("tcp", srv.Addr, &tls.Config{RootCAs: srv.CertPool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/vnd.docker.distribution.manifest.v2+json\r\nContent-Length: %d\r\n\r\n",
		path, srv.Addr, token, len(body))
	_, _ = conn.Write(body[:1])
	return func() int {
		defer func() { _ = conn.Close() }() // the response was read; nothing left to report
		_, _ = conn.Write(body[1:])
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Errorf("slow PUT: %v", err)
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
}

// TestGCGateWritesWaitReadsDoNot holds a collection inside its gated
// section (test hook): POST /v1/gc answers 202 then 409; a write issued
// meanwhile waits and then succeeds; a read does not wait.
func TestGCGateWritesWaitReadsDoNot(t *testing.T) {
	hold := filepath.Join(t.TempDir(), "hold")
	if err := os.WriteFile(hold, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	metricsAddr := mcrtest.FreeAddr(t)
	srv := mcrtest.Start(t, mcrtest.WithConfig("gc.max_wait", `"20s"`), mcrtest.WithEnv("MCR_TEST_GC_HOLD_FILE="+hold),
		mcrtest.WithConfig("server.metrics_addr", `"`+metricsAddr+`"`))
	admin := srv.Login(t, "admin", mcrtest.AdminPassword)
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:gate/app:pull,push")

	img := gcImage(t, nil, 1, 4<<10)
	if err := remote.Write(ref(t, srv, "gate/app:v1"), img, remoteOpts(t, srv, adminAuth(), nil)...); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	layerDigest, _ := layers[0].Digest()

	var started struct {
		ID int64 `json:"id"`
	}
	if code := gcAPI(t, srv, http.MethodPost, "/v1/gc", admin, nil, &started); code != http.StatusAccepted || started.ID == 0 {
		t.Fatalf("POST /v1/gc: %d", code)
	}
	var conflict map[string]string
	if code := gcAPI(t, srv, http.MethodPost, "/v1/gc", admin, nil, &conflict); code != http.StatusConflict || conflict["error"] == "" {
		t.Fatalf("second POST /v1/gc: %d %v", code, conflict)
	}
	var st gcStatusJSON
	gcAPI(t, srv, http.MethodGet, "/v1/gc/status", admin, nil, &st)
	if !st.Running || st.LastRun == nil || st.LastRun.ID != started.ID || st.LastRun.Completed != nil {
		t.Fatalf("status while running: %+v", st)
	}
	gcWaitOutput(t, srv, "holding the collection")
	gcWaitGauge(t, metricsAddr, "mcr_gc_gate_closed", 1)

	// A read does not wait.
	start := time.Now()
	code, n := gcBlobStatus(t, srv, tok, "gate/app", layerDigest.String())
	if code != 200 || n == 0 {
		t.Fatalf("read during GC: %d", code)
	}
	readTook := time.Since(start)

	// A write waits for the collection, then succeeds.
	writeDone := make(chan int, 1)
	go func() {
		resp := srv.Do(t, http.MethodPost, "/v2/gate/app/blobs/uploads/", tok, nil)
		readAll(t, resp)
		writeDone <- resp.StatusCode
	}()
	select {
	case c := <-writeDone:
		t.Fatalf("write admitted while GC held the gate (status %d)", c)
	case <-time.After(700 * time.Millisecond):
	}
	if err := os.Remove(hold); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-writeDone:
		if c != http.StatusAccepted {
			t.Fatalf("write after GC: %d", c)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("write still waiting after GC")
	}
	run := gcWait(t, srv, admin, started.ID)
	if run.Error != "" {
		t.Fatal(run.Error)
	}
	t.Logf("read during GC took %s", readTook)
	if readTook > 5*time.Second {
		t.Errorf("read during GC took %s", readTook)
	}
	gcPullAll(t, srv, map[string]v1.Hash{"gate/app:v1": mustDigest(t, img)})

	// Non-admins may not collect.
	srv.AddUser(t, "bob", "bob-password-1", "user", "human")
	bob := srv.Login(t, "bob", "bob-password-1")
	if code := gcAPI(t, srv, http.MethodPost, "/v1/gc", bob, nil, nil); code != http.StatusForbidden {
		t.Errorf("user POST /v1/gc: %d", code)
	}
	if code := gcAPI(t, srv, http.MethodPost, "/v1/snapshot", bob, nil, nil); code != http.StatusForbidden {
		t.Errorf("user POST /v1/snapshot: %d", code)
	}
}

// gcWaitOutput polls the server's output until it contains s.
func gcWaitOutput(t *testing.T, srv *mcrtest.Server, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(srv.Output.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("server never logged %q:\n%s", s, srv.Output.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustDigest(t testing.TB, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// gcMcrsrv runs an mcrsrv subcommand with extra environment.
func gcMcrsrv(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(mcrtest.Binary(t, "mcrsrv"), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("mcrsrv %v: %v", args, err)
	}
	return string(out), 0
}

func gcBlobFile(srv *mcrtest.Server, d string) string {
	alg, hex, _ := strings.Cut(d, ":")
	return filepath.Join(srv.Dir, "layers", "docker/registry/v2/blobs", alg, hex[:2], hex, "data")
}

// TestGCOfflineLockCrashAndReconcile: `mcrsrv gc` refuses while the server
// runs; a crash between the metadata and file phases leaves unlinked
// blobs; `mcrsrv gc --reconcile` removes them and storage is consistent.
func TestGCOfflineLockCrashAndReconcile(t *testing.T) {
	srv := mcrtest.Start(t, mcrtest.WithConfig("gc.grace", `"1s"`))
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:crash/app:pull,push,delete")
	keep := gcImage(t, nil, 2, 4<<10)
	drop := gcImage(t, nil, 2, 4<<10)
	for r, img := range map[string]v1.Image{"crash/app:keep": keep, "crash/app:drop": drop} {
		if err := remote.Write(ref(t, srv, r), img, remoteOpts(t, srv, adminAuth(), nil)...); err != nil {
			t.Fatal(err)
		}
	}
	resp := srv.Do(t, http.MethodDelete, "/v2/crash/app/manifests/"+mustDigest(t, drop).String(), tok, nil)
	expectStatus(t, resp, http.StatusAccepted)
	dropLayers, _ := drop.Layers()
	dropLayer, _ := dropLayers[0].Digest()

	out, code := gcMcrsrv(t, nil, "gc", "--config", srv.ConfigPath)
	if code == 0 || !strings.Contains(out, "refusing") {
		t.Fatalf("offline gc next to a running server: exit %d: %s", code, out)
	}
	if _, err := os.Stat(gcBlobFile(srv, dropLayer.String())); err != nil {
		t.Fatalf("refused gc removed something: %v", err)
	}
	if err := srv.Stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	gcWaitOlder(t, gcBlobFile(srv, dropLayer.String()), time.Second) // past the grace period (gc.grace = 1s)

	out, code = gcMcrsrv(t, []string{"MCR_TEST_GC_CRASH_AFTER=metadata"}, "gc", "--config", srv.ConfigPath)
	if code != 3 {
		t.Fatalf("crash hook: exit %d: %s", code, out)
	}
	if _, err := os.Stat(gcBlobFile(srv, dropLayer.String())); err != nil {
		t.Fatalf("the file phase ran before the crash: %v", err)
	}

	out, code = gcMcrsrv(t, nil, "gc", "--config", srv.ConfigPath, "--reconcile", "--dry-run")
	if code != 0 || !strings.Contains(out, "would remove 4 orphan blobs") {
		t.Fatalf("reconcile dry run: exit %d: %s", code, out)
	}
	out, code = gcMcrsrv(t, nil, "gc", "--config", srv.ConfigPath, "--reconcile")
	if code != 0 || !strings.Contains(out, "removed 4 orphan blobs") {
		t.Fatalf("reconcile: exit %d: %s", code, out)
	}
	if _, err := os.Stat(gcBlobFile(srv, dropLayer.String())); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("orphan survived reconcile: %v", err)
	}
	// Consistent: an offline collection now finds nothing.
	out, code = gcMcrsrv(t, nil, "gc", "--config", srv.ConfigPath)
	if code != 0 || !strings.Contains(out, "removed 0 blobs") {
		t.Fatalf("gc after reconcile: exit %d: %s", code, out)
	}

	// Every run is recorded; the crashed one as interrupted.
	st, err := store.Open(filepath.Join(srv.Dir, "mcr.db"))
	if err != nil {
		t.Fatal(err)
	}
	runs, err := st.ListGCRuns(context.Background(), 10)
	_ = st.Close()
	if err != nil || len(runs) != 4 {
		t.Fatalf("gc_runs: %+v %v", runs, err)
	}
	crashed := runs[3]
	if crashed.Kind != "gc" || crashed.Completed == nil || !strings.Contains(crashed.Error, "interrupted") {
		t.Errorf("crashed run: %+v", crashed)
	}
	if runs[1].Kind != "reconcile" || runs[1].BlobsRemoved != 4 || runs[2].Kind != "reconcile" || !runs[2].DryRun {
		t.Errorf("reconcile runs: %+v / %+v", runs[1], runs[2])
	}

	srv.Restart(t)
	admin := srv.Login(t, "admin", mcrtest.AdminPassword)
	gcPullAll(t, srv, map[string]v1.Hash{"crash/app:keep": mustDigest(t, keep)})
	var status gcStatusJSON
	gcAPI(t, srv, http.MethodGet, "/v1/gc/status", admin, nil, &status)
	if status.Running || status.LastRun == nil || status.LastRun.ID != runs[0].ID {
		t.Fatalf("status: %+v", status)
	}
}

// TestSnapshotAndRestore follows the runbook: snapshot, more pushes, stop,
// copy the snapshot over mcr.db, start: healthy, and images from before
// the snapshot pull.
func TestSnapshotAndRestore(t *testing.T) {
	srv := mcrtest.Start(t, mcrtest.WithConfig("snapshot.keep", "2"))
	admin := srv.Login(t, "admin", mcrtest.AdminPassword)
	before := gcImage(t, nil, 2, 4<<10)
	if err := remote.Write(ref(t, srv, "snap/before:v1"), before, remoteOpts(t, srv, adminAuth(), nil)...); err != nil {
		t.Fatal(err)
	}

	// Offline command (safe while the server runs) and the API.
	out, code := gcMcrsrv(t, nil, "snapshot", "--config", srv.ConfigPath)
	if code != 0 {
		t.Fatalf("mcrsrv snapshot: exit %d: %s", code, out)
	}
	cliPath := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	var created struct {
		Path string `json:"path"`
	}
	if code := gcAPI(t, srv, http.MethodPost, "/v1/snapshot", admin, nil, &created); code != http.StatusCreated {
		t.Fatalf("POST /v1/snapshot: %d", code)
	}
	for _, p := range []string{cliPath, created.Path} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() == 0 {
			t.Fatalf("snapshot %q: %v %v", p, fi, err)
		}
		if m, _ := filepath.Match(filepath.Join(srv.Dir, "backups", "mcr-[0-9]*-[0-9]*.db"), p); !m {
			t.Fatalf("snapshot path %s", p)
		}
	}
	// keep = 2: a third snapshot prunes the oldest.
	var third struct {
		Path string `json:"path"`
	}
	gcAPI(t, srv, http.MethodPost, "/v1/snapshot", admin, nil, &third)
	if snaps, _ := filepath.Glob(filepath.Join(srv.Dir, "backups", "mcr-*.db")); len(snaps) != 2 {
		t.Fatalf("snapshots kept: %v", snaps)
	}
	var audit struct {
		Events []json.RawMessage `json:"events"`
	}
	gcAPI(t, srv, http.MethodGet, "/v1/audit?event_type=snapshot_created", admin, nil, &audit)
	if len(audit.Events) != 3 {
		t.Fatalf("snapshot_created events: %d", len(audit.Events))
	}

	after := gcImage(t, nil, 1, 4<<10)
	if err := remote.Write(ref(t, srv, "snap/after:v1"), after, remoteOpts(t, srv, adminAuth(), nil)...); err != nil {
		t.Fatal(err)
	}

	// Restore (runbook): stop, keep the current db, copy the snapshot, start.
	if err := srv.Stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	dbPath := filepath.Join(srv.Dir, "mcr.db")
	if _, err := os.Stat(dbPath + "-wal"); err == nil {
		t.Logf("note: %s-wal left after a clean stop", dbPath)
	}
	gcCopy(t, dbPath, dbPath+".pre-restore")
	gcCopy(t, third.Path, dbPath)
	srv.Restart(t)
	resp := srv.Do(t, http.MethodGet, "/v1/health", "", nil)
	expectStatus(t, resp, http.StatusOK)
	admin = srv.Login(t, "admin", mcrtest.AdminPassword)
	gcPullAll(t, srv, map[string]v1.Hash{"snap/before:v1": mustDigest(t, before)})

	// The metadata is the snapshot's, but the server reconciles the index
	// with storage in the background at start-up: the image pushed after
	// the snapshot is listed again without `mcrsrv reindex` (issue 17).
	var names []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var repos struct {
			Repositories []struct {
				Name string `json:"name"`
			} `json:"repositories"`
		}
		gcAPI(t, srv, http.MethodGet, "/v1/repositories", admin, nil, &repos)
		names = names[:0]
		for _, r := range repos.Repositories {
			names = append(names, r.Name)
		}
		if strings.Join(names, ",") == "snap/after,snap/before" {
			break
		}
	}
	if strings.Join(names, ",") != "snap/after,snap/before" {
		t.Errorf("repositories after restore: %v, want snap/after and snap/before", names)
	}
	gcPullAll(t, srv, map[string]v1.Hash{"snap/after:v1": mustDigest(t, after)})
}

func gcCopy(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// gcWaitGauge polls the server's /metrics until gauge name reads want.
func gcWaitGauge(t testing.TB, metricsAddr, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, ok := metSum(metParse(t, metScrape(t, metricsAddr)), name, nil)
		if ok && v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v (present %v), want %v", name, v, ok, want)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// gcWaitRemovable polls dry-run collections until one would remove want
// blobs (the grace period of what it should remove has passed) and
// returns that run.
func gcWaitRemovable(t testing.TB, srv *mcrtest.Server, admin string, want int64) gcRunJSON {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		run := gcRun(t, srv, admin, map[string]bool{"dry_run": true})
		if run.BlobsRemoved == want {
			return run
		}
		if time.Now().After(deadline) {
			t.Fatalf("dry-run collections would remove %d blobs, want %d: %+v", run.BlobsRemoved, want, run)
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
}

// gcWaitOlder polls path's modification time until it is older than age
// (what the collector compares with its grace period).
func gcWaitOlder(t testing.TB, path string, age time.Duration) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(fi.ModTime()) > age {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not older than %v after 30 s", path, age)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}
