package e2e

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	orasremote "oras.land/oras-go/v2/registry/remote"
	orasauth "oras.land/oras-go/v2/registry/remote/auth"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// orasRepo opens repo on srv with oras-go, signed in as admin.
func orasRepo(t *testing.T, srv *mcrtest.Server, repo string) *orasremote.Repository {
	t.Helper()
	r, err := orasremote.NewRepository(srv.Addr + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	r.Client = &orasauth.Client{
		Client:     &http.Client{Transport: srv.Transport(), Timeout: time.Minute},
		Credential: orasauth.StaticCredential(srv.Addr, orasauth.Credential{Username: "admin", Password: mcrtest.AdminPassword}),
	}
	return r
}

func listReferrers(ctx context.Context, t *testing.T, r *orasremote.Repository, subject ocispec.Descriptor, artifactType string) []ocispec.Descriptor {
	t.Helper()
	var all []ocispec.Descriptor
	if err := r.Referrers(ctx, subject, artifactType, func(ds []ocispec.Descriptor) error {
		all = append(all, ds...)
		return nil
	}); err != nil {
		t.Fatalf("referrers (artifactType %q): %v", artifactType, err)
	}
	return all
}

// TestOrasReferrers attaches two artifacts of different types to an image
// with oras-go, lists them through the referrers API with and without an
// artifactType filter, deletes one, and checks no fallback tag exists.
func TestOrasReferrers(t *testing.T) {
	t.Parallel()
	testOrasReferrers(t)
}

// testOrasReferrers runs on a server started with opts (e.g. on S3).
func testOrasReferrers(t *testing.T, opts ...mcrtest.Option) {
	srv := mcrtest.Start(t, opts...)
	ctx := context.Background()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, srv, "oci/app:v1"), img, remoteOpts(t, srv, adminAuth(), nil)...); err != nil {
		t.Fatal(err)
	}
	repo := orasRepo(t, srv, "oci/app")
	subject, err := repo.Resolve(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	attach := func(artifactType, content string) ocispec.Descriptor {
		layer := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromString(content), Size: int64(len(content))}
		if err := repo.Push(ctx, layer, strings.NewReader(content)); err != nil {
			t.Fatal(err)
		}
		desc, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, artifactType,
			oras.PackManifestOptions{Subject: &subject, Layers: []ocispec.Descriptor{layer},
				ManifestAnnotations: map[string]string{"org.opencontainers.image.created": "2026-11-23T00:00:00Z"}})
		if err != nil {
			t.Fatalf("attach %s: %v", artifactType, err)
		}
		return desc
	}
	sbom := attach("application/vnd.example.sbom+json", "sbom-content")
	sig := attach("application/vnd.example.signature", "signature-content")

	all := listReferrers(ctx, t, repo, subject, "")
	if len(all) != 2 {
		t.Fatalf("referrers: %d, want 2: %+v", len(all), all)
	}
	got := map[digest.Digest]ocispec.Descriptor{}
	for _, d := range all {
		got[d.Digest] = d
	}
	if got[sbom.Digest].ArtifactType != "application/vnd.example.sbom+json" || got[sig.Digest].ArtifactType != "application/vnd.example.signature" {
		t.Fatalf("artifact types wrong: %+v", all)
	}
	if got[sbom.Digest].Annotations["org.opencontainers.image.created"] == "" {
		t.Fatalf("annotations missing from referrer descriptor: %+v", got[sbom.Digest])
	}
	filtered := listReferrers(ctx, t, repo, subject, "application/vnd.example.signature")
	if len(filtered) != 1 || filtered[0].Digest != sig.Digest {
		t.Fatalf("filtered referrers: %+v", filtered)
	}

	// The raw API: content type and the filter header.
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:oci/app:pull")
	resp := srv.Do(t, http.MethodGet, "/v2/oci/app/referrers/"+subject.Digest.String()+"?artifactType=application/vnd.example.sbom%2Bjson", tok, nil)
	body := expectStatus(t, resp, http.StatusOK)
	if ct := resp.Header.Get("Content-Type"); ct != ocispec.MediaTypeImageIndex {
		t.Fatalf("Content-Type %q", ct)
	}
	if resp.Header.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatalf("OCI-Filters-Applied missing")
	}
	var idx ocispec.Index
	if err := json.Unmarshal(body, &idx); err != nil || len(idx.Manifests) != 1 || idx.Manifests[0].Digest != sbom.Digest {
		t.Fatalf("filtered index: %s (%v)", body, err)
	}

	if err := repo.Delete(ctx, sbom); err != nil {
		t.Fatalf("delete referrer: %v", err)
	}
	left := listReferrers(ctx, t, repo, subject, "")
	if len(left) != 1 || left[0].Digest != sig.Digest {
		t.Fatalf("after delete: %+v", left)
	}

	// No referrers-tag-schema fallback: no sha256-<hex> tag was created.
	var tags []string
	if err := repo.Tags(ctx, "", func(ts []string) error { tags = append(tags, ts...); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, tg := range tags {
		if strings.HasPrefix(tg, "sha256-") {
			t.Fatalf("fallback tag %q created; tags %v", tg, tags)
		}
	}
}

// TestOCIExtBadInput: malformed digests, referrers of unknown repositories,
// and a sha512 upload whose content does not match.
func TestOCIExtBadInput(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:oci/bad:pull,push", "repository:oci/none:pull")

	expectOCIError(t, srv.Do(t, http.MethodGet, "/v2/oci/bad/referrers/sha256:zzz", tok, nil), http.StatusBadRequest, "DIGEST_INVALID")
	expectOCIError(t, srv.Do(t, http.MethodGet, "/v2/oci/bad/referrers/notadigest", tok, nil), http.StatusBadRequest, "DIGEST_INVALID")

	// distribution-spec 1.1: "the registry MUST NOT return a 404" from the
	// referrers API; an unknown repository has an empty list.
	resp := srv.Do(t, http.MethodGet, "/v2/oci/none/referrers/"+digest.FromString("x").String(), tok, nil)
	var idx ocispec.Index
	if err := json.Unmarshal(expectStatus(t, resp, http.StatusOK), &idx); err != nil || len(idx.Manifests) != 0 {
		t.Fatalf("unknown repository referrers: %+v %v", idx, err)
	}
	// Without credentials: the usual challenge.
	resp = srv.Do(t, http.MethodGet, "/v2/oci/bad/referrers/"+digest.FromString("x").String(), "", nil)
	expectOCIError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED")
	if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
		t.Fatal("no Bearer challenge on referrers")
	}

	// sha512 upload whose content doesn't match → DIGEST_INVALID, nothing stored.
	content := []byte("the real content")
	wrong := sha512.Sum512([]byte("other content"))
	wrongDigest := "sha512:" + hex.EncodeToString(wrong[:])
	resp = srv.Do(t, http.MethodPost, "/v2/oci/bad/blobs/uploads/", tok, nil)
	expectStatus(t, resp, http.StatusAccepted)
	loc := resp.Header.Get("Location")
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	put, _ := http.NewRequest(http.MethodPut, absolute(srv, loc)+sep+"digest="+wrongDigest, bytes.NewReader(content))
	put.Header.Set("Authorization", "Bearer "+tok)
	put.Header.Set("Content-Type", "application/octet-stream")
	presp, err := srv.Client().Do(put)
	if err != nil {
		t.Fatal(err)
	}
	expectOCIError(t, presp, http.StatusBadRequest, "DIGEST_INVALID")
	for _, d := range []string{wrongDigest, digest.FromBytes(content).String()} {
		r := srv.Do(t, http.MethodHead, "/v2/oci/bad/blobs/"+d, tok, nil)
		r.Body.Close()
		if r.StatusCode != http.StatusNotFound {
			t.Fatalf("HEAD %s after failed upload: %d, want 404", d, r.StatusCode)
		}
	}

	// A manifest PUT by a sha512 digest that doesn't match its body.
	body := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`)
	resp = srv.Do(t, http.MethodPut, "/v2/oci/bad/manifests/"+wrongDigest, tok, body, "Content-Type", ocispec.MediaTypeImageManifest)
	expectOCIError(t, resp, http.StatusBadRequest, "DIGEST_INVALID")
}

// TestSHA512RoundTrip pushes a blob and a manifest by sha512 digests and
// reads them back by those digests, with the algorithm echoed.
func TestSHA512RoundTrip(t *testing.T) {
	t.Parallel()
	testSHA512RoundTrip(t)
}

// testSHA512RoundTrip runs on a server started with opts (e.g. on S3).
func testSHA512RoundTrip(t *testing.T, opts ...mcrtest.Option) {
	srv := mcrtest.Start(t, opts...)
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:sha/a:pull,push,delete", "repository:sha/b:pull,push")
	sum := func(b []byte) string { s := sha512.Sum512(b); return "sha512:" + hex.EncodeToString(s[:]) }

	upload := func(repo string, content []byte) {
		resp := srv.Do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", tok, nil)
		expectStatus(t, resp, http.StatusAccepted)
		loc := resp.Header.Get("Location")
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		req, _ := http.NewRequest(http.MethodPut, absolute(srv, loc)+sep+"digest="+sum(content), bytes.NewReader(content))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/octet-stream")
		r, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		expectStatus(t, r, http.StatusCreated)
		if got := r.Header.Get("Docker-Content-Digest"); got != sum(content) {
			t.Fatalf("upload Docker-Content-Digest %q, want %q", got, sum(content))
		}
	}
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer := []byte("layer bytes for sha512")
	upload("sha/a", config)
	upload("sha/a", layer)
	for _, c := range [][]byte{config, layer} {
		r := srv.Do(t, http.MethodGet, "/v2/sha/a/blobs/"+sum(c), tok, nil)
		got := expectStatus(t, r, http.StatusOK)
		if !bytes.Equal(got, c) || r.Header.Get("Docker-Content-Digest") != sum(c) {
			t.Fatalf("GET blob by sha512: %q digest %q", got, r.Header.Get("Docker-Content-Digest"))
		}
	}
	manifest := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`,
		sum(config), len(config), sum(layer), len(layer)))
	md := sum(manifest)
	resp := srv.Do(t, http.MethodPut, "/v2/sha/a/manifests/"+md, tok, manifest, "Content-Type", ocispec.MediaTypeImageManifest)
	expectStatus(t, resp, http.StatusCreated)
	if resp.Header.Get("Docker-Content-Digest") != md || !strings.HasSuffix(resp.Header.Get("Location"), md) {
		t.Fatalf("manifest PUT headers: %v", resp.Header)
	}
	resp = srv.Do(t, http.MethodGet, "/v2/sha/a/manifests/"+md, tok, nil, "Accept", ocispec.MediaTypeImageManifest)
	if got := expectStatus(t, resp, http.StatusOK); !bytes.Equal(got, manifest) || resp.Header.Get("Docker-Content-Digest") != md {
		t.Fatalf("manifest GET by sha512: digest %q", resp.Header.Get("Docker-Content-Digest"))
	}
	// Mount by sha512 into another repository, then read it there.
	resp = srv.Do(t, http.MethodPost, "/v2/sha/b/blobs/uploads/?mount="+sum(layer)+"&from=sha/a", tok, nil)
	expectStatus(t, resp, http.StatusCreated)
	if resp.Header.Get("Docker-Content-Digest") != sum(layer) {
		t.Fatalf("mount digest %q", resp.Header.Get("Docker-Content-Digest"))
	}
	r := srv.Do(t, http.MethodGet, "/v2/sha/b/blobs/"+sum(layer), tok, nil)
	if got := expectStatus(t, r, http.StatusOK); !bytes.Equal(got, layer) {
		t.Fatalf("mounted blob by sha512: %q", got)
	}
	// Delete the manifest by sha512: gone by that digest.
	expectStatus(t, srv.Do(t, http.MethodDelete, "/v2/sha/a/manifests/"+md, tok, nil), http.StatusAccepted)
	expectOCIError(t, srv.Do(t, http.MethodGet, "/v2/sha/a/manifests/"+md, tok, nil, "Accept", ocispec.MediaTypeImageManifest), http.StatusNotFound, "MANIFEST_UNKNOWN")
}

// absolute turns a Location (absolute or path) into a URL on srv.
func absolute(srv *mcrtest.Server, loc string) string {
	if strings.HasPrefix(loc, "http") {
		return loc
	}
	return srv.URL + loc
}
