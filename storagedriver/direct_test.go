package storagedriver

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
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
