package ociext

import (
	"strings"
	"testing"
)

// FuzzParsing checks the parsing ociext does itself (routes come from the
// exchange, classified with distribution's router; see
// edge/exchange FuzzClassify): alias detection and the subject of a
// manifest body never panic and only accept what they should.
func FuzzParsing(f *testing.F) {
	for _, s := range []string{
		"sha512:" + strings.Repeat("b", 128), "sha384:x", "sha256:" + strings.Repeat("a", 64), "",
		`{"subject":{"digest":"sha256:abc"}}`, `{"subject":null}`, `{"subject":"x"}`, `[`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if isAlias(s) && !strings.HasPrefix(s, "sha512:") && !strings.HasPrefix(s, "sha384:") {
			t.Fatalf("isAlias(%q)", s)
		}
		if d := subjectOf([]byte(s)); d != "" && !strings.Contains(s, "subject") {
			t.Fatalf("subjectOf(%q) = %q", s, d)
		}
	})
}
