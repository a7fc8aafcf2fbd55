package storagedriver

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDirectWrites checks which bytes go around the page cache: full
// buffers at aligned offsets (O_DIRECT), never the tail, and that an append
// at an unaligned offset realigns after its first buffer. The content must
// be exact either way.
func TestDirectWrites(t *testing.T) {
	const buf = 64 << 10
	for _, tc := range []struct {
		name       string
		prefix     int // bytes written (and committed) by a first writer
		size       int // bytes written by the writer under test
		noDirect   bool
		wantDirect int64
	}{
		{"small blob stays buffered", 0, buf - 1, false, 0},
		{"exact buffers", 0, 4 * buf, false, 4 * buf},
		{"tail buffered", 0, 3*buf + 100, false, 3 * buf},
		{"unaligned append realigns", 1000, 3 * buf, false, 2 * buf},
		{"directio off", 0, 4 * buf, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			d := New(Parameters{RootDirectory: root, WriteBufferSize: buf, DirectIO: !tc.noDirect})
			ctx := context.Background()
			const path = "/blob"
			want := randomData(t, tc.prefix+tc.size)
			if tc.prefix > 0 {
				w, err := d.Writer(ctx, path, false)
				if err != nil {
					t.Fatal(err)
				}
				writeChunks(t, w, want[:tc.prefix])
				if err := w.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			}
			w, err := d.Writer(ctx, path, tc.prefix > 0)
			if err != nil {
				t.Fatal(err)
			}
			writeChunks(t, w, want[tc.prefix:])
			if err := w.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			fw, ok := w.(*fileWriter)
			if !ok {
				t.Fatalf("Writer returned %T", w)
			}
			if fw.directBytes != tc.wantDirect {
				t.Errorf("direct bytes = %d, want %d", fw.directBytes, tc.wantDirect)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(root, path))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("content differs (len %d, want %d)", len(got), len(want))
			}
		})
	}
}

// TestFsyncs checks which operations are made durable: committed blobs,
// their directory on Move, and PutContent (file and directory) outside
// uploads; upload state (_uploads/) is only fsynced by Commit.
func TestFsyncs(t *testing.T) {
	ctx := context.Background()
	const (
		upload = "/docker/registry/v2/repositories/a/b/_uploads/0b8e/"
		blob   = "/docker/registry/v2/blobs/sha256/ab/abcd/data"
		link   = "/docker/registry/v2/repositories/a/b/_layers/sha256/abcd/link"
	)
	for _, tc := range []struct {
		name string
		op   func(t *testing.T, d *Driver)
		want []string // base names of the fsynced files and directories, in order
	}{
		{"PutContent durable", func(t *testing.T, d *Driver) {
			if err := d.PutContent(ctx, link, []byte("sha256:abcd")); err != nil {
				t.Fatal(err)
			}
		}, []string{"tmp", "abcd"}},
		{"PutContent upload state", func(t *testing.T, d *Driver) {
			if err := d.PutContent(ctx, upload+"startedat", []byte("2026-12-01T00:00:00Z")); err != nil {
				t.Fatal(err)
			}
			if err := d.PutContent(ctx, upload+"hashstates/sha256/0", []byte("state")); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"upload Close, then Commit and Move", func(t *testing.T, d *Driver) {
			w, err := d.Writer(ctx, upload+"data", false)
			if err != nil {
				t.Fatal(err)
			}
			writeChunks(t, w, randomData(t, 100<<10))
			if err := w.Close(); err != nil { // end of a PATCH
				t.Fatal(err)
			}
			if w, err = d.Writer(ctx, upload+"data", true); err != nil {
				t.Fatal(err)
			}
			writeChunks(t, w, randomData(t, 10))
			if err := w.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := d.Move(ctx, upload+"data", blob); err != nil {
				t.Fatal(err)
			}
		}, []string{"data", "abcd"}},
		{"blob writer Close outside uploads", func(t *testing.T, d *Driver) {
			w, err := d.Writer(ctx, blob, false)
			if err != nil {
				t.Fatal(err)
			}
			writeChunks(t, w, randomData(t, 10))
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}, []string{"data"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New(Parameters{RootDirectory: t.TempDir()})
			var got []string
			d.impl.onSync = func(name string) {
				base := filepath.Base(name)
				if strings.HasSuffix(base, ".tmp") {
					base = "tmp"
				}
				got = append(got, base)
			}
			tc.op(t, d)
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("fsynced %q, want %q", got, tc.want)
			}
		})
	}
}
