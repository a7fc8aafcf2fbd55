package gc

import (
	"context"
	"fmt"
	"path"
	"sort"
	"time"

	"github.com/opencontainers/go-digest"
)

// ReconcileResult describes one reconcile run.
type ReconcileResult struct {
	RemovedManifests []ManifestRef `json:"-"`

	DryRun bool `json:"dry_run"`
	// Blob directories without a data file (an interrupted delete or move).
	EmptyBlobDirsRemoved int `json:"empty_blob_dirs_removed"`
	// Blobs no link in any repository points to (a crash between the
	// metadata and file phases of a collection).
	OrphanBlobsRemoved int   `json:"orphan_blobs_removed"`
	BytesFreed         int64 `json:"bytes_freed"`
	// Repository links to blobs that no longer exist.
	DanglingLayerLinksRemoved int `json:"dangling_layer_links_removed"`
	DanglingRevisionsRemoved  int `json:"dangling_revisions_removed"`
	BrokenTagsRemoved         int `json:"broken_tags_removed"`
	// Upload directories untouched for longer than the grace period.
	StaleUploadsRemoved int           `json:"stale_uploads_removed"`
	Duration            time.Duration `json:"-"`
}

// Details is the result as gc_runs.details_json.
func (r *ReconcileResult) Details() map[string]any {
	return map[string]any{
		"empty_blob_dirs_removed": r.EmptyBlobDirsRemoved, "orphan_blobs_removed": r.OrphanBlobsRemoved,
		"dangling_layer_links_removed": r.DanglingLayerLinksRemoved,
		"dangling_revisions_removed":   r.DanglingRevisionsRemoved,
		"broken_tags_removed":          r.BrokenTagsRemoved, "stale_uploads_removed": r.StaleUploadsRemoved,
		"duration_ms": r.Duration.Milliseconds(),
	}
}

// Reconcile removes what no blob or link references any more, typically
// after a crash between the phases of a collection (or of distribution's
// own two-step writes). It is conservative: nothing younger than the grace
// period, and nothing a request named within it, is touched.
//
//   - blob directories without a data file;
//   - blobs that no repository link (layer, manifest revision, tag) names;
//   - layer links and manifest revisions whose blob is gone, and tags whose
//     current manifest is gone (the tag could not be pulled anyway);
//   - upload directories with no write for a grace period.
func (e *Engine) Reconcile(ctx context.Context, dryRun bool) (*ReconcileResult, error) {
	unlock, _, err := e.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	start := time.Now()
	res := &ReconcileResult{DryRun: dryRun}
	err = e.reconcile(ctx, dryRun, res)
	res.Duration = time.Since(start)
	if !dryRun && e.AfterRemove != nil {
		e.AfterRemove()
	}
	e.log().Info("gc reconcile finished", "dry_run", dryRun, "empty_blob_dirs", res.EmptyBlobDirsRemoved,
		"orphan_blobs", res.OrphanBlobsRemoved, "bytes_freed", res.BytesFreed,
		"dangling_layer_links", res.DanglingLayerLinksRemoved, "dangling_revisions", res.DanglingRevisionsRemoved,
		"broken_tags", res.BrokenTagsRemoved, "stale_uploads", res.StaleUploadsRemoved, "took", res.Duration, "err", err)
	return res, err
}

func (e *Engine) reconcile(ctx context.Context, dryRun bool, res *ReconcileResult) error {
	repos, rootExists, err := scanRepositories(ctx, e.Driver, scanMode{full: true})
	if err != nil {
		return fmt.Errorf("gc: reconcile: scanning repositories: %w", err)
	}
	blobs, err := scanBlobs(ctx, e.Driver)
	if err != nil {
		return fmt.Errorf("gc: reconcile: scanning blobs: %w", err)
	}
	if !rootExists && len(blobs.blobs) > 0 {
		return fmt.Errorf("gc: reconcile: %s is missing but %d blobs exist; refusing (storage misconfigured?)", reposRoot, len(blobs.blobs))
	}
	now := e.clock()
	old := func(t time.Time) bool { return e.Grace <= 0 || now.Sub(t) >= e.Grace }
	del := func(p string) error {
		if dryRun {
			return nil
		}
		if err := e.Driver.Delete(ctx, p); err != nil && !isNotFound(err) {
			return err
		}
		return nil
	}
	hasBlob := func(d digest.Digest) bool { _, ok := blobs.blobs[d]; return ok }

	names := make([]string, 0, len(repos))
	for n := range repos {
		names = append(names, n)
	}
	sort.Strings(names)

	// 1. Links to blobs that are gone (metadata first, as a collection does).
	referenced := map[digest.Digest]struct{}{}
	for _, name := range names {
		r := repos[name]
		for d, l := range r.layers {
			if l.target != "" && (hasBlob(l.target) || !old(l.mod) || e.Gate.Recent(d) || e.Gate.Recent(l.target)) {
				referenced[l.target] = struct{}{}
				continue
			}
			if l.target == "" && !old(l.mod) {
				continue
			}
			if err := del(layerLinkDir(name, d)); err != nil {
				return fmt.Errorf("gc: reconcile: layer link %s@%s: %w", name, d, err)
			}
			res.DanglingLayerLinksRemoved++
		}
		gone := map[digest.Digest]bool{}
		for d, l := range r.revisions {
			if l.target != "" && (hasBlob(l.target) || !old(l.mod) || e.Gate.Recent(d) || e.Gate.Recent(l.target)) {
				referenced[l.target] = struct{}{}
				continue
			}
			if l.target == "" && !old(l.mod) {
				continue
			}
			gone[d] = true
		}
		for tag, target := range r.tags {
			target = r.canonical(target)
			if target == "" || hasBlob(target) || !old(r.tagTimes[tag]) || e.Gate.Recent(target) {
				if target != "" {
					referenced[target] = struct{}{}
				}
				continue
			}
			if err := del(path.Join(repoDir(name), "_manifests/tags", tag)); err != nil {
				return fmt.Errorf("gc: reconcile: tag %s:%s: %w", name, tag, err)
			}
			res.BrokenTagsRemoved++
		}
		for _, entries := range r.tagIndex {
			for _, d := range entries {
				referenced[r.canonical(d)] = struct{}{}
			}
		}
		var removed []digest.Digest
		for d := range gone {
			removed = append(removed, d)
		}
		sort.Slice(removed, func(i, j int) bool { return removed[i] < removed[j] })
		for _, d := range removed {
			if err := del(revisionLinkDir(name, d)); err != nil {
				return fmt.Errorf("gc: reconcile: manifest %s@%s: %w", name, d, err)
			}
			ref := ManifestRef{Repository: name, Digest: d}
			for tag, entries := range r.tagIndex {
				for _, x := range entries {
					if x == d {
						ref.Tags = append(ref.Tags, tag)
						if err := del(path.Join(repoDir(name), "_manifests/tags", tag, "index", d.Algorithm().String(), d.Encoded())); err != nil {
							return fmt.Errorf("gc: reconcile: tag index %s:%s: %w", name, tag, err)
						}
					}
				}
			}
			res.DanglingRevisionsRemoved++
			res.RemovedManifests = append(res.RemovedManifests, ref)
		}
		// 2. Upload directories nobody has written to for a grace period.
		for id, mod := range r.uploads {
			if !old(mod) {
				continue
			}
			if err := del(path.Join(repoDir(name), "_uploads", id)); err != nil {
				return fmt.Errorf("gc: reconcile: upload %s/%s: %w", name, id, err)
			}
			res.StaleUploadsRemoved++
		}
	}
	if !dryRun && len(res.RemovedManifests) > 0 && e.OnManifestsRemoved != nil {
		if err := e.OnManifestsRemoved(ctx, res.RemovedManifests); err != nil {
			return fmt.Errorf("gc: reconcile: updating the repository index: %w", err)
		}
	}

	// 3. Blobs nothing links to any more, and blob directories without data.
	var orphans []digest.Digest
	for d, bi := range blobs.blobs {
		if _, ok := referenced[d]; ok || e.protected(Options{}, d, bi.modTime, now) {
			continue
		}
		orphans = append(orphans, d)
	}
	sort.Slice(orphans, func(i, j int) bool { return orphans[i] < orphans[j] })
	for _, d := range orphans {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := del(blobDir(d)); err != nil {
			return fmt.Errorf("gc: reconcile: blob %s: %w", d, err)
		}
		res.OrphanBlobsRemoved++
		res.BytesFreed += blobs.blobs[d].size
	}
	var empty []string
	for dir, mod := range blobs.empty {
		if old(mod) {
			empty = append(empty, dir)
		}
	}
	sort.Strings(empty)
	for _, dir := range empty {
		if err := del(dir); err != nil {
			return fmt.Errorf("gc: reconcile: empty blob directory %s: %w", dir, err)
		}
		res.EmptyBlobDirsRemoved++
	}
	return nil
}
