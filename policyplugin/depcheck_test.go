package policyplugin

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the policy engine pure: standard library only, in
// particular no net/http and nothing from github.com/distribution.
func TestDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	self := ""
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > 0 {
		self, _, _ = strings.Cut(lines[len(lines)-1], " ") // go list prints the package itself last
	}
	if !strings.HasSuffix(self, "/policyplugin") {
		t.Fatalf("unexpected go list output (last line %q):\n%s", self, out)
	}
	for _, line := range lines {
		pkg, std, _ := strings.Cut(line, " ")
		switch {
		case pkg == "net/http" || strings.HasPrefix(pkg, "net/http/"):
			t.Errorf("policyplugin depends on %s", pkg)
		case strings.HasPrefix(pkg, "github.com/distribution/"):
			t.Errorf("policyplugin depends on %s", pkg)
		case pkg != self && std != "true":
			t.Errorf("policyplugin depends on non-standard package %s", pkg)
		}
	}
}
