package gc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"git.wntrmute.dev/kyle/mcr/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "mcr.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

type auditLog struct {
	evs []store.AuditEvent
	mu  sync.Mutex
}

func (a *auditLog) record(ev store.AuditEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.evs = append(a.evs, ev)
}

func (a *auditLog) types() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, e := range a.evs {
		out = append(out, e.Type)
	}
	return out
}

func TestRunnerRecordsRunsAndRefusesConcurrentRuns(t *testing.T) {
	f := newFixture(t)
	orphan := f.blob("r", randomBytes(t, 321))
	st := openStore(t)
	gate := NewGate(time.Minute, time.Hour)
	e := &Engine{Driver: f.driver, Grace: time.Hour, Gate: gate, now: later(2 * time.Hour)}
	var audit auditLog
	r := NewRunner(e, st, audit.record)
	defer r.Close()

	// Hold the gate so the run stays in progress.
	unlock, err := gate.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	id, err := r.Start(Request{Actor: "admin", ActorID: "uuid-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Start(Request{}); !errors.Is(err, ErrRunning) {
		t.Fatalf("second start: %v", err)
	}
	running, last, err := r.Status(context.Background())
	if err != nil || !running || last == nil || last.ID != id || !last.Running() {
		t.Fatalf("status while running: %v %+v %v", running, last, err)
	}
	unlock()
	r.Wait()
	running, last, err = r.Status(context.Background())
	if err != nil || running || last == nil || last.Running() {
		t.Fatalf("status after: %v %+v %v", running, last, err)
	}
	if last.BlobsRemoved != 1 || last.BytesFreed != 321 || last.Error != "" || last.Actor != "admin" || last.Kind != store.GCKindGC {
		t.Fatalf("recorded run: %+v", last)
	}
	if f.hasBlob(orphan.Digest) {
		t.Fatal("orphan not swept")
	}
	if got := audit.types(); len(got) != 2 || got[0] != "gc_started" || got[1] != "gc_completed" {
		t.Fatalf("audit: %v", got)
	}

	// Reconcile runs are recorded with their kind.
	run, err := r.Run(context.Background(), Request{Reconcile: true, Options: Options{DryRun: true}})
	if err != nil || run.Kind != store.GCKindReconcile || !run.DryRun || run.Completed == nil {
		t.Fatalf("reconcile run: %+v %v", run, err)
	}
	runs, err := st.ListGCRuns(context.Background(), 10)
	if err != nil || len(runs) != 2 {
		t.Fatalf("runs: %+v %v", runs, err)
	}
}

func TestRunnerRecoverMarksInterruptedRuns(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	run := &store.GCRun{Kind: store.GCKindGC}
	if err := st.CreateGCRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	r := NewRunner(&Engine{}, st, nil)
	if err := r.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := st.GCRunByID(ctx, run.ID)
	if err != nil || got.Completed == nil || got.Error == "" {
		t.Fatalf("interrupted run: %+v %v", got, err)
	}
}

func TestSnapshotKeepsNewest(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	if err := st.CreateGCRun(ctx, &store.GCRun{}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "backups")
	var paths []string
	for range 4 {
		p, err := st.Snapshot(ctx, dir, 3)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	snaps, err := store.ListSnapshots(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 3 || snaps[2].Path != paths[3] || snaps[0].Path != paths[1] {
		t.Fatalf("kept %+v; took %v", snaps, paths)
	}
	fi, err := os.Stat(paths[3])
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot mode: %v %v", fi, err)
	}
	if m, _ := filepath.Match("mcr-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9][0-9][0-9][0-9][0-9][0-9]*.db", filepath.Base(paths[0])); !m {
		t.Fatalf("name %s", paths[0])
	}
	// The snapshot is a complete database.
	restored, err := store.Open(paths[3])
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := restored.Close(); err != nil {
			t.Error(err)
		}
	}()
	if runs, err := restored.ListGCRuns(ctx, 10); err != nil || len(runs) != 1 {
		t.Fatalf("snapshot content: %v %v", runs, err)
	}
}
