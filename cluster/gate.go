package cluster

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"git.wntrmute.dev/kyle/mcr/gc"
)

// topicGate carries "closed <member>" (that member is collecting: close
// and drain) and "open".
const topicGate = "gc_gate"

// Gate makes a replica's GC write gate cluster-wide. The collecting
// replica (holding the GC lease) closes its own gate, then broadcasts
// "closed": every other replica hands the digests its requests named
// within the grace period to gc_recent, closes its gate (writes wait) and
// drains its tracked writes before acknowledging, and keeps feeding
// gc_recent while closed — so the sweep, which consults gc_recent, never
// removes a blob a client on any replica has just been told exists. A
// replica whose gate is closed for a collector that loses its lease
// (killed) reopens on its own.
type Gate struct {
	Node  *Node
	Local *gc.Gate
	Lease *Lease // the GC lease

	unlock func() // the local gate, held for another replica's collection
	holder string
	mu     sync.Mutex // guards unlock and holder
}

// Install wires the gate into Local (Cluster, Shared) and registers the
// broadcast handler; call before Node.Run.
func (g *Gate) Install() {
	g.Local.Cluster = g
	g.Local.Shared = g
	g.Node.Handle(topicGate, g.apply)
}

// CloseOthers implements gc.ClusterGate.
func (g *Gate) CloseOthers(ctx context.Context) (func(), error) {
	if _, err := g.Node.db.ExecContext(ctx, `DELETE FROM gc_recent WHERE seen_at < ?`,
		time.Now().Add(-g.Local.Grace).UnixNano()); err != nil {
		return nil, err
	}
	if err := g.Node.Broadcast(ctx, topicGate, "closed "+g.Node.ID); err != nil {
		g.reopenOthers()
		return nil, err
	}
	return g.reopenOthers, nil
}

func (g *Gate) reopenOthers() {
	ctx, cancel := context.WithTimeout(context.Background(), g.Node.opt.AckTimeout)
	defer cancel()
	if err := g.Node.Broadcast(ctx, topicGate, "open"); err != nil {
		// Replicas that did not hear it reopen when the lease goes.
		g.Node.opt.Logger.Warn("cluster: reopening the other replicas' gates", "err", err)
	}
}

// apply handles a broadcast on another replica.
func (g *Gate) apply(ctx context.Context, payload string) error {
	holder, closing := strings.CutPrefix(payload, "closed ")
	if !closing {
		g.release()
		return nil
	}
	if holder == g.Node.ID {
		return nil // this replica is collecting; its own gate is closed
	}
	g.mu.Lock()
	held := g.unlock != nil
	if held && g.holder != holder {
		// Still closed, now for a new collector (the previous one's lease
		// lapsed): watch the new one's lease instead.
		g.holder = holder
		go g.watch(holder)
	}
	g.mu.Unlock()
	if held {
		return nil
	}
	if err := g.record(ctx, g.Local.Remembered()); err != nil {
		return err
	}
	g.Local.OnRemember(func(d digest.Digest) {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.record(rctx, []digest.Digest{d}); err != nil {
			g.Node.opt.Logger.Error("cluster: recording a named digest for the collection", "digest", d, "err", err)
		}
	})
	unlock, err := g.Local.LockLocal(ctx)
	if err != nil {
		g.Local.OnRemember(nil)
		return err
	}
	g.mu.Lock()
	g.unlock, g.holder = unlock, holder
	g.mu.Unlock()
	go g.watch(holder)
	return nil
}

// watch reopens the gate if the collector's lease lapses without an
// "open" broadcast (it died mid-collection).
func (g *Gate) watch(holder string) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-g.Node.ctx.Done():
			g.release()
			return
		case <-t.C:
		}
		g.mu.Lock()
		still := g.unlock != nil && g.holder == holder
		g.mu.Unlock()
		if !still {
			return
		}
		ctx, cancel := context.WithTimeout(g.Node.ctx, 2*time.Second)
		h, err := g.Lease.Holder(ctx)
		cancel()
		if err == nil && h != holder {
			g.Node.opt.Logger.Warn("cluster: the collecting replica's lease lapsed; reopening the write gate", "holder", holder)
			g.release()
			return
		}
	}
}

func (g *Gate) release() {
	g.mu.Lock()
	unlock := g.unlock
	g.unlock, g.holder = nil, ""
	g.mu.Unlock()
	if unlock != nil {
		g.Local.OnRemember(nil)
		unlock()
	}
}

// record upserts named digests into gc_recent.
func (g *Gate) record(ctx context.Context, ds []digest.Digest) error {
	now := time.Now().UnixNano()
	for len(ds) > 0 {
		n := min(len(ds), 500)
		var b strings.Builder
		args := make([]any, 0, 2*n)
		b.WriteString(`INSERT INTO gc_recent(digest, seen_at) VALUES `)
		for i, d := range ds[:n] {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString("(?, ?)")
			args = append(args, d.String(), now)
		}
		b.WriteString(` ON CONFLICT(digest) DO UPDATE SET seen_at = excluded.seen_at`)
		if _, err := g.Node.db.ExecContext(ctx, b.String(), args...); err != nil {
			return err
		}
		ds = ds[n:]
	}
	return nil
}

// Recent implements gc.RecentDigests: another replica named d within the
// grace period.
func (g *Gate) Recent(d digest.Digest) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var seen int64
	err := g.Node.db.QueryRowContext(ctx, `SELECT seen_at FROM gc_recent WHERE digest = ?`, d.String()).Scan(&seen)
	if errors.Is(err, sql.ErrNoRows) {
		return false
	}
	if err != nil {
		// Cannot tell: keep the blob (a later collection removes it).
		g.Node.opt.Logger.Warn("cluster: reading gc_recent; keeping the blob", "digest", d, "err", err)
		return true
	}
	return time.Since(time.Unix(0, seen)) < g.Local.Grace
}
