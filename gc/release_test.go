package gc

import (
	"context"
	"testing"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// TestGraceOverride: --grace 0s removes young unreferenced blobs, also
// ones the gate remembers; without it they stay.
func TestGraceOverride(t *testing.T) {
	f := newFixture(t)
	young := f.blob("team/app", randomBytes(t, 1000))
	g := NewGate(time.Second, time.Hour)
	g.Remember(young.Digest)
	e := &Engine{Driver: f.driver, Grace: time.Hour, Gate: g}
	res, err := e.Run(f.ctx, Options{})
	if err != nil || res.BlobsRemoved != 0 || res.BlobsProtected != 1 {
		t.Fatalf("configured grace: %+v, %v", res, err)
	}
	ten := 10 * time.Minute
	if res, err = e.Run(f.ctx, Options{Grace: &ten}); err != nil || res.BlobsRemoved != 0 {
		t.Fatalf("grace 10m on a fresh blob: %+v, %v", res, err)
	}
	zero := time.Duration(0)
	res, err = e.Run(f.ctx, Options{Grace: &zero})
	if err != nil || res.BlobsRemoved != 1 || f.hasBlob(young.Digest) || res.Grace != 0 {
		t.Fatalf("grace 0s: %+v, %v", res, err)
	}
}

// TestReleasedByRepositoryDelete: blobs of a deleted repository go at once;
// a blob another repository still links stays; releases are forgotten
// after the run.
func TestReleasedByRepositoryDelete(t *testing.T) {
	f := newFixture(t)
	sharedContent := randomBytes(t, 500)
	shared := f.blob("team/old", sharedContent)
	only := f.blob("team/old", randomBytes(t, 700))
	f.image("team/old", "v1", shared, only)
	f.blob("team/new", randomBytes(t, 10)) // unrelated young blob
	// team/new links the shared layer too, without a manifest yet.
	f.blob("team/new", sharedContent)

	rel, err := RepositoryBlobs(f.ctx, f.driver, "team/old")
	if err != nil {
		t.Fatal(err)
	}
	if len(rel) != 4 { // two layers, the config, the manifest
		t.Fatalf("released %v, want 4 blobs", rel)
	}
	named, _ := reference.WithName("team/old")
	remover, ok := f.ns.(interface {
		Remove(context.Context, reference.Named) error
	})
	if !ok {
		t.Fatalf("namespace %T cannot remove a repository", f.ns)
	}
	if err := remover.Remove(f.ctx, named); err != nil {
		t.Fatal(err)
	}
	var forgotten bool
	g := NewGate(time.Second, time.Hour)
	for _, d := range rel {
		g.Remember(d) // they were pushed moments ago
	}
	e := &Engine{Driver: f.driver, Grace: time.Hour, Gate: g,
		Released:       func(context.Context) ([]digest.Digest, error) { return rel, nil },
		ForgetReleased: func(context.Context, time.Time) error { forgotten = true; return nil }}
	res, err := e.Run(f.ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.BlobsRemoved != 3 || res.BlobsReleased != 3 || f.hasBlob(only.Digest) || !f.hasBlob(shared.Digest) || !forgotten {
		t.Fatalf("released blobs: %+v (shared kept %v)", res, f.hasBlob(shared.Digest))
	}
}
