package storagedriver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/distribution/distribution/v3/registry/storage/driver/testsuites"
)

// TestDriverSuite runs distribution's storage driver conformance suite
// against mcrfs, exactly as upstream does for its filesystem driver.
//
// The suite runs are not parallel: upstream's TestReaderWithOffset
// appends into the package's shared random buffer (randomContents returns
// a slice of it), which races with the other run reading it.
func TestDriverSuite(t *testing.T) {
	root := t.TempDir()
	testsuites.Driver(t, func() (driver.StorageDriver, error) {
		return FromParameters(map[string]any{"rootdirectory": root})
	}, false)
}

// TestDriverSuiteDirect runs the conformance suite with direct I/O and
// background flushing, with a buffer small enough that most test data spans
// several direct writes and a buffered tail.
func TestDriverSuiteDirect(t *testing.T) {
	root := t.TempDir()
	testsuites.Driver(t, func() (driver.StorageDriver, error) {
		return FromParameters(map[string]any{"rootdirectory": root, "directio": true, "writebuffersize": "16KiB"})
	}, false)
}

// TestDriverSuiteSmallSyncBuffer runs the conformance suite again with the
// smallest buffer and synchronous flushing, so that buffer boundaries fall
// inside every test's data.
func TestDriverSuiteSmallSyncBuffer(t *testing.T) {
	root := t.TempDir()
	testsuites.Driver(t, func() (driver.StorageDriver, error) {
		return New(Parameters{RootDirectory: root, WriteBufferSize: MinWriteBufferSize, syncFlush: true}), nil
	}, false)
}

// newTestDriver makes a driver with the given buffer size: page cache
// writes on the caller's goroutine with early write-back when syncFlush,
// else direct I/O with background flushing.
func newTestDriver(t *testing.T, bufSize int, syncFlush bool) (*Driver, string) {
	t.Helper()
	root := t.TempDir()
	return New(Parameters{RootDirectory: root, WriteBufferSize: bufSize, DirectIO: !syncFlush, EarlyWriteback: syncFlush}), root
}

// writerModes covers background and synchronous flushing with a buffer
// small enough that writes cross many buffer and write-back boundaries.
var writerModes = []struct {
	name      string
	bufSize   int
	syncFlush bool
}{
	{"direct-async-4KiB", MinWriteBufferSize, false},
	{"buffered-4KiB", MinWriteBufferSize, true},
	{"direct-async-default", 0, false},
	{"buffered-default", 0, true},
}

func randomData(t testing.TB, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	rand.New(rand.NewSource(int64(n))).Read(p)
	return p
}

// writeChunks writes p through w in pseudo-random chunk sizes, including
// sizes larger than the buffer.
func writeChunks(t *testing.T, w io.Writer, p []byte) {
	t.Helper()
	rng := rand.New(rand.NewSource(1))
	for len(p) > 0 {
		n := min(len(p), 1+rng.Intn(3*MinWriteBufferSize))
		if rng.Intn(50) == 0 {
			n = min(len(p), 1+rng.Intn(3<<20))
		}
		m, err := w.Write(p[:n])
		if err != nil || m != n {
			t.Fatalf("Write(%d) = %d, %v", n, m, err)
		}
		p = p[n:]
	}
}

func TestCommitIsDurableAndComplete(t *testing.T) {
	ctx := context.Background()
	data := randomData(t, 20<<20+12345) // > writebackChunk, odd size
	for _, m := range writerModes {
		t.Run(m.name, func(t *testing.T) {
			d, root := newTestDriver(t, m.bufSize, m.syncFlush)
			w, err := d.Writer(ctx, "/blobs/a/data", false)
			if err != nil {
				t.Fatal(err)
			}
			writeChunks(t, w, data)
			if w.Size() != int64(len(data)) {
				t.Fatalf("Size = %d, want %d", w.Size(), len(data))
			}
			if err := w.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			// After Commit (before Close) everything must be in the file.
			onDisk, err := os.ReadFile(filepath.Join(root, "blobs/a/data"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(onDisk, data) {
				t.Fatalf("file content after Commit differs (len %d, want %d)", len(onDisk), len(data))
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}

			// Reopen through the driver, whole and at an offset.
			got, err := d.GetContent(ctx, "/blobs/a/data")
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("GetContent: err=%v equal=%v", err, bytes.Equal(got, data))
			}
			r, err := d.Reader(ctx, "/blobs/a/data", 7777)
			if err != nil {
				t.Fatal(err)
			}
			got, err = io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, data[7777:]) {
				t.Fatalf("Reader at offset: err=%v equal=%v", err, bytes.Equal(got, data[7777:]))
			}
			fi, err := d.Stat(ctx, "/blobs/a/data")
			if err != nil || fi.Size() != int64(len(data)) {
				t.Fatalf("Stat: %v %v", fi, err)
			}
		})
	}
}

// TestCloseFlushesAndAppendResumes mirrors a chunked (resumable) upload:
// every PATCH opens the writer in append mode and closes it without Commit.
func TestCloseFlushesAndAppendResumes(t *testing.T) {
	ctx := context.Background()
	data := randomData(t, 3<<20+17)
	parts := [][]byte{data[:1<<20+5], data[1<<20+5 : 2<<20], data[2<<20:]}
	for _, m := range writerModes {
		t.Run(m.name, func(t *testing.T) {
			d, _ := newTestDriver(t, m.bufSize, m.syncFlush)
			var size int64
			for i, part := range parts {
				w, err := d.Writer(ctx, "/uploads/u1/data", i > 0)
				if err != nil {
					t.Fatal(err)
				}
				if w.Size() != size {
					t.Fatalf("append writer Size = %d, want %d", w.Size(), size)
				}
				writeChunks(t, w, part)
				size += int64(len(part))
				if i == len(parts)-1 {
					if err := w.Commit(ctx); err != nil {
						t.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				fi, err := d.Stat(ctx, "/uploads/u1/data")
				if err != nil || fi.Size() != size {
					t.Fatalf("after Close: Stat size %v, err %v, want %d", fi, err, size)
				}
			}
			got, err := d.GetContent(ctx, "/uploads/u1/data")
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("GetContent: err=%v equal=%v", err, bytes.Equal(got, data))
			}
		})
	}
}

func TestWriterTruncatesWithoutAppend(t *testing.T) {
	ctx := context.Background()
	d, _ := newTestDriver(t, 0, false)
	if err := d.PutContent(ctx, "/f", bytes.Repeat([]byte("x"), 1000)); err != nil {
		t.Fatal(err)
	}
	w, err := d.Writer(ctx, "/f", false)
	if err != nil {
		t.Fatal(err)
	}
	if w.Size() != 0 {
		t.Fatalf("Size = %d", w.Size())
	}
	if _, err := w.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.GetContent(ctx, "/f"); string(got) != "abc" {
		t.Fatalf("got %q", got)
	}
}

func TestCancelRemovesFile(t *testing.T) {
	ctx := context.Background()
	for _, m := range writerModes {
		t.Run(m.name, func(t *testing.T) {
			d, root := newTestDriver(t, m.bufSize, m.syncFlush)
			w, err := d.Writer(ctx, "/uploads/u2/data", false)
			if err != nil {
				t.Fatal(err)
			}
			writeChunks(t, w, randomData(t, 2<<20+3)) // some flushed, some buffered
			if err := w.Cancel(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Stat(ctx, "/uploads/u2/data"); !errors.As(err, new(driver.PathNotFoundError)) {
				t.Fatalf("Stat after Cancel: %v, want PathNotFoundError", err)
			}
			if _, err := os.Stat(filepath.Join(root, "uploads/u2/data")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("file still on disk: %v", err)
			}
			if _, err := w.Write([]byte("x")); err == nil {
				t.Fatal("Write after Cancel succeeded")
			}
			if err := w.Commit(ctx); err == nil {
				t.Fatal("Commit after Cancel succeeded")
			}
			if err := w.Close(); err == nil {
				t.Fatal("Close after Cancel succeeded")
			}
			if err := w.Cancel(ctx); err == nil {
				t.Fatal("second Cancel succeeded")
			}
		})
	}
}

func TestWriterStateErrors(t *testing.T) {
	ctx := context.Background()
	d, _ := newTestDriver(t, 0, false)

	w, err := d.Writer(ctx, "/s", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Commit succeeded")
	}
	if rf, ok := w.(io.ReaderFrom); !ok {
		t.Fatal("the FileWriter is not an io.ReaderFrom")
	} else if _, err := rf.ReadFrom(strings.NewReader("x")); err == nil {
		t.Fatal("ReadFrom after Commit succeeded")
	}
	if err := w.Commit(ctx); err == nil {
		t.Fatal("second Commit succeeded")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil {
		t.Fatal("second Close succeeded")
	}
	if err := w.Commit(ctx); err == nil {
		t.Fatal("Commit after Close succeeded")
	}
	if err := w.Cancel(ctx); err == nil {
		t.Fatal("Cancel after Close succeeded")
	}

	// Cancel after Commit (but before Close) removes the file, as upstream.
	w, err = d.Writer(ctx, "/s", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Stat(ctx, "/s"); !errors.As(err, new(driver.PathNotFoundError)) {
		t.Fatalf("Stat after Commit+Cancel: %v", err)
	}
}

// TestWriteErrorIsReported checks that an error from a background write
// surfaces from a later Write, Commit or Close.
func TestWriteErrorIsReported(t *testing.T) {
	ctx := context.Background()
	for _, m := range writerModes {
		t.Run(m.name, func(t *testing.T) {
			d, root := newTestDriver(t, m.bufSize, m.syncFlush)
			p := filepath.Join(root, "ro")
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(p) // read-only: every write fails
			if err != nil {
				t.Fatal(err)
			}
			fs := d.impl
			w := newFileWriter(fs, f, 0, false)
			data := randomData(t, 3*fs.bufSize+1)
			var werr error
			for off := 0; off < len(data) && werr == nil; off += 1000 {
				_, werr = w.Write(data[off:min(off+1000, len(data))])
			}
			cerr := w.Commit(ctx)
			if werr == nil && cerr == nil {
				t.Fatal("write to read-only file reported no error")
			}
			if cerr == nil {
				t.Fatal("Commit reported no error after a failed write")
			}
			if err := w.Close(); err == nil {
				t.Fatal("Close reported no error after a failed write")
			}
		})
	}
}

func TestReadFrom(t *testing.T) {
	ctx := context.Background()
	data := randomData(t, 5<<20+99)
	readers := map[string]func() io.Reader{
		"32KiB-reads": func() io.Reader { return &chunkReader{data: data, chunk: 32 << 10} },
		"half-reads":  func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) },
		"data-err-eof": func() io.Reader {
			return iotest.DataErrReader(&chunkReader{data: data, chunk: 100000})
		},
	}
	for _, m := range writerModes {
		for rname, mk := range readers {
			t.Run(m.name+"/"+rname, func(t *testing.T) {
				d, _ := newTestDriver(t, m.bufSize, m.syncFlush)
				w, err := d.Writer(ctx, "/rf", false)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.Write(data[:10]); err != nil { // start mid-buffer
					t.Fatal(err)
				}
				n, err := io.Copy(w, io.MultiReader(mk(), strings.NewReader("tail")))
				if err != nil || n != int64(len(data))+4 {
					t.Fatalf("io.Copy = %d, %v", n, err)
				}
				if w.Size() != int64(len(data))+14 {
					t.Fatalf("Size = %d", w.Size())
				}
				if err := w.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				got, _ := d.GetContent(ctx, "/rf")
				want := append(append(append([]byte{}, data[:10]...), data...), "tail"...)
				if !bytes.Equal(got, want) {
					t.Fatalf("content differs (len %d, want %d)", len(got), len(want))
				}
			})
		}
	}

	// A read error is returned and the bytes read so far are kept.
	d, _ := newTestDriver(t, 0, false)
	w, _ := d.Writer(ctx, "/rferr", false)
	boom := errors.New("boom")
	rf, ok := w.(io.ReaderFrom)
	if !ok {
		t.Fatal("the FileWriter is not an io.ReaderFrom")
	}
	n, err := rf.ReadFrom(io.MultiReader(bytes.NewReader(data[:100]), iotest.ErrReader(boom)))
	if n != 100 || !errors.Is(err, boom) {
		t.Fatalf("ReadFrom = %d, %v", n, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := d.Stat(ctx, "/rferr"); err != nil || fi.Size() != 100 {
		t.Fatalf("Stat = %v, %v", fi, err)
	}
}

// chunkReader returns at most chunk bytes per Read and does not implement
// io.WriterTo, like an HTTP request body.
type chunkReader struct {
	data  []byte
	chunk int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.chunk)], r.data)
	r.data = r.data[n:]
	return n, nil
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestPutContentAtomic(t *testing.T) {
	ctx := context.Background()
	d, root := newTestDriver(t, 0, false)
	const path = "/repositories/r/_manifests/tags/latest/current/link"
	dir := filepath.Join(root, filepath.Dir(path))

	a := bytes.Repeat([]byte("a"), 300<<10)
	b := bytes.Repeat([]byte("b"), 100<<10)
	if err := d.PutContent(ctx, path, a); err != nil {
		t.Fatal(err)
	}

	// Readers racing with overwrites must always see one complete version.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad atomic.Value
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				got, err := d.GetContent(ctx, path)
				if err != nil {
					bad.Store(err.Error())
					return
				}
				if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
					bad.Store(fmt.Sprintf("partial content of length %d", len(got)))
					return
				}
			}
		}()
	}
	for i := range 40 {
		content := a
		if i%2 == 0 {
			content = b
		}
		if err := d.PutContent(ctx, path, content); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Fatalf("reader observed non-atomic update: %v", v)
	}

	if names := listDir(t, dir); len(names) != 1 || names[0] != "link" {
		t.Fatalf("directory contains %v, want only [link]", names)
	}
	if got, _ := d.GetContent(ctx, path); !bytes.Equal(got, a) {
		t.Fatal("final content is not the last PutContent")
	}

	// A failing PutContent (target is a directory) leaves no temp file.
	if err := d.PutContent(ctx, "/dir/child", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := d.PutContent(ctx, "/dir", []byte("y")); err == nil {
		t.Fatal("PutContent over a directory succeeded")
	}
	if names := listDir(t, root); strings.Join(names, ",") != "dir,repositories" {
		t.Fatalf("root contains %v", names)
	}

	// Empty content.
	if err := d.PutContent(ctx, "/empty", nil); err != nil {
		t.Fatal(err)
	}
	if got, err := d.GetContent(ctx, "/empty"); err != nil || len(got) != 0 {
		t.Fatalf("GetContent(empty) = %q, %v", got, err)
	}
}

func TestMoveOverExisting(t *testing.T) {
	ctx := context.Background()
	d, root := newTestDriver(t, 0, false)

	if err := d.PutContent(ctx, "/uploads/x/data", []byte("new content")); err != nil {
		t.Fatal(err)
	}
	if err := d.PutContent(ctx, "/blobs/ab/abcd/data", []byte("old, longer content")); err != nil {
		t.Fatal(err)
	}
	if err := d.Move(ctx, "/uploads/x/data", "/blobs/ab/abcd/data"); err != nil {
		t.Fatal(err)
	}
	if got, err := d.GetContent(ctx, "/blobs/ab/abcd/data"); err != nil || string(got) != "new content" {
		t.Fatalf("destination = %q, %v", got, err)
	}
	if _, err := d.Stat(ctx, "/uploads/x/data"); !errors.As(err, new(driver.PathNotFoundError)) {
		t.Fatalf("source still exists: %v", err)
	}

	// Move creates missing parents.
	if err := d.Move(ctx, "/blobs/ab/abcd/data", "/a/b/c/d"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "a/b/c/d")); err != nil || string(b) != "new content" {
		t.Fatalf("moved file = %q, %v", b, err)
	}

	// Moving a missing file is PathNotFound and leaves the target alone.
	err := d.Move(ctx, "/nope", "/a/b/c/d")
	var pnf driver.PathNotFoundError
	if !errors.As(err, &pnf) || pnf.Path != "/nope" || pnf.DriverName != DriverName {
		t.Fatalf("Move(missing) = %#v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "a/b/c/d")); string(b) != "new content" {
		t.Fatal("target changed by failed Move")
	}
}

func TestWalkAndList(t *testing.T) {
	ctx := context.Background()
	d, _ := newTestDriver(t, 0, false)
	for _, p := range []string{"/w/a", "/w/b/c", "/w/b/d"} {
		if err := d.PutContent(ctx, p, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	err := d.Walk(ctx, "/w", func(fi driver.FileInfo) error {
		seen = append(seen, fi.Path())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(seen, ","); got != "/w/a,/w/b,/w/b/c,/w/b/d" {
		t.Fatalf("Walk visited %s", got)
	}
	if url, err := d.RedirectURL(httptest.NewRequest(http.MethodGet, "/w/a", nil), "/w/a"); url != "" || err != nil {
		t.Fatalf("RedirectURL = %q, %v", url, err)
	}
}

func TestParameters(t *testing.T) {
	root := t.TempDir()
	tests := []struct {
		name    string
		params  map[string]any
		want    Parameters
		wantErr bool
	}{
		{"missing root", map[string]any{}, Parameters{}, true},
		{"nil params", nil, Parameters{}, true},
		{"empty root", map[string]any{"rootdirectory": ""}, Parameters{}, true},
		{"defaults", map[string]any{"rootdirectory": root},
			Parameters{RootDirectory: root, MaxThreads: 100, WriteBufferSize: DefaultWriteBufferSize}, false},
		{"threads string", map[string]any{"rootdirectory": root, "maxthreads": "50"},
			Parameters{RootDirectory: root, MaxThreads: 50, WriteBufferSize: DefaultWriteBufferSize}, false},
		{"threads min", map[string]any{"rootdirectory": root, "maxthreads": 1},
			Parameters{RootDirectory: root, MaxThreads: 25, WriteBufferSize: DefaultWriteBufferSize}, false},
		{"threads bad", map[string]any{"rootdirectory": root, "maxthreads": "x"}, Parameters{}, true},
		{"buf int", map[string]any{"rootdirectory": root, "writebuffersize": 65536},
			Parameters{RootDirectory: root, MaxThreads: 100, WriteBufferSize: 65536}, false},
		{"buf float", map[string]any{"rootdirectory": root, "writebuffersize": float64(2 << 20)},
			Parameters{RootDirectory: root, MaxThreads: 100, WriteBufferSize: 2 << 20}, false},
		{"buf MiB", map[string]any{"rootdirectory": root, "writebuffersize": "4MiB"},
			Parameters{RootDirectory: root, MaxThreads: 100, WriteBufferSize: 4 << 20}, false},
		{"buf k", map[string]any{"rootdirectory": root, "writebuffersize": "512k"},
			Parameters{RootDirectory: root, MaxThreads: 100, WriteBufferSize: 512 << 10}, false},
		{"buf plain string", map[string]any{"rootdirectory": root, "writebuffersize": "8192"},
			Parameters{RootDirectory: root, MaxThreads: 100, WriteBufferSize: 8192}, false},
		{"buf clamp low", map[string]any{"rootdirectory": root, "writebuffersize": 10},
			Parameters{RootDirectory: root, MaxThreads: 100, WriteBufferSize: MinWriteBufferSize}, false},
		{"buf clamp high", map[string]any{"rootdirectory": root, "writebuffersize": "1024MiB"},
			Parameters{RootDirectory: root, MaxThreads: 100, WriteBufferSize: MaxWriteBufferSize}, false},
		{"buf negative", map[string]any{"rootdirectory": root, "writebuffersize": -1}, Parameters{}, true},
		{"buf junk", map[string]any{"rootdirectory": root, "writebuffersize": "lots"}, Parameters{}, true},
		{"buf fraction", map[string]any{"rootdirectory": root, "writebuffersize": 1.5}, Parameters{}, true},
		{"buf bad type", map[string]any{"rootdirectory": root, "writebuffersize": true}, Parameters{}, true},
		{"writeback bool", map[string]any{"rootdirectory": root, "earlywriteback": true},
			Parameters{RootDirectory: root, MaxThreads: 100, WriteBufferSize: DefaultWriteBufferSize, EarlyWriteback: true}, false},
		{"writeback string", map[string]any{"rootdirectory": root, "earlywriteback": "true"},
			Parameters{RootDirectory: root, MaxThreads: 100, WriteBufferSize: DefaultWriteBufferSize, EarlyWriteback: true}, false},
		{"writeback off", map[string]any{"rootdirectory": root, "earlywriteback": "false"},
			Parameters{RootDirectory: root, MaxThreads: 100, WriteBufferSize: DefaultWriteBufferSize}, false},
		{"writeback junk", map[string]any{"rootdirectory": root, "earlywriteback": "sometimes"}, Parameters{}, true},
		{"directio default buffer", map[string]any{"rootdirectory": root, "directio": true},
			Parameters{RootDirectory: root, MaxThreads: 100, WriteBufferSize: DefaultDirectBufferSize, DirectIO: true}, false},
		{"directio string, own buffer", map[string]any{"rootdirectory": root, "directio": "true", "writebuffersize": "1MiB"},
			Parameters{RootDirectory: root, MaxThreads: 100, WriteBufferSize: 1 << 20, DirectIO: true}, false},
		{"directio off", map[string]any{"rootdirectory": root, "directio": false},
			Parameters{RootDirectory: root, MaxThreads: 100, WriteBufferSize: DefaultWriteBufferSize}, false},
		{"buf rounded to 4 KiB", map[string]any{"rootdirectory": root, "writebuffersize": 10000},
			Parameters{RootDirectory: root, MaxThreads: 100, WriteBufferSize: 8192}, false},
		{"directio junk", map[string]any{"rootdirectory": root, "directio": "maybe"}, Parameters{}, true},
		{"writeback bad type", map[string]any{"rootdirectory": root, "earlywriteback": 1}, Parameters{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseParameters(tc.params)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("expected error, got %+v", got)
				}
				if _, err := FromParameters(tc.params); err == nil {
					t.Fatal("FromParameters: expected error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestFactoryRegistration(t *testing.T) {
	root := t.TempDir()
	d, err := factory.Create(context.Background(), DriverName, map[string]any{
		"rootdirectory":   root,
		"writebuffersize": "64k",
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.Name() != DriverName {
		t.Fatalf("Name = %q", d.Name())
	}
	if _, err := factory.Create(context.Background(), DriverName, map[string]any{}); err == nil {
		t.Fatal("factory accepted missing rootdirectory")
	}
	// Zero-value Parameters fields get defaults.
	if New(Parameters{RootDirectory: root}).Name() != DriverName {
		t.Fatal("New: wrong name")
	}
}

// An upload chunk's writer (a PATCH) starts write-back of what it leaves
// pending when it closes, from 1 MiB up, so the commit's fsync does not
// find every chunk dirty; a small chunk is left to the fsync.
func TestUploadChunkCloseStartsWriteback(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name    string
		size    int
		started bool
	}{
		{"5 MiB chunk", 5 << 20, true},
		{"1 KiB chunk", 1 << 10, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, root := newTestDriver(t, 1<<20, true)
			const path = "/repo/_uploads/u1/data"
			data := randomData(t, c.size)
			var fws []*fileWriter
			for i := range 2 { // two chunks: a fresh writer, then an append
				w, err := d.Writer(ctx, path, i > 0)
				if err != nil {
					t.Fatal(err)
				}
				writeChunks(t, w, data)
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				fw, ok := w.(*fileWriter)
				if !ok {
					t.Fatalf("writer is %T", w)
				}
				fws = append(fws, fw)
			}
			for i, fw := range fws {
				start := int64(i * c.size)
				if got := fw.writeback == fw.flushed && fw.writeback > start; got != c.started {
					t.Errorf("chunk %d: write-back at %d of %d (chunk from %d), started = %v, want %v",
						i, fw.writeback, fw.flushed, start, got, c.started)
				}
			}
			onDisk, err := os.ReadFile(filepath.Join(root, path))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(onDisk, append(append([]byte(nil), data...), data...)) {
				t.Fatal("the upload's content differs from the two chunks")
			}
		})
	}
}
