package adminsvc

import (
	"context"
	"errors"
	"time"

	"git.wntrmute.dev/kyle/mcr/gc"
	"git.wntrmute.dev/kyle/mcr/store"
)

// GCOptions are a run's options. Grace, when given, overrides gc.grace
// for this collection (a Go duration, e.g. "0s", "10m"); it does not apply
// to a reconcile.
type GCOptions struct {
	Grace                  string
	DryRun, RemoveUntagged bool
}

// GCStatus is whether a run is in progress and the newest run (nil before
// the first).
type GCStatus struct {
	LastRun *store.GCRun
	Running bool
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
	req := gc.Request{Options: gc.Options{DryRun: o.DryRun, RemoveUntagged: o.RemoveUntagged},
		Reconcile: reconcile, IP: c.IP, ActorID: actorID, Actor: actor}
	if o.Grace != "" {
		if reconcile {
			return 0, Errorf(InvalidArgument, "grace applies to /v1/gc only, not to reconcile")
		}
		g, err := time.ParseDuration(o.Grace)
		if err != nil || g < 0 {
			return 0, Errorf(InvalidArgument, "grace: want a non-negative duration such as 0s, 10m or 1h, got %s", Quote(o.Grace))
		}
		req.Grace = &g
	}
	id, err := s.opts.GC.Start(req)
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
