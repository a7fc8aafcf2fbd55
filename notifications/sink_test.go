package notifications

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"git.wntrmute.dev/kyle/mcr/store"
)

// commits records the sizes of the batches a sink committed.
type commits struct {
	sizes []int
	mu    sync.Mutex
}

func (c *commits) observe(n int, _ time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sizes = append(c.sizes, n)
}

func (c *commits) get() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.sizes...)
}

func openStore(t *testing.T) (*store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mcr.db")
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	return st, path
}

// lockDB holds the database's write lock from another connection (as
// another process would) until the returned function is called.
func lockDB(t *testing.T, path string) (unlock func()) {
	t.Helper()
	other, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := other.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `BEGIN EXCLUSIVE`); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	unlock = func() {
		once.Do(func() {
			if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
				t.Error(err)
			}
			if err := conn.Close(); err != nil {
				t.Error(err)
			}
			if err := other.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(unlock)
	return unlock
}

// waitFor polls cond until it holds or the test's patience (10 s) ends.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
	}
}

func countRows(t *testing.T, st *store.Store, typ string) int64 {
	t.Helper()
	n, err := st.CountAudit(context.Background(), typ)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func change(i int) Event {
	return Event{Audit: store.AuditEvent{Type: ManifestPushed, Repository: fmt.Sprintf("team/app%d", i)}}
}

// blockCommitter locks the database and writes one event, and returns once
// the committer holds that event in a commit waiting on the lock; events
// written after it queue for the next batch. The returned channel has the
// first write's verdict.
func blockCommitter(t *testing.T, s *Sink, path string) (unlock func(), first <-chan error) {
	t.Helper()
	unlock = lockDB(t, path)
	errc := make(chan error, 1)
	go func() { errc <- s.Write(change(-1)) }()
	waitFor(t, "the committer to take the first event", func() bool { return s.Depth() == 1 && len(s.in) == 0 })
	return unlock, errc
}

func closeSink(t *testing.T, s *Sink) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Error(err)
	}
}

// Events written while a commit is in progress share the next transaction,
// and every writer gets its verdict only after its row is committed.
func TestSinkGroupCommit(t *testing.T) {
	st, path := openStore(t)
	var c commits
	s := NewSink(st, Options{OnCommit: c.observe, CommitTimeout: time.Minute})
	defer closeSink(t, s)

	unlock, first := blockCommitter(t, s, path) // the first commit waits on the lock
	const writers = 19
	errs := make(chan error, writers)
	for i := range writers {
		go func() { errs <- s.Write(change(i)) }()
	}
	waitFor(t, "all events queued", func() bool { return len(s.in) == writers })
	if got := c.get(); len(got) != 0 {
		t.Fatalf("committed %v while the database was locked", got)
	}
	unlock()
	if err := <-first; err != nil {
		t.Fatalf("first Write: %v", err)
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	// Everything that arrived while the first commit waited commits in
	// one transaction. OnCommit observes a batch after its writers have
	// their answers, so wait for the second observation.
	waitFor(t, "two commits observed", func() bool { return len(c.get()) >= 2 })
	if sizes := c.get(); len(sizes) != 2 || sizes[0] != 1 || sizes[1] != writers {
		t.Errorf("batches %v, want [1 %d]", sizes, writers)
	}
	if n := countRows(t, st, ManifestPushed); n != writers+1 {
		t.Errorf("%d rows, want %d", n, writers+1)
	}
	if err := s.Healthy(); err != nil {
		t.Errorf("Healthy after commits: %v", err)
	}
}

// A batch is bounded by MaxBatch.
func TestSinkMaxBatch(t *testing.T) {
	st, path := openStore(t)
	var c commits
	s := NewSink(st, Options{OnCommit: c.observe, MaxBatch: 4, CommitTimeout: time.Minute})
	defer closeSink(t, s)
	unlock, first := blockCommitter(t, s, path)
	const writers = 12
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range writers {
		wg.Go(func() {
			if err := s.Write(change(i)); err != nil {
				failed.Add(1)
			}
		})
	}
	waitFor(t, "all events queued", func() bool { return len(s.in) == writers })
	unlock()
	wg.Wait()
	if err := <-first; err != nil {
		failed.Add(1)
	}
	if failed.Load() != 0 {
		t.Fatalf("%d writes failed", failed.Load())
	}
	// OnCommit observes a batch after its writers have their answers.
	waitFor(t, "every event observed committed", func() bool {
		n := 0
		for _, k := range c.get() {
			n += k
		}
		return n >= writers+1
	})
	total := 0
	for _, n := range c.get() {
		if n > 4 {
			t.Errorf("batch of %d, MaxBatch is 4", n)
		}
		total += n
	}
	if sizes := c.get(); total != writers+1 || len(sizes) != 4 {
		t.Errorf("batches %v, want [1 4 4 4]", sizes)
	}
}

// One event that cannot be committed fails alone: the others of its batch
// are committed, and each writer gets its own verdict.
func TestSinkBadEventFailsAlone(t *testing.T) {
	st, path := openStore(t)
	var c commits
	var failures atomic.Int64
	s := NewSink(st, Options{OnCommit: c.observe, CommitTimeout: time.Minute,
		OnFailure: func(n int) { failures.Add(int64(n)) }})
	defer closeSink(t, s)

	unlock, first := blockCommitter(t, s, path) // the events below share the next batch
	// Details that cannot be encoded make the transaction fail.
	bad := Event{Audit: store.AuditEvent{Type: "bad_event", Details: map[string]any{"x": make(chan int)}}}
	const good = 10
	errs := make(chan error, good)
	badErr := make(chan error, 1)
	go func() { badErr <- s.Write(bad) }()
	for i := range good {
		go func() { errs <- s.Write(change(i)) }()
	}
	waitFor(t, "all events queued", func() bool { return len(s.in) == good+1 })
	unlock()
	if err := <-first; err != nil {
		t.Errorf("first Write: %v", err)
	}
	if err := <-badErr; err == nil {
		t.Error("the bad event was reported committed")
	}
	for range good {
		if err := <-errs; err != nil {
			t.Errorf("a good event of the batch failed: %v", err)
		}
	}
	if n := countRows(t, st, ManifestPushed); n != good+1 {
		t.Errorf("%d good rows, want %d", n, good+1)
	}
	// OnCommit observes a batch after its writers have their answers.
	waitFor(t, "two commits observed", func() bool { return len(c.get()) >= 2 })
	if sizes := c.get(); len(sizes) != 2 || sizes[1] != good+1 {
		t.Errorf("batches %v, want [1 %d]: the bad event shared a batch with the others", sizes, good+1)
	}
	if n := countRows(t, st, "bad_event"); n != 0 {
		t.Errorf("%d bad rows, want 0", n)
	}
	if got := failures.Load(); got != 1 {
		t.Errorf("OnFailure counted %d, want 1", got)
	}
	if err := s.Healthy(); err != nil {
		t.Errorf("Healthy after a batch that mostly committed: %v", err)
	}
}

// A database locked by another connection fails the waiting request
// within the commit timeout instead of holding it; nothing of the failed
// event is committed later, and the sink recovers when the lock goes.
func TestSinkLockedDatabaseFailsWithinTimeout(t *testing.T) {
	st, path := openStore(t)
	var failures atomic.Int64
	s := NewSink(st, Options{CommitTimeout: 200 * time.Millisecond, OnFailure: func(n int) { failures.Add(int64(n)) }})
	defer closeSink(t, s)

	unlock := lockDB(t, path)
	err := s.Write(change(1))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write on a locked database: %v, want a deadline error", err)
	}
	if s.Healthy() == nil {
		t.Error("Healthy while commits fail")
	}
	if failures.Load() != 1 {
		t.Errorf("OnFailure counted %d, want 1", failures.Load())
	}
	unlock()
	if err := s.Write(change(2)); err != nil {
		t.Fatalf("Write after the lock went: %v", err)
	}
	if n := countRows(t, st, ManifestPushed); n != 1 {
		t.Errorf("%d rows, want 1 (the failed event must not be committed later)", n)
	}
	if err := s.Healthy(); err != nil {
		t.Errorf("Healthy after recovery: %v", err)
	}
}

// The request's context bounds the commit: a request that gives up gets an
// error at once and its event is not committed.
func TestSinkRequestContextBoundsCommit(t *testing.T) {
	st, path := openStore(t)
	s := NewSink(st, Options{CommitTimeout: time.Minute})
	defer closeSink(t, s)

	unlock := lockDB(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.WriteContext(ctx, change(1)) }()
	waitFor(t, "the event to reach the committer", func() bool { return s.Depth() == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("WriteContext after cancel: %v, want context.Canceled", err)
	}
	unlock()
	if err := s.Write(change(2)); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, st, ManifestPushed); n != 1 {
		t.Errorf("%d rows, want 1", n)
	}
}

// Pulls are queued without waiting, batched, and all flushed by Close.
func TestSinkAsyncPullsFlushedOnClose(t *testing.T) {
	st, _ := openStore(t)
	var c commits
	s := NewSink(st, Options{OnCommit: c.observe, AsyncDelay: time.Hour})
	const pulls = 50
	for i := range pulls {
		ev := Event{Audit: store.AuditEvent{Type: ManifestPulled, Repository: fmt.Sprintf("r%d", i)}, Async: true}
		if err := s.Write(ev); err != nil {
			t.Fatal(err)
		}
	}
	// AsyncDelay is an hour: nothing commits until Close flushes.
	if n := countRows(t, st, ManifestPulled); n != 0 {
		t.Errorf("%d pulls committed before the batch closed", n)
	}
	closeSink(t, s)
	if n := countRows(t, st, ManifestPulled); n != pulls {
		t.Errorf("%d pull rows after Close, want %d", n, pulls)
	}
	if err := s.Write(change(1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v, want ErrClosed", err)
	}
}

// A change event ends the wait of a pull batch: its request is waiting.
func TestSinkChangeEndsPullWait(t *testing.T) {
	st, _ := openStore(t)
	s := NewSink(st, Options{AsyncDelay: time.Hour})
	defer closeSink(t, s)
	if err := s.Write(Event{Audit: store.AuditEvent{Type: ManifestPulled, Repository: "r"}, Async: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(change(1)); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, st, ManifestPulled); n != 1 {
		t.Errorf("the pull queued before a change was not committed with it (%d rows)", n)
	}
}
