package notifications

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/distribution/distribution/v3"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"git.wntrmute.dev/kyle/mcr/store"
)

// Reindex walks distribution storage (every repository, manifest and tag)
// and rebuilds the repository index from it, producing the same rows the
// incremental path does. Creation times come from the manifest links.
func Reindex(ctx context.Context, ns distribution.Namespace, driver storagedriver.StorageDriver, st *store.Store) (repos, manifests int, err error) {
	repoEnum, ok := ns.(distribution.RepositoryEnumerator)
	if !ok {
		return 0, 0, errors.New("reindex: namespace cannot enumerate repositories")
	}
	var ops []store.IndexOp
	err = repoEnum.Enumerate(ctx, func(name string) error {
		named, err := reference.WithName(name)
		if err != nil {
			return fmt.Errorf("repository %q: %w", name, err)
		}
		repo, err := ns.Repository(ctx, named)
		if err != nil {
			return fmt.Errorf("repository %q: %w", name, err)
		}
		ms, err := repo.Manifests(ctx)
		if err != nil {
			return fmt.Errorf("repository %q: %w", name, err)
		}
		me, ok := ms.(distribution.ManifestEnumerator)
		if !ok {
			return errors.New("reindex: manifest service cannot enumerate")
		}
		tagsByDigest := map[digest.Digest][]string{}
		tags := repo.Tags(ctx)
		all, err := tags.All(ctx)
		if err != nil && !errors.As(err, new(distribution.ErrRepositoryUnknown)) {
			var pnf storagedriver.PathNotFoundError
			if !errors.As(err, &pnf) {
				return fmt.Errorf("repository %q tags: %w", name, err)
			}
		}
		for _, t := range all {
			d, err := tags.Get(ctx, t)
			if err != nil {
				continue // a tag whose link vanished is not in the index either
			}
			tagsByDigest[d.Digest] = append(tagsByDigest[d.Digest], t)
		}
		found := 0
		err = me.Enumerate(ctx, func(dgst digest.Digest) error {
			m, err := ms.Get(ctx, dgst)
			if err != nil {
				return nil // revision link without a blob: not servable, not indexed
			}
			at := linkTime(ctx, driver, name, dgst)
			op, err := IndexOpFor(name, m, "", at)
			if err != nil {
				return fmt.Errorf("manifest %s@%s: %w", name, dgst, err)
			}
			ops = append(ops, *op)
			for _, t := range tagsByDigest[dgst] {
				ops = append(ops, store.IndexOp{Kind: store.OpManifestPut, Repository: name, Digest: op.Digest,
					MediaType: op.MediaType, Size: op.Size, ArtifactType: op.ArtifactType, Subject: op.Subject,
					Annotations: op.Annotations, Tag: t, Time: at})
			}
			found++
			return nil
		})
		if err != nil {
			var pnf storagedriver.PathNotFoundError
			if !errors.As(err, &pnf) {
				return fmt.Errorf("repository %q manifests: %w", name, err)
			}
		}
		if found > 0 {
			repos++
			manifests += found
		}
		return nil
	})
	if err != nil {
		var pnf storagedriver.PathNotFoundError
		if !errors.As(err, &pnf) { // an empty registry has no repositories dir
			return 0, 0, fmt.Errorf("reindex: %w", err)
		}
	}
	if err := st.ReplaceIndex(ctx, ops); err != nil {
		return 0, 0, err
	}
	return repos, manifests, nil
}

func linkTime(ctx context.Context, driver storagedriver.StorageDriver, repo string, dgst digest.Digest) time.Time {
	p := path.Join("/docker/registry/v2/repositories", repo, "_manifests/revisions", dgst.Algorithm().String(), dgst.Encoded(), "link")
	fi, err := driver.Stat(ctx, p)
	if err != nil {
		return time.Now()
	}
	return fi.ModTime()
}
