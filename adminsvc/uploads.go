package adminsvc

import (
	"context"
	"time"

	"git.wntrmute.dev/kyle/mcr/gc"
	"git.wntrmute.dev/kyle/mcr/store"
)

// UploadService lists and purges blob uploads (stale ones a client gave
// up on hold disk space).
type UploadService interface {
	List(ctx context.Context) ([]gc.Upload, error)
	Purge(ctx context.Context, olderThan time.Duration) ([]gc.Upload, error)
}

// ListUploads lists every upload directory (admins only).
func (s *Service) ListUploads(ctx context.Context, c Caller) ([]gc.Upload, error) {
	if err := RequireAdmin(c.Principal); err != nil {
		return nil, err
	}
	if s.opts.Uploads == nil {
		return nil, Errorf(Unimplemented, "upload listing is not available")
	}
	ups, err := s.opts.Uploads.List(ctx)
	if err != nil {
		return nil, internal("listing uploads failed", err)
	}
	return ups, nil
}

// PurgeUploads removes uploads that started at least olderThan ago (a Go
// duration; admins only) and audits uploads_purged.
func (s *Service) PurgeUploads(ctx context.Context, c Caller, olderThan string) ([]gc.Upload, error) {
	if err := RequireAdmin(c.Principal); err != nil {
		return nil, err
	}
	if s.opts.Uploads == nil {
		return nil, Errorf(Unimplemented, "upload purging is not available")
	}
	if olderThan == "" {
		return nil, Errorf(InvalidArgument, "older_than is required (a duration such as 24h)")
	}
	d, err := time.ParseDuration(olderThan)
	if err != nil || d < 0 {
		return nil, Errorf(InvalidArgument, "older_than: want a non-negative duration such as 24h, got %s", Quote(olderThan))
	}
	purged, perr := s.opts.Uploads.Purge(ctx, d)
	var freed int64
	for _, u := range purged {
		freed += u.Size
	}
	if len(purged) > 0 || perr != nil {
		actorID, actor := c.actor()
		details := map[string]any{"older_than": d.String(), "uploads": len(purged), "bytes_freed": freed}
		if perr != nil {
			details["error"] = perr.Error()
		}
		if err := s.audit(ctx, store.AuditEvent{Type: "uploads_purged", ActorID: actorID, Actor: actor, IP: c.IP, Details: details}); err != nil {
			return purged, err
		}
	}
	if perr != nil {
		return purged, internal("purging uploads failed", perr)
	}
	return purged, nil
}

// ReconcileIndex re-derives the repository index from storage where they
// differ (admins only) and audits index_reconciled.
func (s *Service) ReconcileIndex(ctx context.Context, c Caller) (any, error) {
	if err := RequireAdmin(c.Principal); err != nil {
		return nil, err
	}
	if s.opts.ReconcileIndex == nil {
		return nil, Errorf(Unimplemented, "index reconcile is not available")
	}
	res, rerr := s.opts.ReconcileIndex(ctx)
	actorID, actor := c.actor()
	details := map[string]any{"result": res}
	if rerr != nil {
		details["error"] = rerr.Error()
	}
	if err := s.audit(ctx, store.AuditEvent{Type: "index_reconciled", ActorID: actorID, Actor: actor, IP: c.IP, Details: details}); err != nil {
		return nil, err
	}
	if rerr != nil {
		return nil, internal("reconciling the index failed", rerr)
	}
	return res, nil
}
