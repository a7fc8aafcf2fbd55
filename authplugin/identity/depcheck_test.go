package identity

import (
	"testing"

	"git.wntrmute.dev/kyle/mcr/internal/depcheck"
)

// Dependencies point down the authplugin tree: the shared identity types
// import nothing of MCR; the token issuer only them; the identity
// providers only those two (and the store), never distribution, the edge
// or the access controller above them.
func TestDependencies(t *testing.T) {
	const mcr = "git.wntrmute.dev/kyle/mcr/"
	depcheck.Forbid(t, ".", mcr)
	depcheck.Forbid(t, "../token", "github.com/distribution/", "net/http", mcr+"store", mcr+"authplugin/identity/", mcr+"edge")
	for _, p := range []string{"./local", "./mcias"} {
		depcheck.Forbid(t, p, "github.com/distribution/", mcr+"edge", mcr+"gc", mcr+"ociext", mcr+"metrics")
		for _, dep := range depcheck.Deps(t, p) {
			if dep == mcr+"authplugin" {
				t.Errorf("%s depends on %s (the layer above it)", p, dep)
			}
		}
	}
	depcheck.Forbid(t, "./mcias", mcr+"store", mcr+"authplugin/token")
}
