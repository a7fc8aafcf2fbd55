package storagedriver

import (
	"context"
	"crypto/sha256"
	"io"
	"math/rand"
	"testing"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"

	// Registers upstream's "filesystem" driver for comparison.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// Streamed blob push benchmarks: 256 MiB through FileWriter + Commit (which
// fsyncs, for both drivers) + Close, fed in 32 KiB pieces, the size of
// net/http request body reads. Both drivers write to the same temporary
// filesystem. Run with e.g.
//
//	go test -run '^$' -bench . -benchtime 3x ./storagedriver/
//
// Sub-benchmarks:
//   - filesystem: upstream's driver.
//   - mcrfs: this driver, default configuration (64 KiB page-cache writes
//     on the caller's goroutine).
//   - mcrfs-direct: directio (8 MiB O_DIRECT writes from a background
//     goroutine).
//
// Wall time here is a poor guide on a shared VM; bench/ measures server CPU
// per GB over real pushes.

const (
	benchBlobSize = 256 << 20
	benchChunk    = 32 << 10
)

var benchPattern = func() []byte {
	p := make([]byte, 1<<20)
	rand.New(rand.NewSource(42)).Read(p)
	return p
}()

// bodyReader imitates an HTTP request body: at most benchChunk bytes per
// Read, no WriterTo.
type bodyReader struct {
	remaining int64
	off       int
}

func (r *bodyReader) Read(p []byte) (int, error) {
	if r.remaining == 0 {
		return 0, io.EOF
	}
	n := min(len(p), benchChunk, len(benchPattern)-r.off)
	n = int(min(int64(n), r.remaining))
	copy(p[:n], benchPattern[r.off:])
	r.off = (r.off + n) % len(benchPattern)
	r.remaining -= int64(n)
	return n, nil
}

type benchDriver struct {
	new  func(root string) (driver.StorageDriver, error)
	name string
}

var benchDrivers = []benchDriver{
	{func(root string) (driver.StorageDriver, error) {
		return factory.Create(context.Background(), "filesystem", map[string]any{"rootdirectory": root})
	}, "filesystem"},
	{func(root string) (driver.StorageDriver, error) {
		return factory.Create(context.Background(), DriverName, map[string]any{"rootdirectory": root})
	}, "mcrfs"},
	{func(root string) (driver.StorageDriver, error) {
		return New(Parameters{RootDirectory: root, DirectIO: true}), nil
	}, "mcrfs-direct"},
}

// benchmarkPush runs fill (which must write benchBlobSize bytes into w) per
// iteration, then Commit and Close, and removes the file untimed.
func benchmarkPush(b *testing.B, fill func(b *testing.B, w driver.FileWriter)) {
	ctx := context.Background()
	for _, bd := range benchDrivers {
		b.Run(bd.name, func(b *testing.B) {
			d, err := bd.new(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(benchBlobSize)
			b.ResetTimer()
			for range b.N {
				w, err := d.Writer(ctx, "/docker/registry/v2/repositories/r/_uploads/u/data", false)
				if err != nil {
					b.Fatal(err)
				}
				fill(b, w)
				if w.Size() != benchBlobSize {
					b.Fatalf("Size = %d", w.Size())
				}
				if err := w.Commit(ctx); err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := d.Delete(ctx, "/docker"); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkWriterCommit: Write calls of 32 KiB each.
func BenchmarkWriterCommit(b *testing.B) {
	benchmarkPush(b, func(b *testing.B, w driver.FileWriter) {
		for off := 0; off < benchBlobSize; off += benchChunk {
			p := benchPattern[off%len(benchPattern):][:benchChunk]
			if _, err := w.Write(p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWriterCommitDigest reproduces distribution's blobWriter.ReadFrom:
// io.Copy(digester, io.TeeReader(body, fileWriter)), i.e. 32 KiB Writes
// interleaved with SHA-256 of the same bytes. This is the registry's real
// push path.
func BenchmarkWriterCommitDigest(b *testing.B) {
	benchmarkPush(b, func(b *testing.B, w driver.FileWriter) {
		h := sha256.New()
		n, err := io.Copy(h, io.TeeReader(&bodyReader{remaining: benchBlobSize}, w))
		if err != nil || n != benchBlobSize {
			b.Fatalf("copy = %d, %v", n, err)
		}
	})
}

// BenchmarkReadFrom: io.Copy(fileWriter, body). mcrfs's FileWriter
// implements io.ReaderFrom and reads straight into its buffer; upstream's
// does not, so io.Copy goes through a 32 KiB intermediate buffer.
func BenchmarkReadFrom(b *testing.B) {
	benchmarkPush(b, func(b *testing.B, w driver.FileWriter) {
		n, err := io.Copy(w, &bodyReader{remaining: benchBlobSize})
		if err != nil || n != benchBlobSize {
			b.Fatalf("copy = %d, %v", n, err)
		}
	})
}
