package store

import (
	"testing"

	"git.wntrmute.dev/kyle/mcr/internal/depcheck"
)

// The store persists; it knows nothing of HTTP, tokens or distribution.
func TestDependencies(t *testing.T) {
	depcheck.Forbid(t, ".",
		"net/http",
		"github.com/golang-jwt/",
		"github.com/distribution/",
		"git.wntrmute.dev/kyle/mcr/authplugin",
		"git.wntrmute.dev/kyle/mcr/edge",
		"git.wntrmute.dev/kyle/mcr/ociext",
		"git.wntrmute.dev/kyle/mcr/gc",
	)
}
