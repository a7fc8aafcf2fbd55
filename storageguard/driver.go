package storageguard

import (
	"context"
	"fmt"
	"io"

	"github.com/distribution/distribution/v3/configuration"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	storagemiddleware "github.com/distribution/distribution/v3/registry/storage/driver/middleware"
)

// MiddlewareName is the storage middleware's registered name.
const MiddlewareName = "mcr-storageguard"

func init() {
	_ = storagemiddleware.Register(MiddlewareName, func(_ context.Context, d storagedriver.StorageDriver, opts map[string]any) (storagedriver.StorageDriver, error) {
		g, ok := opts["guard"].(*Guard)
		if !ok {
			return nil, fmt.Errorf("%s: option guard (*storageguard.Guard) is required", MiddlewareName)
		}
		return g.Driver(d), nil
	})
}

// Middleware is the distribution storage middleware entry that wraps the
// App's driver with this guard.
func (g *Guard) Middleware() configuration.Middleware {
	return configuration.Middleware{Name: MiddlewareName, Options: configuration.Parameters{"guard": g}}
}

// Driver wraps d: writes are refused under MinFree, and ENOSPC/EDQUOT from
// d mark the request (see Wrap) and are returned wrapping ErrFull. Reads,
// listings and deletions pass untouched, so pulls and GC work on a full
// disk.
func (g *Guard) Driver(d storagedriver.StorageDriver) storagedriver.StorageDriver {
	return &guardedDriver{StorageDriver: d, g: g}
}

type guardedDriver struct {
	storagedriver.StorageDriver
	g *Guard
}

// full records err as the storage being full for the request and the
// guard, and returns an error without the driver's path.
func (d *guardedDriver) full(ctx context.Context, err error) error {
	markRequest(ctx)
	d.g.noteFull(err)
	return fmt.Errorf("%w: %w", ErrFull, err)
}

func (d *guardedDriver) check(ctx context.Context, err error) error {
	if err != nil && IsFull(err) {
		return d.full(ctx, err)
	}
	return err
}

func (d *guardedDriver) PutContent(ctx context.Context, path string, content []byte) error {
	if err := d.g.admit(); err != nil {
		markRequest(ctx)
		return err
	}
	return d.check(ctx, d.StorageDriver.PutContent(ctx, path, content))
}

func (d *guardedDriver) Writer(ctx context.Context, path string, appendMode bool) (storagedriver.FileWriter, error) {
	if err := d.g.admit(); err != nil {
		markRequest(ctx)
		return nil, err
	}
	w, err := d.StorageDriver.Writer(ctx, path, appendMode)
	if err != nil {
		return nil, d.check(ctx, err)
	}
	return &guardedWriter{FileWriter: w, d: d, ctx: ctx}, nil
}

func (d *guardedDriver) Move(ctx context.Context, src, dst string) error {
	return d.check(ctx, d.StorageDriver.Move(ctx, src, dst))
}

// guardedWriter cancels an upload that ran out of space, so its partial
// data does not keep the space it took (the client gets 507 and must
// start over; a resumed upload would fail the same way).
type guardedWriter struct {
	storagedriver.FileWriter
	d   *guardedDriver
	ctx context.Context
}

func (w *guardedWriter) fail(err error) error {
	if err == nil || !IsFull(err) {
		return err
	}
	_ = w.Cancel(w.ctx) // removes the partial file
	return w.d.full(w.ctx, err)
}

func (w *guardedWriter) Write(p []byte) (int, error) {
	n, err := w.FileWriter.Write(p)
	return n, w.fail(err)
}

// ReadFrom keeps the wrapped writer's fast path (mcrfs reads straight into
// its buffer).
func (w *guardedWriter) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := w.FileWriter.(io.ReaderFrom); ok {
		n, err := rf.ReadFrom(r)
		return n, w.fail(err)
	}
	n, err := io.Copy(struct{ io.Writer }{w.FileWriter}, r)
	return n, w.fail(err)
}

func (w *guardedWriter) Commit(ctx context.Context) error { return w.fail(w.FileWriter.Commit(ctx)) }

func (w *guardedWriter) Close() error { return w.fail(w.FileWriter.Close()) }
