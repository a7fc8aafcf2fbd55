package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// uploadBlob pushes data to repo: monolithically (POST, PUT with the body)
// or as docker does (POST, one PATCH, PUT), and returns its digest.
func uploadBlob(t *testing.T, srv *mcrtest.Server, tok, repo string, data []byte, patch bool) string {
	t.Helper()
	sum := sha256.Sum256(data)
	dgst := "sha256:" + hex.EncodeToString(sum[:])
	resp := srv.Do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", tok, nil)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST upload: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	body := data
	if patch {
		resp = srv.Do(t, http.MethodPatch, loc, tok, data, "Content-Type", "application/octet-stream")
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("PATCH: %d", resp.StatusCode)
		}
		loc, body = resp.Header.Get("Location"), nil
		if strings.Contains(loc, "?") {
			sep = "&"
		} else {
			sep = "?"
		}
	}
	resp = srv.Do(t, http.MethodPut, loc+sep+"digest="+dgst, tok, body, "Content-Type", "application/octet-stream")
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT ?digest: %d", resp.StatusCode)
	}
	return dgst
}

// Blob GET and HEAD are served from the file by package blobserve: the
// answers must be distribution's, byte for byte and header for header.
func TestBlobServe(t *testing.T) {
	srv := mcrtest.Start(t)
	tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:serve/a:pull,push", "repository:serve/b:pull,push")

	rng := rand.New(rand.NewPCG(7, 9))
	big := make([]byte, 3<<20+12345) // above readahead's 1 MiB threshold, not a multiple of its chunk
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	small := []byte("a small blob of a few bytes")
	other := append([]byte(nil), big...)
	other[0] ^= 0xff

	dBig := uploadBlob(t, srv, tok, "serve/a", big, false)
	dOther := uploadBlob(t, srv, tok, "serve/a", other, true)
	dSmall := uploadBlob(t, srv, tok, "serve/a", small, true)
	uploadBlob(t, srv, tok, "serve/b", []byte("only in b"), false)

	for _, tc := range []struct {
		dgst string
		data []byte
	}{{dBig, big}, {dOther, other}, {dSmall, small}} {
		resp := srv.Do(t, http.MethodGet, "/v2/serve/a/blobs/"+tc.dgst, tok, nil)
		got, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", tc.dgst, resp.StatusCode, err)
		}
		if !bytes.Equal(got, tc.data) {
			t.Fatalf("GET %s: %d bytes back, want the %d pushed", tc.dgst, len(got), len(tc.data))
		}
		for k, want := range map[string]string{
			"Docker-Content-Digest": tc.dgst,
			"ETag":                  `"` + tc.dgst + `"`,
			"Content-Type":          "application/octet-stream",
			"Content-Length":        strconv.Itoa(len(tc.data)),
			"Cache-Control":         "max-age=31536000",
			"Accept-Ranges":         "bytes",
		} {
			if v := resp.Header.Get(k); v != want {
				t.Errorf("GET %s: %s = %q, want %q", tc.dgst, k, v, want)
			}
		}
	}

	t.Run("HEAD has the headers and no body", func(t *testing.T) {
		resp := srv.Do(t, http.MethodHead, "/v2/serve/a/blobs/"+dBig, tok, nil)
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(b) != 0 || resp.Header.Get("Content-Length") != strconv.Itoa(len(big)) ||
			resp.Header.Get("Docker-Content-Digest") != dBig {
			t.Fatalf("HEAD: %d, %d body bytes, headers %v", resp.StatusCode, len(b), resp.Header)
		}
	})
	t.Run("Range", func(t *testing.T) {
		resp := srv.Do(t, http.MethodGet, "/v2/serve/a/blobs/"+dBig, tok, nil, "Range", "bytes=1048570-1048600")
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, big[1048570:1048601]) ||
			resp.Header.Get("Content-Range") != "bytes 1048570-1048600/"+strconv.Itoa(len(big)) {
			t.Fatalf("Range: %d, %d bytes, Content-Range %q", resp.StatusCode, len(b), resp.Header.Get("Content-Range"))
		}
		resp = srv.Do(t, http.MethodGet, "/v2/serve/a/blobs/"+dSmall, tok, nil, "Range", "bytes=1000-2000")
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			t.Fatalf("range past the end: %d, want 416", resp.StatusCode)
		}
	})
	t.Run("If-None-Match", func(t *testing.T) {
		resp := srv.Do(t, http.MethodGet, "/v2/serve/a/blobs/"+dSmall, tok, nil, "If-None-Match", `"`+dSmall+`"`)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNotModified {
			t.Fatalf("If-None-Match: %d, want 304", resp.StatusCode)
		}
	})
	t.Run("a blob not linked in the repository is unknown there", func(t *testing.T) {
		resp := srv.Do(t, http.MethodGet, "/v2/serve/b/blobs/"+dBig, tok, nil)
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(b), "BLOB_UNKNOWN") {
			t.Fatalf("GET from serve/b: %d %s", resp.StatusCode, b)
		}
	})
	t.Run("a digest never pushed", func(t *testing.T) {
		resp := srv.Do(t, http.MethodGet, "/v2/serve/a/blobs/sha256:"+strings.Repeat("0", 64), tok, nil)
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(b), "BLOB_UNKNOWN") {
			t.Fatalf("GET unknown digest: %d %s", resp.StatusCode, b)
		}
	})
	t.Run("an upload whose digest does not match is refused after the body", func(t *testing.T) {
		resp := srv.Do(t, http.MethodPost, "/v2/serve/a/blobs/uploads/", tok, nil)
		_ = resp.Body.Close()
		loc := resp.Header.Get("Location")
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		resp = srv.Do(t, http.MethodPut, loc+sep+"digest="+dSmall, tok, big, "Content-Type", "application/octet-stream")
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "DIGEST_INVALID") {
			t.Fatalf("mismatched digest: %d %s", resp.StatusCode, b)
		}
	})
}
