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

// repository wraps each service with a listener built from the request
// context the service is asked for.
type repository struct {
	distribution.Repository
	sink *Sink
}

func (r *repository) listen(ctx context.Context) distribution.Repository {
	wrapped, _ := dnotifications.Listen(r.Repository, nil, newBridge(ctx, r.sink))
	return wrapped
}

func (r *repository) Manifests(ctx context.Context, options ...distribution.ManifestServiceOption) (distribution.ManifestService, error) {
	return r.listen(ctx).Manifests(ctx, options...)
}

func (r *repository) Blobs(ctx context.Context) distribution.BlobStore {
	return r.listen(ctx).Blobs(ctx)
}

func (r *repository) Tags(ctx context.Context) distribution.TagService {
	return r.listen(ctx).Tags(ctx)
}
