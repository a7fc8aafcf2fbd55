package cluster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"git.wntrmute.dev/kyle/mcr/gc"
)

// ErrLeaseHeld is returned by Acquire while another member holds a live
// lease.
var ErrLeaseHeld = fmt.Errorf("%w on another replica (it holds the cluster GC lease)", gc.ErrRunning)

// Lease is a named, expiring claim in gc_lease that at most one member
// holds: the holder renews it every TTL/3; if it dies, the lease expires
// after TTL and another member may take it.
type Lease struct {
	Node *Node
	Name string
	TTL  time.Duration
}

// Acquire takes the lease or returns ErrLeaseHeld. The returned context
// is cancelled if the lease is lost (not renewed in time, e.g. the
// database was unreachable for TTL); release gives it back.
func (l *Lease) Acquire(ctx context.Context) (context.Context, func(), error) {
	now := time.Now()
	var holder string
	err := l.Node.db.QueryRowContext(ctx, `INSERT INTO gc_lease(name, holder, expires_at) VALUES (?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE gc_lease.expires_at < ? OR gc_lease.holder = excluded.holder
		RETURNING holder`, l.Name, l.Node.ID, now.Add(l.TTL).UnixNano(), now.UnixNano()).Scan(&holder)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, ErrLeaseHeld
	}
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: lease %s: %w", l.Name, err)
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(l.TTL / 3)
		defer t.Stop()
		deadline := now.Add(l.TTL)
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(lctx, l.TTL/3)
			next := time.Now().Add(l.TTL)
			res, err := l.Node.db.ExecContext(rctx, `UPDATE gc_lease SET expires_at = ? WHERE name = ? AND holder = ?`,
				next.UnixNano(), l.Name, l.Node.ID)
			rcancel()
			if err == nil {
				if n, _ := res.RowsAffected(); n == 1 {
					deadline = next
					continue
				}
				l.Node.opt.Logger.Error("cluster: lease taken over", "lease", l.Name)
				cancel()
				return
			}
			if time.Now().After(deadline) {
				l.Node.opt.Logger.Error("cluster: lease expired (could not renew)", "lease", l.Name, "err", err)
				cancel()
				return
			}
		}
	}()
	release := func() {
		cancel()
		<-done
		rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer rcancel()
		if _, err := l.Node.db.ExecContext(rctx, `DELETE FROM gc_lease WHERE name = ? AND holder = ?`, l.Name, l.Node.ID); err != nil {
			l.Node.opt.Logger.Warn("cluster: releasing lease", "lease", l.Name, "err", err)
		}
	}
	return lctx, release, nil
}

// Holder reports the member holding a live lease ("" if none).
func (l *Lease) Holder(ctx context.Context) (string, error) {
	var holder string
	err := l.Node.db.QueryRowContext(ctx, `SELECT holder FROM gc_lease WHERE name = ? AND expires_at > ?`,
		l.Name, time.Now().UnixNano()).Scan(&holder)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return holder, err
}
