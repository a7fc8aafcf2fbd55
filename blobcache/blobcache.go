// Package blobcache is distribution's in-memory blob descriptor cache with
// one addition: Reset. distribution's cache cannot be cleared, so after a
// garbage-collection sweep a swept blob would still answer HEAD 200 and GET
// 200 with an empty body. MCR installs this cache as a registry option and
// the GC engine resets it after every sweep.
//
//	c := blobcache.New(10000)
//	registrymw.RegisterOptions(storage.BlobDescriptorCacheProvider(c))
//	...
//	c.Reset() // after a sweep
package blobcache

import (
	"context"
	"sync/atomic"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage/cache"
	"github.com/distribution/distribution/v3/registry/storage/cache/memory"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Cache is a resettable cache.BlobDescriptorCacheProvider.
type Cache struct {
	inner    atomic.Pointer[cache.BlobDescriptorCacheProvider]
	size     int
	disabled atomic.Bool
}

var _ cache.BlobDescriptorCacheProvider = (*Cache)(nil)

// New returns a cache holding up to size descriptors.
func New(size int) *Cache {
	c := &Cache{size: size}
	c.Reset()
	return c
}

// Reset forgets every descriptor.
func (c *Cache) Reset() {
	if c.disabled.Load() {
		return
	}
	p := memory.NewInMemoryBlobDescriptorCacheProvider(c.size)
	c.inner.Store(&p)
}

// Disable turns the cache off for good: every lookup misses and nothing
// is remembered. Replicas sharing storage run without it, since a delete
// on one would otherwise still be answered 200 from another's cache.
func (c *Cache) Disable() {
	c.disabled.Store(true)
	var p cache.BlobDescriptorCacheProvider = none{}
	c.inner.Store(&p)
}

// none is a cache that never holds anything.
type none struct{}

func (none) Stat(context.Context, digest.Digest) (v1.Descriptor, error) {
	return v1.Descriptor{}, distribution.ErrBlobUnknown
}
func (none) SetDescriptor(context.Context, digest.Digest, v1.Descriptor) error { return nil }
func (none) Clear(context.Context, digest.Digest) error                        { return nil }
func (none) RepositoryScoped(string) (distribution.BlobDescriptorService, error) {
	return none{}, nil
}

func (c *Cache) current() cache.BlobDescriptorCacheProvider { return *c.inner.Load() }

// Stat implements distribution.BlobDescriptorService.
func (c *Cache) Stat(ctx context.Context, dgst digest.Digest) (v1.Descriptor, error) {
	return c.current().Stat(ctx, dgst)
}

// SetDescriptor implements distribution.BlobDescriptorService.
func (c *Cache) SetDescriptor(ctx context.Context, dgst digest.Digest, desc v1.Descriptor) error {
	return c.current().SetDescriptor(ctx, dgst, desc)
}

// Clear implements distribution.BlobDescriptorService.
func (c *Cache) Clear(ctx context.Context, dgst digest.Digest) error {
	return c.current().Clear(ctx, dgst)
}

// RepositoryScoped implements cache.BlobDescriptorCacheProvider. The scoped
// view looks the current generation up on every call, so a Reset reaches
// repositories already handed out.
func (c *Cache) RepositoryScoped(repo string) (distribution.BlobDescriptorService, error) {
	if _, err := c.current().RepositoryScoped(repo); err != nil {
		return nil, err
	}
	return scoped{c: c, repo: repo}, nil
}

type scoped struct {
	c    *Cache
	repo string
}

func (s scoped) svc() (distribution.BlobDescriptorService, error) {
	return s.c.current().RepositoryScoped(s.repo)
}

func (s scoped) Stat(ctx context.Context, dgst digest.Digest) (v1.Descriptor, error) {
	svc, err := s.svc()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return svc.Stat(ctx, dgst)
}

func (s scoped) SetDescriptor(ctx context.Context, dgst digest.Digest, desc v1.Descriptor) error {
	svc, err := s.svc()
	if err != nil {
		return err
	}
	return svc.SetDescriptor(ctx, dgst, desc)
}

func (s scoped) Clear(ctx context.Context, dgst digest.Digest) error {
	svc, err := s.svc()
	if err != nil {
		return err
	}
	return svc.Clear(ctx, dgst)
}
