package notifications

import (
	"context"
	"errors"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	dnotifications "github.com/distribution/distribution/v3/notifications"
	repomw "github.com/distribution/distribution/v3/registry/middleware/repository"
)

// MiddlewareName is the repository middleware's registered name.
const MiddlewareName = "mcr-events"

const optSink = "sink"

func init() {
	if err := repomw.Register(MiddlewareName, initRepo); err != nil {
		panic(err)
	}
}

// Middleware is the configuration entry that enables the middleware with sink.
func Middleware(sink *Sink) configuration.Middleware {
	return configuration.Middleware{Name: MiddlewareName, Options: configuration.Parameters{optSink: sink}}
}

func initRepo(_ context.Context, repo distribution.Repository, options map[string]any) (distribution.Repository, error) {
	sink, ok := options[optSink].(*Sink)
	if !ok || sink == nil {
		return nil, errors.New("mcr-events: option sink missing")
	}
	return &repository{Repository: repo, sink: sink}, nil
}

// repository wraps each service with distribution's listener, built from
// the request context the service is asked for, and with the checks of
// durable.go, which fail a change the bridge could not record.
type repository struct {
	distribution.Repository
	sink *Sink
}

func (r *repository) listen(ctx context.Context) (distribution.Repository, *bridge) {
	b := newBridge(ctx, r.sink)
	wrapped, _ := dnotifications.Listen(r.Repository, nil, b)
	return wrapped, b
}

func (r *repository) Manifests(ctx context.Context, options ...distribution.ManifestServiceOption) (distribution.ManifestService, error) {
	l, b := r.listen(ctx)
	ms, err := l.Manifests(ctx, options...)
	if err != nil {
		return nil, err
	}
	return &manifests{ManifestService: ms, b: b}, nil
}

func (r *repository) Blobs(ctx context.Context) distribution.BlobStore {
	l, b := r.listen(ctx)
	return &blobs{BlobStore: l.Blobs(ctx), b: b}
}

func (r *repository) Tags(ctx context.Context) distribution.TagService {
	l, b := r.listen(ctx)
	return &tags{TagService: l.Tags(ctx), b: b}
}
