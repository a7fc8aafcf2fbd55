package gc

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
)

// candidate is an unmarked, unprotected blob the sweep may remove.
type candidate struct {
	d    digest.Digest
	size int64
}

// sweep removes what the mark left unmarked: the metadata phase (manifest
// revisions, the repository index, layer links) first, the file phase
// (blob directories) second.
func (e *Engine) sweep(ctx context.Context, opts Options, m *repoMark, removeManifests []ManifestRef, res *Result) error {
	all, err := listBlobs(ctx, e.Driver)
	if err != nil {
		return fmt.Errorf("gc: sweep: listing blobs: %w", err)
	}
	res.BlobsScanned = len(all)
	if !m.rootExists && len(all) > 0 {
		return fmt.Errorf("gc: sweep: %s is missing but %d blobs exist; refusing to sweep (storage misconfigured?)", reposRoot, len(all))
	}
	aliases := m.blobAliases()
	if m.released, err = e.releasedFree(ctx, m); err != nil {
		return err
	}
	m.noGrace = opts.Grace != nil && *opts.Grace == 0
	cands, err := e.candidates(ctx, opts, all, m, aliases, res)
	if err != nil {
		return err
	}
	swept := make(map[digest.Digest]bool, len(cands))
	for _, c := range cands {
		swept[c.d] = true
	}
	if opts.DryRun {
		reportDryRun(m, removeManifests, cands, swept, res)
		return nil
	}
	if err := e.removeMetadata(ctx, m, removeManifests, swept, aliases, res); err != nil {
		return err
	}
	if e.AfterPhase != nil {
		if err := e.AfterPhase(PhaseMetadata); err != nil {
			return err
		}
	}
	if err := e.removeFiles(ctx, cands, swept, m.released, res); err != nil {
		return err
	}
	if e.AfterPhase != nil {
		if err := e.AfterPhase(PhaseFiles); err != nil {
			return err
		}
	}
	return nil
}

// aliasIndex maps a canonical digest to the alias digests (sha512) under
// which requests may have named it.
type aliasIndex map[digest.Digest][]digest.Digest

// blobAliases collects the alias links of every repository.
func (m *repoMark) blobAliases() aliasIndex {
	aliasOf := aliasIndex{}
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
	return aliasOf
}

// keepRecent reports whether d must stay because a request named it (or
// an alias) within the grace period — unless a repository deletion
// released it or the operator asked for no grace.
func (m *repoMark) keepRecent(g *Gate, a aliasIndex, d digest.Digest) bool {
	if m.released[d] || m.noGrace {
		return false
	}
	return a.recent(g, d)
}

// recent reports whether a request named d, or an alias of it, within the
// grace period.
func (a aliasIndex) recent(g *Gate, d digest.Digest) bool {
	if g.Recent(d) {
		return true
	}
	for _, x := range a[d] {
		if g.Recent(x) {
			return true
		}
	}
	return false
}

// candidates returns the unmarked blobs that are neither young nor
// recently named, sorted by digest; it counts the protected ones.
func (e *Engine) candidates(ctx context.Context, opts Options, all []digest.Digest, m *repoMark, aliases aliasIndex, res *Result) ([]candidate, error) {
	now := e.clock()
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
			return nil, fmt.Errorf("gc: sweep: %w", err)
		}
		if !m.released[d] && (e.protected(opts, d, fi.ModTime(), now) || m.keepRecent(e.Gate, aliases, d)) {
			res.BlobsProtected++
			continue
		}
		cands = append(cands, candidate{d: d, size: fi.Size()})
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].d < cands[j].d })
	return cands, nil
}

// reportDryRun fills the result with what a real sweep would remove.
func reportDryRun(m *repoMark, removeManifests []ManifestRef, cands []candidate, swept map[digest.Digest]bool, res *Result) {
	res.ManifestsRemoved = len(removeManifests)
	res.RemovedManifests = removeManifests
	for _, c := range cands {
		res.BlobsRemoved++
		res.BytesFreed += c.size
		res.RemovedBlobs = append(res.RemovedBlobs, c.d)
		if m.released[c.d] {
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
}

// removeMetadata is the metadata phase: manifest revisions (and their tag
// history), the repository index, and the layer links of blobs about to
// go. A candidate a request named since the decision is taken out of
// swept and kept.
func (e *Engine) removeMetadata(ctx context.Context, m *repoMark, removeManifests []ManifestRef, swept map[digest.Digest]bool, aliases aliasIndex, res *Result) error {
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
		if m.keepRecent(e.Gate, aliases, d) {
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
	return nil
}

// removeFiles is the file phase: the directories of the candidates still
// in swept; only blobs actually removed are counted.
func (e *Engine) removeFiles(ctx context.Context, cands []candidate, swept, released map[digest.Digest]bool, res *Result) error {
	var dirs []string
	var gone []candidate
	for _, c := range cands {
		if swept[c.d] {
			dirs = append(dirs, blobDir(c.d))
			gone = append(gone, c)
		}
	}
	removed := make([]bool, len(dirs))
	_, err := deleteAllMark(ctx, e.Driver, dirs, removed)
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
