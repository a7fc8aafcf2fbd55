package gc

import (
	"context"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/ocischema"
	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// fixture is a registry on a storage driver, written through distribution
// itself (as the App would).
type fixture struct {
	t      testing.TB
	ctx    context.Context
	driver storagedriver.StorageDriver
	ns     distribution.Namespace
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	return newFixtureOn(t, inmemory.New())
}

func newFixtureOn(t testing.TB, d storagedriver.StorageDriver) *fixture {
	t.Helper()
	ctx := context.Background()
	ns, err := storage.NewRegistry(ctx, d, storage.EnableDelete)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, ctx: ctx, driver: d, ns: ns}
}

func (f *fixture) repo(name string) distribution.Repository {
	f.t.Helper()
	named, err := reference.WithName(name)
	if err != nil {
		f.t.Fatal(err)
	}
	r, err := f.ns.Repository(f.ctx, named)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// blob uploads content to repo (through a blob writer, like a push).
func (f *fixture) blob(repo string, content []byte) v1.Descriptor {
	f.t.Helper()
	bs := f.repo(repo).Blobs(f.ctx)
	w, err := bs.Create(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := w.Write(content); err != nil {
		f.t.Fatal(err)
	}
	desc, err := w.Commit(f.ctx, v1.Descriptor{Digest: digest.FromBytes(content), Size: int64(len(content))})
	if err != nil {
		f.t.Fatal(err)
	}
	desc.MediaType = v1.MediaTypeImageLayerGzip
	return desc
}

// blobSHA512 uploads content committed under its sha512 digest: stored
// once under sha256, linked under both.
func (f *fixture) blobSHA512(repo string, content []byte) (alias, canonical digest.Digest) {
	f.t.Helper()
	bs := f.repo(repo).Blobs(f.ctx)
	w, err := bs.Create(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := w.Write(content); err != nil {
		f.t.Fatal(err)
	}
	sum := sha512.Sum512(content)
	alias = digest.NewDigestFromEncoded(digest.SHA512, hex.EncodeToString(sum[:]))
	desc, err := w.Commit(f.ctx, v1.Descriptor{Digest: alias, Size: int64(len(content))})
	if err != nil {
		f.t.Fatal(err)
	}
	return alias, desc.Digest
}

// image pushes a config and the given layers as an OCI manifest, tagged
// when tag != "". It returns the manifest digest and size.
func (f *fixture) image(repo, tag string, layers ...v1.Descriptor) (digest.Digest, int64) {
	f.t.Helper()
	cfg := f.blob(repo, []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"},"n":"`+hex.EncodeToString(randomBytes(f.t, 8))+`"}`))
	cfg.MediaType = v1.MediaTypeImageConfig
	m := ocischema.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, Config: cfg, Layers: layers}
	m.MediaType = v1.MediaTypeImageManifest
	dm, err := ocischema.FromStruct(m)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.putManifest(repo, tag, dm)
}

func (f *fixture) putManifest(repo, tag string, m distribution.Manifest) (digest.Digest, int64) {
	f.t.Helper()
	ms, err := f.repo(repo).Manifests(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	var opts []distribution.ManifestServiceOption
	if tag != "" {
		opts = append(opts, distribution.WithTag(tag))
	}
	d, err := ms.Put(f.ctx, m, opts...)
	if err != nil {
		f.t.Fatal(err)
	}
	if tag != "" {
		if err := f.repo(repo).Tags(f.ctx).Tag(f.ctx, tag, v1.Descriptor{Digest: d}); err != nil {
			f.t.Fatal(err)
		}
	}
	_, payload, _ := m.Payload()
	return d, int64(len(payload))
}

// referrer pushes an untagged artifact manifest whose subject is subject.
func (f *fixture) referrer(repo string, subject digest.Digest, subjectSize int64) digest.Digest {
	f.t.Helper()
	empty := f.blob(repo, []byte("{}"))
	doc := map[string]any{
		"schemaVersion": 2,
		"mediaType":     v1.MediaTypeImageManifest,
		"artifactType":  "application/vnd.example.sbom",
		"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.Digest, "size": empty.Size},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.Digest, "size": empty.Size}},
		"subject":       map[string]any{"mediaType": v1.MediaTypeImageManifest, "digest": subject, "size": subjectSize},
		"annotations":   map[string]string{"n": hex.EncodeToString(randomBytes(f.t, 8))},
	}
	raw, _ := json.Marshal(doc)
	var dm ocischema.DeserializedManifest
	if err := dm.UnmarshalJSON(raw); err != nil {
		f.t.Fatal(err)
	}
	d, _ := f.putManifest(repo, "", &dm)
	return d
}

// index pushes an OCI index over children, tagged.
func (f *fixture) index(repo, tag string, children ...v1.Descriptor) digest.Digest {
	f.t.Helper()
	idx, err := ocischema.FromDescriptors(children, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	d, _ := f.putManifest(repo, tag, idx)
	return d
}

// deleteManifest deletes a manifest revision (and its tags), as
// DELETE /v2/<name>/manifests/<digest> does.
func (f *fixture) deleteManifest(repo string, d digest.Digest) {
	f.t.Helper()
	r := f.repo(repo)
	tags, err := r.Tags(f.ctx).Lookup(f.ctx, v1.Descriptor{Digest: d})
	if err != nil {
		f.t.Fatal(err)
	}
	for _, tag := range tags {
		if err := r.Tags(f.ctx).Untag(f.ctx, tag); err != nil {
			f.t.Fatal(err)
		}
	}
	ms, _ := r.Manifests(f.ctx)
	if err := ms.Delete(f.ctx, d); err != nil {
		f.t.Fatal(err)
	}
}

// hasBlob reports whether the blob's data file exists.
func (f *fixture) hasBlob(d digest.Digest) bool {
	f.t.Helper()
	ok, err := exists(f.ctx, f.driver, blobDataPath(d))
	if err != nil {
		f.t.Fatal(err)
	}
	return ok
}

// pullable reports whether a manifest and everything it references can be
// read through repo.
func (f *fixture) pullable(repo string, d digest.Digest) error {
	r := f.repo(repo)
	ms, err := r.Manifests(f.ctx)
	if err != nil {
		return err
	}
	m, err := ms.Get(f.ctx, d)
	if err != nil {
		return err
	}
	for _, ref := range m.References() {
		if ok, _ := ms.Exists(f.ctx, ref.Digest); ok {
			if err := f.pullable(repo, ref.Digest); err != nil {
				return err
			}
			continue
		}
		b, err := r.Blobs(f.ctx).Get(f.ctx, ref.Digest)
		if err != nil {
			return errors.Join(errors.New("blob "+ref.Digest.String()), err)
		}
		if digest.FromBytes(b) != ref.Digest && ref.Digest.Algorithm() == digest.SHA256 {
			return errors.New("blob " + ref.Digest.String() + " content mismatch")
		}
	}
	return nil
}

func later(d time.Duration) func() time.Time {
	return func() time.Time { return time.Now().Add(d) }
}
