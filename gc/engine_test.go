package gc

import (
	"context"
	"errors"
	"path"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestSweepRemovesUnreferencedKeepsShared(t *testing.T) {
	f := newFixture(t)
	shared := f.blob("team/app", randomBytes(t, 3000))
	uniqueA := f.blob("team/app", randomBytes(t, 4000))
	uniqueB := f.blob("team/app", randomBytes(t, 5000))
	keep, _ := f.image("team/app", "v1", shared, uniqueA)
	gone, goneSize := f.image("team/app", "v2", shared, uniqueB)

	ms, _ := f.repo("team/app").Manifests(f.ctx)
	m, _ := ms.Get(f.ctx, gone)
	goneConfig := m.References()[0]
	f.deleteManifest("team/app", gone)

	e := &Engine{Driver: f.driver, Grace: time.Hour, now: later(2 * time.Hour)}
	res, err := e.Run(f.ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantFreed := uniqueB.Size + goneConfig.Size + goneSize
	if res.BlobsRemoved != 3 || res.BytesFreed != wantFreed {
		t.Fatalf("removed %d blobs, %d bytes; want 3 blobs (layer, config, manifest), %d bytes", res.BlobsRemoved, res.BytesFreed, wantFreed)
	}
	for _, d := range []digest.Digest{uniqueB.Digest, goneConfig.Digest, gone} {
		if f.hasBlob(d) {
			t.Errorf("blob %s survived", d)
		}
	}
	if !f.hasBlob(shared.Digest) || !f.hasBlob(uniqueA.Digest) {
		t.Fatal("a referenced blob was removed")
	}
	if err := f.pullable("team/app", keep); err != nil {
		t.Fatalf("kept image no longer pulls: %v", err)
	}
	// The layer link of the swept blob is gone too, the others stay.
	if ok, _ := exists(f.ctx, f.driver, path.Join(layerLinkDir("team/app", uniqueB.Digest), "link")); ok {
		t.Error("layer link of a swept blob survived")
	}
	if ok, _ := exists(f.ctx, f.driver, path.Join(layerLinkDir("team/app", shared.Digest), "link")); !ok {
		t.Error("layer link of a kept blob was removed")
	}
	// A second run finds nothing.
	res, err = e.Run(f.ctx, Options{})
	if err != nil || res.BlobsRemoved != 0 {
		t.Fatalf("second run: %+v, %v", res, err)
	}
}

func TestGracePeriodProtectsFreshUploads(t *testing.T) {
	f := newFixture(t)
	layer := f.blob("team/app", randomBytes(t, 1000)) // pushed, manifest not yet
	e := &Engine{Driver: f.driver, Grace: time.Hour}
	res, err := e.Run(f.ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.BlobsRemoved != 0 || res.BlobsProtected != 1 || !f.hasBlob(layer.Digest) {
		t.Fatalf("young blob not protected: %+v", res)
	}
	// The push completes after the collection: the layer link must still be there.
	d, _ := f.image("team/app", "v1", layer)
	if err := f.pullable("team/app", d); err != nil {
		t.Fatal(err)
	}

	orphan := f.blob("team/app", randomBytes(t, 1234))
	e.now = later(2 * time.Hour)
	res, err = e.Run(f.ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.BlobsRemoved != 1 || res.BytesFreed != 1234 || f.hasBlob(orphan.Digest) {
		t.Fatalf("orphan past the grace period not swept: %+v", res)
	}
}

func TestRecentlyNamedDigestIsKept(t *testing.T) {
	f := newFixture(t)
	orphan := f.blob("team/app", randomBytes(t, 100))
	g := NewGate(time.Second, time.Hour)
	g.Remember(orphan.Digest) // e.g. a HEAD probe by a pusher
	e := &Engine{Driver: f.driver, Grace: time.Hour, Gate: g, now: later(2 * time.Hour)}
	res, err := e.Run(f.ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.BlobsRemoved != 0 || !f.hasBlob(orphan.Digest) {
		t.Fatalf("recently named blob swept: %+v", res)
	}
}

func TestDryRunRemovesNothing(t *testing.T) {
	f := newFixture(t)
	orphan := f.blob("team/app", randomBytes(t, 100))
	e := &Engine{Driver: f.driver, Grace: time.Minute, now: later(time.Hour)}
	res, err := e.Run(f.ctx, Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.BlobsRemoved != 1 || res.BytesFreed != 100 || !f.hasBlob(orphan.Digest) {
		t.Fatalf("dry run: %+v, blob present %v", res, f.hasBlob(orphan.Digest))
	}
}

func TestRemoveUntagged(t *testing.T) {
	f := newFixture(t)
	l1 := f.blob("r", randomBytes(t, 100))
	l2 := f.blob("r", randomBytes(t, 200))
	l3 := f.blob("r", randomBytes(t, 300))
	tagged, taggedSize := f.image("r", "latest", l1)
	untagged, _ := f.image("r", "", l2)
	// An index (tagged) over an untagged child: the child stays.
	child, childSize := f.image("r", "", l3)
	idx := f.index("r", "multi", v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: child, Size: childSize,
		Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}})
	// A referrer of a tagged image stays; a referrer of a removed one goes.
	sbom := f.referrer("r", tagged, taggedSize)
	orphanRef := f.referrer("r", untagged, 0)

	e := &Engine{Driver: f.driver, Grace: time.Hour, now: later(2 * time.Hour)}
	var indexed []ManifestRef
	e.OnManifestsRemoved = func(_ context.Context, removed []ManifestRef) error {
		indexed = append(indexed, removed...)
		return nil
	}
	res, err := e.Run(f.ctx, Options{RemoveUntagged: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.ManifestsRemoved != 2 || len(indexed) != 2 {
		t.Fatalf("manifests removed %d (index told %d), want 2 (untagged image, its referrer): %+v", res.ManifestsRemoved, len(indexed), res.RemovedManifests)
	}
	ms, _ := f.repo("r").Manifests(f.ctx)
	for _, d := range []digest.Digest{tagged, child, idx, sbom} {
		if ok, _ := ms.Exists(f.ctx, d); !ok {
			t.Errorf("manifest %s removed", d)
		}
	}
	for _, d := range []digest.Digest{untagged, orphanRef} {
		if ok, _ := ms.Exists(f.ctx, d); ok {
			t.Errorf("manifest %s kept", d)
		}
	}
	if f.hasBlob(l2.Digest) || !f.hasBlob(l3.Digest) || !f.hasBlob(l1.Digest) {
		t.Fatal("blob marking does not follow manifest removal")
	}
	if err := f.pullable("r", idx); err != nil {
		t.Fatal(err)
	}

	// Without RemoveUntagged, untagged manifests are roots.
	u2, _ := f.image("r", "", f.blob("r", randomBytes(t, 10)))
	if _, err := e.Run(f.ctx, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := f.pullable("r", u2); err != nil {
		t.Fatalf("untagged manifest collected without RemoveUntagged: %v", err)
	}
}

func TestSHA512AliasesKeepCanonicalBlob(t *testing.T) {
	f := newFixture(t)
	alias, canonical := f.blobSHA512("r", randomBytes(t, 500))
	if alias == canonical {
		t.Fatal("fixture: alias equals canonical")
	}
	d, _ := f.image("r", "v1", v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: alias, Size: 500})
	e := &Engine{Driver: f.driver, Grace: time.Hour, now: later(2 * time.Hour)}
	res, err := e.Run(f.ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !f.hasBlob(canonical) || res.BlobsRemoved != 0 {
		t.Fatalf("blob referenced by its sha512 alias swept: %+v", res)
	}
	if err := f.pullable("r", d); err != nil {
		t.Fatal(err)
	}
	rr, err := e.Reconcile(f.ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if rr.DanglingLayerLinksRemoved != 0 || rr.OrphanBlobsRemoved != 0 {
		t.Fatalf("reconcile removed alias links: %+v", rr)
	}
	if err := f.pullable("r", d); err != nil {
		t.Fatal(err)
	}
	// Unreferenced, both links go with the blob.
	f.deleteManifest("r", d)
	res, err = e.Run(f.ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if f.hasBlob(canonical) || res.LayerLinksRemoved != 3 { // sha256 + sha512 links of the layer, the config link
		t.Fatalf("unreferenced aliased blob: %+v", res)
	}
}

var errCrash = errors.New("simulated crash")

func TestReconcileAfterCrashBetweenPhases(t *testing.T) {
	f := newFixture(t)
	keepLayer := f.blob("r", randomBytes(t, 100))
	keep, _ := f.image("r", "v1", keepLayer)
	dropLayer := f.blob("r", randomBytes(t, 700))
	drop, _ := f.image("r", "v2", dropLayer)
	f.deleteManifest("r", drop)

	e := &Engine{Driver: f.driver, Grace: time.Hour, now: later(2 * time.Hour)}
	e.AfterPhase = func(p string) error {
		if p == PhaseMetadata {
			return errCrash
		}
		return nil
	}
	if _, err := e.Run(f.ctx, Options{}); !errors.Is(err, errCrash) {
		t.Fatalf("want the simulated crash, got %v", err)
	}
	if !f.hasBlob(dropLayer.Digest) {
		t.Fatal("file phase ran")
	}
	// Leftovers of other crashes: a blob dir without data, a dangling
	// layer link, an abandoned upload.
	ghost := digest.FromString("ghost")
	if err := f.driver.PutContent(f.ctx, path.Join(blobDir(ghost), "tmp"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := f.driver.Delete(f.ctx, path.Join(blobDir(ghost), "tmp")); err != nil {
		t.Fatal(err)
	}
	dangling := digest.FromString("dangling")
	if err := f.driver.PutContent(f.ctx, path.Join(layerLinkDir("r", dangling), "link"), []byte(dangling)); err != nil {
		t.Fatal(err)
	}
	bw, err := f.repo("r").Blobs(f.ctx).Create(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = bw.Write([]byte("partial"))
	_ = bw.Close()

	e.AfterPhase = nil
	rr, err := e.Reconcile(f.ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if rr.OrphanBlobsRemoved != 3 || !f.hasBlob(dropLayer.Digest) {
		t.Fatalf("dry-run reconcile: %+v", rr)
	}
	rr, err = e.Reconcile(f.ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	// The crash came before any file was removed: the dropped image's
	// layer, config and manifest blob are left without links.
	if rr.OrphanBlobsRemoved != 3 {
		t.Errorf("orphans removed %d, want 3 (layer, config, manifest): %+v", rr.OrphanBlobsRemoved, rr)
	}
	if rr.DanglingLayerLinksRemoved != 1 || rr.StaleUploadsRemoved != 1 || rr.EmptyBlobDirsRemoved != 1 {
		t.Errorf("reconcile: %+v", rr)
	}
	if f.hasBlob(dropLayer.Digest) || f.hasBlob(drop) {
		t.Error("orphans survived reconcile")
	}
	if err := f.pullable("r", keep); err != nil {
		t.Fatal(err)
	}
	// Storage is now consistent: a collection finds nothing more.
	res, err := e.Run(f.ctx, Options{})
	if err != nil || res.BlobsRemoved != 0 {
		t.Fatalf("collection after reconcile: %+v, %v", res, err)
	}
}

func TestRefusesWithoutRepositories(t *testing.T) {
	f := newFixture(t)
	f.blob("r", randomBytes(t, 10))
	if err := f.driver.Delete(f.ctx, reposRoot); err != nil {
		t.Fatal(err)
	}
	e := &Engine{Driver: f.driver, Grace: time.Minute, now: later(time.Hour)}
	if _, err := e.Run(f.ctx, Options{}); err == nil {
		t.Fatal("swept all blobs of a registry without repositories")
	}
}
