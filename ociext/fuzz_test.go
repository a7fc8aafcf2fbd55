package ociext

import (
	"strings"
	"testing"
)

// FuzzSplit checks the /v2/<name>/<section>/<ref> parsing that routes
// referrers and sha512 alias requests: whatever it accepts reassembles to
// the path, with a non-empty name and a single-segment reference.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{
		"/v2/team/app/referrers/sha256:" + strings.Repeat("a", 64),
		"/v2/a/manifests/sha512:" + strings.Repeat("b", 128),
		"/v2/a/blobs/uploads/uuid",
		"/v2/referrers/x", "/v2//manifests/x", "/v2/a/manifests/", "/v2/a/manifests/b/c",
		"/v2/a/manifests/x/manifests/y", "/v3/a/blobs/x", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		for _, sep := range []string{"/referrers/", "/manifests/", "/blobs/"} {
			name, ref, ok := split(p, sep)
			if !ok {
				if name != "" || ref != "" {
					t.Fatalf("split(%q, %q) refused but returned %q %q", p, sep, name, ref)
				}
				continue
			}
			if name == "" || ref == "" || strings.Contains(ref, "/") {
				t.Fatalf("split(%q, %q) = %q, %q", p, sep, name, ref)
			}
			if "/v2/"+name+sep+ref != p {
				t.Fatalf("split(%q, %q) = %q, %q does not reassemble", p, sep, name, ref)
			}
		}
		if r := uploadRepo(p); r != "" && !strings.HasPrefix(strings.TrimPrefix(p, "/v2/"), r+"/blobs/uploads") {
			t.Fatalf("uploadRepo(%q) = %q", p, r)
		}
		if isAlias(p) && !strings.HasPrefix(p, "sha512:") && !strings.HasPrefix(p, "sha384:") {
			t.Fatalf("isAlias(%q)", p)
		}
	})
}
