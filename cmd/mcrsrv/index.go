package main

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/storage"

	"git.wntrmute.dev/kyle/mcr/notifications"
	"git.wntrmute.dev/kyle/mcr/store"
)

// indexer keeps the repository index in line with storage: a reconcile in
// the background at start-up (after a restore, images pushed after the
// snapshot reappear without `mcrsrv reindex`), on demand (POST
// /v1/index/reconcile), and a repair of each repository whose index write
// failed after storage had already changed.
type indexer struct {
	st   *store.Store
	capt *captured

	dirty map[string]bool // guarded by mu
	kick  chan struct{}

	runMu sync.Mutex // one reconcile at a time
	mu    sync.Mutex // guards dirty
}

func newIndexer(st *store.Store) *indexer {
	return &indexer{st: st, dirty: map[string]bool{}, kick: make(chan struct{}, 1)}
}

// markDirty schedules a repair of repo (called by the audit sink).
func (ix *indexer) markDirty(repo string) {
	ix.mu.Lock()
	ix.dirty[repo] = true
	ix.mu.Unlock()
	select {
	case ix.kick <- struct{}{}:
	default:
	}
	slog.Warn("index: a change reached storage but not the index; repairing it from storage", "component", "index", "repository", repo)
}

// reconcile runs one reconcile (all repositories when repos is empty).
func (ix *indexer) reconcile(ctx context.Context, repos []string) (notifications.ReconcileResult, error) {
	ix.runMu.Lock()
	defer ix.runMu.Unlock()
	_, driver, err := ix.capt.get()
	if err != nil {
		return notifications.ReconcileResult{}, err
	}
	// A namespace of our own without the notification middleware: the
	// reconcile's reads are not pulls.
	ns, err := storage.NewRegistry(ctx, driver, storage.EnableDelete)
	if err != nil {
		return notifications.ReconcileResult{}, err
	}
	start := time.Now()
	last := start
	opts := notifications.ReconcileOptions{Repositories: repos, Progress: func(n int) {
		if time.Since(last) >= 10*time.Second {
			last = time.Now()
			slog.Info("index: reconciling with storage", "component", "index", "repositories_walked", n, "elapsed", time.Since(start).Round(time.Second))
		}
	}}
	res, err := notifications.Reconcile(ctx, ns, driver, ix.st, opts)
	lvl := slog.LevelInfo
	if res.Changed() {
		lvl = slog.LevelWarn
	}
	if err != nil {
		lvl = slog.LevelError
	}
	slog.Log(ctx, lvl, "index: reconciled with storage", "component", "index", "repositories", res.Repositories,
		"manifests_added", res.ManifestsAdded, "manifests_removed", res.ManifestsRemoved, "tags_changed", res.TagsChanged,
		"repositories_added", res.ReposAdded, "repositories_removed", res.ReposRemoved,
		"skipped_concurrent", res.SkippedConcurrent, "took", time.Since(start).Round(time.Millisecond), "err", err)
	return res, err
}

// run reconciles everything once, then repairs dirty repositories as they
// come, retrying with backoff while the database refuses, until ctx ends.
func (ix *indexer) run(ctx context.Context) {
	slog.Info("index: reconciling with storage in the background (reads are served meanwhile)", "component", "index")
	backoff := time.Second
	for ctx.Err() == nil {
		if _, err := ix.reconcile(ctx, nil); err == nil {
			break
		}
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, time.Minute)
	}
	backoff = time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-ix.kick:
		}
		for {
			ix.mu.Lock()
			repos := make([]string, 0, len(ix.dirty))
			for r := range ix.dirty {
				repos = append(repos, r)
			}
			ix.dirty = map[string]bool{}
			ix.mu.Unlock()
			if len(repos) == 0 {
				break
			}
			sort.Strings(repos)
			if _, err := ix.reconcile(ctx, repos); err != nil {
				ix.mu.Lock()
				for _, r := range repos {
					ix.dirty[r] = true
				}
				ix.mu.Unlock()
				if !sleepCtx(ctx, backoff) {
					return
				}
				backoff = min(2*backoff, time.Minute)
				continue
			}
			backoff = time.Second
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
