package gc

import (
	"context"
	"fmt"
	"path"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
)

// RepositoryBlobs lists the blobs a repository links (its layers and its
// manifest revisions, resolved to the digest they are stored under). The
// server records them before deleting the repository: once it is gone they
// are unreferenced by intent, not in flight, and the next collection may
// remove them without waiting for the grace period (Engine.Released).
func RepositoryBlobs(ctx context.Context, d storagedriver.StorageDriver, repo string) ([]digest.Digest, error) {
	seen := map[digest.Digest]bool{}
	var out []digest.Digest
	for _, area := range []string{"_layers", "_manifests/revisions"} {
		dir := path.Join(repoDir(repo), area)
		algs, err := d.List(ctx, dir)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("gc: listing %s of %s: %w", area, repo, err)
		}
		for _, a := range algs {
			alg := path.Base(a)
			ds, err := listDigests(ctx, d, a, alg)
			if err != nil {
				return nil, fmt.Errorf("gc: listing %s of %s: %w", area, repo, err)
			}
			for _, dg := range ds {
				target := dg
				if dg.Algorithm() != digest.Canonical {
					t, err := readLink(ctx, d, path.Join(a, dg.Encoded(), "link"))
					if err != nil || t == "" {
						continue // an unreadable alias: nothing to release
					}
					target = t
				}
				if !seen[target] {
					seen[target] = true
					out = append(out, target)
				}
			}
		}
	}
	return out, nil
}

// releasedFree returns the released digests no scanned repository links
// any more: those may go regardless of the grace period.
func (e *Engine) releasedFree(ctx context.Context, m *repoMark) (map[digest.Digest]bool, error) {
	if e.Released == nil {
		return nil, nil
	}
	rel, err := e.Released(ctx)
	if err != nil {
		return nil, fmt.Errorf("gc: reading released blobs: %w", err)
	}
	if len(rel) == 0 {
		return nil, nil
	}
	free := make(map[digest.Digest]bool, len(rel))
	for _, d := range rel {
		free[d] = true
	}
	for _, r := range m.repos {
		for d, l := range r.layers {
			delete(free, d)
			delete(free, l.target)
		}
		for d, l := range r.revisions {
			delete(free, d)
			delete(free, l.target)
		}
	}
	return free, nil
}
