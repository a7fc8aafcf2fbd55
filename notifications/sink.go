package notifications

import (
	"context"
	"errors"
	"fmt"
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
	Op    *store.IndexOp
	Audit store.AuditEvent
	// Async events (pulls) are queued; others are committed before Write
	// returns.
	Async bool
}

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("notifications: sink closed")

// Options tunes the sink.
type Options struct {
	// OnCommit observes each committed batch (metrics).
	OnCommit func(n int, took time.Duration)
	// OnIndexFailure is told the repository of a change storage already
	// made whose index row could not commit, so that the index is
	// re-derived from storage instead of drifting (optional).
	OnIndexFailure func(repository string)
	// OnFailure is told how many events could not be committed (metrics).
	OnFailure func(n int)
	// MaxBatch bounds one transaction (default 1024 events).
	MaxBatch int
	// AsyncDelay is how long a batch of only pull events waits for more
	// before committing (default 100 ms; negative: no wait).
	AsyncDelay time.Duration
	// SkipPulls drops pull events instead of recording them.
	SkipPulls bool
	// CommitTimeout bounds one commit (default 10 s): a database that is
	// locked or unwritable fails the waiting requests instead of holding
	// them (and SIGTERM) forever.
	CommitTimeout time.Duration
}

type pending struct {
	ctx  context.Context // the waiting request's; nil for async events
	done chan error      // nil for async events
	ev   Event
}

// sync reports whether a request waits for the event's commit.
func (p pending) sync() bool { return p.done != nil }

// Sink commits events to the store with group commit.
type Sink struct {
	st      *store.Store
	in      chan pending
	pulls   *events.Queue
	stopped chan struct{}

	failing   error     // the last commit's error when nothing committed; guarded by healthMu
	failingAt time.Time // when commits started failing; guarded by healthMu

	opts   Options
	wg     sync.WaitGroup
	mu     sync.RWMutex // guards closed: writers hold it shared, Close exclusively
	closed bool
	depth  atomic.Int64

	healthMu sync.Mutex // guards failing and failingAt
}

// NewSink starts the committer.
func NewSink(st *store.Store, opts Options) *Sink {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1024
	}
	if opts.AsyncDelay == 0 {
		opts.AsyncDelay = 100 * time.Millisecond
	}
	if opts.CommitTimeout <= 0 {
		opts.CommitTimeout = 10 * time.Second
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

// Write implements events.Sink: WriteContext without a request context
// (the commit is still bounded by CommitTimeout).
func (s *Sink) Write(e events.Event) error {
	ev, ok := e.(Event)
	if !ok {
		return errors.New("notifications: unexpected event type")
	}
	return s.WriteContext(context.Background(), ev)
}

// WriteContext queues an async event, or commits a change event and
// returns the commit's verdict: nil once the event is in the database, an
// error if it is not and never will be (so a retry of the request cannot
// leave two rows). The commit is bounded by ctx and CommitTimeout.
func (s *Sink) WriteContext(ctx context.Context, ev Event) error {
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
	p := pending{ev: ev, ctx: ctx, done: make(chan error, 1)}
	s.depth.Add(1)
	select {
	case s.in <- p:
	case <-ctx.Done():
		s.depth.Add(-1)
		s.failed(1)
		return fmt.Errorf("notifications: %s not recorded: %w", ev.Audit.Type, ctx.Err())
	}
	// The committer answers every event within CommitTimeout (plus one
	// busy wait of the database), so this wait is bounded.
	err := <-p.done
	if err != nil && ev.Op != nil && s.opts.OnIndexFailure != nil {
		s.opts.OnIndexFailure(ev.Op.Repository)
	}
	return err
}

// Record commits one MCR event (sign-in, admin change) synchronously.
func (s *Sink) Record(ev store.AuditEvent) error {
	return s.WriteContext(context.Background(), Event{Audit: ev})
}

// RecordContext is Record bounded by ctx.
func (s *Sink) RecordContext(ctx context.Context, ev store.AuditEvent) error {
	return s.WriteContext(ctx, Event{Audit: ev})
}

// Healthy reports the audit path: an error while commits are failing
// (the last batch committed nothing), nil once one succeeds again.
func (s *Sink) Healthy() error {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	if s.failing == nil {
		return nil
	}
	return fmt.Errorf("audit commits failing since %s: %w", s.failingAt.UTC().Format(time.RFC3339), s.failing)
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

// commit writes a batch in one transaction. If that fails for a reason
// other than the deadline (a bad event, an unwritable database), each
// event is retried alone, so that one bad event never fails the others.
// Every waiting request gets its own event's verdict.
func (s *Sink) commit(batch []pending) {
	start := time.Now()
	defer func() {
		if s.opts.OnCommit != nil {
			s.opts.OnCommit(len(batch), time.Since(start))
		}
		s.depth.Add(-int64(len(batch)))
	}()
	live := make([]pending, 0, len(batch))
	for _, p := range batch {
		if p.sync() && p.ctx.Err() != nil {
			// The request is gone: do not commit what it reports as failed.
			s.answer(p, fmt.Errorf("notifications: %s not recorded: %w", p.ev.Audit.Type, p.ctx.Err()))
			continue
		}
		live = append(live, p)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := s.batchContext(live)
	err := s.apply(ctx, live)
	cancel()
	if err == nil {
		s.setHealth(nil)
		for _, p := range live {
			s.answer(p, nil)
		}
		return
	}
	if len(live) == 1 || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		// Out of time (a locked database): retrying alone would only
		// multiply the wait.
		slog.Error("audit commit failed", "events", len(live), "err", err)
		s.setHealth(err)
		for _, p := range live {
			s.answer(p, err)
		}
		return
	}
	slog.Error("audit batch commit failed; committing its events one by one", "events", len(live), "err", err)
	committed := 0
	for _, p := range live {
		ctx, cancel := s.batchContext([]pending{p})
		perr := s.apply(ctx, []pending{p})
		cancel()
		if perr == nil {
			committed++
		} else {
			slog.Error("audit event not recorded", "type", p.ev.Audit.Type, "repository", p.ev.Audit.Repository, "err", perr)
			err = perr
		}
		s.answer(p, perr)
	}
	if committed > 0 {
		s.setHealth(nil)
	} else {
		s.setHealth(err)
	}
}

// apply commits the events and index operations of ps in one transaction.
func (s *Sink) apply(ctx context.Context, ps []pending) error {
	evs := make([]store.AuditEvent, 0, len(ps))
	var ops []store.IndexOp
	for _, p := range ps {
		if p.ev.Audit.Type != "" {
			evs = append(evs, p.ev.Audit)
		}
		if p.ev.Op != nil {
			ops = append(ops, *p.ev.Op)
		}
	}
	return s.st.ApplyBatch(ctx, evs, ops)
}

// batchContext bounds a commit by CommitTimeout and, when only requests
// wait for it, by their contexts: it ends when every one of them has
// ended (a batch with pulls only ends at the deadline).
func (s *Sink) batchContext(ps []pending) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.CommitTimeout)
	for _, p := range ps {
		if !p.sync() {
			return ctx, cancel
		}
	}
	var left atomic.Int64
	left.Store(int64(len(ps)))
	stops := make([]func() bool, 0, len(ps))
	for _, p := range ps {
		stops = append(stops, context.AfterFunc(p.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		}))
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// answer delivers an event's verdict: to its waiting request, or, for an
// async event, to the log.
func (s *Sink) answer(p pending, err error) {
	if err != nil {
		s.failed(1)
	}
	if p.sync() {
		p.done <- err
		return
	}
	if err != nil {
		slog.Error("pull event not recorded", "repository", p.ev.Audit.Repository, "digest", p.ev.Audit.Digest, "err", err)
	}
}

func (s *Sink) failed(n int) {
	if s.opts.OnFailure != nil {
		s.opts.OnFailure(n)
	}
}

func (s *Sink) setHealth(err error) {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	switch {
	case err == nil:
		s.failing = nil
	case s.failing == nil:
		s.failing, s.failingAt = err, time.Now()
	default:
		s.failing = err
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
