package blobserve

import (
	"context"
	"testing"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/distribution/reference"
)

// The wrapper keeps the namespace a RepositoryRemover, which distribution's
// App checks for, and removal reaches the wrapped registry.
func TestNamespaceKeepsRepositoryRemover(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	reg, err := storage.NewRegistry(ctx, d, storage.EnableDelete)
	if err != nil {
		t.Fatal(err)
	}
	var ns distribution.Namespace = &namespace{Namespace: reg, driver: d}
	rm, ok := ns.(distribution.RepositoryRemover)
	if !ok {
		t.Fatal("the wrapped namespace is no RepositoryRemover")
	}
	name, _ := reference.WithName("a/b")
	if err := d.PutContent(ctx, "/docker/registry/v2/repositories/a/b/_layers/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := rm.Remove(ctx, name); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := d.Stat(ctx, "/docker/registry/v2/repositories/a/b"); err == nil {
		t.Fatal("the repository is still in storage after Remove")
	}
}
