package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/distribution/reference"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/gc"
	"git.wntrmute.dev/kyle/mcr/notifications"
	"git.wntrmute.dev/kyle/mcr/store"
)

// deleteRepository removes every manifest, tag and link of a repository
// through distribution, then records repo_deleted (which also drops it
// from the index) before answering.
func deleteRepository(ctx context.Context, capt *captured, st *store.Store, sink *notifications.Sink, name string, actor *identity.Principal, ip string) error {
	ns, driver, err := capt.get()
	if err != nil {
		return err
	}
	named, err := reference.WithName(name)
	if err != nil {
		return fmt.Errorf("delete repository %q: %w", name, err)
	}
	remover, ok := ns.(interface {
		Remove(ctx context.Context, name reference.Named) error
	})
	if !ok {
		return fmt.Errorf("delete repository %q: storage cannot remove repositories", name)
	}
	// Its blobs are unreferenced by intent once it is gone: the next
	// collection may remove them without waiting for the grace period.
	// Recorded first; a blob still linked (here or elsewhere) stays.
	blobs, err := gc.RepositoryBlobs(ctx, driver, name)
	if err != nil {
		return fmt.Errorf("delete repository %q: %w", name, err)
	}
	ds := make([]string, len(blobs))
	for i, b := range blobs {
		ds[i] = b.String()
	}
	if err := st.ReleaseBlobs(ctx, name, ds); err != nil {
		return fmt.Errorf("delete repository %q: %w", name, err)
	}
	if err := remover.Remove(ctx, named); err != nil {
		return fmt.Errorf("delete repository %q: %w", name, err)
	}
	ev := store.AuditEvent{Type: notifications.RepoDeleted, Repository: name, IP: ip}
	if actor != nil {
		ev.ActorID, ev.Actor = actor.Subject, actor.Username
	}
	return sink.Write(notifications.Event{Audit: ev, Op: &store.IndexOp{Kind: store.OpRepoDelete, Repository: name}})
}

// every runs fn after first, then every interval, until the returned stop
// is called (which waits for a run in progress): the one loop behind the
// server's background maintenance.
func every(first, interval time.Duration, fn func(ctx context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for wait := first; sleepCtx(ctx, wait); wait = interval {
			fn(ctx)
		}
	}()
	return func() { cancel(); <-done }
}

// startAuditPruner deletes audit rows older than retentionDays in small
// batches, hourly, so the table stays bounded without long write locks.
func startAuditPruner(st *store.Store, retentionDays int) (stop func()) {
	if retentionDays <= 0 {
		return func() {}
	}
	return every(time.Minute, time.Hour, func(ctx context.Context) {
		cutoff := time.Now().AddDate(0, 0, -retentionDays)
		var total int64
		for ctx.Err() == nil {
			n, err := st.PruneAudit(ctx, cutoff, 1000)
			if err != nil {
				slog.Warn("audit retention", "err", err)
				break
			}
			total += n
			if n < 1000 || !sleepCtx(ctx, 50*time.Millisecond) { // let writers in between batches
				break
			}
		}
		if total > 0 {
			slog.Info("audit retention pruned rows", "rows", total, "older_than", cutoff.Format(time.RFC3339))
		}
	})
}

// startOptimizer runs the store's PRAGMA optimize hourly, as SQLite
// recommends for long-lived connections: the audit log grows by orders of
// magnitude, and the planner's statistics must follow (Store.Optimize).
func startOptimizer(st *store.Store) (stop func()) {
	return every(time.Hour, time.Hour, func(ctx context.Context) {
		if err := st.Optimize(ctx); err != nil && ctx.Err() == nil {
			slog.Warn("database statistics not updated", "err", err)
		}
	})
}

// uploadService lists and purges blob uploads on the App's storage.
type uploadService struct{ capt *captured }

func (u uploadService) List(ctx context.Context) ([]gc.Upload, error) {
	_, d, err := u.capt.get()
	if err != nil {
		return nil, err
	}
	return gc.ListUploads(ctx, d)
}

func (u uploadService) Purge(ctx context.Context, olderThan time.Duration) ([]gc.Upload, error) {
	_, d, err := u.capt.get()
	if err != nil {
		return nil, err
	}
	purged, err := gc.PurgeUploads(ctx, d, olderThan, time.Now())
	var bytes int64
	for _, p := range purged {
		bytes += p.Size
	}
	slog.Info("uploads purged", "older_than", olderThan, "uploads", len(purged), "bytes", bytes, "err", err)
	return purged, err
}
