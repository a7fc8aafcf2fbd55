package exchange

import (
	"testing"

	"git.wntrmute.dev/kyle/mcr/internal/depcheck"
)

// The exchange is a leaf every layer reads: it must not depend on any of
// them.
func TestDependencies(t *testing.T) {
	const mcr = "git.wntrmute.dev/kyle/mcr/"
	depcheck.Forbid(t, ".", mcr+"store", mcr+"gc", mcr+"ociext", mcr+"metrics", mcr+"notifications", mcr+"adminapi")
	for _, dep := range depcheck.Deps(t, ".") {
		if dep == mcr+"authplugin" || dep == mcr+"edge" {
			t.Errorf("exchange depends on %s", dep)
		}
	}
}
