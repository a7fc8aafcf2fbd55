package storagedriver

import (
	"context"
	"errors"
	"io"
	"os"
	"syscall"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
)

var (
	errClosed    = errors.New("already closed")
	errCommitted = errors.New("already committed")
	errCancelled = errors.New("already cancelled")
)

// fileWriter is mcrfs's driver.FileWriter.
//
// Written bytes are collected in buf. When buf is full it is written to the
// file by a background goroutine while the caller fills a second buffer (by
// the caller itself for buffers under 256 KiB); at most one background
// write is in flight, so file writes stay sequential. Commit and Close wait for the in-flight write, write the
// remainder and fsync.
//
// How a buffer reaches the file (see the package comment for the numbers):
//   - with directio, a full buffer at a file offset aligned to directAlign
//     is written with O_DIRECT through a second descriptor of the same
//     file: from our (reused) buffer to the device, no page cache pages
//     allocated, filled or written back later;
//   - everything else (the default; the tail of a blob, blobs smaller than
//     a buffer, the first piece of an append at an unaligned offset,
//     filesystems without O_DIRECT) is written through the page cache, a
//     buffer in write calls of writePiece (see writeBuffered).
//
// A fileWriter is not safe for concurrent use, like upstream's.
type fileWriter struct {
	d    *fsDriver
	file *os.File
	raw  syscall.RawConn // for sync_file_range; nil if unavailable or earlywriteback is off

	// direct is an O_DIRECT descriptor of file, opened on first use by the
	// caller's goroutine and used by the in-flight write; noDirect (below)
	// is set once direct I/O is off or has failed for this file.
	direct *os.File

	buf   *[]byte // active buffer (len = bytes buffered); nil until needed
	spare *[]byte // the other buffer; being written while inFlight

	pending chan flushResult // receives the result of the in-flight write
	err     error            // sticky write error

	size int64 // bytes accepted: initial offset + everything written to us

	flushed   int64 // file offset up to which data has been handed to the kernel
	writeback int64 // file offset up to which write-back has been started

	directBytes int64 // bytes written with O_DIRECT (tests)

	noDirect bool // see direct
	inFlight bool // spare is being written; pending will receive its result

	// scratch: upload state (see isScratch); Close does not fsync it, only
	// Commit does.
	scratch bool

	closed    bool
	committed bool
	cancelled bool
}

// flushResult is what a background write reports.
type flushResult struct {
	err      error
	direct   int64 // bytes written with O_DIRECT
	noDirect bool  // O_DIRECT was refused; use the page cache from now on
}

var (
	_ driver.FileWriter = (*fileWriter)(nil)
	_ io.ReaderFrom     = (*fileWriter)(nil)
)

func newFileWriter(d *fsDriver, f *os.File, offset int64, scratch bool) *fileWriter {
	fw := &fileWriter{
		d:         d,
		file:      f,
		scratch:   scratch,
		size:      offset,
		flushed:   offset,
		writeback: offset,
		noDirect:  !d.direct,
		pending:   make(chan flushResult, 1),
	}
	if d.writeback {
		if raw, err := f.SyscallConn(); err == nil {
			fw.raw = raw
		}
	}
	return fw
}

func (fw *fileWriter) checkWritable() error {
	switch {
	case fw.closed:
		return errClosed
	case fw.committed:
		return errCommitted
	case fw.cancelled:
		return errCancelled
	}
	return fw.err
}

// active returns the buffer to fill and how many bytes it takes before it
// is flushed: the buffer size, less the distance of its file offset from
// an alignment boundary, so that after an append at an unaligned offset the
// following buffers start aligned and can be written directly.
func (fw *fileWriter) active() (*[]byte, int) {
	if fw.buf == nil {
		b, ok := fw.d.bufPool.Get().(*[]byte)
		if !ok { // the pool holds only *[]byte (see bufPool.New)
			s := alignedBuffer(fw.d.bufSize)
			b = &s
		}
		fw.buf = b
		*fw.buf = (*fw.buf)[:0]
	}
	return fw.buf, fw.d.bufSize - int(fw.flushed%directAlign)
}

// Write buffers p. It never retains p.
func (fw *fileWriter) Write(p []byte) (int, error) {
	if err := fw.checkWritable(); err != nil {
		return 0, err
	}
	written := 0
	for len(p) > 0 {
		b, limit := fw.active()
		n := copy((*b)[len(*b):limit], p)
		*b = (*b)[:len(*b)+n]
		p = p[n:]
		written += n
		fw.size += int64(n)
		if len(*b) >= limit {
			if err := fw.flushBuffer(false); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// ReadFrom reads r until EOF directly into the write buffer, avoiding the
// intermediate copy io.Copy would otherwise make.
func (fw *fileWriter) ReadFrom(r io.Reader) (int64, error) {
	if err := fw.checkWritable(); err != nil {
		return 0, err
	}
	var total int64
	for {
		b, limit := fw.active()
		n, rerr := r.Read((*b)[len(*b):limit])
		if n < 0 || n > limit-len(*b) {
			return total, errors.New("mcrfs: reader returned invalid count")
		}
		*b = (*b)[:len(*b)+n]
		total += int64(n)
		fw.size += int64(n)
		if len(*b) >= limit {
			if err := fw.flushBuffer(false); err != nil {
				return total, err
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return total, nil
			}
			return total, rerr
		}
	}
}

// flushBuffer hands the active buffer to the file: in the background
// normally, synchronously when the driver is configured so. It first waits
// for the previous in-flight write, so writes reach the file in order.
// final is set for the last, partial buffer (Commit, Close), which always
// goes through the page cache.
func (fw *fileWriter) flushBuffer(final bool) error {
	if err := fw.wait(); err != nil {
		return err
	}
	if fw.buf == nil || len(*fw.buf) == 0 {
		return nil
	}
	data := fw.buf
	off := fw.flushed
	fw.flushed += int64(len(*data))

	var direct *os.File
	if !final && !fw.noDirect && off%directAlign == 0 && len(*data)%directAlign == 0 {
		if fw.direct == nil {
			f, err := openDirect(fw.file.Name())
			if err != nil {
				fw.noDirect = true // e.g. EINVAL: the filesystem has no O_DIRECT
			} else {
				fw.direct = f
			}
		}
		direct = fw.direct
	}

	// Start write-back of everything handed over so far once enough has
	// accumulated (page-cache writes only). Offsets are only touched by
	// this goroutine and by the single in-flight write, which gets its own
	// copies.
	var wbOff, wbLen int64
	if direct == nil && fw.flushed-fw.writeback >= writebackChunk {
		wbOff, wbLen = fw.writeback, fw.flushed-fw.writeback
		fw.writeback = fw.flushed
	} else if direct != nil {
		fw.writeback = fw.flushed
	}

	// Swap buffers: the spare (free, since nothing is in flight) becomes
	// active; data becomes the spare once its write completes.
	fw.buf, fw.spare = fw.spare, data
	if fw.buf != nil {
		*fw.buf = (*fw.buf)[:0]
	}

	p := *data
	if !fw.d.background || final {
		fw.apply(fw.writeOut(p, off, direct, wbOff, wbLen))
		return fw.err
	}
	fw.inFlight = true
	go func() {
		fw.pending <- fw.writeOut(p, off, direct, wbOff, wbLen)
	}()
	return nil
}

// writeOut writes p at offset off, with O_DIRECT through direct if it is
// set, and optionally starts write-back of [wbOff, wbOff+wbLen). It runs on
// a background goroutine and must only use its arguments and the immutable
// fields file and raw.
func (fw *fileWriter) writeOut(p []byte, off int64, direct *os.File, wbOff, wbLen int64) flushResult {
	if direct != nil {
		n, err := direct.WriteAt(p, off)
		if err == nil {
			return flushResult{direct: int64(n)}
		}
		if n != 0 || !directRefused(err) {
			return flushResult{err: err}
		}
		// Refused before anything was written: this file takes the page
		// cache from now on.
		if err := writeBuffered(fw.file, p, off); err != nil {
			return flushResult{err: err, noDirect: true}
		}
		return flushResult{noDirect: true}
	}
	if err := writeBuffered(fw.file, p, off); err != nil {
		return flushResult{err: err}
	}
	if wbLen > 0 && fw.raw != nil {
		startWriteback(fw.raw, wbOff, wbLen)
	}
	return flushResult{}
}

// writeBuffered writes p at off through the page cache in writePiece
// calls. The kernel sizes page-cache folios by the write: 128 KiB folios
// are nearly as cheap to fill, write back and read again (a pull) as 1 MiB
// ones, without the 1 MiB folios' swing on a VM with free page reporting
// (see the package comment).
func writeBuffered(f *os.File, p []byte, off int64) error {
	for len(p) > 0 {
		n := min(len(p), writePiece)
		if _, err := f.WriteAt(p[:n], off); err != nil {
			return err
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// apply records the result of a write.
func (fw *fileWriter) apply(r flushResult) {
	fw.directBytes += r.direct
	if r.noDirect {
		fw.noDirect = true
	}
	if r.err != nil && fw.err == nil {
		fw.err = r.err
	}
}

// wait blocks until the in-flight write, if any, has finished, and records
// its result.
func (fw *fileWriter) wait() error {
	if fw.inFlight {
		fw.inFlight = false
		fw.apply(<-fw.pending)
	}
	return fw.err
}

// flushAll writes everything buffered and waits for it.
func (fw *fileWriter) flushAll() error {
	if err := fw.flushBuffer(true); err != nil {
		return err
	}
	return fw.wait()
}

// release returns the buffers to the driver's pool and closes the direct
// descriptor. Nothing may be in flight.
func (fw *fileWriter) release() error {
	for _, b := range []*[]byte{fw.buf, fw.spare} {
		if b != nil {
			*b = (*b)[:0]
			fw.d.bufPool.Put(b)
		}
	}
	fw.buf, fw.spare = nil, nil
	if fw.direct != nil {
		err := fw.direct.Close()
		fw.direct = nil
		return err
	}
	return nil
}

// Size returns the number of bytes written through this writer plus the
// size of the file when it was opened for append.
func (fw *fileWriter) Size() int64 {
	return fw.size
}

// Close flushes buffered content and, unless the writer was committed or
// holds upload state, fsyncs the file (like upstream), then closes it. An
// upload's data is fsynced by Commit, before it becomes a blob; between the
// PATCHes of a chunked upload it need not survive a crash (see isScratch).
func (fw *fileWriter) Close() (retErr error) {
	if fw.closed {
		return errClosed
	}
	fw.closed = true
	defer func() {
		if err := fw.release(); err != nil {
			retErr = errors.Join(retErr, err)
		}
		if err := fw.file.Close(); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()

	if fw.committed {
		return nil // already flushed and synced
	}
	if err := fw.flushAll(); err != nil {
		return err
	}
	if fw.scratch {
		// An upload's chunk ends here (a PATCH); the commit that fsyncs
		// the file comes in a later request, with a writer of its own.
		// Start write-back of what this one left pending, so that fsync
		// does not find every chunk still dirty (5 MiB chunks never reach
		// writebackChunk within one writer).
		if pending := fw.flushed - fw.writeback; fw.raw != nil && pending >= closeWritebackMin {
			startWriteback(fw.raw, fw.writeback, pending)
			fw.writeback = fw.flushed
		}
		return nil
	}
	return fw.d.fsync(fw.file)
}

// Cancel discards the writer's content and removes the file.
func (fw *fileWriter) Cancel(context.Context) error {
	if fw.closed {
		return errClosed
	}
	fw.cancelled = true
	fw.closed = true
	_ = fw.wait()    // the content is being discarded; its write error is moot
	_ = fw.release() // likewise a close error of the direct descriptor
	_ = fw.file.Close()
	return os.Remove(fw.file.Name())
}

// Commit writes all buffered content and fsyncs the file, making the
// content durable and visible to readers. fsync covers what was written
// through either descriptor: it flushes the inode (size, extents) and the
// device's write cache.
func (fw *fileWriter) Commit(context.Context) error {
	switch {
	case fw.closed:
		return errClosed
	case fw.committed:
		return errCommitted
	case fw.cancelled:
		return errCancelled
	}
	if err := fw.flushAll(); err != nil {
		return err
	}
	if err := fw.d.fsync(fw.file); err != nil {
		return err
	}
	fw.committed = true
	return nil
}
