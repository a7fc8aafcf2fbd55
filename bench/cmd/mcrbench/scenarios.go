package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ---- data -------------------------------------------------------------

// patternReader streams size pseudo-random bytes without holding them:
// a 1 MiB random block repeated, each repetition made distinct by xoring
// its index into the first 8 bytes. Deterministic for a seed.
type patternReader struct {
	block     []byte
	size, off int64
}

const patternBlock = 1 << 20

func newPatternReader(seed uint64, size int64) *patternReader {
	block := make([]byte, patternBlock)
	r := rand.NewChaCha8(seedBytes(seed))
	_, _ = r.Read(block)
	return &patternReader{block: block, size: size}
}

func seedBytes(seed uint64) [32]byte {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	s[31] = 0x5a
	return s
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(b) && p.off < p.size {
		pos := p.off % patternBlock
		k := p.off / patternBlock
		m := copy(b[n:], p.block[pos:])
		if rem := p.size - p.off; int64(m) > rem {
			m = int(rem)
		}
		for i := pos; i < 8 && i < pos+int64(m); i++ {
			b[n+int(i-pos)] ^= byte(k >> (8 * i))
		}
		n += m
		p.off += int64(m)
	}
	return n, nil
}

func digestOf(r io.Reader) (string, error) {
	h := sha256.New()
	buf := make([]byte, 1<<20)
	if _, err := io.CopyBuffer(h, r, buf); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func digestBytes(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

type blob struct {
	Digest string
	Data   []byte
}

// image is a small OCI image: 3 layers, a config, a manifest.
type image struct {
	Layers   []blob
	Config   blob
	MDigest  string
	Manifest []byte
}

const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int    `json:"size"`
}

// makeImage builds image i of a round: 3 random layers of 4–64 KiB.
func makeImage(round, i int) image {
	rng := rand.New(rand.NewPCG(uint64(round)+0x9e3779b97f4a7c15, uint64(i)))
	src := rand.NewChaCha8(seedBytes(uint64(round)<<32 | uint64(i)))
	var img image
	var diffIDs []string
	var layers []descriptor
	for range 3 {
		b := make([]byte, 4<<10+rng.IntN(60<<10+1))
		_, _ = src.Read(b)
		d := digestBytes(b)
		img.Layers = append(img.Layers, blob{Digest: d, Data: b})
		diffIDs = append(diffIDs, d)
		layers = append(layers, descriptor{MediaType: mediaLayer, Digest: d, Size: len(b)})
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "created": "2025-01-01T00:00:00Z",
		"config": map[string]any{"Env": []string{"PATH=/usr/bin:/bin"}, "Cmd": []string{"/app", fmt.Sprint(i)}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	img.Config = blob{Digest: digestBytes(cfg), Data: cfg}
	img.Manifest, _ = json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": mediaManifest,
		"config": descriptor{MediaType: mediaConfig, Digest: img.Config.Digest, Size: len(cfg)},
		"layers": layers,
	})
	img.MDigest = digestBytes(img.Manifest)
	return img
}

func (s *session) pushImage(repo, tag string, img *image) error {
	for _, b := range append(slices.Clone(img.Layers), img.Config) {
		if err := s.pushSmallBlob(repo, b.Digest, b.Data); err != nil {
			return err
		}
	}
	return s.putManifest(repo, tag, mediaManifest, img.Manifest)
}

// pullImage is what a pull does: manifest by tag, config, layers.
func (s *session) pullImage(repo, tag string, img *image, buf []byte) error {
	m, err := s.getManifest(repo, tag, false, buf)
	if err != nil {
		return err
	}
	if digestBytes(m) != img.MDigest {
		return fmt.Errorf("%s: %s:%s: manifest digest mismatch", s.t.Name, repo, tag)
	}
	for _, b := range append([]blob{img.Config}, img.Layers...) {
		n, err := s.getBlob(repo, b.Digest, buf, nil)
		if err != nil {
			return err
		}
		if n != int64(len(b.Data)) {
			return fmt.Errorf("%s: blob %s: got %d bytes, want %d", s.t.Name, b.Digest, n, len(b.Data))
		}
	}
	return nil
}

// ---- helpers ----------------------------------------------------------

// firstErr keeps the first error of a group of workers and cancels them.
type firstErr struct {
	err    error
	cancel context.CancelFunc
	once   sync.Once
}

func (f *firstErr) set(err error) {
	if err == nil {
		return
	}
	f.once.Do(func() { f.err = err; f.cancel() })
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ---- scenario 1: one large blob ----------------------------------------

type bigBlob struct {
	digest string
	seed   uint64
	size   int64
}

func newBigBlob(round int, size int64) (*bigBlob, error) {
	b := &bigBlob{seed: uint64(1000 + round), size: size}
	d, err := digestOf(newPatternReader(b.seed, size))
	if err != nil {
		return nil, err
	}
	b.digest = d
	return b, nil
}

// blobRun is one push (and, if asked, pulls) of the large blob.
type blobRun struct {
	PerfData, PerfNote string
	Push, Pull         float64       // MB/s
	PushUser, PushSys  time.Duration // server CPU during the push
	PullCPU            time.Duration // server CPU per pull
	ClientCPU          time.Duration // this process's CPU during the push (generator, TLS, TCP)
	PushWall           time.Duration
}

// runBigBlob pushes the blob in the given style and, if pulls > 0, pulls it
// back `pulls` times (one pull is short enough for scheduling noise to
// swing it). The token fetch is not timed. With perfDir set the push runs
// under `perf record` attached to the server.
func runBigBlob(ctx context.Context, t *target, b *bigBlob, repo string, style pushStyle, chunk int64, pulls int, verify bool, perfOut string) (blobRun, error) {
	var r blobRun
	s, err := newSession(ctx, t, "pull,push")
	if err != nil {
		return r, err
	}
	if t.Auth == authBearer {
		if _, err := s.token(repo); err != nil {
			return r, err
		}
	}
	var rec *perfRecorder
	if perfOut != "" {
		if rec, err = startPerf(ctx, t.srv, perfOut); err != nil {
			return r, err
		}
	}
	u0, s0 := t.srv.cpuSplit()
	cl0 := selfCPU()
	start := time.Now()
	err = s.pushBlobStyle(style, repo, b.digest, newPatternReader(b.seed, b.size), b.size, chunk)
	r.PushWall = time.Since(start)
	u1, s1 := t.srv.cpuSplit()
	r.ClientCPU = selfCPU() - cl0
	if rec != nil {
		r.PerfData, r.PerfNote = perfOut, rec.stop()
	}
	if err != nil {
		return r, err
	}
	r.Push = float64(b.size) / 1e6 / r.PushWall.Seconds()
	r.PushUser, r.PushSys = u1-u0, s1-s0
	if pulls == 0 {
		return r, nil
	}

	buf := make([]byte, 1<<20)
	var sink io.Writer
	h := sha256.New()
	if verify {
		sink = h
	}
	c1 := u1 + s1
	start = time.Now()
	for i := 0; i < pulls; i++ {
		h.Reset()
		n, err := s.getBlob(repo, b.digest, buf, sink)
		if err != nil {
			return r, err
		}
		if n != b.size {
			return r, fmt.Errorf("%s: pulled %d bytes, want %d", t.Name, n, b.size)
		}
	}
	r.Pull = float64(pulls) * float64(b.size) / 1e6 / time.Since(start).Seconds()
	r.PullCPU = (t.srv.cpuTime() - c1) / time.Duration(pulls)
	if verify && "sha256:"+hex.EncodeToString(h.Sum(nil)) != b.digest {
		return r, fmt.Errorf("%s: pulled blob does not match its digest", t.Name)
	}
	return r, nil
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ---- scenario 2: many small images -------------------------------------

// runSmallImages pushes imgs with `clients` concurrent clients (image i by
// client i%clients into its own repository, one session and so one token
// per client, as `docker push` in a loop with a token cache would), then
// pulls them back the same way. Returns images/s for each phase; the
// sessions (ping + token) are inside the timed region.
func runSmallImages(ctx context.Context, t *target, imgs []image, clients int, repoPrefix string) (push, pull float64, cpu [2]time.Duration, err error) {
	phase := func(actions string, cpu *time.Duration, work func(s *session, repo string, i int, buf []byte) error) (float64, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		fe := &firstErr{cancel: cancel}
		var wg sync.WaitGroup
		c0 := t.srv.cpuTime()
		start := time.Now()
		defer func() { *cpu = t.srv.cpuTime() - c0 }()
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := newSession(ctx, t, actions)
				if err != nil {
					fe.set(err)
					return
				}
				repo := fmt.Sprintf("%s/c%d", repoPrefix, c)
				buf := make([]byte, 128<<10)
				for i := c; i < len(imgs); i += clients {
					if ctx.Err() != nil {
						return
					}
					if err := work(s, repo, i, buf); err != nil {
						fe.set(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if fe.err != nil {
			return 0, fe.err
		}
		return float64(len(imgs)) / time.Since(start).Seconds(), nil
	}
	push, err = phase("pull,push", &cpu[0], func(s *session, repo string, i int, _ []byte) error {
		return s.pushImage(repo, fmt.Sprintf("img-%d", i), &imgs[i])
	})
	if err != nil {
		return 0, 0, cpu, err
	}
	pull, err = phase("pull", &cpu[1], func(s *session, repo string, i int, buf []byte) error {
		return s.pullImage(repo, fmt.Sprintf("img-%d", i), &imgs[i], buf)
	})
	return push, pull, cpu, err
}

// ---- scenario 6: many clients pushing tiny artifacts ---------------------

// artifact is a tiny OCI artifact as `oras push` makes it: one blob, the
// empty config and a manifest with an artifactType.
type artifact struct {
	Blob     blob
	Manifest []byte
}

const (
	mediaEmpty    = "application/vnd.oci.empty.v1+json"
	artifactType  = "application/vnd.mcrbench.note.v1"
	mediaArtBlob  = "application/vnd.mcrbench.note.layer.v1"
	emptyJSON     = "{}"
	artifactBytes = 1 << 10
)

var emptyBlob = blob{Digest: digestBytes([]byte(emptyJSON)), Data: []byte(emptyJSON)}

// makeArtifact builds artifact i of a run: a distinct 1 KiB blob.
func makeArtifact(run, i int) artifact {
	src := rand.NewChaCha8(seedBytes(uint64(run)<<40 | uint64(i) | 1<<62))
	data := make([]byte, artifactBytes)
	_, _ = src.Read(data)
	b := blob{Digest: digestBytes(data), Data: data}
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": mediaManifest, "artifactType": artifactType,
		"config": descriptor{MediaType: mediaEmpty, Digest: emptyBlob.Digest, Size: len(emptyBlob.Data)},
		"layers": []descriptor{{MediaType: mediaArtBlob, Digest: b.Digest, Size: len(data)}},
	})
	return artifact{Blob: b, Manifest: m}
}

// pushArtifact is what oras does for a one-file artifact: HEAD the empty
// config and the blob, upload the missing ones monolithically (POST, PUT
// with the body), then PUT the manifest by tag.
func (s *session) pushArtifact(repo, tag string, a *artifact) error {
	for _, b := range []blob{emptyBlob, a.Blob} {
		ok, err := s.blobExists(repo, b.Digest)
		if err != nil {
			return err
		}
		if !ok {
			if err := s.pushBlobStyle(pushMonolithic, repo, b.Digest, bytes.NewReader(b.Data), int64(len(b.Data)), 0); err != nil {
				return err
			}
		}
	}
	return s.putManifest(repo, tag, mediaManifest, a.Manifest)
}

// runArtifacts has `clients` clients push arts (client k pushes k, k+clients,
// ...) into repo(k). Sessions and tokens are made before the clock starts:
// this measures the push path, not authentication. Returns artifacts/s and
// the server CPU used.
func runArtifacts(ctx context.Context, t *target, arts []artifact, clients int, repo func(k int) string) (float64, time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fe := &firstErr{cancel: cancel}
	sessions := make([]*session, clients)
	var setup sync.WaitGroup
	for k := range sessions {
		setup.Add(1)
		go func() {
			defer setup.Done()
			s, err := newSession(ctx, t, "pull,push")
			if err == nil && t.Auth == authBearer {
				_, err = s.token(repo(k))
			}
			sessions[k] = s
			fe.set(err)
		}()
	}
	setup.Wait()
	if fe.err != nil {
		return 0, 0, fe.err
	}
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for k := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			for i := k; i < len(arts); i += clients {
				if ctx.Err() != nil {
					return
				}
				if err := sessions[k].pushArtifact(repo(k), fmt.Sprintf("a%d", i), &arts[i]); err != nil {
					fe.set(err)
					return
				}
			}
		}()
	}
	c0 := t.srv.cpuTime()
	start := time.Now()
	close(gate)
	wg.Wait()
	elapsed := time.Since(start)
	cpu := t.srv.cpuTime() - c0
	if fe.err != nil {
		return 0, 0, fe.err
	}
	return float64(len(arts)) / elapsed.Seconds(), cpu, nil
}

// ---- scenario 3: manifest GET / HEAD -----------------------------------

type loadResult struct {
	Requests int64
	RPS      float64
	P50, P99 float64 // ms
	CPU      time.Duration
}

// runManifestLoad runs `clients` clients doing GET (or HEAD) of repo:tag
// back to back for d. Each client gets its session (ping, token) before
// the clock starts.
func runManifestLoad(ctx context.Context, t *target, repo, tag string, head bool, clients int, d time.Duration) (loadResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fe := &firstErr{cancel: cancel}
	sessions := make([]*session, clients)
	var setup sync.WaitGroup
	for c := range sessions {
		setup.Add(1)
		go func() {
			defer setup.Done()
			s, err := newSession(ctx, t, "pull")
			if err == nil && t.Auth == authBearer {
				_, err = s.token(repo)
			}
			sessions[c] = s
			fe.set(err)
		}()
	}
	setup.Wait()
	if fe.err != nil {
		return loadResult{}, fe.err
	}
	lat := make([][]time.Duration, clients)
	var stop atomic.Bool
	var wg sync.WaitGroup
	startGate := make(chan struct{})
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 16<<10)
			l := make([]time.Duration, 0, 1<<14)
			<-startGate
			for !stop.Load() && ctx.Err() == nil {
				t0 := time.Now()
				if _, err := sessions[c].getManifest(repo, tag, head, buf); err != nil {
					if !stop.Load() {
						fe.set(err)
					}
					break
				}
				l = append(l, time.Since(t0))
			}
			lat[c] = l
		}()
	}
	c0 := t.srv.cpuTime()
	start := time.Now()
	close(startGate)
	timer := time.NewTimer(d)
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	cpu := t.srv.cpuTime() - c0
	if fe.err != nil {
		return loadResult{}, fe.err
	}
	res := summarize(lat, elapsed)
	res.CPU = cpu
	return res, nil
}

// ---- scenario 4: token issue rate --------------------------------------

// runTokenLoad asks /v2/token for a pull token with `clients` concurrent
// clients for d: with Basic credentials (a bcrypt check each) or, when
// identity is set, with a bearer identity (session) token.
func runTokenLoad(ctx context.Context, t *target, scope, identity string, clients int, d time.Duration) (loadResult, error) {
	s, err := newSession(ctx, t, "pull")
	if err != nil {
		return loadResult{}, err
	}
	realm, service := s.realm, s.service
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fe := &firstErr{cancel: cancel}
	lat := make([][]time.Duration, clients)
	var stop atomic.Bool
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() && ctx.Err() == nil {
				t0 := time.Now()
				if _, err := fetchToken(ctx, t, realm, service, scope, identity); err != nil {
					if !stop.Load() {
						fe.set(err)
					}
					break
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}()
	}
	timer := time.NewTimer(d)
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	if fe.err != nil {
		return loadResult{}, fe.err
	}
	return summarize(lat, elapsed), nil
}

// summarize merges the clients' latencies into a rate and percentiles.
func summarize(lat [][]time.Duration, elapsed time.Duration) loadResult {
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	return loadResult{
		Requests: int64(len(all)),
		RPS:      float64(len(all)) / elapsed.Seconds(),
		P50:      ms(percentile(all, 0.50)),
		P99:      ms(percentile(all, 0.99)),
	}
}
