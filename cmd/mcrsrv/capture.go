package main

import (
	"context"
	"errors"
	"sync"

	"github.com/distribution/distribution/v3"
	registrymw "github.com/distribution/distribution/v3/registry/middleware/registry"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// captureName is a pass-through registry middleware that hands us the
// App's namespace and (middleware-wrapped) storage driver, which the App
// keeps unexported: repository deletion, GC and reindex use them.
const captureName = "mcr-capture"

type captured struct {
	ns     distribution.Namespace
	driver storagedriver.StorageDriver
	mu     sync.Mutex // guards ns and driver
}

func (c *captured) get() (distribution.Namespace, storagedriver.StorageDriver, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ns == nil {
		return nil, nil, errors.New("registry namespace not captured")
	}
	return c.ns, c.driver, nil
}

func init() {
	_ = registrymw.Register(captureName, func(_ context.Context, ns distribution.Namespace, d storagedriver.StorageDriver, opts map[string]any) (distribution.Namespace, error) {
		if c, ok := opts["into"].(*captured); ok {
			c.mu.Lock()
			c.ns, c.driver = ns, d
			c.mu.Unlock()
		}
		return ns, nil
	})
}
