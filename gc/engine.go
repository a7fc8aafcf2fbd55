// Package gc is MCR's garbage collector (DESIGN §8): a mark-and-sweep over
// distribution's storage that runs while the registry serves.
//
//	gate := gc.NewGate(cfg.GC.MaxWait, cfg.GC.Grace)
//	mux.Handle("/v2/", gate.Wrap(app))
//	eng := &gc.Engine{Driver: driver, Grace: cfg.GC.Grace, Gate: gate}
//	res, err := eng.Run(ctx, gc.Options{RemoveUntagged: true})
//
// Mark: every manifest revision of every repository is read and the blobs
// it references (config, layers, index children) are marked. With
// RemoveUntagged, only tagged manifests, what they reference (index
// children), referrers whose subject is kept, and manifests pushed within
// the grace period survive; the rest are removed.
//
// Sweep: blobs that are not marked are deleted, together with the
// repository links to them, unless they are younger than the grace period
// (an upload whose manifest is not pushed yet) or a request named them
// within it (see Gate). Links and the index go first (the metadata
// phase), blob files second (the file phase); Reconcile repairs what a
// crash between the two leaves behind.
//
// Unlike distribution's storage.MarkAndSweep, the collector never removes
// the layer links of blobs it keeps (upstream removes the link of every
// blob not referenced by a manifest, which breaks a push in progress) and
// never deletes young blobs.
package gc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// Options select what a collection does.
type Options struct {
	// DryRun reports what would be removed without removing anything.
	DryRun bool
	// RemoveUntagged removes manifests that no tag reaches (directly, as an
	// index child, or as a referrer of a kept manifest).
	RemoveUntagged bool
	// Grace, when set, replaces Engine.Grace for this run (an incident:
	// the disk is full and young garbage must go). Zero also ignores the
	// gate's record of recently named digests, so an upload whose
	// manifest is not pushed yet may lose its blobs.
	Grace *time.Duration
}

// grace is the grace period of a run.
func (e *Engine) grace(opts Options) time.Duration {
	if opts.Grace != nil {
		return *opts.Grace
	}
	return e.Grace
}

// ManifestRef names one manifest revision of one repository.
type ManifestRef struct {
	Repository string        `json:"repository"`
	Digest     digest.Digest `json:"digest"`
	// Tags whose history index mentions the revision (removed with it).
	Tags []string `json:"tags,omitempty"`
}

// Result describes one collection.
type Result struct {
	DryRun            bool  `json:"dry_run"`
	Repositories      int   `json:"repositories"`
	ManifestsMarked   int   `json:"manifests_marked"`
	BlobsMarked       int   `json:"blobs_marked"`
	BlobsScanned      int   `json:"blobs_scanned"`
	BlobsProtected    int   `json:"blobs_protected"`
	BlobsRemoved      int   `json:"blobs_removed"`
	BytesFreed        int64 `json:"bytes_freed"`
	ManifestsRemoved  int   `json:"manifests_removed"`
	LayerLinksRemoved int   `json:"layer_links_removed"`
	// BlobsReleased counts removed blobs that a repository deletion
	// released (removed regardless of the grace period).
	BlobsReleased int           `json:"blobs_released"`
	Grace         time.Duration `json:"-"`
	GateWait      time.Duration `json:"-"`
	MarkDuration  time.Duration `json:"-"`
	SweepDuration time.Duration `json:"-"`

	RemovedBlobs     []digest.Digest `json:"-"`
	RemovedManifests []ManifestRef   `json:"-"`
}

// Details is the result as gc_runs.details_json.
func (r *Result) Details() map[string]any {
	return map[string]any{
		"repositories": r.Repositories, "manifests_marked": r.ManifestsMarked,
		"blobs_marked": r.BlobsMarked, "blobs_scanned": r.BlobsScanned, "blobs_protected": r.BlobsProtected,
		"layer_links_removed": r.LayerLinksRemoved, "blobs_released": r.BlobsReleased,
		"grace":        r.Grace.String(),
		"gate_wait_ms": r.GateWait.Milliseconds(), "mark_ms": r.MarkDuration.Milliseconds(),
		"sweep_ms": r.SweepDuration.Milliseconds(),
	}
}

// Phase names passed to Engine.AfterPhase.
const (
	PhaseMetadata = "metadata" // manifest and layer links removed, index updated
	PhaseFiles    = "files"    // blob files removed
)

// Engine collects garbage in one storage driver.
type Engine struct {
	// Driver is distribution's storage driver (the App's, captured).
	Driver storagedriver.StorageDriver
	// Grace: blobs (and, with RemoveUntagged, manifests) younger than this
	// are never removed.
	Grace time.Duration
	// Gate, when set, is held closed during mark and sweep, and its record
	// of recently named digests protects them.
	Gate *Gate
	// OnManifestsRemoved brings the repository index in line after the
	// metadata phase removed manifests (optional).
	OnManifestsRemoved func(ctx context.Context, removed []ManifestRef) error
	// AfterRemove is called, with the gate still closed, after a run that
	// may have removed blobs or links: the server resets its blob
	// descriptor cache there, so a swept blob answers 404, not a cached 200.
	AfterRemove func()
	// Released returns the blobs repository deletions released (optional;
	// see RepositoryBlobs). Those no repository links any more are removed
	// regardless of the grace period.
	Released func(ctx context.Context) ([]digest.Digest, error)
	// ForgetReleased drops releases recorded before t, after a completed
	// collection (optional).
	ForgetReleased func(ctx context.Context, before time.Time) error
	// AfterPhase is a test hook called after each phase; an error stops the
	// run there (simulating a crash between phases).
	AfterPhase func(phase string) error
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	now func() time.Time
}

func (e *Engine) clock() time.Time {
	if e.now != nil {
		return e.now()
	}
	return time.Now()
}

func (e *Engine) log() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.Default()
}

// protected reports whether an unreferenced blob or manifest must stay:
// written within the grace period, or named by a request within it.
func (e *Engine) protected(opts Options, d digest.Digest, mod, now time.Time) bool {
	g := e.grace(opts)
	if g > 0 && now.Sub(mod) < g {
		return true
	}
	if g == 0 && opts.Grace != nil {
		return false // the operator asked for no grace at all
	}
	return e.Gate.Recent(d)
}

func (e *Engine) lock(ctx context.Context) (func(), time.Duration, error) {
	if e.Gate == nil {
		return func() {}, 0, nil
	}
	start := time.Now()
	unlock, err := e.Gate.Lock(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("gc: closing the write gate: %w", err)
	}
	return unlock, time.Since(start), nil
}

// Run marks and sweeps once. With a Gate, writes wait from the start of
// the mark to the end of the sweep.
func (e *Engine) Run(ctx context.Context, opts Options) (*Result, error) {
	if e.Driver == nil {
		return nil, errors.New("gc: no storage driver")
	}
	unlock, waited, err := e.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res := &Result{DryRun: opts.DryRun, GateWait: waited, Grace: e.grace(opts)}
	runStart := e.clock()

	markStart := time.Now()
	marked, removeManifests, err := e.mark(ctx, opts, res)
	if err != nil {
		return res, err
	}
	res.MarkDuration = time.Since(markStart)

	sweepStart := time.Now()
	err = e.sweep(ctx, opts, marked, removeManifests, res)
	res.SweepDuration = time.Since(sweepStart)
	if !opts.DryRun && e.AfterRemove != nil {
		e.AfterRemove()
	}
	if err == nil && !opts.DryRun && e.ForgetReleased != nil {
		if ferr := e.ForgetReleased(ctx, runStart); ferr != nil {
			err = fmt.Errorf("gc: %w", ferr)
		}
	}
	e.log().Info("gc finished", "dry_run", opts.DryRun, "remove_untagged", opts.RemoveUntagged,
		"repositories", res.Repositories, "blobs_marked", res.BlobsMarked, "blobs_removed", res.BlobsRemoved,
		"bytes_freed", res.BytesFreed, "manifests_removed", res.ManifestsRemoved, "blobs_protected", res.BlobsProtected,
		"gate_wait", res.GateWait, "mark", res.MarkDuration, "sweep", res.SweepDuration, "err", err)
	return res, err
}

// repoMark is the mark state of the scan.
type repoMark struct {
	repos       map[string]*repoScan
	rootExists  bool
	marked      map[digest.Digest]struct{}
	markedBlobs int
}

// manifestInfo is what the mark needs from one manifest.
type manifestInfo struct {
	refs    []digest.Digest
	subject digest.Digest
	broken  bool // revision link without readable content
}

func (e *Engine) mark(ctx context.Context, opts Options, res *Result) (*repoMark, []ManifestRef, error) {
	repos, rootExists, err := scanRepositories(ctx, e.Driver, scanMode{tagHistory: opts.RemoveUntagged, revisionTimes: opts.RemoveUntagged})
	if err != nil {
		return nil, nil, fmt.Errorf("gc: mark: scanning repositories: %w", err)
	}
	ns, err := storage.NewRegistry(ctx, e.Driver)
	if err != nil {
		return nil, nil, fmt.Errorf("gc: mark: %w", err)
	}
	m := &repoMark{repos: repos, rootExists: rootExists, marked: map[digest.Digest]struct{}{}}
	names := make([]string, 0, len(repos))
	for n := range repos {
		names = append(names, n)
	}
	sort.Strings(names)
	now := e.clock()
	var remove []ManifestRef
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		r := repos[name]
		drop, err := e.markRepo(ctx, ns, r, opts, m.marked, now, res)
		if err != nil {
			return nil, nil, fmt.Errorf("gc: mark: repository %s: %w", name, err)
		}
		remove = append(remove, drop...)
		if len(r.revisions) > 0 || len(r.tags) > 0 {
			res.Repositories++
		}
	}
	res.BlobsMarked = len(m.marked)
	return m, remove, nil
}

// markRepo marks what one repository keeps and returns the manifests it
// drops (RemoveUntagged only).
func (e *Engine) markRepo(ctx context.Context, ns distribution.Namespace, r *repoScan, opts Options,
	marked map[digest.Digest]struct{}, now time.Time, res *Result) ([]ManifestRef, error) {
	mark := func(d digest.Digest) {
		if d != "" {
			marked[d] = struct{}{}
			marked[r.canonical(d)] = struct{}{}
		}
	}
	// Tag targets are always kept, even if their revision link is gone.
	for _, t := range r.tags {
		mark(t)
	}
	named, err := reference.WithName(r.name)
	if err != nil {
		// Not servable, but be conservative: keep whatever it links to.
		e.log().Warn("gc: repository with an invalid name; keeping everything it links", "repository", r.name, "err", err)
		for d := range r.revisions {
			mark(d)
		}
		for d := range r.layers {
			mark(d)
		}
		return nil, nil
	}
	repo, err := ns.Repository(ctx, named)
	if err != nil {
		return nil, err
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		return nil, err
	}
	// Revisions under an alias digest (sha512) point at a canonical one
	// and share its fate.
	infos := make(map[digest.Digest]*manifestInfo, len(r.revisions))
	aliases := map[digest.Digest][]digest.Digest{}
	for d, l := range r.revisions {
		if l.target != "" && l.target != d {
			aliases[l.target] = append(aliases[l.target], d)
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		info, err := e.readManifest(ctx, ms, r.name, d, opts.RemoveUntagged)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", d, err)
		}
		if info == nil { // deleted: the directory outlives the link
			delete(r.revisions, d)
			continue
		}
		infos[d] = info
	}
	protected := func(d digest.Digest) bool {
		if e.protected(opts, d, r.revisions[d].mod, now) {
			return true
		}
		for _, a := range aliases[d] {
			if e.protected(opts, a, r.revisions[a].mod, now) {
				return true
			}
		}
		return false
	}

	kept := make(map[digest.Digest]bool, len(infos))
	if !opts.RemoveUntagged {
		for d := range infos {
			kept[d] = true
		}
	} else {
		var queue []digest.Digest
		keep := func(d digest.Digest) {
			d = r.canonical(d)
			if _, ok := infos[d]; ok && !kept[d] {
				kept[d] = true
				queue = append(queue, d)
			}
		}
		for _, t := range r.tags {
			keep(t)
		}
		for d, info := range infos {
			// Young manifests (an index's children pushed before the
			// index), recently named ones and unreadable ones stay.
			if info.broken || protected(d) {
				keep(d)
			}
		}
		for {
			for len(queue) > 0 {
				d := queue[0]
				queue = queue[1:]
				for _, ref := range infos[d].refs {
					keep(ref)
				}
			}
			// Referrers of kept manifests are kept.
			for d, info := range infos {
				if !kept[d] && info.subject != "" && kept[r.canonical(info.subject)] {
					keep(d)
				}
			}
			if len(queue) == 0 {
				break
			}
		}
	}

	var drop []ManifestRef
	dropRef := func(d digest.Digest) {
		ref := ManifestRef{Repository: r.name, Digest: d}
		for tag, entries := range r.tagIndex {
			for _, x := range entries {
				if x == d {
					ref.Tags = append(ref.Tags, tag)
				}
			}
		}
		sort.Strings(ref.Tags)
		drop = append(drop, ref)
	}
	for d, info := range infos {
		if !kept[d] {
			dropRef(d)
			for _, a := range aliases[d] {
				dropRef(a)
			}
			continue
		}
		res.ManifestsMarked++
		mark(d)
		for _, a := range aliases[d] {
			mark(a)
		}
		for _, ref := range info.refs {
			mark(ref)
		}
	}
	// Alias revisions whose canonical revision is missing: keep whatever
	// they point at (reconcile deals with them).
	for target, as := range aliases {
		if _, ok := infos[target]; !ok {
			mark(target)
			for _, a := range as {
				mark(a)
			}
		}
	}
	sort.Slice(drop, func(i, j int) bool { return drop[i].Digest < drop[j].Digest })
	return drop, nil
}

// readManifest returns a manifest's references (and subject), or nil if
// the revision was deleted (distribution removes the link file, not its
// directory). Content distribution cannot parse is scanned for every
// "digest" it mentions, so that nothing it might reference is swept.
func (e *Engine) readManifest(ctx context.Context, ms distribution.ManifestService, repo string, d digest.Digest, wantSubject bool) (*manifestInfo, error) {
	info := &manifestInfo{}
	m, err := ms.Get(ctx, d)
	if err != nil {
		var unknownRev distribution.ErrManifestUnknownRevision
		if errors.As(err, &unknownRev) || errors.Is(err, distribution.ErrBlobUnknown) || isNotFound(err) {
			ok, serr := exists(ctx, e.Driver, revisionLinkPath(repo, d))
			if serr != nil {
				return nil, serr
			}
			if !ok {
				return nil, nil
			}
			e.log().Warn("gc: manifest revision without content (run reconcile)", "repository", repo, "digest", d)
			info.broken = true
			return info, nil
		}
		// Unparseable: fall back to a generic scan of the raw content.
		raw, rerr := e.Driver.GetContent(ctx, blobDataPath(d))
		if rerr != nil {
			return nil, err
		}
		e.log().Warn("gc: manifest distribution cannot parse; keeping every digest it mentions", "digest", d, "err", err)
		info.refs = scanDigests(raw)
		return info, nil
	}
	for _, desc := range m.References() {
		info.refs = append(info.refs, desc.Digest)
	}
	if wantSubject {
		if _, payload, err := m.Payload(); err == nil {
			var s struct {
				Subject *struct {
					Digest digest.Digest `json:"digest"`
				} `json:"subject"`
			}
			if json.Unmarshal(payload, &s) == nil && s.Subject != nil {
				info.subject = s.Subject.Digest
			}
		}
	}
	return info, nil
}

// scanDigests collects every valid digest string in a JSON document.
func scanDigests(raw []byte) []digest.Digest {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	var out []digest.Digest
	var visit func(any)
	visit = func(x any) {
		switch t := x.(type) {
		case map[string]any:
			for _, y := range t {
				visit(y)
			}
		case []any:
			for _, y := range t {
				visit(y)
			}
		case string:
			if d, err := digest.Parse(t); err == nil {
				out = append(out, d)
			}
		}
	}
	visit(v)
	return out
}

type candidate struct {
	d    digest.Digest
	size int64
}

func (e *Engine) sweep(ctx context.Context, opts Options, m *repoMark, removeManifests []ManifestRef, res *Result) error {
	all, err := listBlobs(ctx, e.Driver)
	if err != nil {
		return fmt.Errorf("gc: sweep: listing blobs: %w", err)
	}
	res.BlobsScanned = len(all)
	if !m.rootExists && len(all) > 0 {
		return fmt.Errorf("gc: sweep: %s is missing but %d blobs exist; refusing to sweep (storage misconfigured?)", reposRoot, len(all))
	}
	now := e.clock()
	// Aliases under which requests may have named a blob.
	aliasOf := map[digest.Digest][]digest.Digest{}
	for _, r := range m.repos {
		for d, l := range r.layers {
			if l.target != "" && l.target != d {
				aliasOf[l.target] = append(aliasOf[l.target], d)
			}
		}
		for d, l := range r.revisions {
			if l.target != "" && l.target != d {
				aliasOf[l.target] = append(aliasOf[l.target], d)
			}
		}
	}
	released, err := e.releasedFree(ctx, m)
	if err != nil {
		return err
	}
	noGrace := opts.Grace != nil && *opts.Grace == 0
	recent := func(d digest.Digest) bool {
		if released[d] || noGrace {
			return false // unreferenced by intent, or the operator said so
		}
		if e.Gate.Recent(d) {
			return true
		}
		for _, a := range aliasOf[d] {
			if e.Gate.Recent(a) {
				return true
			}
		}
		return false
	}
	var cands []candidate
	for _, d := range all {
		if _, ok := m.marked[d]; ok {
			continue
		}
		fi, err := e.Driver.Stat(ctx, blobDataPath(d))
		if err != nil {
			if isNotFound(err) {
				continue // no data file: reconcile's business
			}
			return fmt.Errorf("gc: sweep: %w", err)
		}
		bi := blobInfo{size: fi.Size(), modTime: fi.ModTime()}
		if !released[d] && (e.protected(opts, d, bi.modTime, now) || recent(d)) {
			res.BlobsProtected++
			continue
		}
		cands = append(cands, candidate{d: d, size: bi.size})
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].d < cands[j].d })
	swept := make(map[digest.Digest]bool, len(cands))
	for _, c := range cands {
		swept[c.d] = true
	}

	if opts.DryRun {
		res.ManifestsRemoved = len(removeManifests)
		res.RemovedManifests = removeManifests
		for _, c := range cands {
			res.BlobsRemoved++
			res.BytesFreed += c.size
			res.RemovedBlobs = append(res.RemovedBlobs, c.d)
			if released[c.d] {
				res.BlobsReleased++
			}
		}
		for _, r := range m.repos {
			for d, l := range r.layers {
				if swept[d] || swept[l.target] {
					res.LayerLinksRemoved++
				}
			}
		}
		return nil
	}

	// Metadata phase: manifest revisions (and their tag history), the
	// repository index, and the layer links of blobs about to go.
	vacuum := storage.NewVacuum(ctx, e.Driver)
	for _, mr := range removeManifests {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := vacuum.RemoveManifest(mr.Repository, mr.Digest, mr.Tags); err != nil && !isNotFound(err) {
			return fmt.Errorf("gc: removing manifest %s@%s: %w", mr.Repository, mr.Digest, err)
		}
		_ = e.Driver.Delete(ctx, revisionLinkDir(mr.Repository, mr.Digest))
		res.ManifestsRemoved++
		res.RemovedManifests = append(res.RemovedManifests, mr)
	}
	if len(res.RemovedManifests) > 0 && e.OnManifestsRemoved != nil {
		if err := e.OnManifestsRemoved(ctx, res.RemovedManifests); err != nil {
			return fmt.Errorf("gc: updating the repository index: %w", err)
		}
	}
	// A request may have named a candidate since the decision: keep it.
	for d := range swept {
		if recent(d) {
			delete(swept, d)
			res.BlobsProtected++
		}
	}
	var links []string
	for _, r := range m.repos {
		for d, l := range r.layers {
			if swept[d] || swept[l.target] {
				links = append(links, layerLinkDir(r.name, d))
			}
		}
	}
	n, err := deleteAll(ctx, e.Driver, links)
	res.LayerLinksRemoved = n
	if err != nil {
		return fmt.Errorf("gc: removing layer links: %w", err)
	}
	if e.AfterPhase != nil {
		if err := e.AfterPhase(PhaseMetadata); err != nil {
			return err
		}
	}

	// File phase.
	var dirs []string
	var gone []candidate
	for _, c := range cands {
		if swept[c.d] {
			dirs = append(dirs, blobDir(c.d))
			gone = append(gone, c)
		}
	}
	removed := make([]bool, len(dirs))
	_, err = deleteAllMark(ctx, e.Driver, dirs, removed)
	for i, c := range gone {
		if removed[i] {
			if released[c.d] {
				res.BlobsReleased++
			}
			res.BlobsRemoved++
			res.BytesFreed += c.size
			res.RemovedBlobs = append(res.RemovedBlobs, c.d)
		}
	}
	if err != nil {
		return fmt.Errorf("gc: removing blobs: %w", err)
	}
	if e.AfterPhase != nil {
		if err := e.AfterPhase(PhaseFiles); err != nil {
			return err
		}
	}
	return nil
}

// deleteWorkers bounds concurrent deletions: on a local filesystem they
// overlap metadata updates; on object storage, round trips.
const deleteWorkers = 8

// deleteAll deletes every path (a missing one is not an error) and returns
// how many it deleted.
func deleteAll(ctx context.Context, d storagedriver.StorageDriver, paths []string) (int, error) {
	removed := make([]bool, len(paths))
	return deleteAllMark(ctx, d, paths, removed)
}

// deleteAllMark is deleteAll recording which paths it deleted. It stops
// at the first error (or when ctx ends) and returns it.
func deleteAllMark(ctx context.Context, d storagedriver.StorageDriver, paths []string, removed []bool) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		n        int
		wg       sync.WaitGroup
	)
	next := make(chan int)
	for range min(deleteWorkers, len(paths)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				err := d.Delete(ctx, paths[i])
				mu.Lock()
				switch {
				case err == nil:
					removed[i] = true
					n++
				case isNotFound(err):
				default:
					if firstErr == nil {
						firstErr = fmt.Errorf("%s: %w", paths[i], err)
						cancel()
					}
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range paths {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err() // the caller's context ended
	}
	return n, firstErr
}
