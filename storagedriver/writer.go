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
// Written bytes are collected in buf. When buf is full it is handed to a
// background goroutine that writes it to the file, and the caller continues
// with a second buffer; at most one background write is in flight, so file
// writes stay sequential. Commit and Close wait for the in-flight write,
// write the remainder and fsync.
//
// A fileWriter is not safe for concurrent use, like upstream's.
type fileWriter struct {
	d    *fsDriver
	file *os.File
	raw  syscall.RawConn // for sync_file_range; nil if unavailable or earlywriteback is off

	size int64 // bytes accepted: initial offset + everything written to us

	buf   *[]byte // active buffer (len = bytes buffered); nil until needed
	spare *[]byte // the other buffer; being written while inFlight

	pending  chan error // receives the result of the in-flight write
	inFlight bool
	err      error // sticky write error

	flushed   int64 // file offset up to which data has been handed to the kernel
	writeback int64 // file offset up to which write-back has been started

	closed    bool
	committed bool
	cancelled bool
}

var (
	_ driver.FileWriter = (*fileWriter)(nil)
	_ io.ReaderFrom     = (*fileWriter)(nil)
)

func newFileWriter(d *fsDriver, f *os.File, offset int64) *fileWriter {
	fw := &fileWriter{
		d:         d,
		file:      f,
		size:      offset,
		flushed:   offset,
		writeback: offset,
		pending:   make(chan error, 1),
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

// active returns the buffer to fill, allocating it from the pool if needed.
func (fw *fileWriter) active() *[]byte {
	if fw.buf == nil {
		b, ok := fw.d.bufPool.Get().(*[]byte)
		if !ok { // the pool holds only *[]byte (see bufPool.New)
			s := make([]byte, 0, fw.d.bufSize)
			b = &s
		}
		fw.buf = b
		*fw.buf = (*fw.buf)[:0]
	}
	return fw.buf
}

// Write buffers p. It never retains p.
func (fw *fileWriter) Write(p []byte) (int, error) {
	if err := fw.checkWritable(); err != nil {
		return 0, err
	}
	written := 0
	for len(p) > 0 {
		b := fw.active()
		n := copy((*b)[len(*b):cap(*b)], p)
		*b = (*b)[:len(*b)+n]
		p = p[n:]
		written += n
		fw.size += int64(n)
		if len(*b) == cap(*b) {
			if err := fw.flushBuffer(); err != nil {
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
		b := fw.active()
		n, rerr := r.Read((*b)[len(*b):cap(*b)])
		if n < 0 || n > cap(*b)-len(*b) {
			return total, errors.New("mcrfs: reader returned invalid count")
		}
		*b = (*b)[:len(*b)+n]
		total += int64(n)
		fw.size += int64(n)
		if len(*b) == cap(*b) {
			if err := fw.flushBuffer(); err != nil {
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
func (fw *fileWriter) flushBuffer() error {
	if err := fw.wait(); err != nil {
		return err
	}
	if fw.buf == nil || len(*fw.buf) == 0 {
		return nil
	}
	data := fw.buf
	off := fw.flushed
	fw.flushed += int64(len(*data))

	// Start write-back of everything handed over so far once enough has
	// accumulated. Offsets are only touched by this goroutine and by the
	// single in-flight write, which gets its own copies.
	var wbOff, wbLen int64
	if fw.flushed-fw.writeback >= writebackChunk {
		wbOff, wbLen = fw.writeback, fw.flushed-fw.writeback
		fw.writeback = fw.flushed
	}

	// Swap buffers: the spare (free, since nothing is in flight) becomes
	// active; data becomes the spare once its write completes.
	fw.buf, fw.spare = fw.spare, data
	if fw.buf != nil {
		*fw.buf = (*fw.buf)[:0]
	}

	if fw.d.syncFlush {
		fw.err = fw.writeOut(*data, off, wbOff, wbLen)
		return fw.err
	}
	fw.inFlight = true
	p := *data
	go func() {
		fw.pending <- fw.writeOut(p, off, wbOff, wbLen)
	}()
	return nil
}

// writeOut writes p at offset off and optionally starts write-back of
// [wbOff, wbOff+wbLen). It runs on a background goroutine and must only use
// its arguments and the immutable fields file and raw.
func (fw *fileWriter) writeOut(p []byte, off, wbOff, wbLen int64) error {
	if _, err := fw.file.WriteAt(p, off); err != nil {
		return err
	}
	if wbLen > 0 && fw.raw != nil {
		startWriteback(fw.raw, wbOff, wbLen)
	}
	return nil
}

// wait blocks until the in-flight write, if any, has finished, and records
// its error.
func (fw *fileWriter) wait() error {
	if fw.inFlight {
		fw.inFlight = false
		if err := <-fw.pending; err != nil && fw.err == nil {
			fw.err = err
		}
	}
	return fw.err
}

// flushAll writes everything buffered and waits for it.
func (fw *fileWriter) flushAll() error {
	if err := fw.flushBuffer(); err != nil {
		return err
	}
	return fw.wait()
}

// release returns the buffers to the driver's pool. Nothing may be in
// flight.
func (fw *fileWriter) release() {
	for _, b := range []*[]byte{fw.buf, fw.spare} {
		if b != nil {
			*b = (*b)[:0]
			fw.d.bufPool.Put(b)
		}
	}
	fw.buf, fw.spare = nil, nil
}

// Size returns the number of bytes written through this writer plus the
// size of the file when it was opened for append.
func (fw *fileWriter) Size() int64 {
	return fw.size
}

// Close flushes buffered content and, unless the writer was committed,
// fsyncs the file (like upstream), then closes it.
func (fw *fileWriter) Close() (retErr error) {
	if fw.closed {
		return errClosed
	}
	fw.closed = true
	defer func() {
		fw.release()
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
	return fw.file.Sync()
}

// Cancel discards the writer's content and removes the file.
func (fw *fileWriter) Cancel(context.Context) error {
	if fw.closed {
		return errClosed
	}
	fw.cancelled = true
	fw.closed = true
	_ = fw.wait() // the content is being discarded; its write error is moot
	fw.release()
	_ = fw.file.Close()
	return os.Remove(fw.file.Name())
}

// Commit writes all buffered content and fsyncs the file, making the
// content durable and visible to readers.
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
	if err := fw.file.Sync(); err != nil {
		return err
	}
	fw.committed = true
	return nil
}
