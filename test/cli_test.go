package e2e

import (
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// cliRun runs mcrsrv with args and stdin and returns its output and exit code.
func cliRun(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(mcrtest.Binary(t, "mcrsrv"), args...)
	cmd.Env = cfgCleanEnv()
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	code := cfgExitCode(err)
	if code == -1 {
		t.Fatalf("mcrsrv %v: %v", args, err)
	}
	return string(out), code
}

func TestCLIUsage(t *testing.T) {
	t.Parallel()
	out, code := cliRun(t, "", "version")
	if code != 0 || !strings.HasPrefix(out, "mcrsrv ") {
		t.Errorf("mcrsrv version: exit %d, output %q", code, out)
	}
	for _, args := range [][]string{
		{"frobnicate"},
		{"server"}, // --config is required
		{"server", "--config"},
		{"init"}, // --dir is required
		{"server", "--no-such-flag", "x"},
	} {
		out, code := cliRun(t, "", args...)
		if code != 2 {
			t.Errorf("mcrsrv %s: exit %d, want 2 (usage error)\n%s", strings.Join(args, " "), code, out)
		}
	}
}

func TestCLIUserCommands(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	cfg := srv.ConfigPath
	add := func(stdin string, args ...string) (string, int) {
		return cliRun(t, stdin, append([]string{"user", "add", "--config", cfg, "--password-stdin"}, args...)...)
	}

	if out, code := add("bob-password-1\n", "--username", "bob", "--role", "user"); code != 0 {
		t.Fatalf("user add bob: exit %d\n%s", code, out)
	}
	// The running server sees the new account at once.
	tok := srv.Token(t, "bob", "bob-password-1", "repository:bob/app:pull,push")
	expectStatus(t, srv.Do(t, http.MethodGet, "/v2/", tok, nil), http.StatusOK)

	out, code := cliRun(t, "", "user", "list", "--config", cfg)
	if code != 0 {
		t.Fatalf("user list: exit %d\n%s", code, out)
	}
	var bobLine string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "bob" {
			bobLine = l
		}
	}
	if bobLine == "" || !strings.Contains(bobLine, "user") || !strings.Contains(bobLine, "human") {
		t.Errorf("user list does not show bob as a human user:\n%s", out)
	}
	if strings.Contains(out, "bob-password-1") || strings.Contains(out, "$2a$") {
		t.Errorf("user list shows a password or hash:\n%s", out)
	}

	// Refusals.
	for _, c := range []struct {
		name  string
		stdin string
		args  []string
		codes []int
	}{
		{"duplicate", "other-password-1\n", []string{"--username", "bob", "--role", "user"}, []int{1}},
		{"short password", "short\n", []string{"--username", "carl", "--role", "user"}, []int{1, 2}},
		{"empty password", "\n", []string{"--username", "carl", "--role", "user"}, []int{1, 2}},
		{"bad role", "carl-password-1\n", []string{"--username", "carl", "--role", "root"}, []int{2}},
		{"bad account type", "carl-password-1\n", []string{"--username", "carl", "--role", "user", "--account-type", "robot"}, []int{2}},
		{"empty username", "carl-password-1\n", []string{"--username", "", "--role", "user"}, []int{1, 2}},
		{"username with a colon", "carl-password-1\n", []string{"--username", "carl:x", "--role", "user"}, []int{1, 2}},
	} {
		out, code := add(c.stdin, c.args...)
		ok := false
		for _, want := range c.codes {
			ok = ok || code == want
		}
		if !ok {
			t.Errorf("user add (%s): exit %d, want one of %v\n%s", c.name, code, c.codes, out)
		}
	}
	// The duplicate did not replace bob's password.
	srv.Token(t, "bob", "bob-password-1")

	// A session of bob's stops working when bob is deleted.
	session := srv.Login(t, "bob", "bob-password-1")
	if out, code := cliRun(t, "", "user", "delete", "--config", cfg, "--username", "bob"); code != 0 {
		t.Fatalf("user delete bob: exit %d\n%s", code, out)
	}
	expectOCIError(t, tokenGET(t, srv, "bob", "bob-password-1", "", nil), http.StatusUnauthorized, "UNAUTHORIZED")
	expectOCIError(t, tokenGET(t, srv, "", "", session, url.Values{"scope": {"repository:bob/app:pull"}}), http.StatusUnauthorized, "UNAUTHORIZED")
	if out, code := cliRun(t, "", "user", "delete", "--config", cfg, "--username", "bob"); code != 1 {
		t.Errorf("deleting a missing user: exit %d, want 1\n%s", code, out)
	}
	out, _ = cliRun(t, "", "user", "list", "--config", cfg)
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "bob" {
			t.Errorf("bob still listed after delete:\n%s", out)
		}
	}

	// With the mcias provider, local accounts are not managed by mcrsrv.
	srv.SetConfig(t, "identity.provider", `"mcias"`)
	srv.SetConfig(t, "mcias.server_url", `"https://mcias.invalid"`)
	if out, code := add("dave-password-1\n", "--username", "dave", "--role", "user"); code == 0 {
		t.Errorf("user add with the mcias provider succeeded:\n%s", out)
	}
}
