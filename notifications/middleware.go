package notifications

import (
	"context"
	"errors"
	"fmt"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	dnotifications "github.com/distribution/distribution/v3/notifications"
	repomw "github.com/distribution/distribution/v3/registry/middleware/repository"
	"github.com/distribution/reference"
)

// MiddlewareName is the repository middleware's registered name.
const MiddlewareName = "mcr-events"

const (
	optSink   = "sink"
	optOpener = "opener"
)

// RepositoryOpener opens a repository on the registry the App serves from
// (under every registry middleware, none of the App's wrappers).
type RepositoryOpener interface {
	Repository(ctx context.Context, name reference.Named) (distribution.Repository, error)
}

func init() {
	if err := repomw.Register(MiddlewareName, initRepo); err != nil {
		panic(err)
	}
}

// Middleware is the configuration entry that enables the middleware with
// sink. opener, if not nil, reopens each repository without the App's own
// event listener (see the package comment); MCR's listener replaces it.
func Middleware(sink *Sink, opener RepositoryOpener) configuration.Middleware {
	opts := configuration.Parameters{optSink: sink}
	if opener != nil {
		opts[optOpener] = opener
	}
	return configuration.Middleware{Name: MiddlewareName, Options: opts}
}

func initRepo(ctx context.Context, repo distribution.Repository, options map[string]any) (distribution.Repository, error) {
	sink, ok := options[optSink].(*Sink)
	if !ok || sink == nil {
		return nil, errors.New("mcr-events: option sink missing")
	}
	if opener, ok := options[optOpener].(RepositoryOpener); ok {
		// The App's repository is notifications.Listen(ours, its bridge):
		// the same repository under a listener whose events have no sink.
		raw, err := opener.Repository(ctx, repo.Named())
		if err != nil {
			return nil, fmt.Errorf("mcr-events: reopening %s: %w", repo.Named().Name(), err)
		}
		repo = raw
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
