package cluster

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"git.wntrmute.dev/kyle/mcr/gc"
	"git.wntrmute.dev/kyle/mcr/internal/pgtest"
	"git.wntrmute.dev/kyle/mcr/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// members starts n members on one fresh database.
func members(t *testing.T, n int, opt Options) []*Node {
	t.Helper()
	dsn := pgtest.DSN(t)
	var out []*Node
	for range n {
		st, err := store.OpenPostgres(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		node, err := Start(context.Background(), st, opt)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, node)
	}
	return out
}

func TestStartNeedsPostgres(t *testing.T) {
	st, err := store.Open(t.TempDir() + "/mcr.db")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	if _, err := Start(context.Background(), st, Options{}); err == nil {
		t.Fatal("Start on SQLite: no error")
	}
}

// TestBroadcastWaitsForEveryLiveMember: Broadcast returns only after the
// other members applied the new version; a member that stopped (no
// heartbeat) stops being waited for after the live window.
func TestBroadcastWaitsForEveryLiveMember(t *testing.T) {
	opt := Options{Heartbeat: 100 * time.Millisecond, LiveWindow: time.Second, AckTimeout: 5 * time.Second}
	ns := members(t, 3, opt)
	var applied [3]atomic.Int64
	for i, n := range ns {
		n.Handle("t", func(context.Context, string) error {
			time.Sleep(50 * time.Millisecond) // a handler that takes a while
			applied[i].Add(1)
			return nil
		})
		n.Run()
	}
	defer ns[1].Close()
	defer ns[2].Close()
	for round := int64(1); round <= 3; round++ {
		if err := ns[0].Broadcast(context.Background(), "t", "p"); err != nil {
			t.Fatal(err)
		}
		if applied[1].Load() != round || applied[2].Load() != round {
			t.Fatalf("round %d: Broadcast returned with applied %d, %d", round, applied[1].Load(), applied[2].Load())
		}
		if applied[0].Load() != 0 {
			t.Fatal("the broadcaster ran its own handler")
		}
	}
	// Member 2 dies without leaving: heartbeats stop (cancel), its row stays.
	ns[2].cancel()
	ns[2].wg.Wait()
	start := time.Now()
	if err := ns[0].Broadcast(context.Background(), "t", "p"); err != nil {
		t.Fatalf("broadcast with a dead member: %v", err)
	}
	if waited := time.Since(start); waited > 3*time.Second {
		t.Errorf("waited %s for a dead member (live window 1 s)", waited)
	}
	if live, _ := ns[0].Members(context.Background()); len(live) != 2 {
		t.Errorf("live members: %v", live)
	}
}

func TestBroadcastReportsAMemberThatFails(t *testing.T) {
	ns := members(t, 2, Options{Heartbeat: 100 * time.Millisecond, AckTimeout: 700 * time.Millisecond})
	ns[1].Handle("t", func(context.Context, string) error { return errors.New("cannot apply") })
	ns[0].Run()
	ns[1].Run()
	defer ns[0].Close()
	defer ns[1].Close()
	err := ns[0].Broadcast(context.Background(), "t", "")
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("broadcast to a failing member: %v", err)
	}
}

// TestLease: one holder at a time (ErrRunning for the other), taken over
// only after the holder's lease expired, renewed while held.
func TestLease(t *testing.T) {
	ns := members(t, 2, Options{})
	a := &Lease{Node: ns[0], Name: "gc", TTL: 600 * time.Millisecond}
	b := &Lease{Node: ns[1], Name: "gc", TTL: 600 * time.Millisecond}
	ctxA, releaseA, err := a.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Acquire(context.Background()); !errors.Is(err, gc.ErrRunning) {
		t.Fatalf("second acquire: %v, want ErrRunning", err)
	}
	// Held across several TTLs: the holder renews.
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if h, err := b.Holder(context.Background()); err != nil || h != ns[0].ID {
			t.Fatalf("holder %q %v while a holds it", h, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ctxA.Err() != nil {
		t.Fatal("a's lease context ended while renewed")
	}
	releaseA()
	_, releaseB, err := b.Acquire(context.Background())
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	// b "dies": stop renewing without releasing. a gets it after the TTL.
	if _, err := b.Node.db.Exec(`UPDATE gc_lease SET holder = 'dead' WHERE name = 'gc'`); err != nil {
		t.Fatal(err)
	}
	releaseB() // deletes nothing: the holder changed
	if _, _, err := a.Acquire(context.Background()); !errors.Is(err, gc.ErrRunning) {
		t.Fatalf("acquire while the dead holder's lease is live: %v", err)
	}
	var got bool
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if _, rel, err := a.Acquire(context.Background()); err == nil {
			rel()
			got = true
			break
		}
	}
	if !got {
		t.Fatal("the lease of a dead holder never expired")
	}
}
