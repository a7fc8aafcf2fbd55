package config

import (
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const full = `
[server]
listen_addr = ":8443"
tls_cert = "certs/cert.pem"
tls_key = "certs/key.pem"
[database]
path = "mcr.db"
[storage]
layers_path = "layers"
[identity]
provider = "local"
`

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mcr.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func without(key string) string {
	var out []string
	for _, l := range strings.Split(full, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), key+" ") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func TestLoadDefaultsAndPaths(t *testing.T) {
	p := write(t, full)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(p)
	checks := []struct {
		got, want any
		name      string
	}{
		{c.Server.ReadTimeout, 30 * time.Second, "read_timeout"},
		{c.Server.WriteTimeout, time.Duration(0), "write_timeout"},
		{c.Server.IdleTimeout, 120 * time.Second, "idle_timeout"},
		{c.Server.ShutdownTimeout, 60 * time.Second, "shutdown_timeout"},
		{c.Log.Level, "info", "log.level"},
		{c.Storage.Driver, "mcrfs", "driver"},
		{c.Identity.ServiceName, "mcr", "service"},
		{c.Identity.TokenTTL, 5 * time.Minute, "token_ttl"},
		{c.Database.Path, filepath.Join(dir, "mcr.db"), "db path resolved"},
		{c.Identity.KeysDir, filepath.Join(dir, "keys"), "keys dir derived"},
		{c.Audit.RetentionDays, 90, "retention"},
		{c.Audit.RecordPulls, true, "record pulls"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestMissingRequiredKeyNamesIt(t *testing.T) {
	for _, key := range []string{"listen_addr", "tls_cert", "tls_key", "path", "layers_path"} {
		t.Run(key, func(t *testing.T) {
			_, err := Load(write(t, without(key)))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), key+" is required") {
				t.Fatalf("error %q does not name %s", err, key)
			}
		})
	}
}

func TestInvalidValues(t *testing.T) {
	cases := []struct {
		name string
		want string
		env  []string
	}{
		{"provider", "identity.provider", []string{"MCR_IDENTITY_PROVIDER", "ldap"}},
		{"mcias url", "mcias.server_url is required", []string{"MCR_IDENTITY_PROVIDER", "mcias"}},
		{"mcias http", "mcias.server_url must be an https", []string{"MCR_IDENTITY_PROVIDER", "mcias", "MCR_MCIAS_SERVER_URL", "http://x"}},
		{"duration", "read_timeout", []string{"MCR_SERVER_READ_TIMEOUT", "soon"}},
		{"negative", "server.shutdown_timeout", []string{"MCR_SERVER_SHUTDOWN_TIMEOUT", "-1s"}},
		{"log level", "log.level", []string{"MCR_LOG_LEVEL", "loud"}},
		{"driver", "storage.driver", []string{"MCR_STORAGE_DRIVER", "s4"}},
		{"database driver", "database.driver", []string{"MCR_DATABASE_DRIVER", "mysql"}},
		{"postgres dsn", "database.dsn is required", []string{"MCR_DATABASE_DRIVER", "postgres"}},
		{"s3 bucket", "storage.s3_bucket is required", []string{"MCR_STORAGE_DRIVER", "s3"}},
		{"s3 endpoint scheme", "storage.s3_endpoint must be an http", []string{"MCR_STORAGE_DRIVER", "s3", "MCR_STORAGE_S3_BUCKET", "b", "MCR_STORAGE_S3_ENDPOINT", "s3.local:9000"}},
		{"s3 half credentials", "go together", []string{"MCR_STORAGE_DRIVER", "s3", "MCR_STORAGE_S3_BUCKET", "b", "MCR_STORAGE_S3_ACCESS_KEY", "k"}},
		{"s3 small chunks", "storage.s3_chunk_size must be at least", []string{"MCR_STORAGE_DRIVER", "s3", "MCR_STORAGE_S3_BUCKET", "b", "MCR_STORAGE_S3_CHUNK_SIZE", "1048576"}},
		{"write buffer size", "storage.write_buffer_size", []string{"MCR_STORAGE_WRITE_BUFFER_SIZE", "lots"}},
		{"pprof without listener", "server.pprof needs server.metrics_addr", []string{"MCR_SERVER_PPROF", "true", "MCR_SERVER_METRICS_ADDR", ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < len(tc.env); i += 2 {
				t.Setenv(tc.env[i], tc.env[i+1])
			}
			_, err := Load(write(t, full))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want mention of %q", err, tc.want)
			}
		})
	}
}

func TestBadTOMLNamesFile(t *testing.T) {
	p := write(t, "[server\nlisten_addr = ")
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("error %v does not name %s", err, p)
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if err == nil || !strings.Contains(err.Error(), "nope.toml") {
		t.Fatalf("error %v", err)
	}
}

func TestEnvOverrides(t *testing.T) {
	t.Setenv("MCR_SERVER_LISTEN_ADDR", "127.0.0.1:9999")
	t.Setenv("MCR_LOG_LEVEL", "debug")
	t.Setenv("MCR_AUDIT_RETENTION_DAYS", "7")
	c, err := Load(write(t, full))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.ListenAddr != "127.0.0.1:9999" || c.Log.Level != "debug" || c.Audit.RetentionDays != 7 {
		t.Fatalf("env not applied: %+v %+v %+v", c.Server.ListenAddr, c.Log.Level, c.Audit.RetentionDays)
	}
	t.Setenv("PORT", "7443")
	t.Setenv("PORT_GRPC", "7444")
	c, err = Load(write(t, full))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.ListenAddr != ":7443" || c.Server.GRPCAddr != ":7444" {
		t.Fatalf("PORT not applied: %q %q", c.Server.ListenAddr, c.Server.GRPCAddr)
	}
}

// TestS3FromEnvironment: every S3 key comes from MCR_STORAGE_S3_*, and
// layers_path is not needed.
func TestS3FromEnvironment(t *testing.T) {
	for k, v := range map[string]string{
		"MCR_STORAGE_DRIVER": "s3", "MCR_STORAGE_S3_BUCKET": "blobs", "MCR_STORAGE_S3_REGION": "eu-west-1",
		"MCR_STORAGE_S3_ENDPOINT": "http://127.0.0.1:7070", "MCR_STORAGE_S3_ACCESS_KEY": "ak", "MCR_STORAGE_S3_SECRET_KEY": "sk",
		"MCR_STORAGE_S3_PATH_STYLE": "true", "MCR_STORAGE_S3_CHUNK_SIZE": "8388608", "MCR_STORAGE_S3_REDIRECT": "true",
		"MCR_STORAGE_S3_ROOT_DIRECTORY": "/mcr",
	} {
		t.Setenv(k, v)
	}
	c, err := Load(write(t, without("layers_path")))
	if err != nil {
		t.Fatal(err)
	}
	want := Storage{Driver: "s3", S3Bucket: "blobs", S3Region: "eu-west-1", S3Endpoint: "http://127.0.0.1:7070",
		S3AccessKey: "ak", S3SecretKey: "sk", S3PathStyle: true, S3ChunkSize: 8 << 20, S3Redirect: true, S3RootDirectory: "/mcr",
		MinFree: "64MiB", EarlyWriteback: true}
	got := c.Storage
	got.CatalogMaxEntries, got.TagsMaxTags, got.UploadPurgeAge, got.ManifestURLsAllow = 0, 0, 0, nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("storage\n got %+v\nwant %+v", got, want)
	}
}

func TestSlogLevel(t *testing.T) {
	cases := map[string]slog.Level{
		"debug": slog.LevelDebug, "DEBUG": slog.LevelDebug, "info": slog.LevelInfo, "": slog.LevelInfo,
		"warn": slog.LevelWarn, "warning": slog.LevelWarn, "error": slog.LevelError,
	}
	for in, want := range cases {
		if got := (Log{Level: in}).SlogLevel(); got != want {
			t.Errorf("SlogLevel(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{"", 0, false}, {"0", 0, false}, {"4096", 4096, false}, {"64MiB", 64 << 20, false},
		{"2 MiB", 2 << 20, false}, {"1g", 1 << 30, false}, {"512k", 512 << 10, false}, {"3TB", 3 << 40, false},
		{"-1", 0, true}, {"lots", 0, true}, {"1.5GiB", 0, true}, {"99999999999TiB", 0, true},
	} {
		got, err := ParseBytes(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d (error %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}
