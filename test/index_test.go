package e2e

// End-to-end tests of the repository index and /v1/repositories (issue 4,
// DESIGN §6): counts, sizes and tags agree with what the registry serves
// on /v2; `mcrsrv reindex` rebuilds the same index from storage;
// DELETE /v1/repositories/{name} removes a repository; bad names and
// unknown repositories are clean JSON errors.

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// ---- /v1/repositories shapes ----

type idxRef struct {
	Digest    string `json:"digest"`
	MediaType string `json:"media_type"`
	Size      int64  `json:"size"`
}

type idxManifest struct {
	Digest       string   `json:"digest"`
	MediaType    string   `json:"media_type"`
	ArtifactType string   `json:"artifact_type"`
	Subject      string   `json:"subject"`
	Tags         []string `json:"tags"`
	Layers       []idxRef `json:"layers"`
	Size         int64    `json:"size"`
}

type idxTag struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
}

// idxRepo is a repository summary (list) or detail (GET one), without the
// times, which a reindex takes from storage rather than from the push.
type idxRepo struct {
	Name          string        `json:"name"`
	Tags          []idxTag      `json:"tags,omitempty"`
	Manifests     []idxManifest `json:"manifests,omitempty"`
	TagCount      int64         `json:"tag_count"`
	ManifestCount int64         `json:"manifest_count"`
	TotalSize     int64         `json:"total_size"`
}

// normalize sorts what has no meaningful order so two indexes compare.
func (r *idxRepo) normalize() {
	sort.Slice(r.Tags, func(i, j int) bool { return r.Tags[i].Name < r.Tags[j].Name })
	sort.Slice(r.Manifests, func(i, j int) bool { return r.Manifests[i].Digest < r.Manifests[j].Digest })
	for i := range r.Manifests {
		m := &r.Manifests[i]
		slices.Sort(m.Tags)
		if m.Tags == nil {
			m.Tags = []string{}
		}
		sort.Slice(m.Layers, func(i, j int) bool { return m.Layers[i].Digest < m.Layers[j].Digest })
	}
}

type idxList struct {
	Next         string    `json:"next"`
	Repositories []idxRepo `json:"repositories"`
	Total        int       `json:"total"`
}

// idxListAll walks GET /v1/repositories page by page (keyset on `last`).
func idxListAll(t testing.TB, srv *mcrtest.Server, tok, query string, pageSize int) []idxRepo {
	t.Helper()
	var out []idxRepo
	last := ""
	for pages := 0; pages < 10000; pages++ {
		q := "n=" + strconv.Itoa(pageSize) + query
		if last != "" {
			q += "&last=" + last
		}
		body := expectStatus(t, srv.Do(t, http.MethodGet, "/v1/repositories?"+q, tok, nil), http.StatusOK)
		var l idxList
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatalf("GET /v1/repositories?%s: %v: %s", q, err, body)
		}
		for _, r := range l.Repositories {
			if len(out) > 0 && r.Name <= out[len(out)-1].Name {
				t.Fatalf("GET /v1/repositories: %q after %q (duplicate or out of order)", r.Name, out[len(out)-1].Name)
			}
			out = append(out, r)
		}
		if l.Next == "" {
			if len(l.Repositories) == pageSize {
				t.Fatalf("GET /v1/repositories?%s: full page without next", q)
			}
			return out
		}
		last = l.Next
	}
	t.Fatal("GET /v1/repositories pagination does not end")
	return nil
}

func idxGet(t testing.TB, srv *mcrtest.Server, tok, name string) idxRepo {
	t.Helper()
	body := expectStatus(t, srv.Do(t, http.MethodGet, "/v1/repositories/"+name, tok, nil), http.StatusOK)
	var r idxRepo
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("GET /v1/repositories/%s: %v: %s", name, err, body)
	}
	r.normalize()
	return r
}

// idxSnapshot is the whole index as the API shows it: the listing and
// every repository's detail.
func idxSnapshot(t testing.TB, srv *mcrtest.Server, tok string) ([]idxRepo, map[string]idxRepo) {
	t.Helper()
	list := idxListAll(t, srv, tok, "", 2)
	details := map[string]idxRepo{}
	for _, r := range list {
		details[r.Name] = idxGet(t, srv, tok, r.Name)
	}
	return list, details
}

func idxJSON(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// ---- what the registry serves on /v2 ----

const idxAccept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

// idxServed computes a repository's index entry from /v2 alone: the tags
// of tags/list, the given manifests (untagged ones cannot be listed on
// /v2) and, recursively, the children of indexes, with sizes of the bytes
// served and blob sizes from HEAD. total_size is every manifest plus every
// distinct non-manifest blob they reference.
func idxServed(t testing.TB, srv *mcrtest.Server, repo string, digests []string) idxRepo {
	t.Helper()
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:"+repo+":pull")
	var tl struct {
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list", tok, nil), http.StatusOK), &tl); err != nil {
		t.Fatal(err)
	}
	r := idxRepo{Name: repo, Tags: []idxTag{}}
	tagsOf := map[string][]string{}
	for _, tag := range tl.Tags {
		resp := srv.Do(t, http.MethodHead, "/v2/"+repo+"/manifests/"+tag, tok, nil, "Accept", idxAccept)
		expectStatus(t, resp, http.StatusOK)
		d := resp.Header.Get("Docker-Content-Digest")
		r.Tags = append(r.Tags, idxTag{Name: tag, Digest: d})
		tagsOf[d] = append(tagsOf[d], tag)
		digests = append(digests, d)
	}
	manifests := map[string]bool{}
	blobs := map[string]int64{}
	queue := append([]string(nil), digests...)
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		if manifests[d] {
			continue
		}
		manifests[d] = true
		resp := srv.Do(t, http.MethodGet, "/v2/"+repo+"/manifests/"+d, tok, nil, "Accept", idxAccept)
		body := expectStatus(t, resp, http.StatusOK)
		var m struct {
			Config    *idxDesc  `json:"config"`
			Layers    []idxDesc `json:"layers"`
			Manifests []idxDesc `json:"manifests"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("manifest %s@%s: %v", repo, d, err)
		}
		im := idxManifest{Digest: d, MediaType: resp.Header.Get("Content-Type"), Size: int64(len(body)), Tags: tagsOf[d], Layers: []idxRef{}}
		r.TotalSize += im.Size
		var refs []idxDesc
		if m.Config != nil {
			refs = append(refs, *m.Config)
		}
		refs = append(refs, m.Layers...)
		for _, b := range refs {
			hr := srv.Do(t, http.MethodHead, "/v2/"+repo+"/blobs/"+b.Digest, tok, nil)
			expectStatus(t, hr, http.StatusOK)
			if hr.ContentLength != b.Size {
				t.Fatalf("blob %s@%s: served %d bytes, manifest says %d", repo, b.Digest, hr.ContentLength, b.Size)
			}
			if _, seen := blobs[b.Digest]; !seen {
				blobs[b.Digest] = hr.ContentLength
				r.TotalSize += hr.ContentLength
			}
			im.Layers = append(im.Layers, idxRef{Digest: b.Digest, MediaType: b.MediaType, Size: hr.ContentLength})
		}
		for _, c := range m.Manifests {
			im.Layers = append(im.Layers, idxRef{Digest: c.Digest, MediaType: c.MediaType, Size: c.Size})
			queue = append(queue, c.Digest)
		}
		r.Manifests = append(r.Manifests, im)
	}
	r.TagCount = int64(len(r.Tags))
	r.ManifestCount = int64(len(r.Manifests))
	r.normalize()
	return r
}

type idxDesc struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

// idxCompare reports differences between the API's entry and the served
// one: counts, size, tags, manifests with sizes and media types, and each
// manifest's references.
func idxCompare(t testing.TB, what string, got, want idxRepo) {
	t.Helper()
	if got.TagCount != want.TagCount || got.ManifestCount != want.ManifestCount || got.TotalSize != want.TotalSize {
		t.Errorf("%s %s: tag_count %d manifest_count %d total_size %d; registry serves %d tags, %d manifests, %d bytes",
			what, want.Name, got.TagCount, got.ManifestCount, got.TotalSize, want.TagCount, want.ManifestCount, want.TotalSize)
	}
	if want.Tags == nil { // summary only
		return
	}
	if !reflect.DeepEqual(got.Tags, want.Tags) {
		t.Errorf("%s %s tags:\n got %v\nwant %v", what, want.Name, got.Tags, want.Tags)
	}
	gm := map[string]idxManifest{}
	for _, m := range got.Manifests {
		gm[m.Digest] = m
	}
	if len(got.Manifests) != len(want.Manifests) {
		t.Errorf("%s %s: %d manifests, registry serves %d", what, want.Name, len(got.Manifests), len(want.Manifests))
	}
	for _, w := range want.Manifests {
		g, ok := gm[w.Digest]
		if !ok {
			t.Errorf("%s %s: manifest %s missing", what, want.Name, w.Digest)
			continue
		}
		if g.Size != w.Size || g.MediaType != w.MediaType || !slices.Equal(g.Tags, w.Tags) {
			t.Errorf("%s %s@%s: size %d media type %q tags %v; registry serves %d %q %v",
				what, want.Name, w.Digest, g.Size, g.MediaType, g.Tags, w.Size, w.MediaType, w.Tags)
		}
		if !reflect.DeepEqual(g.Layers, w.Layers) {
			t.Errorf("%s %s@%s references:\n got %v\nwant %v", what, want.Name, w.Digest, g.Layers, w.Layers)
		}
	}
}

// idxDiff lists the differences between two normalized details.
func idxDiff(got, want idxRepo) []string {
	var out []string
	if got.Name != want.Name || got.TagCount != want.TagCount || got.ManifestCount != want.ManifestCount || got.TotalSize != want.TotalSize {
		out = append(out, fmt.Sprintf("summary %s tags=%d manifests=%d size=%d, want %s %d %d %d",
			got.Name, got.TagCount, got.ManifestCount, got.TotalSize, want.Name, want.TagCount, want.ManifestCount, want.TotalSize))
	}
	if !reflect.DeepEqual(got.Tags, want.Tags) {
		out = append(out, fmt.Sprintf("tags %v, want %v", got.Tags, want.Tags))
	}
	gm := map[string]idxManifest{}
	for _, m := range got.Manifests {
		gm[m.Digest] = m
	}
	for _, w := range want.Manifests {
		g, ok := gm[w.Digest]
		switch {
		case !ok:
			out = append(out, "manifest "+w.Digest+" missing")
		case !reflect.DeepEqual(g, w):
			out = append(out, fmt.Sprintf("manifest %s:\n got %+v\nwant %+v", w.Digest, g, w))
		}
		delete(gm, w.Digest)
	}
	for d := range gm {
		out = append(out, "unexpected manifest "+d)
	}
	return out
}

func idxDigest(t testing.TB, img interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// /v1/repositories agrees with /v2 after pushes, a retag, an index, a tag
// deletion and a manifest deletion; the online reconcile and `mcrsrv
// reindex` (server stopped, index damaged; refused while it runs) reproduce it; DELETE removes a
// repository for admins only.
func TestIndexRepositoriesMatchRegistryAndReindex(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	const bobPass = "bob-password-1"
	srv.AddUser(t, "bob", bobPass, "user", "human")
	adminTok := srv.Login(t, "admin", mcrtest.AdminPassword)
	bobTok := srv.Login(t, "bob", bobPass)
	admin := remoteOpts(t, srv, adminAuth(), nil)
	push := func(r string, img v1.Image) string {
		t.Helper()
		if err := remote.Write(ref(t, srv, r), img, admin...); err != nil {
			t.Fatalf("push %s: %v", r, err)
		}
		return idxDigest(t, img)
	}

	// idx/one: two images sharing two layers, tagged three ways, one
	// retagged away (stays as an untagged manifest), a tag deleted, a
	// manifest deleted by digest.
	img1, _ := random.Image(4096, 2)
	extra, _ := random.Layer(2048, "application/vnd.oci.image.layer.v1.tar+gzip")
	img2, _ := mutate.AppendLayers(img1, extra)
	img3, _ := random.Image(1024, 1)
	img4, _ := random.Image(1024, 1)
	img5, _ := random.Image(1024, 1)
	d1 := push("idx/one:v1", img1)
	push("idx/one:latest", img1)
	d2 := push("idx/one:v2", img2)
	d3 := push("idx/one:v2", img3) // img2 now untagged
	d4 := push("idx/one:tmp", img4)
	d5 := push("idx/one:gone", img5)
	if err := remote.Delete(ref(t, srv, "idx/one:tmp"), admin...); err != nil {
		t.Fatalf("delete tag idx/one:tmp: %v", err)
	}
	if err := remote.Delete(ref(t, srv, "idx/one@"+d5), admin...); err != nil {
		t.Fatalf("delete manifest idx/one@%s: %v", d5, err)
	}
	expectStatus(t, srv.Do(t, http.MethodGet, "/v2/idx/one/manifests/"+d5, srv.Token(t, "admin", mcrtest.AdminPassword, "repository:idx/one:pull"), nil, "Accept", idxAccept), http.StatusNotFound)

	// idx/team/two (slashes): an image index with three children, one
	// child also tagged on its own.
	index, _ := random.Index(1024, 2, 3)
	if err := remote.WriteIndex(ref(t, srv, "idx/team/two:multi"), index, admin...); err != nil {
		t.Fatalf("push index: %v", err)
	}
	dIndex := idxDigest(t, index)
	im, _ := index.IndexManifest()
	child, _ := index.Image(im.Manifests[0].Digest)
	push("idx/team/two:child", child)

	// idx/del: deleted through the API later.
	imgDel, _ := random.Image(1024, 2)
	dDel := push("idx/del:v1", imgDel)

	want := map[string]idxRepo{
		"idx/one":      idxServed(t, srv, "idx/one", []string{d1, d2, d3, d4}),
		"idx/team/two": idxServed(t, srv, "idx/team/two", []string{dIndex}),
		"idx/del":      idxServed(t, srv, "idx/del", nil),
	}
	if m := want["idx/one"]; m.ManifestCount != 4 || m.TagCount != 3 {
		t.Fatalf("setup: idx/one serves %d manifests and %d tags, want 4 and 3", m.ManifestCount, m.TagCount)
	}
	if m := want["idx/team/two"]; m.ManifestCount != 4 || m.TagCount != 2 {
		t.Fatalf("setup: idx/team/two serves %d manifests and %d tags, want 4 and 2", m.ManifestCount, m.TagCount)
	}

	check := func(stage string) ([]idxRepo, map[string]idxRepo) {
		t.Helper()
		list, details := idxSnapshot(t, srv, adminTok)
		var names []string
		for _, r := range list {
			names = append(names, r.Name)
			w, ok := want[r.Name]
			if !ok {
				t.Errorf("%s: /v1/repositories lists unexpected %q", stage, r.Name)
				continue
			}
			idxCompare(t, stage+" list", r, idxRepo{Name: w.Name, TagCount: w.TagCount, ManifestCount: w.ManifestCount, TotalSize: w.TotalSize})
			idxCompare(t, stage+" detail", details[r.Name], w)
		}
		if len(names) != len(want) {
			t.Errorf("%s: /v1/repositories lists %v, want %d repositories", stage, names, len(want))
		}
		return list, details
	}
	incList, incDetails := check("incremental")

	// The listing's total, a filter and page sizes.
	var l idxList
	if err := json.Unmarshal(expectStatus(t, srv.Do(t, http.MethodGet, "/v1/repositories?n=1", bobTok, nil), http.StatusOK), &l); err != nil {
		t.Fatal(err)
	}
	if l.Total != 3 || len(l.Repositories) != 1 || l.Next == "" {
		t.Errorf("GET /v1/repositories?n=1 (as a user): total %d, %d rows, next %q; want 3, 1, a cursor", l.Total, len(l.Repositories), l.Next)
	}
	if got := idxListAll(t, srv, adminTok, "&q=team", 10); len(got) != 1 || got[0].Name != "idx/team/two" {
		t.Errorf("GET /v1/repositories?q=team: %v", got)
	}
	if got := idxListAll(t, srv, adminTok, "", 1); len(got) != 3 {
		t.Errorf("walking with n=1: %d repositories, want 3", len(got))
	}

	sameAsIncremental := func(stage string) {
		t.Helper()
		list, details := check(stage)
		if len(list) != len(incList) {
			t.Errorf("%s listing has %d repositories, the incremental one %d:\n got %s\nwant %s", stage, len(list), len(incList), idxJSON(list), idxJSON(incList))
		} else {
			for i := range list {
				if !reflect.DeepEqual(list[i], incList[i]) {
					t.Errorf("%s listing entry %d differs from the incremental one:\n got %+v\nwant %+v", stage, i, list[i], incList[i])
				}
			}
		}
		for name, d := range incDetails {
			for _, diff := range idxDiff(details[name], d) {
				t.Errorf("%s detail of %s differs from the incremental one: %s", stage, name, diff)
			}
		}
	}

	// While the server runs, the offline reindex refuses (as `mcrsrv gc`
	// does) and points to the online reconcile, which then agrees.
	if out, err := srv.Run(t, "", "reindex", "--config", srv.ConfigPath); err == nil || !strings.Contains(out, "mcrctl index reconcile") {
		t.Fatalf("mcrsrv reindex with the server running: %v\n%s; want a refusal naming `mcrctl index reconcile`", err, out)
	}
	recon := srv.Do(t, http.MethodPost, "/v1/index/reconcile", adminTok, nil)
	_ = recon.Body.Close()
	if recon.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/index/reconcile: %d", recon.StatusCode)
	}
	sameAsIncremental("reconciled online")

	// reindex on a stopped server whose index was damaged.
	if err := srv.Stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(srv.Dir, "mcr.db")+"?_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE repositories SET total_size = 1, tag_count = 99, manifest_count = 0`,
		`DELETE FROM tags`,
		`DELETE FROM manifests WHERE repo_id = (SELECT id FROM repositories WHERE name = 'idx/team/two')`,
		`INSERT INTO repositories(name, created_at) VALUES ('idx/phantom', 0)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("damage the index: %s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := srv.Run(t, "", "reindex", "--config", srv.ConfigPath); err != nil {
		t.Fatalf("mcrsrv reindex (server stopped): %v\n%s", err, out)
	} else if !strings.Contains(out, "3 repositories") {
		t.Errorf("mcrsrv reindex output %q does not report 3 repositories", out)
	}
	srv.Restart(t)
	adminTok = srv.Login(t, "admin", mcrtest.AdminPassword)
	bobTok = srv.Login(t, "bob", bobPass)
	sameAsIncremental("reindexed (stopped)")

	// ---- DELETE /v1/repositories/{name} ----
	audWantJSONError(t, "DELETE /v1/repositories/idx/del as a user", srv.Do(t, http.MethodDelete, "/v1/repositories/idx/del", bobTok, nil), http.StatusForbidden)
	audWantJSONError(t, "DELETE /v1/repositories/idx/del without a token", srv.Do(t, http.MethodDelete, "/v1/repositories/idx/del", "", nil), http.StatusUnauthorized)
	idxGet(t, srv, adminTok, "idx/del") // still there
	resp := srv.Do(t, http.MethodDelete, "/v1/repositories/idx/del", adminTok, nil)
	expectStatus(t, resp, http.StatusNoContent)
	regTok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:idx/del:pull")
	for _, r := range []string{"v1", dDel} {
		expectStatus(t, srv.Do(t, http.MethodGet, "/v2/idx/del/manifests/"+r, regTok, nil, "Accept", idxAccept), http.StatusNotFound)
	}
	audWantJSONError(t, "GET /v1/repositories/idx/del after deletion", srv.Do(t, http.MethodGet, "/v1/repositories/idx/del", adminTok, nil), http.StatusNotFound)
	audWantJSONError(t, "DELETE /v1/repositories/idx/del twice", srv.Do(t, http.MethodDelete, "/v1/repositories/idx/del", adminTok, nil), http.StatusNotFound)
	delete(want, "idx/del")
	for _, r := range idxListAll(t, srv, adminTok, "", 50) {
		if r.Name == "idx/del" {
			t.Error("idx/del still listed after DELETE")
		}
	}
	rd := audAll(t, srv, adminTok, "event_type=repo_deleted", 100)
	if len(rd) != 1 || rd[0].Repository != "idx/del" || rd[0].Actor != "admin" {
		t.Errorf("repo_deleted rows: want one for idx/del by admin, got\n%s", audDump(rd))
	}
	// The other repositories are untouched, and a fresh index agrees.
	check("after delete")
	recon = srv.Do(t, http.MethodPost, "/v1/index/reconcile", adminTok, nil)
	_ = recon.Body.Close()
	if recon.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/index/reconcile after delete: %d", recon.StatusCode)
	}
	check("reconciled after delete")

	// Pushing to the deleted name starts a fresh repository.
	img6, _ := random.Image(512, 1)
	d6 := push("idx/del:again", img6)
	want["idx/del"] = idxServed(t, srv, "idx/del", []string{d6})
	if w := want["idx/del"]; w.ManifestCount != 1 || w.TagCount != 1 {
		t.Errorf("idx/del pushed again serves %d manifests %d tags, want 1 and 1", w.ManifestCount, w.TagCount)
	}
	check("pushed again")
}

// Bad repository names and unknown repositories are clean JSON errors;
// the listing validates its paging parameters; guests and anonymous
// callers are refused.
func TestIndexRepositoriesBadInput(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	srv.AddUser(t, "gus", "gus-password-1", "guest", "human")
	adminTok := srv.Login(t, "admin", mcrtest.AdminPassword)
	guestTok := srv.Login(t, "gus", "gus-password-1")
	img, _ := random.Image(256, 1)
	if err := remote.Write(ref(t, srv, "bad/app:v1"), img, remoteOpts(t, srv, adminAuth(), nil)...); err != nil {
		t.Fatal(err)
	}
	idxGet(t, srv, adminTok, "bad/app")

	// A client that shows redirects instead of following them.
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	do := func(method, rawPath, tok string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+rawPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.RawPath = "" // send the path exactly as written
		req.URL.Opaque = "//" + srv.Addr + rawPath
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, rawPath, err)
		}
		return resp
	}

	for _, tc := range []struct {
		path string
		want int
	}{
		{"/v1/repositories/does/not/exist", http.StatusNotFound},
		{"/v1/repositories/bad/app2", http.StatusNotFound},
		{"/v1/repositories/bad", http.StatusNotFound},
		{"/v1/repositories/bad..app", http.StatusBadRequest},
		{"/v1/repositories/bad/..", http.StatusBadRequest},
		{"/v1/repositories/../etc/passwd", http.StatusBadRequest},
		{"/v1/repositories/bad/../bad/app", http.StatusBadRequest},
		{"/v1/repositories/bad/%2e%2e/app", http.StatusBadRequest},
		{"/v1/repositories/bad/%2E%2E%2Fapp", http.StatusBadRequest},
		{"/v1/repositories/Bad/App", http.StatusBadRequest},
		{"/v1/repositories/bad/app:v1", http.StatusBadRequest},
		{"/v1/repositories/bad%00app", http.StatusBadRequest},
		{"/v1/repositories/" + strings.Repeat("a", 300), http.StatusBadRequest},
	} {
		for _, method := range []string{http.MethodGet, http.MethodDelete} {
			resp := do(method, tc.path, adminTok)
			// Literal dot segments never reach the API: net/http's ServeMux
			// answers with a redirect to the cleaned path. Accept that (the
			// name with ".." is still never used), but nothing else.
			if strings.Contains(tc.path, "/..") && resp.StatusCode >= 300 && resp.StatusCode < 400 {
				readAll(t, resp)
				if loc := resp.Header.Get("Location"); strings.Contains(loc, "..") {
					t.Errorf("%s %s: redirected to %q", method, tc.path, loc)
				}
				t.Logf("%s %s: %d redirect to %s (net/http path cleaning), not a 400", method, tc.path, resp.StatusCode, resp.Header.Get("Location"))
				continue
			}
			audWantJSONError(t, method+" "+tc.path, resp, tc.want)
		}
	}
	idxGet(t, srv, adminTok, "bad/app") // no DELETE above removed it

	for _, q := range []string{"n=0", "n=100000", "n=1001", "n=-3", "n=x", "offset=-1", "offset=abc"} {
		audWantJSONError(t, "GET /v1/repositories?"+q, srv.Do(t, http.MethodGet, "/v1/repositories?"+q, adminTok, nil), http.StatusBadRequest)
	}
	audWantJSONError(t, "GET /v1/repositories without a token", srv.Do(t, http.MethodGet, "/v1/repositories", "", nil), http.StatusUnauthorized)
	audWantJSONError(t, "GET /v1/repositories/bad/app without a token", srv.Do(t, http.MethodGet, "/v1/repositories/bad/app", "", nil), http.StatusUnauthorized)
	audWantJSONError(t, "GET /v1/repositories as a guest", srv.Do(t, http.MethodGet, "/v1/repositories", guestTok, nil), http.StatusForbidden)
	audWantJSONError(t, "DELETE /v1/repositories/bad/app as a guest", srv.Do(t, http.MethodDelete, "/v1/repositories/bad/app", guestTok, nil), http.StatusForbidden)
	audWantJSONError(t, "GET /v1/nonexistent", srv.Do(t, http.MethodGet, "/v1/nonexistent", adminTok, nil), http.StatusNotFound)
}
