// Package config loads mcr.toml with viper: defaults, MCR_SECTION_KEY
// environment overrides, the platform's $PORT/$PORT_GRPC, and validation
// that names the key at fault.
//
//	cfg, err := config.Load("/srv/mcr/mcr.toml")
//	if err != nil {
//		log.Fatal(err) // e.g. `config: server.tls_cert is required`
//	}
//	fmt.Println(cfg.Server.ListenAddr)
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"git.wntrmute.dev/kyle/mcr/clientip"
	"git.wntrmute.dev/kyle/mcr/throttle"
)

// Config is the whole of mcr.toml.
type Config struct {
	Server   Server   `mapstructure:"server"`
	Database Database `mapstructure:"database"`
	Storage  Storage  `mapstructure:"storage"`
	MCIAS    MCIAS    `mapstructure:"mcias"`
	Web      Web      `mapstructure:"web"`
	Log      Log      `mapstructure:"log"`

	// Path is the file the configuration was read from.
	Path string `mapstructure:"-"`

	Identity Identity `mapstructure:"identity"`
	Audit    Audit    `mapstructure:"audit"`
	GC       GC       `mapstructure:"gc"`
	Snapshot Snapshot `mapstructure:"snapshot"`
}

// Server is the [server] section.
type Server struct {
	ListenAddr string `mapstructure:"listen_addr"`
	// GRPCAddr is the gRPC admin API's address (same certificate, TLS
	// 1.3); empty disables it.
	GRPCAddr string `mapstructure:"grpc_addr"`
	TLSCert  string `mapstructure:"tls_cert"`
	TLSKey   string `mapstructure:"tls_key"`
	// Hostname is the externally visible host[:port] named in token realms
	// (`mcrsrv init` writes it). Empty falls back to the Host header the
	// client sent, with a warning at start-up.
	Hostname    string `mapstructure:"hostname"`
	MetricsAddr string `mapstructure:"metrics_addr"`
	// HTTPSecret HMACs upload state; replicas must share it. Empty: derived
	// from the token signing key so a single node keeps uploads across
	// restarts.
	HTTPSecret string `mapstructure:"http_secret"`
	// TrustedProxies lists the CIDRs (or addresses) of proxies whose
	// X-Forwarded-For is believed: the client address of a request from
	// one of them is the last untrusted address in that header. From
	// anyone else the header is ignored.
	TrustedProxies []string `mapstructure:"trusted_proxies"`
	// Pprof adds Go's /debug/pprof/ profiles to the metrics listener, for
	// diagnosing CPU and memory use; it needs metrics_addr.
	Pprof bool `mapstructure:"pprof"`
	// ReadTimeout bounds reading request headers. Bodies (blob uploads of
	// many GiB) are deliberately not bounded.
	ReadTimeout     time.Duration `mapstructure:"read_timeout"`
	WriteTimeout    time.Duration `mapstructure:"write_timeout"`
	IdleTimeout     time.Duration `mapstructure:"idle_timeout"`
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
}

// Database is the [database] section.
type Database struct {
	// Driver is "sqlite" (the embedded default: one file at Path) or
	// "postgres" (DSN; what replicas share, DESIGN §13).
	Driver string `mapstructure:"driver"`
	Path   string `mapstructure:"path"`
	// DSN is a PostgreSQL connection string (URL or key=value), used
	// when Driver is "postgres". It may carry a password: never logged.
	DSN string `mapstructure:"dsn"`
	// Reserve is the size of <path>.reserve, a file start-up deletes when
	// the database's filesystem is too full for SQLite to open it ("16MiB";
	// "0" turns it off). SQLite only.
	Reserve string `mapstructure:"reserve"`
	// CheckTimeout bounds the PRAGMA quick_check at start-up (and each
	// periodic one); a check cut short is logged, not fatal.
	CheckTimeout time.Duration `mapstructure:"check_timeout"`
	// CheckInterval is how often the server re-runs quick_check for
	// /v1/health?detail=1 (0 turns the periodic check off).
	CheckInterval time.Duration `mapstructure:"check_interval"`
}

// ReserveBytes is database.reserve in bytes (Validate checks it parses).
func (d Database) ReserveBytes() int64 {
	n, _ := ParseBytes(d.Reserve)
	return n
}

// Database drivers MCR knows.
const (
	DatabaseSQLite   = "sqlite"
	DatabasePostgres = "postgres"
)

// Storage is the [storage] section.
type Storage struct {
	LayersPath string `mapstructure:"layers_path"`
	// Driver is the distribution storage driver: "mcrfs" (default, MCR's
	// filesystem driver) or "filesystem" (upstream's).
	Driver string `mapstructure:"driver"`
	// WriteBufferSize (mcrfs only) is the size of each upload's write
	// buffer ("1MiB" by default; 256 KiB and up are written by a
	// background goroutine while the next fills, smaller ones by the
	// request's own goroutine). "" or "0" means the driver's default.
	WriteBufferSize string `mapstructure:"write_buffer_size"`
	// MinFree is the free space on the storage filesystem under which
	// pushes are refused with 507 and health reports storage failing
	// ("64MiB", "1GiB" or bytes; "0" refuses only when a write fails).
	MinFree string `mapstructure:"min_free"`

	// S3 (driver "s3"): distribution's s3-aws driver. Replicas share the
	// bucket. Endpoint is a URL (http:// or https://) of an S3-compatible
	// server; empty means AWS for the region.
	S3Bucket        string `mapstructure:"s3_bucket"`
	S3Region        string `mapstructure:"s3_region"`
	S3Endpoint      string `mapstructure:"s3_endpoint"`
	S3AccessKey     string `mapstructure:"s3_access_key"`
	S3SecretKey     string `mapstructure:"s3_secret_key"`
	S3RootDirectory string `mapstructure:"s3_root_directory"`

	// ManifestURLsAllow lists regular expressions that URLs of
	// non-distributable layers must match; the default accepts http(s).
	ManifestURLsAllow []string      `mapstructure:"manifest_urls_allow"`
	CatalogMaxEntries int           `mapstructure:"catalog_max_entries"`
	TagsMaxTags       int           `mapstructure:"tags_max_tags"`
	UploadPurgeAge    time.Duration `mapstructure:"upload_purge_age"`
	// S3ChunkSize (driver "s3") is the multipart part size in bytes
	// (>= 5 MiB, S3's minimum part size). Upload chunks smaller than this
	// cost a copy.
	S3ChunkSize int64 `mapstructure:"s3_chunk_size"`
	// EarlyWriteback (mcrfs only) starts kernel write-back of each 8 MiB of
	// an upload before the commit's fsync.
	EarlyWriteback bool `mapstructure:"early_writeback"`
	// DirectIO (mcrfs only) writes uploads in large O_DIRECT writes, around
	// the page cache (less push CPU; the next pull reads from disk).
	DirectIO bool `mapstructure:"direct_io"`
	// S3PathStyle (driver "s3") addresses objects as endpoint/bucket/key
	// instead of bucket.endpoint/key.
	S3PathStyle bool `mapstructure:"s3_path_style"`
	// S3Redirect (driver "s3") answers blob GETs with a 307 to a presigned
	// S3 URL instead of streaming them through MCR; clients then need a
	// route to the object store. Off by default.
	S3Redirect bool `mapstructure:"s3_redirect"`
}

// MinFreeBytes is storage.min_free in bytes (Validate checks it parses).
func (s Storage) MinFreeBytes() int64 {
	n, _ := ParseBytes(s.MinFree)
	return n
}

// ParseBytes reads a size: an integer number of bytes with an optional
// KiB/MiB/GiB/TiB suffix (also k/K/KB, m/M/MB, g/G/GB, t/T/TB; binary).
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, nil
	}
	mult := int64(1)
	lower := strings.ToLower(t)
	for _, u := range []struct {
		suffixes []string
		m        int64
	}{
		{[]string{"tib", "tb", "t"}, 1 << 40},
		{[]string{"gib", "gb", "g"}, 1 << 30},
		{[]string{"mib", "mb", "m"}, 1 << 20},
		{[]string{"kib", "kb", "k"}, 1 << 10},
		{[]string{"b"}, 1},
	} {
		found := false
		for _, suf := range u.suffixes {
			if strings.HasSuffix(lower, suf) {
				lower = strings.TrimSpace(strings.TrimSuffix(lower, suf))
				mult = u.m
				found = true
				break
			}
		}
		if found {
			break
		}
	}
	n, err := strconv.ParseInt(lower, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a size (bytes, or a number with KiB, MiB, GiB or TiB)", s)
	}
	return n * mult, nil
}

// Storage drivers MCR knows.
const (
	StorageMCRFS      = "mcrfs"
	StorageFilesystem = "filesystem"
	StorageS3         = "s3"
)

// S3MinChunkSize is S3's smallest multipart part.
const S3MinChunkSize = 5 << 20

// Identity is the [identity] section: who vouches for users, and the
// registry tokens MCR issues.
type Identity struct {
	Provider    string        `mapstructure:"provider"`
	ServiceName string        `mapstructure:"service_name"`
	Issuer      string        `mapstructure:"issuer"`
	KeysDir     string        `mapstructure:"keys_dir"`
	TokenTTL    time.Duration `mapstructure:"token_ttl"`
	SessionTTL  time.Duration `mapstructure:"session_ttl"`
	RefreshTTL  time.Duration `mapstructure:"refresh_ttl"`

	// Sign-in throttling (failed sign-ins, counted in memory per process).
	LoginBackoffAfter    int           `mapstructure:"login_backoff_after"`
	LoginLockoutAfter    int           `mapstructure:"login_lockout_after"`
	LoginIPBackoffAfter  int           `mapstructure:"login_ip_backoff_after"`
	LoginIPLockoutAfter  int           `mapstructure:"login_ip_lockout_after"`
	LoginBackoffBase     time.Duration `mapstructure:"login_backoff_base"`
	LoginBackoffMax      time.Duration `mapstructure:"login_backoff_max"`
	LoginLockoutDuration time.Duration `mapstructure:"login_lockout_duration"`
	LoginFailureWindow   time.Duration `mapstructure:"login_failure_window"`
}

// Throttle is the sign-in throttle the [identity] keys describe.
func (i Identity) Throttle() throttle.Config {
	c := throttle.DefaultConfig()
	c.Account.BackoffAfter, c.Account.LockoutAfter = i.LoginBackoffAfter, i.LoginLockoutAfter
	c.IP.BackoffAfter, c.IP.LockoutAfter = i.LoginIPBackoffAfter, i.LoginIPLockoutAfter
	c.BackoffBase, c.BackoffMax = i.LoginBackoffBase, i.LoginBackoffMax
	c.LockoutDuration, c.Window = i.LoginLockoutDuration, i.LoginFailureWindow
	return c
}

// MCIAS is the [mcias] section.
type MCIAS struct {
	ServerURL   string   `mapstructure:"server_url"`
	CACert      string   `mapstructure:"ca_cert"`
	ServiceName string   `mapstructure:"service_name"`
	Tags        []string `mapstructure:"tags"`
}

// Web is the [web] section (mcr-web).
type Web struct {
	ListenAddr string `mapstructure:"listen_addr"`
	APIURL     string `mapstructure:"api_url"`
	// GRPCAddr is mcrsrv's gRPC admin API (host:port) mcr-web talks to;
	// empty: mcr-web uses the REST API at APIURL for everything.
	GRPCAddr string `mapstructure:"grpc_addr"`
	CACert   string `mapstructure:"ca_cert"`
	TLSCert  string `mapstructure:"tls_cert"`
	TLSKey   string `mapstructure:"tls_key"`
	// TrustedProxies: mcr-web believes X-Forwarded-For only from these
	// CIDRs and forwards the client address it resolved to mcrsrv (which
	// believes it only if mcr-web is in server.trusted_proxies).
	TrustedProxies []string `mapstructure:"trusted_proxies"`
	// SecureCookies forces Secure cookies and HSTS even when mcr-web
	// itself speaks plain HTTP behind a TLS-terminating proxy.
	SecureCookies bool `mapstructure:"secure_cookies"`
}

// Log is the [log] section.
type Log struct {
	Level string `mapstructure:"level"`
}

// SlogLevel is Level for log/slog (Validate accepts only these names).
func (l Log) SlogLevel() slog.Level {
	switch strings.ToLower(l.Level) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Audit is the [audit] section.
type Audit struct {
	RetentionDays int `mapstructure:"retention_days"`
	// RecordPulls records manifest_pulled events (asynchronously batched).
	RecordPulls bool `mapstructure:"record_pulls"`
	// CommitTimeout bounds how long a change waits for its audit event to
	// commit; past it the request fails (503) instead of hanging.
	CommitTimeout time.Duration `mapstructure:"commit_timeout"`
}

// GC is the [gc] section.
type GC struct {
	Grace   time.Duration `mapstructure:"grace"`
	MaxWait time.Duration `mapstructure:"max_wait"`
	// LeaseTTL (replicas on PostgreSQL): how long the GC lease outlives
	// its holder; a replica killed mid-collection blocks others' GC (and
	// keeps their write gates closed) at most this long.
	LeaseTTL time.Duration `mapstructure:"lease_ttl"`
}

// Snapshot is the [snapshot] section.
type Snapshot struct {
	Keep int `mapstructure:"keep"`
}

// Providers MCR knows.
const (
	ProviderLocal = "local"
	ProviderMCIAS = "mcias"
)

func setDefaults(v *viper.Viper) {
	v.SetDefault("server.grpc_addr", ":9443")
	v.SetDefault("server.read_timeout", "30s")
	v.SetDefault("server.write_timeout", "0s")
	v.SetDefault("server.idle_timeout", "120s")
	v.SetDefault("server.shutdown_timeout", "60s")
	v.SetDefault("server.metrics_addr", "")
	v.SetDefault("server.pprof", false)
	v.SetDefault("storage.driver", "mcrfs")
	v.SetDefault("storage.catalog_max_entries", 1000)
	v.SetDefault("storage.tags_max_tags", 1000)
	v.SetDefault("storage.upload_purge_age", "168h")
	v.SetDefault("storage.manifest_urls_allow", []string{"^https?://"})
	v.SetDefault("storage.early_writeback", true)
	v.SetDefault("storage.direct_io", false)
	v.SetDefault("storage.min_free", "64MiB")
	v.SetDefault("storage.write_buffer_size", "")
	v.SetDefault("database.check_timeout", "10s")
	v.SetDefault("database.check_interval", "1h")
	v.SetDefault("database.reserve", "16MiB")
	v.SetDefault("storage.s3_region", "us-east-1")
	v.SetDefault("storage.s3_chunk_size", 10<<20)
	v.SetDefault("storage.s3_path_style", false)
	v.SetDefault("storage.s3_redirect", false)
	v.SetDefault("database.driver", DatabaseSQLite)
	v.SetDefault("identity.provider", ProviderLocal)
	v.SetDefault("identity.service_name", "mcr")
	v.SetDefault("identity.issuer", "mcr")
	v.SetDefault("identity.token_ttl", "5m")
	v.SetDefault("identity.session_ttl", "8h")
	v.SetDefault("identity.refresh_ttl", "720h")
	def := throttle.DefaultConfig()
	v.SetDefault("identity.login_backoff_after", def.Account.BackoffAfter)
	v.SetDefault("identity.login_lockout_after", def.Account.LockoutAfter)
	v.SetDefault("identity.login_ip_backoff_after", def.IP.BackoffAfter)
	v.SetDefault("identity.login_ip_lockout_after", def.IP.LockoutAfter)
	v.SetDefault("identity.login_backoff_base", def.BackoffBase.String())
	v.SetDefault("identity.login_backoff_max", def.BackoffMax.String())
	v.SetDefault("identity.login_lockout_duration", def.LockoutDuration.String())
	v.SetDefault("identity.login_failure_window", def.Window.String())
	v.SetDefault("server.trusted_proxies", []string{})
	v.SetDefault("web.secure_cookies", false)
	v.SetDefault("web.trusted_proxies", []string{})
	v.SetDefault("mcias.service_name", "mcr")
	v.SetDefault("web.listen_addr", ":8080")
	v.SetDefault("log.level", "info")
	v.SetDefault("audit.retention_days", 90)
	v.SetDefault("audit.record_pulls", true)
	v.SetDefault("audit.commit_timeout", "10s")
	v.SetDefault("gc.grace", "1h")
	v.SetDefault("gc.max_wait", "30s")
	v.SetDefault("gc.lease_ttl", "30s")
	v.SetDefault("snapshot.keep", 7)
}

// Load reads the TOML file at path, applies defaults and environment
// overrides, resolves relative paths against the file's directory and
// validates the result.
func Load(path string) (*Config, error) {
	v := viper.New()
	v.SetConfigFile(path)
	v.SetConfigType("toml")
	setDefaults(v)
	v.SetEnvPrefix("MCR")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	bindEnv(v, reflect.TypeOf(Config{}), "")
	if err := v.ReadInConfig(); err != nil {
		var nf viper.ConfigFileNotFoundError
		if errors.As(err, &nf) || errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("config: cannot read %s: %w", path, err)
		}
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	if p := os.Getenv("PORT"); p != "" {
		v.Set("server.listen_addr", ":"+p)
	}
	if p := os.Getenv("PORT_GRPC"); p != "" {
		v.Set("server.grpc_addr", ":"+p)
	}
	var cfg Config
	err := v.Unmarshal(&cfg, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	)))
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	cfg.Path = path
	cfg.resolvePaths(filepath.Dir(path))
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// bindEnv registers every key of the struct with viper so MCR_SECTION_KEY
// overrides work even for keys absent from the file.
func bindEnv(v *viper.Viper, t reflect.Type, prefix string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("mapstructure")
		if tag == "" || tag == "-" {
			continue
		}
		key := tag
		if prefix != "" {
			key = prefix + "." + tag
		}
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
			bindEnv(v, f.Type, key)
			continue
		}
		_ = v.BindEnv(key)
	}
}

func (c *Config) resolvePaths(base string) {
	for _, p := range []*string{
		&c.Server.TLSCert, &c.Server.TLSKey, &c.Database.Path, &c.Storage.LayersPath,
		&c.Identity.KeysDir, &c.MCIAS.CACert, &c.Web.CACert, &c.Web.TLSCert, &c.Web.TLSKey,
	} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	if c.Identity.KeysDir == "" && c.Database.Path != "" {
		c.Identity.KeysDir = filepath.Join(filepath.Dir(c.Database.Path), "keys")
	}
}

// DataDir is the directory holding the database (and, by convention,
// backups/ and the server lock).
func (c *Config) DataDir() string { return filepath.Dir(c.Database.Path) }

// Validate checks required keys and value ranges; the error names the key.
func (c *Config) Validate() error {
	var errs []error
	req := func(key, val string) {
		if strings.TrimSpace(val) == "" {
			errs = append(errs, fmt.Errorf("config: %s is required", key))
		}
	}
	req("server.listen_addr", c.Server.ListenAddr)
	req("server.tls_cert", c.Server.TLSCert)
	req("server.tls_key", c.Server.TLSKey)
	req("database.path", c.Database.Path)
	switch c.Database.Driver {
	case DatabaseSQLite:
	case DatabasePostgres:
		req("database.dsn", c.Database.DSN)
	default:
		errs = append(errs, fmt.Errorf("config: database.driver must be %q or %q, got %q", DatabaseSQLite, DatabasePostgres, c.Database.Driver))
	}
	if c.Storage.Driver != StorageS3 {
		req("storage.layers_path", c.Storage.LayersPath)
	}
	req("identity.service_name", c.Identity.ServiceName)
	if c.Server.Pprof && c.Server.MetricsAddr == "" {
		errs = append(errs, errors.New("config: server.pprof needs server.metrics_addr (profiles are served on the metrics listener)"))
	}
	switch c.Identity.Provider {
	case ProviderLocal:
	case ProviderMCIAS:
		req("mcias.server_url", c.MCIAS.ServerURL)
		if c.MCIAS.ServerURL != "" && !strings.HasPrefix(c.MCIAS.ServerURL, "https://") {
			errs = append(errs, fmt.Errorf("config: mcias.server_url must be an https:// URL, got %q", c.MCIAS.ServerURL))
		}
	default:
		errs = append(errs, fmt.Errorf("config: identity.provider must be %q or %q, got %q", ProviderLocal, ProviderMCIAS, c.Identity.Provider))
	}
	switch c.Storage.Driver {
	case StorageMCRFS, StorageFilesystem:
	case StorageS3:
		req("storage.s3_bucket", c.Storage.S3Bucket)
		if c.Storage.S3Endpoint == "" {
			req("storage.s3_region", c.Storage.S3Region)
		} else if !strings.HasPrefix(c.Storage.S3Endpoint, "http://") && !strings.HasPrefix(c.Storage.S3Endpoint, "https://") {
			errs = append(errs, fmt.Errorf("config: storage.s3_endpoint must be an http:// or https:// URL, got %q", c.Storage.S3Endpoint))
		}
		if (c.Storage.S3AccessKey == "") != (c.Storage.S3SecretKey == "") {
			errs = append(errs, errors.New("config: storage.s3_access_key and storage.s3_secret_key go together (both, or neither for the AWS default credentials)"))
		}
		if c.Storage.S3ChunkSize < S3MinChunkSize {
			errs = append(errs, fmt.Errorf("config: storage.s3_chunk_size must be at least %d (5 MiB), got %d", S3MinChunkSize, c.Storage.S3ChunkSize))
		}
	default:
		errs = append(errs, fmt.Errorf("config: storage.driver must be \"mcrfs\", \"filesystem\" or \"s3\", got %q", c.Storage.Driver))
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "warning", "error":
	default:
		errs = append(errs, fmt.Errorf("config: log.level must be debug, info, warn or error, got %q", c.Log.Level))
	}
	pos := func(key string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("config: %s must be positive, got %s", key, d))
		}
	}
	pos("server.read_timeout", c.Server.ReadTimeout)
	pos("server.idle_timeout", c.Server.IdleTimeout)
	pos("server.shutdown_timeout", c.Server.ShutdownTimeout)
	pos("identity.token_ttl", c.Identity.TokenTTL)
	pos("gc.lease_ttl", c.GC.LeaseTTL)
	pos("identity.session_ttl", c.Identity.SessionTTL)
	pos("identity.refresh_ttl", c.Identity.RefreshTTL)
	pos("identity.login_backoff_base", c.Identity.LoginBackoffBase)
	pos("identity.login_backoff_max", c.Identity.LoginBackoffMax)
	pos("identity.login_lockout_duration", c.Identity.LoginLockoutDuration)
	pos("identity.login_failure_window", c.Identity.LoginFailureWindow)
	for _, k := range []struct {
		key string
		n   int
	}{
		{"identity.login_backoff_after", c.Identity.LoginBackoffAfter}, {"identity.login_lockout_after", c.Identity.LoginLockoutAfter},
		{"identity.login_ip_backoff_after", c.Identity.LoginIPBackoffAfter}, {"identity.login_ip_lockout_after", c.Identity.LoginIPLockoutAfter},
	} {
		if k.n < 0 {
			errs = append(errs, fmt.Errorf("config: %s must not be negative (0 turns it off)", k.key))
		}
	}
	for key, cidrs := range map[string][]string{"server.trusted_proxies": c.Server.TrustedProxies, "web.trusted_proxies": c.Web.TrustedProxies} {
		if _, err := clientip.New(cidrs); err != nil {
			errs = append(errs, fmt.Errorf("config: %s: %w", key, err))
		}
	}
	if c.Server.WriteTimeout < 0 {
		errs = append(errs, fmt.Errorf("config: server.write_timeout must not be negative"))
	}
	if c.Storage.CatalogMaxEntries < 1 {
		errs = append(errs, fmt.Errorf("config: storage.catalog_max_entries must be >= 1"))
	}
	if c.Storage.TagsMaxTags < 1 {
		errs = append(errs, fmt.Errorf("config: storage.tags_max_tags must be >= 1"))
	}
	pos("database.check_timeout", c.Database.CheckTimeout)
	if c.Database.CheckInterval < 0 {
		errs = append(errs, fmt.Errorf("config: database.check_interval must not be negative"))
	}
	if _, err := ParseBytes(c.Database.Reserve); err != nil {
		errs = append(errs, fmt.Errorf("config: database.reserve: %w", err))
	}
	if _, err := ParseBytes(c.Storage.WriteBufferSize); err != nil {
		errs = append(errs, fmt.Errorf("config: storage.write_buffer_size: %w", err))
	}
	if _, err := ParseBytes(c.Storage.MinFree); err != nil {
		errs = append(errs, fmt.Errorf("config: storage.min_free: %w", err))
	}
	if c.Audit.CommitTimeout <= 0 {
		errs = append(errs, errors.New("config: audit.commit_timeout must be positive"))
	}
	if c.Audit.RetentionDays < 0 {
		errs = append(errs, fmt.Errorf("config: audit.retention_days must not be negative"))
	}
	return errors.Join(errs...)
}
