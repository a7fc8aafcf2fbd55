package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// compareImages checks that got (pulled) has the digest, config and layers
// of want (pushed), reading every layer back in full.
func compareImages(t *testing.T, want, got v1.Image) {
	t.Helper()
	wd, err := want.Digest()
	if err != nil {
		t.Fatal(err)
	}
	gd, err := got.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if wd != gd {
		t.Fatalf("manifest digest: pulled %s, pushed %s", gd, wd)
	}
	wm, _ := want.RawManifest()
	gm, err := got.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(wm, gm) {
		t.Fatalf("manifest bytes differ:\npushed %s\npulled %s", wm, gm)
	}
	wc, _ := want.ConfigName()
	gc, err := got.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if wc != gc {
		t.Fatalf("config digest: pulled %s, pushed %s", gc, wc)
	}
	gcf, err := got.RawConfigFile()
	if err != nil {
		t.Fatalf("pull config: %v", err)
	}
	if h := sha256.Sum256(gcf); "sha256:"+hex.EncodeToString(h[:]) != gc.String() {
		t.Fatalf("config blob content does not match its digest %s", gc)
	}
	wl, _ := want.Layers()
	gl, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(wl) != len(gl) {
		t.Fatalf("layers: pulled %d, pushed %d", len(gl), len(wl))
	}
	for i := range wl {
		wdg, _ := wl[i].Digest()
		gdg, err := gl[i].Digest()
		if err != nil {
			t.Fatal(err)
		}
		if wdg != gdg {
			t.Fatalf("layer %d: pulled %s, pushed %s", i, gdg, wdg)
		}
		rc, err := gl[i].Compressed()
		if err != nil {
			t.Fatalf("pull layer %d: %v", i, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read layer %d: %v", i, err)
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != wdg.String() {
			t.Fatalf("layer %d content hashes to %s, want %s", i, got, wdg)
		}
		if ws, _ := wl[i].Size(); ws != n {
			t.Fatalf("layer %d: pulled %d bytes, pushed %d", i, n, ws)
		}
	}
}

func TestImageRoundTrip(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	opts := remoteOpts(t, srv, adminAuth(), nil)

	img, err := random.Image(256<<10, 4)
	if err != nil {
		t.Fatal(err)
	}
	tag := ref(t, srv, "roundtrip/app:v1")
	if err := remote.Write(tag, img, opts...); err != nil {
		t.Fatalf("push: %v", err)
	}
	d, _ := img.Digest()

	got, err := remote.Image(tag, opts...)
	if err != nil {
		t.Fatalf("pull by tag: %v", err)
	}
	compareImages(t, img, got)

	byDigest := ref(t, srv, "roundtrip/app@"+d.String())
	got, err = remote.Image(byDigest, opts...)
	if err != nil {
		t.Fatalf("pull by digest: %v", err)
	}
	compareImages(t, img, got)

	desc, err := remote.Head(tag, opts...)
	if err != nil {
		t.Fatalf("head: %v", err)
	}
	if desc.Digest != d {
		t.Fatalf("HEAD digest %s, want %s", desc.Digest, d)
	}

	// A second image on top of the first (shared base layers) pushes and
	// pulls too.
	extra, err := random.Layer(64<<10, "application/vnd.oci.image.layer.v1.tar+gzip")
	if err != nil {
		t.Fatal(err)
	}
	img2, err := mutate.AppendLayers(img, extra)
	if err != nil {
		t.Fatal(err)
	}
	tag2 := ref(t, srv, "roundtrip/app:v2")
	if err := remote.Write(tag2, img2, opts...); err != nil {
		t.Fatalf("push v2: %v", err)
	}
	got2, err := remote.Image(tag2, opts...)
	if err != nil {
		t.Fatalf("pull v2: %v", err)
	}
	compareImages(t, img2, got2)
}

func TestHealthAndTLS(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)

	resp := srv.Do(t, http.MethodGet, "/v1/health", "", nil)
	body := expectStatus(t, resp, http.StatusOK)
	var h struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(body, &h); err != nil || h.Status != "ok" {
		t.Fatalf("GET /v1/health: %s, want {\"status\":\"ok\"}", body)
	}
	if resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 {
		t.Fatalf("GET /v1/health was not served over TLS 1.3: %+v", resp.TLS)
	}

	// TLS 1.2 and older are refused.
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS11} {
		conn, err := tls.Dial("tcp", srv.Addr, &tls.Config{RootCAs: srv.CertPool(), MinVersion: tls.VersionTLS10, MaxVersion: v})
		if err == nil {
			_ = conn.Close() // only the handshake mattered
			t.Errorf("a TLS client limited to version %x completed a handshake", v)
		}
	}
	// Plain HTTP on the TLS port gets nothing useful.
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + srv.Addr + "/v2/"); err == nil {
		body := readAll(t, resp)
		if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
			t.Errorf("plain HTTP on the registry port answered %d %s", resp.StatusCode, body)
		}
	}
	// The certificate is valid for localhost and 127.0.0.1 (and ::1).
	for _, host := range []string{"localhost", "127.0.0.1"} {
		conn, err := tls.Dial("tcp", srv.Addr, &tls.Config{RootCAs: srv.CertPool(), ServerName: host, MinVersion: tls.VersionTLS13})
		if err != nil {
			t.Errorf("certificate not valid for %s: %v", host, err)
			continue
		}
		_ = conn.Close() // only the handshake mattered
	}

	// distribution's logrus output goes through slog at the configured
	// level (info by default): no debug lines, no logrus-formatted lines.
	img, _ := random.Image(1024, 1)
	opts := remoteOpts(t, srv, adminAuth(), nil)
	if err := remote.Write(ref(t, srv, "logging/app:v1"), img, opts...); err != nil {
		t.Fatalf("push: %v", err)
	}
	if _, err := remote.Image(ref(t, srv, "logging/app:v1"), opts...); err != nil {
		t.Fatalf("pull: %v", err)
	}
	expectChallenge(t, srv.Do(t, http.MethodGet, "/v2/logging/app/tags/list", "bogus", nil))
	if err := srv.Stop(t); err != nil {
		t.Errorf("mcrsrv exited with %v", err)
	}
	for _, l := range strings.Split(srv.Output.String(), "\n") {
		switch {
		case l == "":
		case strings.Contains(l, "level=DEBUG"):
			t.Errorf("debug line at log level info: %s", l)
		case strings.HasPrefix(l, `time="`) || strings.Contains(l, "level=info msg="):
			t.Errorf("a logrus-formatted line, not routed through slog: %s", l)
		case !strings.HasPrefix(l, "time="):
			t.Errorf("a log line not written by slog: %s", l)
		}
	}
}

func TestIndexRoundTrip(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	opts := remoteOpts(t, srv, adminAuth(), nil)

	idx, err := random.Index(128<<10, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	tag := ref(t, srv, "roundtrip/multi:latest")
	if err := remote.WriteIndex(tag, idx, opts...); err != nil {
		t.Fatalf("push index: %v", err)
	}
	want, _ := idx.Digest()
	desc, err := remote.Get(tag, opts...)
	if err != nil {
		t.Fatalf("get index: %v", err)
	}
	if desc.Digest != want {
		t.Fatalf("index digest: pulled %s, pushed %s", desc.Digest, want)
	}
	if !desc.MediaType.IsIndex() {
		t.Fatalf("pulled media type %s, want an index", desc.MediaType)
	}
	got, err := remote.Index(ref(t, srv, "roundtrip/multi@"+want.String()), opts...)
	if err != nil {
		t.Fatalf("pull index by digest: %v", err)
	}
	gd, _ := got.Digest()
	if gd != want {
		t.Fatalf("index digest by digest: %s, want %s", gd, want)
	}
	wm, _ := idx.IndexManifest()
	gm, err := got.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(gm.Manifests) != len(wm.Manifests) || len(gm.Manifests) != 3 {
		t.Fatalf("index children: pulled %d, pushed %d", len(gm.Manifests), len(wm.Manifests))
	}
	for i, m := range wm.Manifests {
		if gm.Manifests[i].Digest != m.Digest {
			t.Fatalf("child %d: pulled %s, pushed %s", i, gm.Manifests[i].Digest, m.Digest)
		}
		wantImg, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		gotImg, err := got.Image(m.Digest)
		if err != nil {
			t.Fatalf("pull child %s: %v", m.Digest, err)
		}
		compareImages(t, wantImg, gotImg)
	}
}

// followPages GETs path with n=pageSize and follows Link rel="next"
// headers, returning the items of every page (field "tags" or
// "repositories") and the page count.
func followPages(t *testing.T, srv *mcrtest.Server, path, token, field string, pageSize int) ([]string, int) {
	t.Helper()
	var all []string
	next := path + "?n=" + strconv.Itoa(pageSize)
	pages := 0
	for next != "" {
		pages++
		if pages > 50 {
			t.Fatalf("pagination of %s does not terminate", path)
		}
		resp := srv.Do(t, http.MethodGet, next, token, nil)
		body := expectStatus(t, resp, http.StatusOK)
		var page map[string]json.RawMessage
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("GET %s: %v: %s", next, err, body)
		}
		var items []string
		if raw, ok := page[field]; ok && string(raw) != "null" {
			if err := json.Unmarshal(raw, &items); err != nil {
				t.Fatalf("GET %s: %s: %v", next, field, err)
			}
		}
		if len(items) > pageSize {
			t.Fatalf("GET %s: %d items on a page of size %d", next, len(items), pageSize)
		}
		all = append(all, items...)
		next = ""
		if link := resp.Header.Get("Link"); link != "" {
			if !strings.Contains(link, `rel="next"`) {
				t.Fatalf("GET %s: Link header %q without rel=\"next\"", path, link)
			}
			start, end := strings.IndexByte(link, '<'), strings.IndexByte(link, '>')
			if start < 0 || end < start {
				t.Fatalf("GET %s: malformed Link header %q", path, link)
			}
			u, err := url.Parse(link[start+1 : end])
			if err != nil {
				t.Fatalf("Link %q: %v", link, err)
			}
			if u.Query().Get("last") == "" {
				t.Fatalf("Link %q has no last=", link)
			}
			next = u.RequestURI()
		}
	}
	return all, pages
}

func TestTagListPagination(t *testing.T) {
	t.Parallel()
	// The registry's external name is the alias go-containerregistry uses
	// (its token realm names it).
	srv := mcrtest.Start(t, mcrtest.WithHostname("mcr.test"))
	alias, aliasRT := aliasRegistry(srv)
	opts := remoteOpts(t, srv, adminAuth(), aliasRT)

	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	const repo = "paging/tags"
	var want []string
	for i := range 7 {
		tg := fmt.Sprintf("t%02d", i)
		want = append(want, tg)
		r, err := name.ParseReference(alias + "/" + repo + ":" + tg)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(r, img, opts...); err != nil {
			t.Fatalf("push %s: %v", tg, err)
		}
	}

	// go-containerregistry, two tags a page.
	aliasRepo, err := name.NewRepository(alias + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.List(aliasRepo, remoteOpts(t, srv, adminAuth(), aliasRT, remote.WithPageSize(2))...)
	if err != nil {
		t.Fatalf("list tags: %v", err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("remote.List = %v, want %v", got, want)
	}

	// Raw HTTP: n= and Link headers.
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:"+repo+":pull")
	raw, pages := followPages(t, srv, "/v2/"+repo+"/tags/list", tok, "tags", 3)
	if pages < 3 {
		t.Fatalf("7 tags in pages of 3 took %d pages", pages)
	}
	if !slices.Equal(raw, want) {
		t.Fatalf("paginated tags = %v, want %v (in order, no duplicates)", raw, want)
	}
	// last= alone starts after the given tag.
	resp := srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list?n=2&last=t03", tok, nil)
	var page struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(expectStatus(t, resp, http.StatusOK), &page); err != nil {
		t.Fatal(err)
	}
	if page.Name != repo || !slices.Equal(page.Tags, []string{"t04", "t05"}) {
		t.Fatalf("tags after t03 = %+v, want t04 t05", page)
	}
}

func TestCatalogPagination(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t, mcrtest.WithHostname("mcr.test"))
	alias, aliasRT := aliasRegistry(srv)
	opts := remoteOpts(t, srv, adminAuth(), aliasRT)

	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 5 {
		repo := fmt.Sprintf("catalog/r%d", i)
		want = append(want, repo)
		r, err := name.ParseReference(alias + "/" + repo + ":v1")
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(r, img, opts...); err != nil {
			t.Fatalf("push %s: %v", repo, err)
		}
	}

	reg, err := name.NewRegistry(alias)
	if err != nil {
		t.Fatal(err)
	}
	aliasOpts := remoteOpts(t, srv, adminAuth(), aliasRT)
	got, err := remote.Catalog(t.Context(), reg, append(aliasOpts, remote.WithPageSize(2))...)
	if err != nil {
		t.Fatalf("catalog: %v", err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("remote.Catalog = %v, want %v", got, want)
	}
	first, err := remote.CatalogPage(reg, "", 2, aliasOpts...)
	if err != nil {
		t.Fatalf("catalog page: %v", err)
	}
	if !slices.Equal(first, want[:2]) {
		t.Fatalf("first catalog page = %v, want %v", first, want[:2])
	}

	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "registry:catalog:*")
	raw, pages := followPages(t, srv, "/v2/_catalog", tok, "repositories", 2)
	if pages < 3 {
		t.Fatalf("5 repositories in pages of 2 took %d pages", pages)
	}
	if !slices.Equal(raw, want) {
		t.Fatalf("paginated catalog = %v, want %v", raw, want)
	}
}

func TestDeleteByTagAndDigest(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	opts := remoteOpts(t, srv, adminAuth(), nil)

	const repo = "deletes/app"
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	for _, tg := range []string{"one", "two"} {
		if err := remote.Write(ref(t, srv, repo+":"+tg), img, opts...); err != nil {
			t.Fatalf("push %s: %v", tg, err)
		}
	}
	other, _ := random.Image(4096, 1)
	if err := remote.Write(ref(t, srv, repo+":other"), other, opts...); err != nil {
		t.Fatalf("push other: %v", err)
	}
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:"+repo+":pull,push,delete")
	accept := "application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json"

	// Delete by tag: only the tag goes.
	if err := remote.Delete(ref(t, srv, repo+":one"), opts...); err != nil {
		t.Fatalf("delete tag one: %v", err)
	}
	expectOCIError(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/manifests/one", tok, nil, "Accept", accept), http.StatusNotFound, "MANIFEST_UNKNOWN")
	expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/manifests/"+d.String(), tok, nil, "Accept", accept), http.StatusOK)
	expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/manifests/two", tok, nil, "Accept", accept), http.StatusOK)
	tags, err := remote.List(repoRef(t, srv, repo), opts...)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(tags)
	if !slices.Equal(tags, []string{"other", "two"}) {
		t.Fatalf("tags after deleting one = %v, want [other two]", tags)
	}
	var te *transport.Error
	if _, err := remote.Head(ref(t, srv, repo+":one"), opts...); err == nil {
		t.Fatal("HEAD of a deleted tag succeeded")
	} else if !asTransportError(err, &te) || te.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD of a deleted tag: %v, want 404", err)
	}

	// Delete by digest: the manifest and the tags pointing at it go.
	resp := srv.Do(t, http.MethodDelete, "/v2/"+repo+"/manifests/"+d.String(), tok, nil)
	expectStatus(t, resp, http.StatusAccepted)
	expectOCIError(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/manifests/"+d.String(), tok, nil, "Accept", accept), http.StatusNotFound, "MANIFEST_UNKNOWN")
	expectOCIError(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/manifests/two", tok, nil, "Accept", accept), http.StatusNotFound, "MANIFEST_UNKNOWN")
	if _, err := remote.Image(ref(t, srv, repo+"@"+d.String()), opts...); err == nil {
		t.Fatal("pull of a deleted manifest succeeded")
	} else if !asTransportError(err, &te) || te.StatusCode != http.StatusNotFound {
		t.Fatalf("pull of a deleted manifest: %v, want 404", err)
	} else if len(te.Errors) == 0 || te.Errors[0].Code != transport.ManifestUnknownErrorCode {
		t.Fatalf("pull of a deleted manifest: errors %+v, want MANIFEST_UNKNOWN", te.Errors)
	}
	// Deleting it again is a 404 MANIFEST_UNKNOWN too.
	expectOCIError(t, srv.Do(t, http.MethodDelete, "/v2/"+repo+"/manifests/"+d.String(), tok, nil), http.StatusNotFound, "MANIFEST_UNKNOWN")

	// The unrelated image is untouched.
	got, err := remote.Image(ref(t, srv, repo+":other"), opts...)
	if err != nil {
		t.Fatalf("pull other: %v", err)
	}
	compareImages(t, other, got)

	// A remote.Delete by digest through go-containerregistry works as well.
	od, _ := other.Digest()
	if err := remote.Delete(ref(t, srv, repo+"@"+od.String()), opts...); err != nil {
		t.Fatalf("remote.Delete by digest: %v", err)
	}
	expectOCIError(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/manifests/other", tok, nil, "Accept", accept), http.StatusNotFound, "MANIFEST_UNKNOWN")
}

func asTransportError(err error, te **transport.Error) bool {
	return errors.As(err, te)
}

func TestCrossRepositoryMount(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	rec := &recordingTransport{inner: srv.Transport()}
	opts := remoteOpts(t, srv, adminAuth(), rec)

	img, err := random.Image(64<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, srv, "mount/a:v1"), img, opts...); err != nil {
		t.Fatalf("push to a: %v", err)
	}
	layers, _ := img.Layers()
	var layerDigests []string
	for _, l := range layers {
		d, _ := l.Digest()
		layerDigests = append(layerDigests, d.String())
	}

	// Raw: POST ?mount=&from= answers 201 with the blob's location.
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:mount/b:pull,push", "repository:mount/a:pull")
	q := url.Values{"mount": {layerDigests[0]}, "from": {"mount/a"}}
	resp := srv.Do(t, http.MethodPost, "/v2/mount/b/blobs/uploads/?"+q.Encode(), tok, nil)
	expectStatus(t, resp, http.StatusCreated)
	if got := resp.Header.Get("Docker-Content-Digest"); got != layerDigests[0] {
		t.Fatalf("mount: Docker-Content-Digest %q, want %s", got, layerDigests[0])
	}
	if loc := resp.Header.Get("Location"); !strings.HasSuffix(loc, "/v2/mount/b/blobs/"+layerDigests[0]) {
		t.Fatalf("mount: Location %q, want .../v2/mount/b/blobs/%s", loc, layerDigests[0])
	}
	bresp := srv.Do(t, http.MethodGet, "/v2/mount/b/blobs/"+layerDigests[0], tok, nil)
	body := expectStatus(t, bresp, http.StatusOK)
	if h := sha256.Sum256(body); "sha256:"+hex.EncodeToString(h[:]) != layerDigests[0] {
		t.Fatal("mounted blob content does not match its digest")
	}
	// Mounting a blob the source does not have opens an upload instead.
	missing := "sha256:" + strings.Repeat("ab", 32)
	q = url.Values{"mount": {missing}, "from": {"mount/a"}}
	expectStatus(t, srv.Do(t, http.MethodPost, "/v2/mount/b/blobs/uploads/?"+q.Encode(), tok, nil), http.StatusAccepted)

	// go-containerregistry: copy the image from a to c; its layers are
	// mounted, not uploaded.
	src, err := remote.Image(ref(t, srv, "mount/a:v1"), opts...)
	if err != nil {
		t.Fatalf("pull a: %v", err)
	}
	before := len(rec.records())
	if err := remote.Write(ref(t, srv, "mount/c:v1"), src, opts...); err != nil {
		t.Fatalf("push to c: %v", err)
	}
	mounted := map[string]bool{}
	for _, r := range rec.records()[before:] {
		if r.Method == http.MethodPatch || (r.Method == http.MethodPut && strings.Contains(r.Path, "/blobs/uploads/")) {
			if q, _ := url.ParseQuery(r.RawQuery); slices.Contains(layerDigests, q.Get("digest")) {
				t.Errorf("layer %s was uploaded to c instead of mounted", q.Get("digest"))
			}
		}
		if r.Method != http.MethodPost || r.Path != "/v2/mount/c/blobs/uploads/" {
			continue
		}
		q, _ := url.ParseQuery(r.RawQuery)
		if q.Get("from") == "mount/a" && r.Status == http.StatusCreated {
			mounted[q.Get("mount")] = true
		}
	}
	for _, d := range layerDigests {
		if !mounted[d] {
			t.Errorf("layer %s was not mounted from mount/a (201) when pushing to mount/c", d)
		}
	}
	got, err := remote.Image(ref(t, srv, "mount/c:v1"), opts...)
	if err != nil {
		t.Fatalf("pull c: %v", err)
	}
	compareImages(t, img, got)
}

// uploadURL resolves a Location header against the server.
func uploadURL(t *testing.T, srv *mcrtest.Server, loc string) *url.URL {
	t.Helper()
	base, _ := url.Parse(srv.URL + "/")
	u, err := base.Parse(loc)
	if err != nil {
		t.Fatalf("Location %q: %v", loc, err)
	}
	return u
}

// parseRange parses a `Range: 0-<end>` upload status header; "0-0" after a
// non-empty write and a missing header both mean nothing (callers check).
func parseRange(t *testing.T, h string) int64 {
	t.Helper()
	start, end, ok := strings.Cut(h, "-")
	if !ok || start != "0" {
		t.Fatalf("Range header %q, want 0-<end>", h)
	}
	n, err := strconv.ParseInt(end, 10, 64)
	if err != nil {
		t.Fatalf("Range header %q: %v", h, err)
	}
	return n + 1
}

func TestChunkedUploadResumedAfterDroppedConnection(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	const repo = "chunked/resume"
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:"+repo+":pull,push")

	data := make([]byte, 6<<20)
	_, _ = rand.Read(data)
	sum := sha256.Sum256(data)
	dgst := "sha256:" + hex.EncodeToString(sum[:])
	const first = 1 << 20

	// POST opens the session.
	resp := srv.Do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", tok, nil)
	expectStatus(t, resp, http.StatusAccepted)
	loc := uploadURL(t, srv, resp.Header.Get("Location"))

	// PATCH the first chunk.
	resp = srv.Do(t, http.MethodPatch, loc.RequestURI(), tok, data[:first],
		"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("0-%d", first-1))
	expectStatus(t, resp, http.StatusAccepted)
	if got := parseRange(t, resp.Header.Get("Range")); got != first {
		t.Fatalf("after the first chunk Range says %d bytes, want %d", got, first)
	}
	loc = uploadURL(t, srv, resp.Header.Get("Location"))

	// A second PATCH over a raw TLS connection announces 4 MiB and dies
	// after 1.5 MiB.
	conn, err := tls.Dial("tcp", srv.Addr, &tls.Config{RootCAs: srv.CertPool(), MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	announced := 4 << 20
	sent := 3 << 19
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n",
		loc.RequestURI(), srv.Addr, tok, announced)
	if _, err := conn.Write(data[first : first+sent]); err != nil {
		t.Fatalf("write partial body: %v", err)
	}
	// Abandon the upload: whatever part of it the server consumed, the
	// resume offset below must lie in [first, first+sent].
	_ = conn.Close()

	// GET the upload URL to learn where to resume; the server may still be
	// finishing the aborted request, so wait for a stable answer.
	var offset int64 = -1
	var status int
	var statusBody []byte
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp = srv.Do(t, http.MethodGet, loc.RequestURI(), tok, nil)
		statusBody = readAll(t, resp)
		status = resp.StatusCode
		if status != http.StatusNoContent {
			break
		}
		o := parseRange(t, resp.Header.Get("Range"))
		if o == offset {
			break
		}
		offset = o
		if nl := resp.Header.Get("Location"); nl != "" {
			loc = uploadURL(t, srv, nl)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if status != http.StatusNoContent {
		t.Fatalf("GET upload status after a dropped PATCH: %d %s (want 204 with Range): the upload cannot be resumed", status, statusBody)
	}
	if offset < first || offset > first+int64(sent) {
		t.Fatalf("resume offset %d outside [%d, %d]", offset, first, first+sent)
	}
	t.Logf("dropped PATCH: server kept %d of %d bytes sent; resuming at %d", offset-first, sent, offset)

	// PATCH the rest (in two chunks), then PUT ?digest=.
	mid := offset + (int64(len(data))-offset)/2
	for _, c := range [][2]int64{{offset, mid}, {mid, int64(len(data))}} {
		resp = srv.Do(t, http.MethodPatch, loc.RequestURI(), tok, data[c[0]:c[1]],
			"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("%d-%d", c[0], c[1]-1))
		expectStatus(t, resp, http.StatusAccepted)
		if got := parseRange(t, resp.Header.Get("Range")); got != c[1] {
			t.Fatalf("after PATCH %d-%d Range says %d bytes", c[0], c[1]-1, got)
		}
		loc = uploadURL(t, srv, resp.Header.Get("Location"))
	}
	q := loc.Query()
	q.Set("digest", dgst)
	loc.RawQuery = q.Encode()
	resp = srv.Do(t, http.MethodPut, loc.RequestURI(), tok, nil)
	expectStatus(t, resp, http.StatusCreated)
	if got := resp.Header.Get("Docker-Content-Digest"); got != dgst {
		t.Fatalf("PUT: Docker-Content-Digest %q, want %s", got, dgst)
	}

	resp = srv.Do(t, http.MethodGet, "/v2/"+repo+"/blobs/"+dgst, tok, nil)
	got := expectStatus(t, resp, http.StatusOK)
	if !bytes.Equal(got, data) {
		t.Fatalf("blob read back differs from what was uploaded (%d bytes vs %d)", len(got), len(data))
	}
}

func TestUserAccountPushPull(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	srv.AddUser(t, "alice", "alice-password-1", "user", "human")

	img, err := random.Image(32<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	alice := remoteOpts(t, srv, basicAuth("alice", "alice-password-1"), nil)
	if err := remote.Write(ref(t, srv, "team/app:v1"), img, alice...); err != nil {
		t.Fatalf("alice push: %v", err)
	}
	got, err := remote.Image(ref(t, srv, "team/app:v1"), alice...)
	if err != nil {
		t.Fatalf("alice pull: %v", err)
	}
	compareImages(t, img, got)

	// Another account sees what alice pushed.
	admin := remoteOpts(t, srv, adminAuth(), nil)
	got, err = remote.Image(ref(t, srv, "team/app:v1"), admin...)
	if err != nil {
		t.Fatalf("admin pull: %v", err)
	}
	compareImages(t, img, got)

	// The token service grants alice what she asked for.
	resp := tokenGET(t, srv, "alice", "alice-password-1", "", url.Values{"scope": {"repository:team/app:pull,push"}})
	tr := decodeToken(t, resp)
	if !strings.Contains(tr.Scope, "pull") || !strings.Contains(tr.Scope, "push") {
		t.Errorf("alice's token scope %q, want pull and push", tr.Scope)
	}
	expectStatus(t, srv.Do(t, http.MethodGet, "/v2/team/app/tags/list", tr.Token, nil), http.StatusOK)

	// A wrong password for a real user is refused by clients too.
	bad := remoteOpts(t, srv, basicAuth("alice", "not-her-password"), nil)
	if _, err := remote.Image(ref(t, srv, "team/app:v1"), bad...); err == nil {
		t.Fatal("pull with a wrong password succeeded")
	}
}

func TestConcurrentPushes(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	opts := remoteOpts(t, srv, adminAuth(), nil)

	// Several clients push the same image (same blobs, committed
	// concurrently) and distinct images sharing a base layer.
	base, err := random.Image(512<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	const n = 6
	imgs := make([]v1.Image, n)
	for i := range imgs {
		if i%2 == 0 {
			imgs[i] = base
			continue
		}
		l, _ := random.Layer(256<<10, "application/vnd.oci.image.layer.v1.tar+gzip")
		imgs[i], _ = mutate.AppendLayers(base, l)
	}
	refs := make([]name.Reference, n)
	for i := range refs {
		repo := "concurrent/same"
		if i%3 == 2 {
			repo = fmt.Sprintf("concurrent/r%d", i)
		}
		refs[i] = ref(t, srv, fmt.Sprintf("%s:t%d", repo, i))
	}
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- remote.Write(refs[i], imgs[i], opts...) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("concurrent push: %v", err)
		}
	}
	if t.Failed() {
		return
	}
	for i := range n {
		got, err := remote.Image(refs[i], opts...)
		if err != nil {
			t.Fatalf("pull %s: %v", refs[i], err)
		}
		compareImages(t, imgs[i], got)
	}
}

func TestChunkedUploadOddSizes(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	const repo = "chunked/odd"
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:"+repo+":pull,push")

	// Chunk sizes straddle the storage driver's buffer sizes (4 KiB, 1 MiB).
	sizes := []int{1, 4095, 4097, 1<<20 - 1, 1<<20 + 1, 3, 2<<20 + 12345, 65536, 777}
	total := 0
	for _, s := range sizes {
		total += s
	}
	data := make([]byte, total)
	_, _ = rand.Read(data)
	sum := sha256.Sum256(data)
	dgst := "sha256:" + hex.EncodeToString(sum[:])

	resp := srv.Do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", tok, nil)
	expectStatus(t, resp, http.StatusAccepted)
	loc := uploadURL(t, srv, resp.Header.Get("Location"))
	off := 0
	for i, s := range sizes {
		hdr := []string{"Content-Type", "application/octet-stream"}
		if i%2 == 0 { // with and without Content-Range
			hdr = append(hdr, "Content-Range", fmt.Sprintf("%d-%d", off, off+s-1))
		}
		resp = srv.Do(t, http.MethodPatch, loc.RequestURI(), tok, data[off:off+s], hdr...)
		expectStatus(t, resp, http.StatusAccepted)
		off += s
		if got := parseRange(t, resp.Header.Get("Range")); got != int64(off) {
			t.Fatalf("after chunk %d Range says %d bytes, want %d", i, got, off)
		}
		loc = uploadURL(t, srv, resp.Header.Get("Location"))
	}
	// A chunk that does not start at the current offset is refused.
	resp = srv.Do(t, http.MethodPatch, loc.RequestURI(), tok, []byte("xyz"),
		"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("%d-%d", off+10, off+12))
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("out-of-order chunk: status %d, want 416; body %s", resp.StatusCode, readAll(t, resp))
	} else {
		resp.Body.Close()
	}
	// A wrong digest is refused, the right one accepted.
	q := loc.Query()
	q.Set("digest", "sha256:"+strings.Repeat("0", 64))
	bad := *loc
	bad.RawQuery = q.Encode()
	expectOCIError(t, srv.Do(t, http.MethodPut, bad.RequestURI(), tok, nil), http.StatusBadRequest, "DIGEST_INVALID")
	// The failed PUT may end the session; if so, start over in one PUT.
	q.Set("digest", dgst)
	loc.RawQuery = q.Encode()
	resp = srv.Do(t, http.MethodPut, loc.RequestURI(), tok, nil)
	if resp.StatusCode != http.StatusCreated {
		readAll(t, resp)
		resp = srv.Do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", tok, nil)
		expectStatus(t, resp, http.StatusAccepted)
		loc = uploadURL(t, srv, resp.Header.Get("Location"))
		q = loc.Query()
		q.Set("digest", dgst)
		loc.RawQuery = q.Encode()
		resp = srv.Do(t, http.MethodPut, loc.RequestURI(), tok, data, "Content-Type", "application/octet-stream")
	}
	expectStatus(t, resp, http.StatusCreated)

	got := expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/blobs/"+dgst, tok, nil), http.StatusOK)
	if !bytes.Equal(got, data) {
		t.Fatalf("blob read back differs (%d bytes vs %d)", len(got), len(data))
	}
	// Range reads.
	resp = srv.Do(t, http.MethodGet, "/v2/"+repo+"/blobs/"+dgst, tok, nil, "Range", "bytes=4000-1100000")
	part := expectStatus(t, resp, http.StatusPartialContent)
	if !bytes.Equal(part, data[4000:1100001]) {
		t.Fatalf("range read returned the wrong bytes")
	}
	resp = srv.Do(t, http.MethodHead, "/v2/"+repo+"/blobs/"+dgst, tok, nil)
	expectStatus(t, resp, http.StatusOK)
	if resp.ContentLength != int64(total) || resp.Header.Get("Docker-Content-Digest") != dgst {
		t.Fatalf("HEAD blob: length %d digest %q, want %d %s", resp.ContentLength, resp.Header.Get("Docker-Content-Digest"), total, dgst)
	}
}
