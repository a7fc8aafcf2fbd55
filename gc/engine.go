// Package gc is MCR's garbage collector (DESIGN §8): a mark-and-sweep over
// distribution's storage that runs while the registry serves.
//
//	gate := gc.NewGate(cfg.GC.MaxWait, cfg.GC.Grace)
//	mux.Handle("/v2/", gate.Wrap(app))
//	eng := &gc.Engine{Driver: driver, Grace: cfg.GC.Grace, Gate: gate}
//	res, err := eng.Run(ctx, gc.Options{RemoveUntagged: true})
//
// The collection is split by phase: engine.go runs it (gate, timing,
// result), mark.go decides what each repository keeps, sweep.go removes
// the rest.
//
// Mark: every manifest revision of every repository is read and the blobs
// it references (config, layers, index children) are marked. With
// RemoveUntagged, only tagged manifests, what they reference (index
// children), referrers whose subject is kept, and manifests pushed within
// the grace period survive; the rest are removed.
//
// Sweep: blobs that are not marked are deleted, together with the
// repository links to them, unless they are younger than the grace period
// (an upload whose manifest is not pushed yet) or a request named them
// within it (see Gate). Links and the index go first (the metadata
// phase), blob files second (the file phase); Reconcile repairs what a
// crash between the two leaves behind.
//
// Unlike distribution's storage.MarkAndSweep, the collector never removes
// the layer links of blobs it keeps (upstream removes the link of every
// blob not referenced by a manifest, which breaks a push in progress) and
// never deletes young blobs.
package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
)

// Options select what a collection does.
type Options struct {
	// Grace, when set, replaces Engine.Grace for this run (an incident:
	// the disk is full and young garbage must go). Zero also ignores the
	// gate's record of recently named digests, so an upload whose
	// manifest is not pushed yet may lose its blobs.
	Grace *time.Duration
	// DryRun reports what would be removed without removing anything.
	DryRun bool
	// RemoveUntagged removes manifests that no tag reaches (directly, as an
	// index child, or as a referrer of a kept manifest).
	RemoveUntagged bool
}

// grace is the grace period of a run.
func (e *Engine) grace(opts Options) time.Duration {
	if opts.Grace != nil {
		return *opts.Grace
	}
	return e.Grace
}

// ManifestRef names one manifest revision of one repository.
type ManifestRef struct {
	Repository string        `json:"repository"`
	Digest     digest.Digest `json:"digest"`
	// Tags whose history index mentions the revision (removed with it).
	Tags []string `json:"tags,omitempty"`
}

// Result describes one collection.
type Result struct {
	RemovedBlobs     []digest.Digest `json:"-"`
	RemovedManifests []ManifestRef   `json:"-"`

	DryRun            bool  `json:"dry_run"`
	Repositories      int   `json:"repositories"`
	ManifestsMarked   int   `json:"manifests_marked"`
	BlobsMarked       int   `json:"blobs_marked"`
	BlobsScanned      int   `json:"blobs_scanned"`
	BlobsProtected    int   `json:"blobs_protected"`
	BlobsRemoved      int   `json:"blobs_removed"`
	BytesFreed        int64 `json:"bytes_freed"`
	ManifestsRemoved  int   `json:"manifests_removed"`
	LayerLinksRemoved int   `json:"layer_links_removed"`
	// BlobsReleased counts removed blobs that a repository deletion
	// released (removed regardless of the grace period).
	BlobsReleased int           `json:"blobs_released"`
	Grace         time.Duration `json:"-"`
	GateWait      time.Duration `json:"-"`
	MarkDuration  time.Duration `json:"-"`
	SweepDuration time.Duration `json:"-"`
}

// Details is the result as gc_runs.details_json.
func (r *Result) Details() map[string]any {
	return map[string]any{
		"repositories": r.Repositories, "manifests_marked": r.ManifestsMarked,
		"blobs_marked": r.BlobsMarked, "blobs_scanned": r.BlobsScanned, "blobs_protected": r.BlobsProtected,
		"layer_links_removed": r.LayerLinksRemoved, "blobs_released": r.BlobsReleased,
		"grace":        r.Grace.String(),
		"gate_wait_ms": r.GateWait.Milliseconds(), "mark_ms": r.MarkDuration.Milliseconds(),
		"sweep_ms": r.SweepDuration.Milliseconds(),
	}
}

// Phase names passed to Engine.AfterPhase.
const (
	PhaseMetadata = "metadata" // manifest and layer links removed, index updated
	PhaseFiles    = "files"    // blob files removed
)

// Engine collects garbage in one storage driver.
type Engine struct {
	// Driver is distribution's storage driver (the App's, captured).
	Driver storagedriver.StorageDriver
	// Gate, when set, is held closed during mark and sweep, and its record
	// of recently named digests protects them.
	Gate *Gate
	// OnManifestsRemoved brings the repository index in line after the
	// metadata phase removed manifests (optional).
	OnManifestsRemoved func(ctx context.Context, removed []ManifestRef) error
	// AfterRemove is called, with the gate still closed, after a run that
	// may have removed blobs or links: the server resets its blob
	// descriptor cache there, so a swept blob answers 404, not a cached 200.
	AfterRemove func()
	// Released returns the blobs repository deletions released (optional;
	// see RepositoryBlobs). Those no repository links any more are removed
	// regardless of the grace period.
	Released func(ctx context.Context) ([]digest.Digest, error)
	// ForgetReleased drops releases recorded before t, after a completed
	// collection (optional).
	ForgetReleased func(ctx context.Context, before time.Time) error
	// AfterPhase is a test hook called after each phase; an error stops the
	// run there (simulating a crash between phases).
	AfterPhase func(phase string) error
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	now func() time.Time

	// Grace: blobs (and, with RemoveUntagged, manifests) younger than this
	// are never removed.
	Grace time.Duration
}

func (e *Engine) clock() time.Time {
	if e.now != nil {
		return e.now()
	}
	return time.Now()
}

func (e *Engine) log() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.Default()
}

// protected reports whether an unreferenced blob or manifest must stay:
// written within the grace period, or named by a request within it.
func (e *Engine) protected(opts Options, d digest.Digest, mod, now time.Time) bool {
	g := e.grace(opts)
	if g > 0 && now.Sub(mod) < g {
		return true
	}
	if g == 0 && opts.Grace != nil {
		return false // the operator asked for no grace at all
	}
	return e.Gate.Recent(d)
}

func (e *Engine) lock(ctx context.Context) (func(), time.Duration, error) {
	if e.Gate == nil {
		return func() {}, 0, nil
	}
	start := time.Now()
	unlock, err := e.Gate.Lock(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("gc: closing the write gate: %w", err)
	}
	return unlock, time.Since(start), nil
}

// Run marks and sweeps once. With a Gate, writes wait from the start of
// the mark to the end of the sweep.
func (e *Engine) Run(ctx context.Context, opts Options) (*Result, error) {
	if e.Driver == nil {
		return nil, errors.New("gc: no storage driver")
	}
	unlock, waited, err := e.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res := &Result{DryRun: opts.DryRun, GateWait: waited, Grace: e.grace(opts)}
	runStart := e.clock()

	markStart := time.Now()
	marked, removeManifests, err := e.mark(ctx, opts, res)
	if err != nil {
		return res, err
	}
	res.MarkDuration = time.Since(markStart)

	sweepStart := time.Now()
	err = e.sweep(ctx, opts, marked, removeManifests, res)
	res.SweepDuration = time.Since(sweepStart)
	if !opts.DryRun && e.AfterRemove != nil {
		e.AfterRemove()
	}
	if err == nil && !opts.DryRun && e.ForgetReleased != nil {
		if ferr := e.ForgetReleased(ctx, runStart); ferr != nil {
			err = fmt.Errorf("gc: %w", ferr)
		}
	}
	e.log().Info("gc finished", "dry_run", opts.DryRun, "remove_untagged", opts.RemoveUntagged,
		"repositories", res.Repositories, "blobs_marked", res.BlobsMarked, "blobs_removed", res.BlobsRemoved,
		"bytes_freed", res.BytesFreed, "manifests_removed", res.ManifestsRemoved, "blobs_protected", res.BlobsProtected,
		"gate_wait", res.GateWait, "mark", res.MarkDuration, "sweep", res.SweepDuration, "err", err)
	return res, err
}
