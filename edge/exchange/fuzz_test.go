package exchange

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzClassify: any path classifies to a name of the fixed set, and the
// variables it extracts are parts of the path.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{
		"/v2/", "/v2/_catalog", "/v2/team/app/referrers/sha256:" + strings.Repeat("a", 64),
		"/v2/a/manifests/sha512:" + strings.Repeat("b", 128), "/v2/a/blobs/uploads/uuid",
		"/v2/referrers/x", "/v2//manifests/x", "/v2/a/manifests/", "/v2/a/manifests/b/c",
		"/v1/rnd", "/v3/a/blobs/x", "", "/v2/token",
	} {
		f.Add(s)
	}
	names := Names()
	f.Fuzz(func(t *testing.T, p string) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: p}, Header: http.Header{}}
		rt := Classify(r)
		if !slices.Contains(names, rt.Name) {
			t.Fatalf("Classify(%q).Name = %q, not in Names()", p, rt.Name)
		}
		for _, v := range []string{rt.Repository, rt.Reference, rt.Digest, rt.UUID} {
			if v != "" && !strings.Contains(p, v) {
				t.Fatalf("Classify(%q) = %+v: %q is not part of the path", p, rt, v)
			}
		}
	})
}
