package adminsvc

import (
	"context"
	"errors"

	"git.wntrmute.dev/kyle/mcr/gc"
	"git.wntrmute.dev/kyle/mcr/store"
)

// GCOptions are a run's options.
type GCOptions struct {
	DryRun, RemoveUntagged bool
}

// GCStatus is whether a run is in progress and the newest run (nil before
// the first).
type GCStatus struct {
	Running bool
	LastRun *store.GCRun
}

// StartGC starts a garbage collection (or, with reconcile, a storage
// reconciliation) in the background and returns its id; while one runs it
// is FailedPrecondition (409 on /v1).
func (s *Service) StartGC(_ context.Context, c Caller, reconcile bool, o GCOptions) (int64, error) {
	if err := RequireAdmin(c.Principal); err != nil {
		return 0, err
	}
	if s.opts.GC == nil {
		return 0, Errorf(Unimplemented, "garbage collection is not available")
	}
	actorID, actor := c.actor()
	id, err := s.opts.GC.Start(gc.Request{Options: gc.Options{DryRun: o.DryRun, RemoveUntagged: o.RemoveUntagged},
		Reconcile: reconcile, IP: c.IP, ActorID: actorID, Actor: actor})
	if err != nil {
		if errors.Is(err, gc.ErrRunning) {
			return 0, Errorf(FailedPrecondition, "%s", err.Error())
		}
		return 0, internal("starting garbage collection failed", err)
	}
	return id, nil
}

// GCStatus reports garbage collection state (admins only).
func (s *Service) GCStatus(ctx context.Context, c Caller) (*GCStatus, error) {
	if err := RequireAdmin(c.Principal); err != nil {
		return nil, err
	}
	if s.opts.GC == nil {
		return nil, Errorf(Unimplemented, "garbage collection is not available")
	}
	running, last, err := s.opts.GC.Status(ctx)
	if err != nil {
		return nil, internal("reading garbage collection status failed", err)
	}
	return &GCStatus{Running: running, LastRun: last}, nil
}
