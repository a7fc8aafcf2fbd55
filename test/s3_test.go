package e2e

import (
	"bytes"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// TestS3 runs MCR with its blobs in an S3 bucket (distribution's s3 driver
// against versitygw on loopback): the OCI conformance default profile
// (push/pull, referrers, sha512), oras-go referrers, sha512 round trips
// with mounts, and GC sweeping through the driver.
func TestS3(t *testing.T) {
	t.Parallel()
	t.Run("conformance-default-profile", func(t *testing.T) {
		t.Parallel()
		s3 := mcrtest.StartS3(t)
		srv := mcrtest.Start(t, s3.Options()...)
		tot, out, results := runConformanceAt(t, srv)
		if _, ok := tot["Total"]; !ok {
			t.Fatalf("no totals in the conformance output:\n%s", out)
		}
		t.Logf("default profile on S3: %d failed, %d errors, %d passed, %d skipped of %d",
			tot["FAIL"], tot["Error"], tot["Pass"], tot["Skip"], tot["Total"])
		if tot["FAIL"] != 0 || tot["Error"] != 0 || tot["Pass"] <= 800 {
			for _, l := range failingLines(out) {
				t.Log(l)
			}
			t.Logf("results: %s", keepResults(results))
			t.Errorf("conformance on S3: %d failed, %d errors, %d passed; want 0, 0, > 800", tot["FAIL"], tot["Error"], tot["Pass"])
		}
		s3NoLocalLayers(t, srv, s3)
	})
	t.Run("referrers", func(t *testing.T) {
		t.Parallel()
		testOrasReferrers(t, mcrtest.StartS3(t).Options()...)
	})
	t.Run("sha512", func(t *testing.T) {
		t.Parallel()
		testSHA512RoundTrip(t, mcrtest.StartS3(t).Options()...)
	})
	t.Run("gc", func(t *testing.T) {
		t.Parallel()
		testGCSweepsOrphansAfterGrace(t, mcrtest.StartS3(t).Options()...)
	})
	t.Run("redirect", testS3Redirect)
}

// s3NoLocalLayers checks the blobs went to the bucket, not to a local
// layers directory.
func s3NoLocalLayers(t *testing.T, srv *mcrtest.Server, s3 *mcrtest.S3) {
	t.Helper()
	var local int
	_ = filepath.WalkDir(filepath.Join(srv.Dir, "layers"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			local++
		}
		return nil
	})
	if local != 0 {
		t.Errorf("%d files under the local layers directory with storage.driver = s3", local)
	}
	if _, err := os.Stat(s3.ObjectPath("docker/registry/v2/blobs")); err != nil {
		t.Errorf("no blobs in the bucket: %v", err)
	}
}

// testS3Redirect: by default a blob GET streams the bytes through MCR;
// with storage.s3_redirect it is a 307 to a presigned URL on the S3
// endpoint, which serves the same bytes.
func testS3Redirect(t *testing.T) {
	t.Parallel()
	s3 := mcrtest.StartS3(t)
	for _, redirect := range []bool{false, true} {
		opts := s3.Options()
		if redirect {
			opts = append(opts, mcrtest.WithConfig("storage.s3_redirect", "true"))
		}
		srv := mcrtest.Start(t, opts...)
		img, err := random.Image(64<<10, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref(t, srv, "redir/app:v1"), img, remoteOpts(t, srv, adminAuth(), nil)...); err != nil {
			t.Fatalf("push (redirect=%v): %v", redirect, err)
		}
		layers, _ := img.Layers()
		ld, _ := layers[0].Digest()
		rc, _ := layers[0].Compressed()
		wantBytes, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		tok := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:redir/app:pull")
		c := srv.Client()
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/redir/app/blobs/"+ld.String(), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if !redirect {
			if resp.StatusCode != http.StatusOK || !bytes.Equal(body, wantBytes) {
				t.Fatalf("blob GET without redirects: %d, %d bytes; want 200 with the layer", resp.StatusCode, len(body))
			}
			continue
		}
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, s3.Endpoint+"/") {
			t.Fatalf("blob GET with s3_redirect: %d Location %q; want 307 to %s", resp.StatusCode, loc, s3.Endpoint)
		}
		r2, err := http.Get(loc)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, r2); r2.StatusCode != http.StatusOK || !bytes.Equal(got, wantBytes) {
			t.Fatalf("presigned GET: %d, %d bytes", r2.StatusCode, len(got))
		}
		// The client still gets the image through the redirect.
		if _, err := remote.Image(ref(t, srv, "redir/app:v1"), remoteOpts(t, srv, adminAuth(), nil)...); err != nil {
			t.Fatalf("pull through redirects: %v", err)
		}
	}
}
