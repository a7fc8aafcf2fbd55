package main

import (
	"context"
	"errors"
	"sync"

	"github.com/distribution/distribution/v3"
	registrymw "github.com/distribution/distribution/v3/registry/middleware/registry"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
)

// captureName is a pass-through registry middleware that hands us the
// App's namespace and (middleware-wrapped) storage driver, which the App
// keeps unexported: repository deletion, GC and reindex use them. It runs
// twice: first in the chain ("into": the namespace under every other
// registry middleware, for GC and reindex) and last ("served": the one the
// App serves from, which the events middleware reopens repositories on).
const captureName = "mcr-capture"

type captured struct {
	ns     distribution.Namespace
	served distribution.Namespace
	driver storagedriver.StorageDriver
	mu     sync.Mutex // guards ns, served and driver
}

func (c *captured) get() (distribution.Namespace, storagedriver.StorageDriver, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ns == nil {
		return nil, nil, errors.New("registry namespace not captured")
	}
	return c.ns, c.driver, nil
}

// Repository opens name on the namespace the App serves from, under every
// registry middleware (notifications.RepositoryOpener).
func (c *captured) Repository(ctx context.Context, name reference.Named) (distribution.Repository, error) {
	c.mu.Lock()
	ns := c.served
	c.mu.Unlock()
	if ns == nil {
		return nil, errors.New("served registry namespace not captured")
	}
	return ns.Repository(ctx, name)
}

func init() {
	_ = registrymw.Register(captureName, func(_ context.Context, ns distribution.Namespace, d storagedriver.StorageDriver, opts map[string]any) (distribution.Namespace, error) {
		c, ok := opts["into"].(*captured)
		if !ok {
			return ns, nil
		}
		c.mu.Lock()
		if served, _ := opts["served"].(bool); served {
			c.served = ns
		} else {
			c.ns, c.driver = ns, d
		}
		c.mu.Unlock()
		return ns, nil
	})
}
