package ociext

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestSubjectOf(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"with subject", `{"schemaVersion":2,"subject":{"digest":"sha256:abc","size":1}}`, "sha256:abc"},
		{"without subject", `{"schemaVersion":2}`, ""},
		{"null subject", `{"subject":null}`, ""},
		{"subject without digest", `{"subject":{}}`, ""},
		{"not JSON", `not json`, ""},
		{"wrong type", `{"subject":"sha256:abc"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := subjectOf([]byte(tc.body)); got != tc.want {
				t.Fatalf("subjectOf = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestMatchesAndIsAlias(t *testing.T) {
	body := []byte(`{"schemaVersion":2}`)
	s512 := sha512.Sum512(body)
	s384 := sha512.Sum384(body)
	for _, tc := range []struct {
		name  string
		d     digest.Digest
		want  bool
		alias bool
	}{
		{"sha512", digest.Digest("sha512:" + hex.EncodeToString(s512[:])), true, true},
		{"sha384", digest.Digest("sha384:" + hex.EncodeToString(s384[:])), true, true},
		{"sha256", digest.FromBytes(body), true, false},
		{"sha512 of other content", digest.Digest("sha512:" + strings.Repeat("0", 128)), false, true},
		{"unknown algorithm", digest.Digest("md5:abc"), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := matches(tc.d, body); got != tc.want {
				t.Errorf("matches = %v, want %v", got, tc.want)
			}
			if got := isAlias(tc.d.String()); got != tc.alias {
				t.Errorf("isAlias = %v, want %v", got, tc.alias)
			}
		})
	}
}

func TestReadManifestBounded(t *testing.T) {
	h := &handler{Options: Options{BodyTimeout: DefaultBodyTimeout}}
	for _, tc := range []struct {
		name    string
		wantErr error
		body    []byte
		length  int64 // Content-Length declared; -1 = unknown
	}{
		{"small", nil, []byte(`{}`), 2},
		{"exactly the limit", nil, bytes.Repeat([]byte{' '}, MaxManifest), MaxManifest},
		{"declared too large", errBodyTooLarge, []byte(`{}`), MaxManifest + 1},
		{"undeclared too large", errBodyTooLarge, bytes.Repeat([]byte{' '}, MaxManifest+1), -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("PUT", "/v2/a/manifests/v1", bytes.NewReader(tc.body))
			r.ContentLength = tc.length
			got, err := h.readManifest(httptest.NewRecorder(), r)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && !bytes.Equal(got, tc.body) {
				t.Fatalf("read %d bytes, want %d", len(got), len(tc.body))
			}
		})
	}
}

// fakeNamespace lists repos in order, like distribution's catalog walk.
type fakeNamespace struct {
	repos []string
	calls int
}

func (f *fakeNamespace) Repositories(_ context.Context, buf []string, last string) (int, error) {
	f.calls++
	i := 0
	for i < len(f.repos) && last != "" && f.repos[i] <= last {
		i++
	}
	n := copy(buf, f.repos[i:])
	if i+n >= len(f.repos) {
		return n, io.EOF
	}
	return n, nil
}

func TestCatalogPage(t *testing.T) {
	repos := []string{"a/1", "a/2", "b/1", "b/2", "b/3", "c/1"}
	notB := func(r string) bool { return !strings.HasPrefix(r, "b/") }
	all := func(string) bool { return true }
	for _, tc := range []struct {
		name     string
		may      func(string) bool
		last     string
		want     []string
		n        int
		wantMore bool
	}{
		{"all in one page", all, "", repos, 10, false},
		{"first page", all, "", []string{"a/1", "a/2"}, 2, true},
		{"after last", all, "a/2", []string{"b/1", "b/2"}, 2, true},
		{"filtered fills across pages", notB, "a/1", []string{"a/2", "c/1"}, 2, false},
		{"filtered first page", notB, "", []string{"a/1", "a/2"}, 2, true},
		{"nothing allowed", func(string) bool { return false }, "", []string{}, 3, false},
		{"n=0", all, "", []string{}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, more, err := catalogPage(context.Background(), &fakeNamespace{repos: repos}, tc.may, tc.n, tc.last)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) || more != tc.wantMore {
				t.Fatalf("catalogPage = %v more=%v, want %v more=%v", got, more, tc.want, tc.wantMore)
			}
		})
	}
}

// Following the pages of a filtered catalog yields every allowed
// repository exactly once.
func TestCatalogPagesCoverAll(t *testing.T) {
	repos := []string{"a/1", "b/1", "a/2", "b/2", "a/3", "b/3", "a/4"}
	slices.Sort(repos)
	may := func(r string) bool { return strings.HasPrefix(r, "a/") }
	for n := 1; n <= 5; n++ {
		var got []string
		last := ""
		for range 20 {
			page, more, err := catalogPage(context.Background(), &fakeNamespace{repos: repos}, may, n, last)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, page...)
			if !more || len(page) == 0 {
				break
			}
			last = page[len(page)-1]
		}
		if want := []string{"a/1", "a/2", "a/3", "a/4"}; !slices.Equal(got, want) {
			t.Errorf("n=%d: pages gave %v, want %v", n, got, want)
		}
	}
}
