package gc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// repoMark is the mark state of the scan: what the sweep needs to know.
type repoMark struct {
	repos  map[string]*repoScan
	marked map[digest.Digest]struct{}
	// released are blobs a repository deletion released that no
	// repository links any more (removed regardless of grace); noGrace
	// is an operator's --grace 0s (recently named digests not kept).
	released   map[digest.Digest]bool
	rootExists bool
	noGrace    bool
}

// manifestInfo is what the mark needs from one manifest.
type manifestInfo struct {
	subject digest.Digest
	refs    []digest.Digest
	broken  bool // revision link without readable content
}

// mark scans every repository and marks what each keeps; it returns the
// mark state and the manifests to remove (RemoveUntagged only).
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
		rm := &repoMarker{engine: e, repo: r, marked: m.marked, now: now, opts: opts}
		drop, err := rm.run(ctx, ns, opts, res)
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

// repoMarker marks what one repository keeps.
type repoMarker struct {
	engine *Engine
	repo   *repoScan
	marked map[digest.Digest]struct{} // shared by all repositories
	now    time.Time

	// infos holds the readable canonical revisions; aliases maps a
	// canonical digest to the alias revisions (sha512) that point at it
	// and share its fate.
	infos   map[digest.Digest]*manifestInfo
	aliases map[digest.Digest][]digest.Digest

	opts Options
}

// run marks the repository's kept manifests and what they reference, and
// returns the manifests it drops (RemoveUntagged only).
func (rm *repoMarker) run(ctx context.Context, ns distribution.Namespace, opts Options, res *Result) ([]ManifestRef, error) {
	r := rm.repo
	// Tag targets are always kept, even if their revision link is gone.
	for _, t := range r.tags {
		rm.mark(t)
	}
	named, err := reference.WithName(r.name)
	if err != nil {
		// Not servable, but be conservative: keep whatever it links to.
		rm.engine.log().Warn("gc: repository with an invalid name; keeping everything it links", "repository", r.name, "err", err)
		for d := range r.revisions {
			rm.mark(d)
		}
		for d := range r.layers {
			rm.mark(d)
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
	if err := rm.readRevisions(ctx, ms, opts.RemoveUntagged); err != nil {
		return nil, err
	}
	var kept map[digest.Digest]bool
	if opts.RemoveUntagged {
		kept = rm.reachable()
	} else {
		kept = make(map[digest.Digest]bool, len(rm.infos))
		for d := range rm.infos {
			kept[d] = true
		}
	}
	return rm.markKept(kept, res), nil
}

// mark marks a digest and its canonical form.
func (rm *repoMarker) mark(d digest.Digest) {
	if d != "" {
		rm.marked[d] = struct{}{}
		rm.marked[rm.repo.canonical(d)] = struct{}{}
	}
}

// readRevisions reads every canonical revision into infos and records the
// alias revisions; a revision whose link is gone is forgotten.
func (rm *repoMarker) readRevisions(ctx context.Context, ms distribution.ManifestService, wantSubject bool) error {
	r := rm.repo
	rm.infos = make(map[digest.Digest]*manifestInfo, len(r.revisions))
	rm.aliases = map[digest.Digest][]digest.Digest{}
	for d, l := range r.revisions {
		if l.target != "" && l.target != d {
			rm.aliases[l.target] = append(rm.aliases[l.target], d)
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := rm.engine.readManifest(ctx, ms, r.name, d, wantSubject)
		if err != nil {
			return fmt.Errorf("manifest %s: %w", d, err)
		}
		if info == nil { // deleted: the directory outlives the link
			delete(r.revisions, d)
			continue
		}
		rm.infos[d] = info
	}
	return nil
}

// protected reports whether a revision, or an alias of it, is young or
// recently named.
func (rm *repoMarker) protected(d digest.Digest) bool {
	r, e := rm.repo, rm.engine
	if e.protected(rm.opts, d, r.revisions[d].mod, rm.now) {
		return true
	}
	for _, a := range rm.aliases[d] {
		if e.protected(rm.opts, a, r.revisions[a].mod, rm.now) {
			return true
		}
	}
	return false
}

// reachable returns the revisions RemoveUntagged keeps: tag targets,
// young, recently named and unreadable ones, everything they reference
// (index children), and referrers of kept manifests, to a fixed point.
func (rm *repoMarker) reachable() map[digest.Digest]bool {
	r := rm.repo
	kept := make(map[digest.Digest]bool, len(rm.infos))
	var queue []digest.Digest
	keep := func(d digest.Digest) {
		d = r.canonical(d)
		if _, ok := rm.infos[d]; ok && !kept[d] {
			kept[d] = true
			queue = append(queue, d)
		}
	}
	for _, t := range r.tags {
		keep(t)
	}
	for d, info := range rm.infos {
		// Young manifests (an index's children pushed before the
		// index), recently named ones and unreadable ones stay.
		if info.broken || rm.protected(d) {
			keep(d)
		}
	}
	for {
		for len(queue) > 0 {
			d := queue[0]
			queue = queue[1:]
			for _, ref := range rm.infos[d].refs {
				keep(ref)
			}
		}
		// Referrers of kept manifests are kept.
		for d, info := range rm.infos {
			if !kept[d] && info.subject != "" && kept[r.canonical(info.subject)] {
				keep(d)
			}
		}
		if len(queue) == 0 {
			break
		}
	}
	return kept
}

// markKept marks the kept revisions, their aliases and references, and
// returns the dropped ones (with their aliases), sorted by digest.
func (rm *repoMarker) markKept(kept map[digest.Digest]bool, res *Result) []ManifestRef {
	var drop []ManifestRef
	for d, info := range rm.infos {
		if !kept[d] {
			drop = append(drop, rm.dropRef(d))
			for _, a := range rm.aliases[d] {
				drop = append(drop, rm.dropRef(a))
			}
			continue
		}
		res.ManifestsMarked++
		rm.mark(d)
		for _, a := range rm.aliases[d] {
			rm.mark(a)
		}
		for _, ref := range info.refs {
			rm.mark(ref)
		}
	}
	// Alias revisions whose canonical revision is missing: keep whatever
	// they point at (reconcile deals with them).
	for target, as := range rm.aliases {
		if _, ok := rm.infos[target]; !ok {
			rm.mark(target)
			for _, a := range as {
				rm.mark(a)
			}
		}
	}
	sort.Slice(drop, func(i, j int) bool { return drop[i].Digest < drop[j].Digest })
	return drop
}

// dropRef names a dropped revision with the tags whose history mentions it.
func (rm *repoMarker) dropRef(d digest.Digest) ManifestRef {
	ref := ManifestRef{Repository: rm.repo.name, Digest: d}
	for tag, entries := range rm.repo.tagIndex {
		for _, x := range entries {
			if x == d {
				ref.Tags = append(ref.Tags, tag)
			}
		}
	}
	sort.Strings(ref.Tags)
	return ref
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
