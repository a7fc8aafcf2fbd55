// Package depcheck is a test helper that keeps package boundaries: it
// lists a package's transitive dependencies with `go list -deps` and fails
// the test for each one a rule forbids (the idea of go-containerregistry's
// depcheck_test.go).
//
//	depcheck.Forbid(t, ".", "net/http", "github.com/distribution/")
package depcheck

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Forbid fails t for every transitive dependency of pkg (a go list
// pattern, relative to the test's directory) equal to a banned path or,
// for a banned path ending in "/", under it. The package itself is not a
// dependency of itself.
func Forbid(t *testing.T, pkg string, banned ...string) {
	t.Helper()
	for _, dep := range Deps(t, pkg) {
		for _, b := range banned {
			if dep == b || (strings.HasSuffix(b, "/") && strings.HasPrefix(dep, b)) || strings.HasPrefix(dep, b+"/") {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}

// Deps lists the transitive dependencies of pkg, without pkg itself.
func Deps(t *testing.T, pkg string) []string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("go tool not in PATH (required in CI)")
		}
		t.Skip("go tool not in PATH")
	}
	self, err := exec.Command(goTool, "list", pkg).Output() //nolint:gosec // the go tool on a package pattern the test names
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	out, err := exec.Command(goTool, "list", "-deps", pkg).CombinedOutput() //nolint:gosec // as above
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	var deps []string
	for _, d := range strings.Fields(string(out)) {
		if d != strings.TrimSpace(string(self)) {
			deps = append(deps, d)
		}
	}
	return deps
}
