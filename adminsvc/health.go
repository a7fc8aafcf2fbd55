package adminsvc

import (
	"context"
	"time"

	"git.wntrmute.dev/kyle/mcr/store"
)

// Health is the server's state: Status "ok" or "degraded"; Checks (only
// with detail) maps database, storage, identity and audit to "ok" or the
// error.
type Health struct {
	Checks map[string]string
	Status string
}

// Health answers while the process serves; with detail it also checks the
// database, storage and identity service (bounded by 5 s). Public.
func (s *Service) Health(ctx context.Context, detail bool) *Health {
	if !detail {
		return &Health{Status: "ok"}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	h := &Health{Status: "ok", Checks: map[string]string{}}
	check := func(name string, f func() error) {
		if f == nil {
			return
		}
		if err := f(); err != nil {
			h.Checks[name] = err.Error()
			h.Status = "degraded"
			return
		}
		h.Checks[name] = "ok"
	}
	check("database", func() error { return s.opts.Store.Healthy(ctx) })
	check("storage", s.opts.StorageCheck)
	check("identity", func() error { return s.opts.Authn.Provider.Ping(ctx) })
	check("audit", s.opts.AuditCheck)
	return h
}

// Snapshot writes a database snapshot (admins only) and audits
// snapshot_created; it returns the snapshot's path on the server.
func (s *Service) Snapshot(ctx context.Context, c Caller) (string, error) {
	if err := RequireAdmin(c.Principal); err != nil {
		return "", err
	}
	if s.opts.Snapshot == nil {
		return "", Errorf(Unimplemented, "snapshots are not available")
	}
	path, err := s.opts.Snapshot(ctx)
	if err != nil {
		return "", internal("writing the snapshot failed", err)
	}
	actorID, actor := c.actor()
	if err := s.audit(ctx, store.AuditEvent{Type: "snapshot_created", ActorID: actorID, Actor: actor, IP: c.IP,
		Details: map[string]any{"path": path}}); err != nil {
		return "", err
	}
	return path, nil
}
