package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"git.wntrmute.dev/kyle/mcr/cluster"
	"git.wntrmute.dev/kyle/mcr/config"
	"git.wntrmute.dev/kyle/mcr/gc"
	"git.wntrmute.dev/kyle/mcr/metrics"
	"git.wntrmute.dev/kyle/mcr/store"
)

// crashEnv is a test hook: `MCR_TEST_GC_CRASH_AFTER=metadata` makes the
// process exit (status 3) right after that phase of a collection, as a
// crash between phases would.
const crashEnv = "MCR_TEST_GC_CRASH_AFTER"

// holdEnv is a test hook: `MCR_TEST_GC_HOLD_FILE=<path>` keeps a
// collection inside its gated section, after the metadata phase, for as
// long as <path> exists, so a test can observe writes waiting and reads
// passing while a collection runs.
const holdEnv = "MCR_TEST_GC_HOLD_FILE"

// hangEnv is a test hook: `MCR_TEST_GC_HANG_AFTER=metadata` makes the
// collection stop for good after that phase, holding the gate (and, with
// replicas, the cluster lease), so a test can kill -9 the process there.
const hangEnv = "MCR_TEST_GC_HANG_AFTER"

// lockDataDir takes the data-directory lock for the server.
func lockDataDir(cfg *config.Config) (*gc.DirLock, error) {
	l, err := gc.LockDataDir(cfg.DataDir())
	if errors.Is(err, gc.ErrLocked) {
		return nil, fmt.Errorf("another mcrsrv is using %s: %w", cfg.DataDir(), err)
	}
	return l, err
}

// newEngine builds the GC engine over a storage driver; removed manifests
// leave the repository index in the same step.
func newEngine(cfg *config.Config, st *store.Store, gate *gc.Gate) *gc.Engine {
	e := &gc.Engine{Grace: cfg.GC.Grace, Gate: gate}
	e.OnManifestsRemoved = func(ctx context.Context, removed []gc.ManifestRef) error {
		ops := make([]store.IndexOp, 0, len(removed))
		for _, m := range removed {
			ops = append(ops, store.IndexOp{Kind: store.OpManifestDelete, Repository: m.Repository, Digest: m.Digest.String()})
		}
		return st.ApplyBatch(ctx, nil, ops)
	}
	e.Released = func(ctx context.Context) ([]digest.Digest, error) {
		rel, err := st.ReleasedBlobs(ctx)
		if err != nil {
			return nil, err
		}
		out := make([]digest.Digest, 0, len(rel))
		for d := range rel {
			out = append(out, digest.Digest(d))
		}
		return out, nil
	}
	e.ForgetReleased = st.ForgetReleased
	phase, hold := os.Getenv(crashEnv), os.Getenv(holdEnv)
	if phase != "" || hold != "" {
		e.AfterPhase = func(p string) error {
			if p == phase {
				fmt.Fprintf(os.Stderr, "mcrsrv: %s=%s: simulating a crash after the %s phase\n", crashEnv, phase, p)
				os.Exit(3)
			}
			if hold != "" && p == gc.PhaseMetadata {
				fmt.Fprintf(os.Stderr, "mcrsrv: %s: holding the collection while %s exists\n", holdEnv, hold)
			}
			for hold != "" && p == gc.PhaseMetadata {
				if _, err := os.Stat(hold); err != nil { //nolint:gosec // a test hook's own file, named by the test's environment
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			return nil
		}
	}
	if phase := os.Getenv(hangEnv); phase != "" {
		e.AfterPhase = func(p string) error {
			if p == phase {
				fmt.Fprintf(os.Stderr, "mcrsrv: %s=%s: collection hanging after the %s phase\n", hangEnv, phase, p)
				select {} // until killed
			}
			return nil
		}
	}
	return e
}

// serverGC is the garbage-collection wiring of `mcrsrv server`: the /v2
// write gate, the engine over the App's captured driver and the runner
// behind /v1/gc.
type serverGC struct {
	gate   *gc.Gate
	runner *gc.Runner
	cfg    *config.Config
	st     *store.Store
}

func newServerGC(cfg *config.Config, st *store.Store, capt *captured, audit func(store.AuditEvent), node *cluster.Node) (*serverGC, error) {
	_, drv, err := capt.get()
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	gate := gc.NewGate(cfg.GC.MaxWait, cfg.GC.Grace)
	metrics.RegisterGate(gate.Closed, gate.InFlight)
	e := newEngine(cfg, st, gate)
	e.Driver = drv
	e.AfterRemove = descriptorCache.Reset
	r := gc.NewRunner(e, st, audit)
	if node != nil {
		// Replicas: one collection at a time cluster-wide (the lease), and
		// the gate closes on every replica (see package cluster).
		lease := &cluster.Lease{Node: node, Name: "gc", TTL: cfg.GC.LeaseTTL}
		r.Lease = lease
		(&cluster.Gate{Node: node, Local: gate, Lease: lease}).Install()
	}
	if err := r.Recover(context.Background()); err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	return &serverGC{gate: gate, runner: r, cfg: cfg, st: st}, nil
}

// snapshot writes a database snapshot into <data>/backups.
func (s *serverGC) snapshot(ctx context.Context) (string, error) {
	return s.st.Snapshot(ctx, filepath.Join(s.cfg.DataDir(), "backups"), s.cfg.Snapshot.Keep)
}

// Close stops a running collection and waits for it.
func (s *serverGC) Close() { s.runner.Close() }

func gcCmd() *cobra.Command {
	var cfgPath string
	var req gc.Request
	c := &cobra.Command{
		Use:   "gc",
		Short: "Collect garbage offline (refuses while a server holds the data directory; use `mcrctl gc` then)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			// Only an online collection closes the other replicas' write
			// gates and holds the cluster lease.
			return runOffline(cfgPath, "collect", "`mcrctl gc`", func(ctx context.Context, cfg *config.Config, st *store.Store, drv driver.StorageDriver) error {
				e := newEngine(cfg, st, nil)
				e.Driver = drv
				r := gc.NewRunner(e, st, func(ev store.AuditEvent) {
					if err := st.WriteAudit(context.Background(), ev); err != nil {
						slog.Error("audit write failed", "type", ev.Type, "err", err)
					}
				})
				if err := r.Recover(ctx); err != nil {
					return err
				}
				req.Actor = "mcrsrv"
				start := time.Now()
				run, err := r.Run(ctx, req)
				if run != nil {
					printRun(run, time.Since(start))
				}
				return err
			})
		},
	}
	c.Flags().StringVar(&cfgPath, "config", "", "path to mcr.toml")
	c.Flags().BoolVar(&req.DryRun, "dry-run", false, "report what would be removed, remove nothing")
	c.Flags().BoolVar(&req.Reconcile, "reconcile", false, "remove files no blob or link references (after a crash) instead of collecting")
	c.Flags().BoolVar(&req.RemoveUntagged, "remove-untagged", false, "also remove manifests no tag reaches")
	c.Flags().Var(graceFlag{&req.Options}, "grace", "override gc.grace for this run (e.g. 0s); uploads in flight younger than it may lose their blobs")
	_ = c.MarkFlagRequired("config")
	return c
}

func printRun(run *store.GCRun, took time.Duration) {
	verb := "removed"
	if run.DryRun {
		verb = "would remove"
	}
	switch run.Kind {
	case store.GCKindReconcile:
		fmt.Printf("reconcile run %d: %s %d orphan blobs (%d bytes), %d dangling manifests", run.ID, verb, run.BlobsRemoved, run.BytesFreed, run.ManifestsRemoved)
		for _, k := range []string{"dangling_layer_links_removed", "broken_tags_removed", "empty_blob_dirs_removed", "stale_uploads_removed"} {
			if v, ok := run.Details[k]; ok {
				fmt.Printf(", %s=%v", k, v)
			}
		}
	default:
		fmt.Printf("gc run %d: %s %d blobs (%d bytes), %d manifests", run.ID, verb, run.BlobsRemoved, run.BytesFreed, run.ManifestsRemoved)
		if v, ok := run.Details["blobs_marked"]; ok {
			fmt.Printf("; %v blobs in use", v)
		}
		if v, ok := run.Details["blobs_protected"]; ok {
			fmt.Printf(", %v kept by the grace period", v)
		}
	}
	fmt.Printf(" in %s\n", took.Round(time.Millisecond))
	if run.Error != "" {
		fmt.Printf("error: %s\n", run.Error)
	}
}

// graceFlag sets Options.Grace only when given.
type graceFlag struct{ o *gc.Options }

func (g graceFlag) String() string {
	if g.o == nil || g.o.Grace == nil {
		return ""
	}
	return g.o.Grace.String()
}

func (g graceFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return fmt.Errorf("want a non-negative duration such as 0s or 10m")
	}
	g.o.Grace = &d
	return nil
}

func (graceFlag) Type() string { return "duration" }
