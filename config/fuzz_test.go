package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary files to Load: it must never panic, every
// refusal names the configuration ("config: ..."), and whatever it accepts
// validates and has absolute paths.
func FuzzLoad(f *testing.F) {
	f.Add(full)
	f.Add(full + "[identity]\nlogin_lockout_after = 5\nlogin_backoff_base = \"10ms\"\n")
	f.Add(full + "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n")
	f.Add(strings.Replace(full, `provider = "local"`, `provider = "mcias"`, 1) + "[mcias]\nserver_url = \"https://mcias\"\n")
	f.Add(full + "[server]\nread_timeout = \"-1s\"\n")
	f.Add("[server\n")
	f.Add("")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body string) {
		p := filepath.Join(dir, "mcr.toml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(p)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Fatalf("error does not name the configuration: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted configuration does not validate: %v", err)
		}
		for _, path := range []string{cfg.Database.Path, cfg.Storage.LayersPath, cfg.Server.TLSCert, cfg.Identity.KeysDir} {
			if !filepath.IsAbs(path) {
				t.Fatalf("relative path %q after Load", path)
			}
		}
		_ = cfg.Identity.Throttle()
	})
}
