package webui

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the web UI on the far side of the admin API: it
// must not reach the database, the store, the identity providers or
// distribution directly — only HTTP to mcrsrv.
func TestDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH")
	}
	for _, pkg := range []string{".", "../cmd/mcr-web"} {
		out, err := exec.Command(goTool, "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, banned := range []string{
				"database/sql",
				"github.com/mattn/go-sqlite3",
				"github.com/distribution/",
				"git.wntrmute.dev/kyle/mcr/store",
				"git.wntrmute.dev/kyle/mcr/authplugin",
				"git.wntrmute.dev/kyle/mcr/authplugin/",
				"git.wntrmute.dev/kyle/mcr/edge",
				"git.wntrmute.dev/kyle/mcr/edge/",
				"git.wntrmute.dev/kyle/mcr/gc",
				"git.wntrmute.dev/kyle/mcr/ociext",
				"git.wntrmute.dev/kyle/mcr/policyplugin",
				"git.wntrmute.dev/kyle/mcr/adminapi",
				"git.wntrmute.dev/kyle/mcr/adminsvc",
				"git.wntrmute.dev/kyle/mcr/grpcapi",
				"git.wntrmute.dev/kyle/mcr/gc",
				"git.wntrmute.dev/kyle/mcr/notifications",
			} {
				if dep == banned || strings.HasPrefix(dep, banned) && strings.HasSuffix(banned, "/") {
					t.Errorf("%s depends on %s: the web UI must reach data only through the admin API", pkg, dep)
				}
			}
		}
	}
}
