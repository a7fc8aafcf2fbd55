package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"git.wntrmute.dev/kyle/mcr/store"
)

// ErrRunning is returned when a collection or reconcile is already running.
var ErrRunning = errors.New("garbage collection is already running")

// Request asks for one run.
type Request struct {
	Options
	// Who asked (audit).
	ActorID, Actor, IP string
	// Reconcile runs Engine.Reconcile instead of a collection.
	Reconcile bool
}

func (r Request) kind() string {
	if r.Reconcile {
		return store.GCKindReconcile
	}
	return store.GCKindGC
}

// Runner runs at most one collection at a time, records each run in
// gc_runs and audits it (gc_started, gc_completed). The online server and
// `mcrsrv gc` both use it.
type Runner struct {
	Engine *Engine
	Store  *store.Store
	// Audit records an audit event (optional).
	Audit func(store.AuditEvent)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Lease, when set, makes runs exclusive across the replicas sharing
	// the database: a run starts only while holding it (see package
	// cluster), and runs another replica left unfinished are failed then.
	Lease Lease

	current *store.GCRun // guarded by mu
	release func()       // gives the lease back; guarded by mu
	ctx     context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex // guards current and release
	wg      sync.WaitGroup
}

// Lease is a cluster-wide claim on running GC. Acquire returns ErrRunning
// (wrapped) while another replica holds it, else a context cancelled if
// the claim is lost and a function giving it back.
type Lease interface {
	Acquire(ctx context.Context) (context.Context, func(), error)
}

// LeaseHolder reports who holds a live lease ("" if nobody); a Lease that
// implements it makes Status report other replicas' runs.
type LeaseHolder interface {
	Holder(ctx context.Context) (string, error)
}

// NewRunner returns a runner. Background runs (Start) stop when Close is
// called.
func NewRunner(e *Engine, st *store.Store, audit func(store.AuditEvent)) *Runner {
	ctx, cancel := context.WithCancel(context.Background())
	return &Runner{Engine: e, Store: st, Audit: audit, ctx: ctx, cancel: cancel}
}

func (r *Runner) log() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// Recover marks runs left unfinished by a process that died as failed.
// Call it only while holding the data-directory lock.
func (r *Runner) Recover(ctx context.Context) error {
	if r.Lease != nil {
		// Another replica may be running one now; begin recovers once
		// it holds the lease.
		return nil
	}
	n, err := r.Store.FailUnfinishedGCRuns(ctx, "interrupted: the process running it exited before it completed (run reconcile)")
	if err != nil {
		return err
	}
	if n > 0 {
		r.log().Warn("gc: runs interrupted by a previous process marked failed; consider `mcrsrv gc --reconcile`", "runs", n)
	}
	return nil
}

// begin claims the runner and records the start.
func (r *Runner) begin(ctx context.Context, req Request) (*store.GCRun, context.Context, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current != nil {
		return nil, nil, fmt.Errorf("%w (run %d, started %s)", ErrRunning, r.current.ID, r.current.Started.Format(time.RFC3339))
	}
	runCtx, release := ctx, func() {}
	if r.Lease != nil {
		lctx, rel, err := r.Lease.Acquire(ctx)
		if err != nil {
			return nil, nil, err
		}
		runCtx, release = lctx, rel
		// Exclusive now: a run still open was left by a replica that died.
		n, err := r.Store.FailUnfinishedGCRuns(ctx, "interrupted: the replica running it stopped before it completed (its lease expired; run reconcile)")
		if err != nil {
			release()
			return nil, nil, err
		}
		if n > 0 {
			r.log().Warn("gc: runs left by a replica that died marked failed; consider a reconcile run", "runs", n)
		}
	}
	run := &store.GCRun{Kind: req.kind(), DryRun: req.DryRun, RemoveUntagged: req.RemoveUntagged, Actor: req.Actor}
	if err := r.Store.CreateGCRun(ctx, run); err != nil {
		release()
		return nil, nil, err
	}
	r.current, r.release = run, release
	details := map[string]any{"run_id": run.ID, "kind": run.Kind, "dry_run": req.DryRun, "remove_untagged": req.RemoveUntagged}
	if req.Grace != nil {
		details["grace_override"] = req.Grace.String()
		r.log().Warn("gc: grace period overridden by an operator; uploads in flight younger than it may lose their blobs",
			"run", run.ID, "grace", req.Grace.String(), "actor", req.Actor)
	}
	r.audit(store.AuditEvent{Type: "gc_started", ActorID: req.ActorID, Actor: req.Actor, IP: req.IP, Details: details})
	return run, runCtx, nil
}

func (r *Runner) audit(ev store.AuditEvent) {
	if r.Audit != nil {
		r.Audit(ev)
	}
}

// execute runs the engine and records the outcome.
func (r *Runner) execute(ctx context.Context, run *store.GCRun, req Request) error {
	var err error
	if req.Reconcile {
		var res *ReconcileResult
		res, err = r.Engine.Reconcile(ctx, req.DryRun)
		if res != nil {
			run.BlobsRemoved = int64(res.OrphanBlobsRemoved)
			run.BytesFreed = res.BytesFreed
			run.ManifestsRemoved = int64(res.DanglingRevisionsRemoved)
			run.Details = res.Details()
		}
	} else {
		var res *Result
		res, err = r.Engine.Run(ctx, req.Options)
		if res != nil {
			run.BlobsRemoved = int64(res.BlobsRemoved)
			run.BytesFreed = res.BytesFreed
			run.ManifestsRemoved = int64(res.ManifestsRemoved)
			run.Details = res.Details()
		}
	}
	if err != nil {
		run.Error = err.Error()
	}
	// Record the outcome even if ctx was cancelled (shutdown).
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if cerr := r.Store.CompleteGCRun(cctx, run); cerr != nil {
		r.log().Error("gc: recording run", "run", run.ID, "err", cerr)
	}
	details := map[string]any{"run_id": run.ID, "kind": run.Kind, "dry_run": run.DryRun,
		"blobs_removed": run.BlobsRemoved, "bytes_freed": run.BytesFreed, "manifests_removed": run.ManifestsRemoved}
	if run.Error != "" {
		details["error"] = run.Error
	}
	r.audit(store.AuditEvent{Type: "gc_completed", ActorID: req.ActorID, Actor: req.Actor, IP: req.IP, Details: details})
	r.mu.Lock()
	release := r.release
	r.current, r.release = nil, nil
	r.mu.Unlock()
	if release != nil {
		release()
	}
	return err
}

// Run runs synchronously and returns the recorded run.
func (r *Runner) Run(ctx context.Context, req Request) (*store.GCRun, error) {
	run, runCtx, err := r.begin(ctx, req)
	if err != nil {
		return nil, err
	}
	err = r.execute(runCtx, run, req)
	return run, err
}

// Start begins a run in the background and returns its id, or ErrRunning.
func (r *Runner) Start(req Request) (int64, error) {
	run, runCtx, err := r.begin(r.ctx, req)
	if err != nil {
		return 0, err
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := r.execute(runCtx, run, req); err != nil {
			r.log().Error("gc run failed", "run", run.ID, "kind", run.Kind, "err", err)
		}
	}()
	return run.ID, nil
}

// Status reports whether a run is in progress and the newest run (nil if
// none ever ran).
func (r *Runner) Status(ctx context.Context) (bool, *store.GCRun, error) {
	r.mu.Lock()
	running := r.current != nil
	r.mu.Unlock()
	if lh, ok := r.Lease.(LeaseHolder); ok && !running {
		holder, err := lh.Holder(ctx)
		if err != nil {
			return false, nil, err
		}
		running = holder != ""
	}
	last, err := r.Store.LastGCRun(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return running, nil, nil
	}
	if err != nil {
		return running, nil, err
	}
	return running, last, nil
}

// Running reports whether a run is in progress.
func (r *Runner) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current != nil
}

// Wait waits for background runs to finish.
func (r *Runner) Wait() { r.wg.Wait() }

// Close cancels background runs (a cancelled sweep stops between two
// deletions; reconcile repairs anything half done) and waits for them.
func (r *Runner) Close() {
	r.cancel()
	r.wg.Wait()
}
