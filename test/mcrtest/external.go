package mcrtest

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"git.wntrmute.dev/kyle/mcr/internal/pgtest"
)

// Tool returns the path of an external program the test needs. Outside CI
// a missing tool skips the test; in CI (the CI variable set) it fails it,
// since CI installs everything the suite uses (.ci/run).
func Tool(t testing.TB, name string, extraDirs ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	dirs := append([]string{}, extraDirs...)
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found (CI must install it: see .ci/run)", name)
	}
	t.Skipf("%s not installed", name)
	return ""
}

// S3 is a versitygw S3 server on loopback (posix backend) with one bucket.
type S3 struct {
	Endpoint  string // http://127.0.0.1:port
	AccessKey string
	SecretKey string
	Bucket    string
	Output    *SafeBuffer
	Dir       string // the posix backend's root; Bucket is a directory in it
}

// StartS3 starts versitygw for the test (stopped at cleanup) with a fresh
// bucket.
func StartS3(t testing.TB) *S3 {
	t.Helper()
	bin := Tool(t, "versitygw")
	s := &S3{AccessKey: "mcrtest", SecretKey: "mcrtest-secret-key", Bucket: "mcr", Dir: t.TempDir(), Output: &SafeBuffer{}}
	if err := os.Mkdir(filepath.Join(s.Dir, s.Bucket), 0o700); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	s.Endpoint = "http://" + addr
	cmd := exec.Command(bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--port", addr,
		"--quiet", "--health", "/health", "posix", s.Dir)
	cmd.Stdout, cmd.Stderr = s.Output, s.Output
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.Endpoint + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-done:
			t.Fatalf("versitygw exited\n%s", s.Output.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw not healthy after 20s: %v\n%s", err, s.Output.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Options configure an mcrsrv to keep its blobs in this bucket (blobs
// served through MCR, no redirects).
func (s *S3) Options() []Option {
	q := strconv.Quote
	return []Option{
		WithConfig("storage.driver", q("s3")),
		WithConfig("storage.s3_bucket", q(s.Bucket)),
		WithConfig("storage.s3_region", q("us-east-1")),
		WithConfig("storage.s3_endpoint", q(s.Endpoint)),
		WithConfig("storage.s3_access_key", q(s.AccessKey)),
		WithConfig("storage.s3_secret_key", q(s.SecretKey)),
		WithConfig("storage.s3_path_style", "true"),
	}
}

// ObjectPath is where the posix backend keeps an object key.
func (s *S3) ObjectPath(key string) string {
	return filepath.Join(s.Dir, s.Bucket, filepath.FromSlash(key))
}

// String names the server in failure messages.
func (s *S3) String() string { return fmt.Sprintf("versitygw %s bucket %s", s.Endpoint, s.Bucket) }

// Postgres returns the options that put a server's metadata in a
// PostgreSQL database (a fresh one per call from the test cluster unless
// dsn is given): init and the server both use it.
func Postgres(t testing.TB, dsn ...string) (string, Option) {
	t.Helper()
	d := ""
	if len(dsn) > 0 {
		d = dsn[0]
	} else {
		d = pgtest.DSN(t)
	}
	return d, WithEnv("MCR_DATABASE_DRIVER=postgres", "MCR_DATABASE_DSN="+d)
}
