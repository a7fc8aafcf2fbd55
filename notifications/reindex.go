package notifications

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/distribution/distribution/v3"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"git.wntrmute.dev/kyle/mcr/internal/layout"
	"git.wntrmute.dev/kyle/mcr/store"
)

// storedRepo is one repository as storage holds it: the index rows its
// manifests produce (by digest) and its tags (tag -> digest).
type storedRepo struct {
	manifests map[string]store.IndexOp
	tags      map[string]string
	tagOps    map[string]store.IndexOp
}

// scanStorage walks distribution storage (every repository, manifest and
// tag) and returns what the index should hold, producing the same rows the
// incremental path does. Creation times come from the manifest links.
// progress, when set, is called after each repository.
func scanStorage(ctx context.Context, ns distribution.Namespace, driver storagedriver.StorageDriver, opts ReconcileOptions) (map[string]*storedRepo, error) {
	repoEnum, ok := ns.(distribution.RepositoryEnumerator)
	if !ok {
		return nil, errors.New("reindex: namespace cannot enumerate repositories")
	}
	view := map[string]*storedRepo{}
	err := repoEnum.Enumerate(ctx, func(name string) error {
		if opts.only != nil && !opts.only[name] {
			return nil
		}
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
		sr := &storedRepo{manifests: map[string]store.IndexOp{}, tags: map[string]string{}, tagOps: map[string]store.IndexOp{}}
		view[name] = sr
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
			sr.manifests[op.Digest] = *op
			for _, t := range tagsByDigest[dgst] {
				sr.tags[t] = op.Digest
				sr.tagOps[t] = store.IndexOp{Kind: store.OpManifestPut, Repository: name, Digest: op.Digest,
					MediaType: op.MediaType, Size: op.Size, ArtifactType: op.ArtifactType, Subject: op.Subject,
					Annotations: op.Annotations, Tag: t, Time: at}
			}
			return nil
		})
		if err != nil {
			var pnf storagedriver.PathNotFoundError
			if !errors.As(err, &pnf) {
				return fmt.Errorf("repository %q manifests: %w", name, err)
			}
		}
		if opts.Progress != nil {
			opts.Progress(len(view))
		}
		return nil
	})
	if err != nil {
		var pnf storagedriver.PathNotFoundError
		if !errors.As(err, &pnf) { // an empty registry has no repositories dir
			return nil, fmt.Errorf("reindex: %w", err)
		}
	}
	return view, nil
}

// Reindex rebuilds the repository index from storage (see scanStorage) in
// one transaction. Repositories without manifests are kept, as
// /v2/_catalog keeps them.
func Reindex(ctx context.Context, ns distribution.Namespace, driver storagedriver.StorageDriver, st *store.Store) (repos, manifests int, err error) {
	view, err := scanStorage(ctx, ns, driver, ReconcileOptions{})
	if err != nil {
		return 0, 0, err
	}
	var ops []store.IndexOp
	for name, sr := range view {
		ops = append(ops, store.IndexOp{Kind: store.OpRepoPut, Repository: name})
		for _, op := range sr.manifests {
			ops = append(ops, op)
		}
		for _, op := range sr.tagOps {
			ops = append(ops, op)
		}
		if len(sr.manifests) > 0 {
			repos++
			manifests += len(sr.manifests)
		}
	}
	if err := st.ReplaceIndex(ctx, ops); err != nil {
		return 0, 0, err
	}
	return repos, manifests, nil
}

// ReconcileOptions narrow a reconcile.
type ReconcileOptions struct {
	// Progress is called after each repository walked.
	Progress func(repos int)

	only map[string]bool

	// Repositories, when set, limits the reconcile to these (a repair
	// after a failed metadata write).
	Repositories []string
}

// ReconcileResult says what a reconcile changed in the index.
type ReconcileResult struct {
	Repositories      int `json:"repositories"`
	ManifestsAdded    int `json:"manifests_added"`
	ManifestsRemoved  int `json:"manifests_removed"`
	TagsChanged       int `json:"tags_changed"`
	ReposAdded        int `json:"repositories_added"`
	ReposRemoved      int `json:"repositories_removed"`
	SkippedConcurrent int `json:"skipped_concurrent"`
}

// Changed reports whether the index had drifted.
func (r ReconcileResult) Changed() bool {
	return r.ManifestsAdded+r.ManifestsRemoved+r.TagsChanged+r.ReposAdded+r.ReposRemoved > 0
}

// Reconcile brings the index in line with storage while the registry
// serves: unlike Reindex it only writes the differences, and it checks
// each difference against storage again just before writing it, so a push
// or delete that happened during the walk is not undone (it already
// updated the index itself). Storage is the truth: after a database
// restore, images pushed after the snapshot reappear; after a metadata
// write that failed, the index is repaired.
func Reconcile(ctx context.Context, ns distribution.Namespace, driver storagedriver.StorageDriver, st *store.Store, opts ReconcileOptions) (ReconcileResult, error) {
	var res ReconcileResult
	if len(opts.Repositories) > 0 {
		opts.only = map[string]bool{}
		for _, r := range opts.Repositories {
			opts.only[r] = true
		}
	}
	view, err := scanStorage(ctx, ns, driver, opts)
	if err != nil {
		return res, err
	}
	idx, err := st.IndexContents(ctx)
	if err != nil {
		return res, err
	}
	res.Repositories = len(view)
	var ops []store.IndexOp
	for name, sr := range view {
		live, err := openRepo(ctx, ns, name)
		if err != nil {
			return res, err
		}
		have := idx[name]
		if have == nil {
			have = &store.IndexedRepo{Manifests: map[string]bool{}, Tags: map[string]string{}}
			ops = append(ops, store.IndexOp{Kind: store.OpRepoPut, Repository: name})
			res.ReposAdded++
		}
		for d, op := range sr.manifests {
			if !have.Manifests[d] {
				ops = append(ops, op)
				res.ManifestsAdded++
			}
		}
		for d := range have.Manifests {
			if _, ok := sr.manifests[d]; ok {
				continue
			}
			if live.manifestExists(ctx, d) {
				res.SkippedConcurrent++ // pushed during the walk
				continue
			}
			ops = append(ops, store.IndexOp{Kind: store.OpManifestDelete, Repository: name, Digest: d})
			res.ManifestsRemoved++
		}
		for tag, d := range sr.tags {
			if have.Tags[tag] == d {
				continue
			}
			if now, ok := live.tag(ctx, tag); !ok || now != d {
				res.SkippedConcurrent++ // moved or deleted during the walk
				continue
			}
			ops = append(ops, sr.tagOps[tag])
			res.TagsChanged++
		}
		for tag := range have.Tags {
			if _, ok := sr.tags[tag]; ok {
				continue
			}
			if _, ok := live.tag(ctx, tag); ok {
				res.SkippedConcurrent++
				continue
			}
			ops = append(ops, store.IndexOp{Kind: store.OpTagDelete, Repository: name, Tag: tag})
			res.TagsChanged++
		}
	}
	for name := range idx {
		if _, ok := view[name]; ok || (opts.only != nil && !opts.only[name]) {
			continue
		}
		if _, err := driver.Stat(ctx, layout.RepoDir(name)); err == nil {
			res.SkippedConcurrent++ // created during the walk
			continue
		}
		ops = append(ops, store.IndexOp{Kind: store.OpRepoDelete, Repository: name})
		res.ReposRemoved++
	}
	for len(ops) > 0 {
		n := min(len(ops), 500)
		if err := st.ApplyBatch(ctx, nil, ops[:n]); err != nil {
			return res, fmt.Errorf("reconcile: %w", err)
		}
		ops = ops[n:]
	}
	return res, nil
}

// liveRepo re-reads one repository's storage.
type liveRepo struct {
	ms   distribution.ManifestService
	tags distribution.TagService
}

func openRepo(ctx context.Context, ns distribution.Namespace, name string) (*liveRepo, error) {
	named, err := reference.WithName(name)
	if err != nil {
		return nil, fmt.Errorf("repository %q: %w", name, err)
	}
	repo, err := ns.Repository(ctx, named)
	if err != nil {
		return nil, fmt.Errorf("repository %q: %w", name, err)
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		return nil, fmt.Errorf("repository %q: %w", name, err)
	}
	return &liveRepo{ms: ms, tags: repo.Tags(ctx)}, nil
}

func (l *liveRepo) manifestExists(ctx context.Context, d string) bool {
	dg, err := digest.Parse(d)
	if err != nil {
		return false
	}
	ok, err := l.ms.Exists(ctx, dg)
	return err != nil || ok // unsure: keep the row
}

func (l *liveRepo) tag(ctx context.Context, tag string) (string, bool) {
	desc, err := l.tags.Get(ctx, tag)
	if err != nil {
		return "", false
	}
	return desc.Digest.String(), true
}

func linkTime(ctx context.Context, driver storagedriver.StorageDriver, repo string, dgst digest.Digest) time.Time {
	p := layout.RevisionLinkPath(repo, dgst)
	fi, err := driver.Stat(ctx, p)
	if err != nil {
		return time.Now()
	}
	return fi.ModTime()
}
