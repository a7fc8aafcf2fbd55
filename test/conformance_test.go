package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

var (
	conformanceOnce sync.Once
	conformanceBin  string
	conformanceErr  error
)

// conformanceTool builds the OCI conformance suite (a go.mod tool) once.
func conformanceTool(t *testing.T) string {
	t.Helper()
	conformanceOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mcr-conformance-")
		if err != nil {
			conformanceErr = err
			return
		}
		conformanceBin = filepath.Join(dir, "conformance")
		cmd := exec.Command("go", "build", "-o", conformanceBin, "github.com/opencontainers/distribution-spec/conformance")
		cmd.Dir = mcrtest.ModuleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			conformanceErr = fmt.Errorf("build conformance tool: %w\n%s", err, out)
		}
	})
	if conformanceErr != nil {
		t.Fatal(conformanceErr)
	}
	return conformanceBin
}

// conformanceTotals are the counters the suite prints at the end, e.g.
// "  FAIL..........................:          0".
type conformanceTotals map[string]int

var totalsLine = regexp.MustCompile(`^\s*(Disabled|Skip|Pass|FAIL|Error|Total)\.+:\s+(\d+)\s*$`)

func parseConformanceTotals(out []byte) conformanceTotals {
	tot := conformanceTotals{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if m := totalsLine.FindStringSubmatch(sc.Text()); m != nil {
			n, _ := strconv.Atoi(m[2])
			tot[m[1]] = n
		}
	}
	return tot
}

// failingLines are the suite's per-test result lines that report a
// failure, and its "failed test" log lines.
func failingLines(out []byte) []string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.Contains(l, ": Fail") || strings.Contains(l, ": Error") || strings.Contains(l, `msg="failed test"`) {
			lines = append(lines, l)
		}
	}
	return lines
}

// runConformance runs the suite against a fresh server with the given
// extra OCI_* variables and returns its totals and output.
func runConformance(t *testing.T, extraEnv ...string) (conformanceTotals, []byte, string) {
	t.Helper()
	return runConformanceAt(t, mcrtest.Start(t), extraEnv...)
}

// runConformanceAt runs the suite against srv (a replica, or a load
// balancer in front of several: srv.Addr is what the suite dials).
func runConformanceAt(t *testing.T, srv *mcrtest.Server, extraEnv ...string) (conformanceTotals, []byte, string) {
	t.Helper()
	bin := conformanceTool(t)
	results := t.TempDir()
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OCI_") && !strings.HasPrefix(kv, "SSL_CERT_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"OCI_REGISTRY="+srv.Addr,
		"OCI_TLS=enabled",
		"SSL_CERT_FILE="+srv.CACert,
		"OCI_REPO1=conformance/repo1",
		"OCI_REPO2=conformance/repo2",
		"OCI_USERNAME=admin",
		"OCI_PASSWORD="+mcrtest.AdminPassword,
		"OCI_RESULTS_DIR="+results,
	)
	env = append(env, extraEnv...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir = results
	cmd.Env = env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("conformance suite ran in %s (exit: %v)", time.Since(start).Round(time.Millisecond), err)
	if ctx.Err() != nil {
		t.Fatalf("conformance suite timed out\n%s", out)
	}
	return parseConformanceTotals(out), out, filepath.Join(results, "results.yaml")
}

// keepResults copies results.yaml out of the test's temporary directory
// (removed when the test ends) so it can be read after a failure.
func keepResults(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return path + " (unreadable: " + err.Error() + ")"
	}
	f, err := os.CreateTemp("", "mcr-conformance-results-*.yaml")
	if err != nil {
		return path
	}
	defer func() { _ = f.Close() }() // best effort: a missing file only loses the report
	if _, err := f.Write(data); err != nil {
		return path
	}
	return f.Name()
}

func TestConformance(t *testing.T) {
	t.Parallel()
	t.Run("core-profile", func(t *testing.T) {
		tot, out, results := runConformance(t, "OCI_DATA_SHA512=false", "OCI_API_REFERRER=false")
		if _, ok := tot["Total"]; !ok {
			t.Fatalf("no totals in the conformance output:\n%s", out)
		}
		t.Logf("totals: %v", tot)
		if tot["FAIL"] != 0 || tot["Error"] != 0 || tot["Pass"] <= 700 {
			for _, l := range failingLines(out) {
				t.Log(l)
			}
			t.Logf("results: %s", keepResults(results))
			t.Errorf("conformance (sha512 and referrers disabled): %d failed, %d errors, %d passed; want 0, 0, > 700",
				tot["FAIL"], tot["Error"], tot["Pass"])
		}
	})

	// The default profile adds sha512 digests and the referrers API, which
	// upstream distribution fails (91 checks); MCR must fail none.
	t.Run("default-profile", func(t *testing.T) {
		tot, out, results := runConformance(t)
		if _, ok := tot["Total"]; !ok {
			t.Fatalf("no totals in the conformance output:\n%s", out)
		}
		t.Logf("default profile: %d failed, %d errors, %d passed, %d skipped of %d",
			tot["FAIL"], tot["Error"], tot["Pass"], tot["Skip"], tot["Total"])
		if tot["FAIL"] != 0 || tot["Error"] != 0 || tot["Pass"] <= 800 {
			for _, l := range failingLines(out) {
				t.Log(l)
			}
			t.Logf("results: %s", keepResults(results))
			t.Errorf("conformance (default profile): %d failed, %d errors, %d passed; want 0, 0, > 800",
				tot["FAIL"], tot["Error"], tot["Pass"])
		}
	})
}
