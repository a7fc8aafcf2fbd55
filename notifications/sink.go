package notifications

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	events "github.com/docker/go-events"

	"git.wntrmute.dev/kyle/mcr/store"
)

// Event is one registry or MCR event: an audit row and, when the index
// changes, the index operation. It is a go-events Event.
type Event struct {
	Audit store.AuditEvent
	Op    *store.IndexOp
	// Async events (pulls) are queued; others are committed before Write
	// returns.
	Async bool
}

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("notifications: sink closed")

// Options tunes the sink.
type Options struct {
	// MaxBatch bounds one transaction (default 1024 events).
	MaxBatch int
	// AsyncDelay is how long a batch of only pull events waits for more
	// before committing (default 100 ms; negative: no wait).
	AsyncDelay time.Duration
	// SkipPulls drops pull events instead of recording them.
	SkipPulls bool
	// OnCommit observes each committed batch (metrics).
	OnCommit func(n int, took time.Duration)
	// OnIndexFailure is told the repository of a change storage already
	// made whose index row could not commit, so that the index is
	// re-derived from storage instead of drifting (optional).
	OnIndexFailure func(repository string)
}

type pending struct {
	ev   Event
	done chan error // nil for async events
}

// Sink commits events to the store with group commit.
type Sink struct {
	st      *store.Store
	opts    Options
	in      chan pending
	pulls   *events.Queue
	wg      sync.WaitGroup
	mu      sync.RWMutex
	closed  bool
	depth   atomic.Int64
	stopped chan struct{}
}

// NewSink starts the committer.
func NewSink(st *store.Store, opts Options) *Sink {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1024
	}
	if opts.AsyncDelay == 0 {
		opts.AsyncDelay = 100 * time.Millisecond
	}
	s := &Sink{st: st, opts: opts, in: make(chan pending, 4096), stopped: make(chan struct{})}
	s.pulls = events.NewQueue(asyncSink{s})
	s.wg.Add(1)
	go s.loop()
	return s
}

// asyncSink hands queued pull events to the committer without waiting.
type asyncSink struct{ s *Sink }

func (a asyncSink) Write(e events.Event) error {
	ev, ok := e.(Event)
	if !ok {
		return nil
	}
	a.s.depth.Add(1)
	a.s.in <- pending{ev: ev}
	return nil
}

func (a asyncSink) Close() error { return nil }

// Write implements events.Sink.
func (s *Sink) Write(e events.Event) error {
	ev, ok := e.(Event)
	if !ok {
		return errors.New("notifications: unexpected event type")
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if ev.Async {
		if s.opts.SkipPulls {
			return nil
		}
		// Straight to the committer when it has room; the queue (unbounded)
		// only when it is behind, so a pull never waits for the database.
		s.depth.Add(1)
		select {
		case s.in <- pending{ev: ev}:
			return nil
		default:
			s.depth.Add(-1)
			return s.pulls.Write(ev)
		}
	}
	p := pending{ev: ev, done: make(chan error, 1)}
	s.depth.Add(1)
	s.in <- p
	err := <-p.done
	if err != nil && ev.Op != nil && s.opts.OnIndexFailure != nil {
		s.opts.OnIndexFailure(ev.Op.Repository)
	}
	return err
}

// Record commits one MCR event (sign-in, admin change) synchronously.
func (s *Sink) Record(ev store.AuditEvent) error {
	return s.Write(Event{Audit: ev})
}

// Depth is the number of events waiting to be committed.
func (s *Sink) Depth() int64 { return s.depth.Load() }

func (s *Sink) loop() {
	defer s.wg.Done()
	defer close(s.stopped)
	batch := make([]pending, 0, s.opts.MaxBatch)
	for {
		p, ok := <-s.in
		if !ok {
			return
		}
		batch = append(batch[:0], p)
		open := s.fill(&batch)
		s.commit(batch)
		if !open {
			return
		}
	}
}

// fill adds what is already queued to the batch. A batch of only
// asynchronous events (pulls) also waits up to AsyncDelay for more, so
// pulls commit in large transactions; a change event ends the wait, since
// its request is waiting for the commit. It reports false once the input
// is closed.
func (s *Sink) fill(batch *[]pending) bool {
	hasSync := (*batch)[0].done != nil
	var timer <-chan time.Time
	for len(*batch) < s.opts.MaxBatch {
		select {
		case p, ok := <-s.in:
			if !ok {
				return false
			}
			*batch = append(*batch, p)
			hasSync = hasSync || p.done != nil
			continue
		default:
		}
		if hasSync || s.opts.AsyncDelay <= 0 {
			return true
		}
		if timer == nil {
			timer = time.After(s.opts.AsyncDelay)
		}
		select {
		case p, ok := <-s.in:
			if !ok {
				return false
			}
			*batch = append(*batch, p)
			hasSync = hasSync || p.done != nil
		case <-timer:
			return true
		}
	}
	return true
}

func (s *Sink) commit(batch []pending) {
	evs := make([]store.AuditEvent, 0, len(batch))
	var ops []store.IndexOp
	for _, p := range batch {
		if p.ev.Audit.Type != "" {
			evs = append(evs, p.ev.Audit)
		}
		if p.ev.Op != nil {
			ops = append(ops, *p.ev.Op)
		}
	}
	start := time.Now()
	// Busy/locked is retried inside ApplyBatch without limit; any other
	// error is retried a few times, then reported to the waiting requests.
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = s.st.ApplyBatch(context.Background(), evs, ops); err == nil {
			break
		}
		slog.Error("audit commit failed; retrying", "events", len(evs), "attempt", attempt+1, "err", err)
		time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
	}
	if s.opts.OnCommit != nil {
		s.opts.OnCommit(len(batch), time.Since(start))
	}
	s.depth.Add(-int64(len(batch)))
	for _, p := range batch {
		if p.done != nil {
			p.done <- err
		}
	}
}

// Close stops accepting events, flushes the pull queue and commits
// everything pending. Call it after the HTTP server has drained.
func (s *Sink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	err := s.pulls.Close() // flushes queued pulls into s.in
	close(s.in)
	s.wg.Wait()
	return err
}
