package gc

import (
	"context"
	"errors"
	"path"
	"sort"
	"strings"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
)

// walk visits every entry below from, depth first in name order, like
// distribution's WalkFallback, except that entries (or whole directories)
// that vanish while it walks are skipped instead of aborting the walk:
// uploads complete and repositories are deleted while an online
// collection reads the tree. fn returns whether to descend into a
// directory. A missing from is an empty tree.
func walk(ctx context.Context, d storagedriver.StorageDriver, from string, fn func(fi storagedriver.FileInfo) (bool, error)) error {
	children, err := d.List(ctx, from)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return err
	}
	sort.Strings(children)
	for _, child := range children {
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := d.Stat(ctx, child)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return err
		}
		descend, err := fn(fi)
		if err != nil {
			return err
		}
		if fi.IsDir() && descend {
			if err := walk(ctx, d, child, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

func isNotFound(err error) bool {
	var pnf storagedriver.PathNotFoundError
	return errors.As(err, &pnf)
}

// exists reports whether p exists (errors other than "not found" are
// returned).
func exists(ctx context.Context, d storagedriver.StorageDriver, p string) (bool, error) {
	_, err := d.Stat(ctx, p)
	if err == nil {
		return true, nil
	}
	if isNotFound(err) {
		return false, nil
	}
	return false, err
}

// blobInfo is one blob in blobs/.
type blobInfo struct {
	modTime time.Time
	size    int64
}

// blobScan is what scanBlobs found.
type blobScan struct {
	blobs map[digest.Digest]blobInfo
	// dirs without a data file (a sweep or move interrupted), with their
	// modification time.
	empty map[string]time.Time
}

// scanBlobs lists every blob with its size and modification time.
func scanBlobs(ctx context.Context, d storagedriver.StorageDriver) (*blobScan, error) {
	s := &blobScan{blobs: map[digest.Digest]blobInfo{}, empty: map[string]time.Time{}}
	pending := map[string]time.Time{} // blob dirs seen, not yet known to hold data
	err := walk(ctx, d, blobsRoot, func(fi storagedriver.FileInfo) (bool, error) {
		p := fi.Path()
		rel := strings.TrimPrefix(p, blobsRoot+"/")
		depth := strings.Count(rel, "/") + 1
		if fi.IsDir() {
			if depth == 3 {
				pending[p] = fi.ModTime()
			}
			return depth <= 3, nil
		}
		if dg, ok := digestFromBlobData(p); ok {
			s.blobs[dg] = blobInfo{size: fi.Size(), modTime: fi.ModTime()}
			delete(pending, p[:len(p)-len("/data")])
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	s.empty = pending
	return s, nil
}

// link is one link file: when it was written and the blob it names. The
// directory names the digest a client used; the file names the canonical
// (sha256) digest the blob is stored under. They differ for aliases
// (content pushed by sha512 is stored once, under sha256, and linked under
// both).
type link struct {
	mod    time.Time
	target digest.Digest
}

// listBlobs lists the digests of blobs/ from directory names alone (no
// Stat per blob): a collection needs sizes and times only of the blobs it
// did not mark.
func listBlobs(ctx context.Context, d storagedriver.StorageDriver) ([]digest.Digest, error) {
	algs, err := d.List(ctx, blobsRoot)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []digest.Digest
	for _, a := range algs {
		alg := path.Base(a)
		prefixes, err := d.List(ctx, a)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, err
		}
		for _, pfx := range prefixes {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			ds, err := listDigests(ctx, d, pfx, alg)
			if err != nil {
				return nil, err
			}
			out = append(out, ds...)
		}
	}
	return out, nil
}

// repoScan is one repository as found on storage.
type repoScan struct {
	revisions map[digest.Digest]link     // _manifests/revisions
	tags      map[string]digest.Digest   // tag -> current target ("" if unreadable)
	tagTimes  map[string]time.Time       // tag -> current link mtime
	tagIndex  map[string][]digest.Digest // tag -> history entries
	layers    map[digest.Digest]link     // _layers
	uploads   map[string]time.Time       // upload id -> newest mtime inside
	name      string
}

func newRepoScan(name string) *repoScan {
	return &repoScan{
		name: name, revisions: map[digest.Digest]link{}, tags: map[string]digest.Digest{},
		tagTimes: map[string]time.Time{}, tagIndex: map[string][]digest.Digest{},
		layers: map[digest.Digest]link{}, uploads: map[string]time.Time{},
	}
}

// canonical resolves a digest named in this repository to the digest its
// blob is stored under.
func (r *repoScan) canonical(d digest.Digest) digest.Digest {
	if l, ok := r.layers[d]; ok && l.target != "" {
		return l.target
	}
	if l, ok := r.revisions[d]; ok && l.target != "" {
		return l.target
	}
	return d
}

// readLink reads a link file's target digest ("" if unreadable).
func readLink(ctx context.Context, d storagedriver.StorageDriver, p string) (digest.Digest, error) {
	b, err := d.GetContent(ctx, p)
	if err != nil {
		return "", err
	}
	target, err := digest.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return "", nil
	}
	return target, nil
}

// scanMode says how much scanRepositories looks at.
type scanMode struct {
	// full records every link's modification time, the tag history and
	// upload directories (reconcile). Otherwise (a collection) canonical
	// layer and revision links are only listed — the directory names are
	// the digests — and uploads are skipped.
	full bool
	// tagHistory records tags/<tag>/index entries (RemoveUntagged needs
	// them to remove a manifest's history).
	tagHistory bool
	// revisionTimes records revision link times (RemoveUntagged).
	revisionTimes bool
}

// listDigests lists <dir>/<hex> entries as digests of alg.
func listDigests(ctx context.Context, d storagedriver.StorageDriver, dir, alg string) ([]digest.Digest, error) {
	entries, err := d.List(ctx, dir)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	out := make([]digest.Digest, 0, len(entries))
	for _, e := range entries {
		if dg, ok := digestOf(alg, path.Base(e)); ok {
			out = append(out, dg)
		}
	}
	return out, nil
}

// scanRepositories walks repositories/ once and returns every repository's
// links.
func scanRepositories(ctx context.Context, d storagedriver.StorageDriver, mode scanMode) (map[string]*repoScan, bool, error) {
	withUploads := mode.full
	repos := map[string]*repoScan{}
	get := func(name string) *repoScan {
		r := repos[name]
		if r == nil {
			r = newRepoScan(name)
			repos[name] = r
		}
		return r
	}
	rootExists, err := exists(ctx, d, reposRoot)
	if err != nil {
		return nil, false, err
	}
	upload := func(repo, rest string, mod time.Time) {
		if id, _, _ := strings.Cut(rest, "/"); id != "" {
			r := get(repo)
			if mod.After(r.uploads[id]) {
				r.uploads[id] = mod
			}
		}
	}
	// resolve reads the target of a link whose directory names a
	// non-canonical digest; canonical ones name themselves.
	resolve := func(p string, dg digest.Digest) (digest.Digest, bool, error) {
		if dg.Algorithm() == digest.Canonical {
			return dg, true, nil
		}
		target, err := readLink(ctx, d, p)
		if err != nil {
			if isNotFound(err) {
				return "", false, nil
			}
			return "", false, err
		}
		return target, true, nil
	}
	err = walk(ctx, d, reposRoot, func(fi storagedriver.FileInfo) (bool, error) {
		p := fi.Path()
		if fi.IsDir() {
			repo, area, rest, ok := repoPath(p + "/")
			if !ok {
				return true, nil
			}
			parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
			switch {
			case area == "_uploads":
				if !withUploads {
					return false, nil
				}
				upload(repo, rest, fi.ModTime())
			case !mode.full && area == "_layers" && len(parts) == 1 && parts[0] == string(digest.Canonical):
				ds, err := listDigests(ctx, d, p, parts[0])
				if err != nil {
					return false, err
				}
				r := get(repo)
				for _, dg := range ds {
					r.layers[dg] = link{target: dg}
				}
				return false, nil
			case !mode.full && !mode.revisionTimes && area == "_manifests" && len(parts) == 2 && parts[0] == "revisions" && parts[1] == string(digest.Canonical):
				ds, err := listDigests(ctx, d, p, parts[1])
				if err != nil {
					return false, err
				}
				r := get(repo)
				for _, dg := range ds {
					r.revisions[dg] = link{target: dg}
				}
				return false, nil
			case !mode.full && !mode.tagHistory && area == "_manifests" && len(parts) == 3 && parts[0] == "tags" && parts[2] == "index":
				return false, nil
			}
			return true, nil
		}
		kind, repo, tag, dg := classifyLink(p)
		switch kind {
		case linkUpload:
			_, _, rest, _ := repoPath(p)
			upload(repo, rest, fi.ModTime())
		case linkLayer, linkRevision:
			target, ok, err := resolve(p, dg)
			if err != nil || !ok {
				return false, err
			}
			if kind == linkLayer {
				get(repo).layers[dg] = link{mod: fi.ModTime(), target: target}
			} else {
				get(repo).revisions[dg] = link{mod: fi.ModTime(), target: target}
			}
		case linkTagIndex:
			r := get(repo)
			r.tagIndex[tag] = append(r.tagIndex[tag], dg)
		case linkTagCurrent:
			target, err := readLink(ctx, d, p)
			if err != nil {
				if isNotFound(err) {
					return false, nil
				}
				return false, err
			}
			r := get(repo)
			r.tagTimes[tag] = fi.ModTime()
			r.tags[tag] = target
		}
		return false, nil
	})
	if err != nil {
		return nil, false, err
	}
	return repos, rootExists, nil
}
