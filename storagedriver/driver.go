// Package storagedriver implements "mcrfs", MCR's local-filesystem storage
// driver for distribution (github.com/distribution/distribution/v3).
//
// # Why it exists
//
// MCR stores blobs on a local filesystem. Upstream's "filesystem" driver
// writes a streamed upload through the page cache in the pieces the HTTP
// body arrives in (a TLS record, 16 KiB), one write syscall each, and
// fsyncs on commit, so every byte is copied into freshly allocated page
// cache pages and written back at the fsync.
//
// mcrfs keeps upstream's on-disk layout and the exact semantics of every
// StorageDriver method (it is a drop-in replacement for "filesystem"
// pointed at the same root directory) but changes how bytes reach the disk:
//
//   - FileWriter collects writes in 1 MiB buffers; a full buffer is written
//     through the page cache by a background goroutine while the caller
//     (distribution's blob writer: TLS, SHA-256) fills the other one, in
//     write calls of 128 KiB (writePiece). The kernel sizes page-cache
//     folios by the write. Large folios are cheaper to fill, to write back
//     at the fsync and to read again for the pull that follows a push, but
//     on a VM with free page reporting (virtio-balloon) the large free
//     blocks they are cut from are often memory the host has taken back,
//     and the first touch of each page is then a host fault: 1 MiB writes
//     swung between the cheapest and 1.5x upstream's system time by the
//     host's state. 128 KiB pieces kept most of the large-folio gain and
//     lost the swing: one run on the bench VM with the host's memory cold,
//     against 1 MiB writes, put 406 vs 364 MB/s and 2.29 vs 2.65 s/GB of
//     server CPU, pull 0.75 vs 0.73 s/GB; warm, against 256 KiB, even
//     (bench/README.md). writebuffersize = 32KiB
//     (storage.write_buffer_size) gives small, caller-written buffers.
//     Buffers under 256 KiB are always written by the caller: their
//     hand-offs cost more than the overlap gives.
//   - With "directio" (off by default), full buffers (8 MiB by default) at
//     aligned offsets are written with O_DIRECT by a background goroutine
//     while the caller fills a second buffer: from the driver's reused
//     buffer to the device, with no page cache pages to allocate, fill and
//     write back at the fsync. That cut the server's CPU for a 512 MiB push
//     by 10-15 %, but the blob is then not in the page cache, and the pull
//     that follows a push read it from disk at twice the CPU; hence off.
//     Everything else (the tail of a blob, blobs smaller than a buffer,
//     filesystems without O_DIRECT) still goes through the page cache.
//     At most one write per FileWriter is in flight; errors are sticky and
//     reported by the next Write, Commit or Close, like bufio.
//   - Optionally (earlywriteback, Linux), page-cache ranges are handed to
//     the kernel for write-back early (sync_file_range(SYNC_FILE_RANGE_WRITE)),
//     so that the fsync in Commit only waits for the tail: the disk writes
//     while the body is still arriving instead of after it. The driver's
//     default is off; MCR turns it on (storage.early_writeback): two A/B
//     runs of 4 rounds, 512 MiB put 552 vs 462 MB/s and patch 557 vs 448 at
//     the same CPU per GB (bench/README.md). An upload chunk's writer (one
//     PATCH, which never reaches the 8 MiB step by itself) starts write-back
//     of what it leaves pending when it closes, so the commit's fsync does
//     not find the whole blob dirty: 5 MiB chunked pushes 516 vs 434 MB/s.
//   - FileWriter implements io.ReaderFrom, reading straight into its buffer
//     (no intermediate 32 KiB copy) for callers that io.Copy into it.
//
// Durability of stored content is the same as upstream or better: Commit
// flushes and fsyncs the file; direct writes are covered by the same fsync,
// which also flushes the device's write cache. PutContent writes a
// temporary file in the target directory, fsyncs it, renames it over the
// target and fsyncs the directory, so readers never observe partial
// content; Move is an atomic rename and additionally fsyncs the destination
// directory. Upload state (<repository>/_uploads/) is the exception: until
// Commit it is not fsynced (upstream fsyncs each PATCH and each hash state),
// because losing it in a crash can only fail that upload, whose digest is
// verified at the end (see isScratch).
//
// # Parameters
//
//   - rootdirectory (required): directory under which all content is stored.
//   - maxthreads (optional, default 100, minimum 25): maximum number of
//     concurrent blocking filesystem calls made through the driver, as in
//     upstream's filesystem driver.
//   - writebuffersize (optional, default 1 MiB, 8 MiB with directio): size
//     of each FileWriter buffer in bytes; an integer or a string such as "4MiB" or "512k".
//     Values are clamped to [4 KiB, 64 MiB] and rounded down to a multiple
//     of 4 KiB. Each active FileWriter holds up to two such buffers (pooled
//     per driver).
//   - directio (optional, default false): write full buffers with O_DIRECT
//     from a background goroutine (Linux; filesystems that refuse it fall
//     back to the page cache by themselves).
//   - earlywriteback (optional, default false): start write-back of every
//     8 MiB written through the page cache (Linux), see above.
package storagedriver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/base"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
)

const (
	// DriverName is the name under which this driver is registered with
	// distribution's storage driver factory.
	DriverName = "mcrfs"

	// DefaultMaxThreads is the default value of the maxthreads parameter.
	DefaultMaxThreads = uint64(100)
	// MinThreads is the smallest accepted maxthreads; smaller values are
	// raised to it.
	MinThreads = uint64(25)

	// DefaultWriteBufferSize is the default size of a FileWriter buffer when
	// writing through the page cache: 1 MiB, written (in writePiece calls)
	// by the background writer while the caller fills the other buffer.
	DefaultWriteBufferSize = 1 << 20
	// minBackground is the smallest buffer written by a background
	// goroutine: below it the hand-offs cost more than the overlap gives,
	// and the caller writes its buffers itself.
	minBackground = 256 << 10
	// DefaultDirectBufferSize is the default buffer size with directio: few,
	// large direct writes (each a blocking disk write, which the Go runtime
	// answers with a thread hand-off).
	DefaultDirectBufferSize = 8 << 20
	// MinWriteBufferSize is the smallest writebuffersize accepted.
	MinWriteBufferSize = 4 << 10
	// MaxWriteBufferSize is the largest writebuffersize accepted.
	MaxWriteBufferSize = 64 << 20

	// writePiece is the largest write call through the page cache (a
	// buffer is written in pieces of it), which sets the largest
	// page-cache folio a push allocates; see the package comment.
	writePiece = 128 << 10

	// closeWritebackMin is the least pending data an upload chunk's
	// writer starts write-back of when it closes; less is left to the
	// commit's fsync (a small blob's one write costs no extra I/O).
	closeWritebackMin = 1 << 20

	// writebackChunk is how many bytes a FileWriter lets accumulate before
	// asking the kernel to start writing them back (Linux only).
	writebackChunk = 8 << 20

	// directAlign is the alignment of O_DIRECT buffers, offsets and lengths:
	// the page size, which covers every logical block size in use.
	directAlign = 4096
)

// Parameters configures a Driver.
type Parameters struct {
	// RootDirectory is the directory under which all content is stored.
	// It must not be empty.
	RootDirectory string
	// MaxThreads bounds concurrent calls into the driver (see
	// base.NewRegulator). Zero means DefaultMaxThreads; values below
	// MinThreads are raised to MinThreads.
	MaxThreads uint64
	// WriteBufferSize is the size in bytes of each FileWriter buffer.
	// Zero means DefaultWriteBufferSize; other values are clamped to
	// [MinWriteBufferSize, MaxWriteBufferSize].
	WriteBufferSize int
	// EarlyWriteback starts kernel write-back of each 8 MiB written through
	// the page cache, before Commit's fsync (Linux only).
	EarlyWriteback bool
	// DirectIO writes full buffers with O_DIRECT from a background
	// goroutine (the "directio" parameter), see the package comment.
	DirectIO bool

	// syncFlush disables background flushing; every full buffer is
	// written by the caller's goroutine. Only used by tests.
	syncFlush bool
}

func init() {
	factory.Register(DriverName, driverFactory{})
}

// driverFactory implements factory.StorageDriverFactory.
type driverFactory struct{}

func (driverFactory) Create(_ context.Context, parameters map[string]any) (driver.StorageDriver, error) {
	return FromParameters(parameters)
}

type baseEmbed struct {
	base.Base
}

// Driver is a driver.StorageDriver backed by a local filesystem. All paths
// are relative to the root directory. Construct it with New or
// FromParameters.
type Driver struct {
	baseEmbed
	impl *fsDriver // the unwrapped implementation, for tests
}

var _ driver.StorageDriver = (*Driver)(nil)

// FromParameters builds a Driver from a configuration map, as found in the
// "storage: mcrfs:" section of a distribution configuration. Recognised
// keys: rootdirectory (required), maxthreads, writebuffersize, directio,
// earlywriteback.
func FromParameters(parameters map[string]any) (*Driver, error) {
	params, err := parseParameters(parameters)
	if err != nil {
		return nil, err
	}
	return New(params), nil
}

func parseParameters(parameters map[string]any) (Parameters, error) {
	var p Parameters

	root, ok := parameters["rootdirectory"]
	if !ok || root == nil {
		return p, fmt.Errorf("%s: rootdirectory parameter is required", DriverName)
	}
	p.RootDirectory = fmt.Sprint(root)
	if p.RootDirectory == "" {
		return p, fmt.Errorf("%s: rootdirectory parameter must not be empty", DriverName)
	}

	threads, err := base.GetLimitFromParameter(parameters["maxthreads"], MinThreads, DefaultMaxThreads)
	if err != nil {
		return p, fmt.Errorf("%s: maxthreads config error: %w", DriverName, err)
	}
	p.MaxThreads = threads

	if p.DirectIO, err = parseBool(parameters, "directio", false); err != nil {
		return p, err
	}
	bufSize, err := parseSize(parameters["writebuffersize"], 0)
	if err != nil {
		return p, fmt.Errorf("%s: writebuffersize config error: %w", DriverName, err)
	}
	p.WriteBufferSize = clampBufferSize(bufSize, p.DirectIO)

	if p.EarlyWriteback, err = parseBool(parameters, "earlywriteback", false); err != nil {
		return p, err
	}

	return p, nil
}

// parseBool reads a boolean parameter: a bool or a string strconv accepts;
// absent (nil) yields def.
func parseBool(parameters map[string]any, key string, def bool) (bool, error) {
	switch v := parameters[key].(type) {
	case nil:
		return def, nil
	case bool:
		return v, nil
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return false, fmt.Errorf("%s: %s config error: %q is not a boolean", DriverName, key, v)
		}
		return b, nil
	default:
		return false, fmt.Errorf("%s: %s config error: %#v is not a boolean", DriverName, key, v)
	}
}

// parseSize interprets a size parameter: an integer number of bytes (any Go
// integer type, or a whole float64 as produced by JSON decoding) or a
// string holding an integer with an optional k/K/KB/KiB, m/M/MB/MiB suffix
// (all binary multiples). nil yields def.
func parseSize(v any, def int64) (int64, error) {
	var n int64
	switch x := v.(type) {
	case nil:
		return def, nil
	case int:
		n = int64(x)
	case int32:
		n = int64(x)
	case int64:
		n = x
	case uint:
		if uint64(x) > math.MaxInt64 {
			return 0, fmt.Errorf("value %d out of range", x)
		}
		n = int64(x)
	case uint32:
		n = int64(x)
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("value %d out of range", x)
		}
		n = int64(x)
	case float64:
		if x != math.Trunc(x) || x < math.MinInt64 || x > math.MaxInt64 {
			return 0, fmt.Errorf("value %v is not an integer", x)
		}
		n = int64(x)
	case string:
		s := strings.TrimSpace(x)
		mult := int64(1)
		lower := strings.ToLower(s)
		for _, suf := range []struct {
			s string
			m int64
		}{
			{"kib", 1 << 10}, {"kb", 1 << 10}, {"k", 1 << 10},
			{"mib", 1 << 20}, {"mb", 1 << 20}, {"m", 1 << 20},
		} {
			if strings.HasSuffix(lower, suf.s) {
				mult = suf.m
				s = strings.TrimSpace(s[:len(s)-len(suf.s)])
				break
			}
		}
		parsed, err := strconv.ParseInt(s, 0, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid size %q", x)
		}
		if parsed > math.MaxInt64/mult || parsed < math.MinInt64/mult {
			return 0, fmt.Errorf("size %q out of range", x)
		}
		n = parsed * mult
	default:
		return 0, fmt.Errorf("invalid value %#v", v)
	}
	if n < 0 {
		return 0, fmt.Errorf("size must not be negative, got %d", n)
	}
	return n, nil
}

// clampBufferSize applies the default and the bounds, and rounds down to a
// multiple of directAlign so that full buffers can be written directly.
func clampBufferSize(n int64, direct bool) int {
	switch {
	case n == 0 && direct:
		return DefaultDirectBufferSize
	case n == 0:
		return DefaultWriteBufferSize
	case n < MinWriteBufferSize:
		return MinWriteBufferSize
	case n > MaxWriteBufferSize:
		return MaxWriteBufferSize
	}
	return int(n) &^ (directAlign - 1)
}

// New constructs a Driver from params. Zero MaxThreads and WriteBufferSize
// select the defaults. RootDirectory must not be empty (FromParameters
// enforces this); New does not create it, directories are created on
// demand by writes, as with upstream's filesystem driver.
func New(params Parameters) *Driver {
	threads := params.MaxThreads
	if threads == 0 {
		threads = DefaultMaxThreads
	}
	threads = max(threads, MinThreads)

	bufSize := clampBufferSize(int64(params.WriteBufferSize), params.DirectIO)

	d := &fsDriver{
		rootDirectory: params.RootDirectory,
		bufSize:       bufSize,
		background:    (params.DirectIO || bufSize >= minBackground) && !params.syncFlush,
		writeback:     params.EarlyWriteback,
		direct:        params.DirectIO,
	}
	d.bufPool.New = func() any {
		b := alignedBuffer(bufSize)
		return &b
	}

	return &Driver{
		baseEmbed: baseEmbed{
			Base: base.Base{
				StorageDriver: base.NewRegulator(d, threads),
			},
		},
		impl: d,
	}
}

// fsDriver is the unwrapped implementation; Driver wraps it in a regulator
// and base.Base (path validation, error decoration, metrics, tracing).
type fsDriver struct {
	bufPool sync.Pool // of *[]byte with cap bufSize, aligned to directAlign

	onSync func(name string) // tests: sees every fsync

	rootDirectory string
	bufSize       int
	background    bool // full buffers are written by a background goroutine
	writeback     bool // earlywriteback
	direct        bool // directio
}

// fsync is f.Sync, the driver's only durability point.
func (d *fsDriver) fsync(f *os.File) error {
	if d.onSync != nil {
		d.onSync(f.Name())
	}
	return f.Sync()
}

// alignedBuffer returns an empty slice of capacity n whose first byte is
// aligned to directAlign, as O_DIRECT requires of the memory it writes from.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) % directAlign); r != 0 { //nolint:gosec // reads the address only, to align

		skip = directAlign - r
	}
	return b[skip : skip : skip+n]
}

var _ driver.StorageDriver = (*fsDriver)(nil)

func (d *fsDriver) Name() string { return DriverName }

// fullPath maps a storage path to a path on disk.
func (d *fsDriver) fullPath(subPath string) string {
	return filepath.Join(d.rootDirectory, subPath)
}

// GetContent returns the whole content stored at path.
func (d *fsDriver) GetContent(_ context.Context, path string) ([]byte, error) {
	p, err := os.ReadFile(d.fullPath(path))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, driver.PathNotFoundError{Path: path}
		}
		return nil, err
	}
	return p, nil
}

// PutContent atomically replaces the content at path: the data is written
// to a temporary file in the same directory, fsynced, renamed over the
// target, and the directory is fsynced. Readers see either the old or the
// new content, never a mix. Upload state (see isScratch) is renamed into
// place without the fsyncs.
func (d *fsDriver) PutContent(_ context.Context, path string, contents []byte) (retErr error) {
	durable := !isScratch(path)
	target := d.fullPath(path)
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}

	tmp, err := createTemp(dir, filepath.Base(target))
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	defer func() {
		if retErr != nil {
			_ = tmp.Close() // may already be closed; the error is irrelevant then
			if err := os.Remove(tmpName); err != nil && !errors.Is(err, os.ErrNotExist) {
				retErr = errors.Join(retErr, err)
			}
		}
	}()

	if _, err := tmp.Write(contents); err != nil {
		return err
	}
	if durable {
		if err := d.fsync(tmp); err != nil {
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmpName, target); err != nil {
		return err
	}
	if !durable {
		return nil
	}
	return d.syncDir(dir)
}

// isScratch reports whether path is upload state: distribution keeps an
// upload's data, start time and resumable hash states under
// <repository>/_uploads/<id>/ until the upload is committed. Losing or
// truncating any of it in a crash can only fail that upload (a hash state
// that does not match the data, a size the client does not expect, and in
// the end a digest that does not verify), never corrupt a stored blob, so it
// is not fsynced; the data is, by FileWriter.Commit, before the blob is
// moved into place. Repository path components cannot start with "_"
// (distribution's reference grammar), so the marker is unambiguous. Each
// chunk of a chunked push saved a data fsync and two hash-state fsyncs, and
// each small push about six of its sixteen.
func isScratch(path string) bool {
	return strings.Contains(path, "/_uploads/")
}

// createTemp creates a new file next to the target with mode 0666 (before
// umask, like files created by Writer), unlike os.CreateTemp's 0600.
func createTemp(dir, name string) (*os.File, error) {
	var rnd [12]byte
	for range 10 {
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, err
		}
		p := filepath.Join(dir, "."+name+"."+hex.EncodeToString(rnd[:])+".tmp")
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, fmt.Errorf("%s: could not create a unique temporary file in %s", DriverName, dir)
}

// syncDir fsyncs a directory so that entries created or renamed in it are
// durable. A directory that does not exist is not an error.
func (d *fsDriver) syncDir(dir string) (retErr error) {
	f, err := os.Open(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("sync dir: %w", err)
	}
	defer func() {
		if err := f.Close(); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("close dir: %w", err))
		}
	}()
	if err := d.fsync(f); err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	return nil
}

// Reader opens the content at path for reading, positioned at offset. The
// returned value is the *os.File itself, so io.Copy to a socket can use
// sendfile/splice.
func (d *fsDriver) Reader(_ context.Context, path string, offset int64) (io.ReadCloser, error) {
	f, err := os.Open(d.fullPath(path))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, driver.PathNotFoundError{Path: path}
		}
		return nil, err
	}
	pos, err := f.Seek(offset, io.SeekStart)
	if err != nil {
		_ = f.Close() // read-only; the seek error is the one to report
		return nil, err
	}
	if pos < offset {
		_ = f.Close() // read-only; nothing was written
		return nil, driver.InvalidOffsetError{Path: path, Offset: offset}
	}
	return f, nil
}

// Writer opens path for writing, creating parent directories as needed.
// With append the writer continues at the end of the existing content;
// otherwise the content is truncated.
func (d *fsDriver) Writer(_ context.Context, path string, appendTo bool) (driver.FileWriter, error) {
	full := d.fullPath(path)
	if err := os.MkdirAll(filepath.Dir(full), 0o750); err != nil {
		return nil, err
	}

	flags := os.O_WRONLY | os.O_CREATE
	if !appendTo {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(full, flags, 0o600)
	if err != nil {
		return nil, err
	}

	var offset int64
	if appendTo {
		offset, err = f.Seek(0, io.SeekEnd)
		if err != nil {
			_ = f.Close() // nothing was written; the seek error is the one to report
			return nil, err
		}
	}
	return newFileWriter(d, f, offset, isScratch(path)), nil
}

// Stat returns information about the file or directory at path.
func (d *fsDriver) Stat(_ context.Context, path string) (driver.FileInfo, error) {
	fi, err := os.Stat(d.fullPath(path))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, driver.PathNotFoundError{Path: path}
		}
		return nil, err
	}
	return fileInfo{FileInfo: fi, path: path}, nil
}

// List returns the direct children of the directory at path, as storage
// paths.
func (d *fsDriver) List(_ context.Context, path string) ([]string, error) {
	dir, err := os.Open(d.fullPath(path))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, driver.PathNotFoundError{Path: path}
		}
		return nil, err
	}
	defer func() { _ = dir.Close() }() // read-only listing: a close error carries nothing

	names, err := dir.Readdirnames(0)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(names))
	for _, name := range names {
		keys = append(keys, filepath.Join(path, name))
	}
	return keys, nil
}

// Move atomically renames sourcePath to destPath, replacing any existing
// file at destPath and creating destPath's parent directories. The
// destination directory is fsynced so that the rename is durable.
func (d *fsDriver) Move(_ context.Context, sourcePath, destPath string) error {
	source := d.fullPath(sourcePath)
	dest := d.fullPath(destPath)

	if _, err := os.Stat(source); errors.Is(err, os.ErrNotExist) {
		return driver.PathNotFoundError{Path: sourcePath}
	}
	destDir := filepath.Dir(dest)
	if err := os.MkdirAll(destDir, 0o750); err != nil {
		return err
	}
	if err := os.Rename(source, dest); err != nil {
		return err
	}
	return d.syncDir(destDir)
}

// Delete removes path and, recursively, everything below it.
func (d *fsDriver) Delete(_ context.Context, path string) error {
	full := d.fullPath(path)
	if _, err := os.Stat(full); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return driver.PathNotFoundError{Path: path}
		}
		return err
	}
	return os.RemoveAll(full)
}

// RedirectURL always returns "": content is served by the registry itself.
func (d *fsDriver) RedirectURL(*http.Request, string) (string, error) {
	return "", nil
}

// Walk traverses the tree below path using List and Stat.
func (d *fsDriver) Walk(ctx context.Context, path string, f driver.WalkFn, options ...func(*driver.WalkOptions)) error {
	return driver.WalkFallback(ctx, d, path, f, options...)
}

// fileInfo adapts os.FileInfo to driver.FileInfo.
type fileInfo struct {
	os.FileInfo
	path string
}

var _ driver.FileInfo = fileInfo{}

// Path returns the storage path the information was requested for.
func (fi fileInfo) Path() string { return fi.path }

// Size returns the length of a file, or 0 for a directory.
func (fi fileInfo) Size() int64 {
	if fi.IsDir() {
		return 0
	}
	return fi.FileInfo.Size()
}

// ModTime returns the modification time.
func (fi fileInfo) ModTime() time.Time { return fi.FileInfo.ModTime() }

// IsDir reports whether the path is a directory.
func (fi fileInfo) IsDir() bool { return fi.FileInfo.IsDir() }
