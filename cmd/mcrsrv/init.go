package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"text/template"
	"time"

	"github.com/spf13/cobra"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity/local"
	"git.wntrmute.dev/kyle/mcr/authplugin/token"
	"git.wntrmute.dev/kyle/mcr/config"
	"git.wntrmute.dev/kyle/mcr/internal/cli"
	"git.wntrmute.dev/kyle/mcr/store"
)

var configTemplate = template.Must(template.New("mcr.toml").Parse(`# MCR configuration, written by ` + "`mcrsrv init`" + `.
# Every key can be overridden by MCR_<SECTION>_<KEY> (e.g. MCR_LOG_LEVEL=debug);
# $PORT overrides server.listen_addr. Relative paths are relative to this file.

[server]
listen_addr      = "{{.Listen}}"
grpc_addr        = "{{.GRPCListen}}"           # gRPC admin API (same certificate); "" disables; $PORT_GRPC overrides
tls_cert         = "certs/cert.pem"
tls_key          = "certs/key.pem"
hostname         = "{{.External}}"  # external host[:port] clients use, named in token realms (the client's Host header is never trusted)
metrics_addr     = ""                    # e.g. "127.0.0.1:9090" to serve /metrics
# pprof          = false                 # true: /debug/pprof/ on the metrics listener
read_timeout     = "30s"                 # request headers; blob bodies are not bounded
write_timeout    = "0s"
idle_timeout     = "120s"
shutdown_timeout = "60s"
# trusted_proxies = ["10.0.0.0/8"]      # proxies whose X-Forwarded-For names the client (sign-in throttling, audit)

[database]
path = "mcr.db"

[storage]
layers_path = "layers"
driver      = "mcrfs"       # MCR's filesystem driver (fsync of blob and directory on commit); "filesystem" = upstream's
# direct_io = false          # mcrfs: O_DIRECT uploads (less push CPU; the next pull reads from disk)
# write_buffer_size = "1MiB" # mcrfs: upload write buffer, written in 128 KiB calls ("32KiB": small buffers the request writes itself)
# early_writeback = true     # mcrfs: start kernel write-back of each 8 MiB during uploads
# driver = "s3" keeps blobs in a bucket instead (see docs/configuration.md):
# s3_bucket = "mcr"
# s3_endpoint = "https://s3.example:9000"   # empty: AWS in s3_region
# s3_region = "us-east-1"
# s3_access_key = ""                        # or MCR_STORAGE_S3_ACCESS_KEY / _SECRET_KEY
# s3_path_style = true
# s3_chunk_size = 10485760
# s3_redirect = false                       # true: blob GETs redirect to presigned S3 URLs

[identity]
provider     = "local"   # "local" (accounts managed by ` + "`mcrsrv user`" + `) or "mcias"
service_name = "mcr"
token_ttl    = "5m"
keys_dir     = "keys"
# Failed sign-ins, per account / per client address (docs/operations.md):
# login_backoff_after = 3       # then waits of 1 s, 2 s, 4 s … (login_backoff_base, login_backoff_max)
# login_lockout_after = 10      # then locked for login_lockout_duration (15m); mcrctl account unlock NAME
# login_ip_backoff_after = 20
# login_ip_lockout_after = 100

[mcias]
# server_url   = "https://mcias.example:8443"
# ca_cert      = "/srv/mcr/certs/mcias-ca.pem"
service_name = "mcr"
tags         = []

[web]
listen_addr = "{{.WebListen}}"
api_url     = "{{.APIURL}}"
grpc_addr   = "{{.GRPCAddr}}"   # mcr-web talks to mcrsrv over gRPC; "" = REST only
ca_cert     = "certs/cert.pem"
# secure_cookies = true            # behind a TLS-terminating proxy: Secure cookies and HSTS over plain HTTP
# trusted_proxies = ["10.0.0.0/8"]  # the proxy; mcr-web forwards the browser's address to mcrsrv

[log]
level = "info"
`))

func initCmd() *cobra.Command {
	var dir, hostname, listen, grpcListen, webListen string
	c := &cobra.Command{
		Use:   "init",
		Short: "Create a data directory: config, TLS certificate, signing key, database (idempotent, never overwrites)",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			return runInit(dir, hostname, listen, grpcListen, webListen)
		},
	}
	host, _ := os.Hostname()
	c.Flags().StringVar(&dir, "dir", "", "data directory (e.g. /srv/mcr)")
	c.Flags().StringVar(&hostname, "hostname", host, "host name clients use: written to server.hostname (with the listen port) and the self-signed certificate")
	c.Flags().StringVar(&listen, "listen", ":8443", "registry listen address written to mcr.toml")
	c.Flags().StringVar(&grpcListen, "grpc-listen", ":9443", `gRPC admin API listen address written to mcr.toml ("" disables it)`)
	c.Flags().StringVar(&webListen, "web-listen", ":8080", "web UI listen address written to mcr.toml")
	_ = c.MarkFlagRequired("dir")
	return c
}

func say(format string, args ...any) { fmt.Printf(format+"\n", args...) }

func runInit(dir, hostname, listen, grpcListen, webListen string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	for _, d := range []string{"certs", "keys", "layers", "backups"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return fmt.Errorf("init: %w", err)
		}
	}
	cfgPath := filepath.Join(dir, "mcr.toml")
	if exists(cfgPath) {
		say("kept %s", cfgPath)
	} else {
		f, err := os.OpenFile(cfgPath, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("init: %w", err)
		}
		err = configTemplate.Execute(f, map[string]string{"Listen": listen, "GRPCListen": grpcListen,
			"WebListen": webListen, "External": externalHost(hostname, listen), "APIURL": apiURL(listen), "GRPCAddr": grpcClientAddr(grpcListen)})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("init: write %s: %w", cfgPath, err)
		}
		say("wrote %s", cfgPath)
	}
	certPath, keyPath := filepath.Join(dir, "certs", "cert.pem"), filepath.Join(dir, "certs", "key.pem")
	if exists(certPath) || exists(keyPath) {
		say("kept %s", certPath)
	} else {
		if err := writeSelfSigned(certPath, keyPath, hostname); err != nil {
			return fmt.Errorf("init: certificate: %w", err)
		}
		say("wrote self-signed certificate %s (SANs: %s, localhost, 127.0.0.1, ::1)", certPath, hostname)
	}
	// The rest follows the configuration as the server will read it
	// (environment overrides included): replicas point keys_dir at shared
	// storage and the database at a shared PostgreSQL.
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if err := ensureSigningKey(cfg.Identity.KeysDir); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	st, err := openStore(context.Background(), cfg)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	defer cli.Closing("the database", st.Close)
	v, _ := st.SchemaVersion(context.Background())
	where := cfg.Database.Path
	if st.Dialect() == store.DialectPostgres {
		where = "PostgreSQL (database.dsn)"
	}
	say("database %s at schema version %d", where, v)
	return ensureAdmin(st)
}

// ensureSigningKey writes a token signing key into keysDir unless one is
// there. The check and the write hold a lock file in the directory, so
// replicas initialising a shared keys_dir at once end up with one key.
func ensureSigningKey(keysDir string) error {
	if err := os.MkdirAll(keysDir, 0o700); err != nil {
		return err
	}
	unlock, err := lockDir(keysDir)
	if err != nil {
		return fmt.Errorf("signing keys: lock %s: %w", keysDir, err)
	}
	defer unlock()
	if m, _ := filepath.Glob(filepath.Join(keysDir, "*.pem")); len(m) > 0 {
		say("kept token signing key in %s", keysDir)
		return nil
	}
	name, err := token.GenerateSigningKey(keysDir)
	if err != nil {
		return err
	}
	say("wrote token signing key %s", name)
	return nil
}

// ensureAdmin creates the first account, `admin`, when there is none, with
// $MCR_ADMIN_PASSWORD or a random password printed once.
func ensureAdmin(st *store.Store) error {
	ctx := context.Background()
	n, err := st.CountUsers(ctx)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if n > 0 {
		return nil
	}
	pw := os.Getenv("MCR_ADMIN_PASSWORD")
	generated := pw == ""
	if generated {
		var b [18]byte
		_, _ = rand.Read(b[:])
		pw = base64.RawURLEncoding.EncodeToString(b[:])
	}
	hash, err := local.HashPassword(pw)
	if err != nil {
		return fmt.Errorf("init: MCR_ADMIN_PASSWORD: %w", err)
	}
	if err := st.CreateUser(ctx, &store.User{Username: "admin", PasswordHash: hash, Role: "admin", AccountType: "human"}); err != nil {
		if errors.Is(err, store.ErrConflict) {
			// Another replica's init created it first (shared database).
			say("kept local account admin (created by another replica)")
			return nil
		}
		return fmt.Errorf("init: %w", err)
	}
	if generated {
		say("created local account admin with password: %s", pw)
		say("(shown once; change it with `mcrsrv user delete` + `user add`, or set MCR_ADMIN_PASSWORD before the first init)")
	} else {
		say("created local account admin with the password from $MCR_ADMIN_PASSWORD")
	}
	return nil
}

// apiURL is the admin API address mcr-web uses: the registry's port on
// localhost (a SAN of the self-signed certificate).
func apiURL(listen string) string {
	_, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		port = "8443"
	}
	return "https://localhost:" + port
}

// grpcClientAddr is where mcr-web on the same host reaches the gRPC
// listener ("" when it is disabled).
func grpcClientAddr(listen string) string {
	_, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" || port == "0" {
		return ""
	}
	return "localhost:" + port
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return !errors.Is(err, os.ErrNotExist)
}

// externalHost is the host[:port] clients reach the registry at: the
// --hostname given, with the listen port unless it is 443.
func externalHost(hostname, listen string) string {
	if _, port, err := net.SplitHostPort(listen); err == nil && port != "" && port != "443" && port != "0" {
		return net.JoinHostPort(hostname, port)
	}
	return hostname
}

// writeSelfSigned writes an ECDSA P-256 certificate valid for hostname,
// localhost and the loopback addresses.
func writeSelfSigned(certPath, keyPath, hostname string) error {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	dns := []string{"localhost"}
	if hostname != "" && hostname != "localhost" && net.ParseIP(hostname) == nil {
		dns = append([]string{hostname}, dns...)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: dns[0], Organization: []string{"MCR self-signed"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              dns,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	if ip := net.ParseIP(hostname); ip != nil && !ip.IsLoopback() {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	if err := writePEM(keyPath, "PRIVATE KEY", keyDER, 0o600); err != nil {
		return err
	}
	return writePEM(certPath, "CERTIFICATE", der, 0o644)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: typ, Bytes: der}); err != nil {
		_ = f.Close() // the encode error is the one to report
		return err
	}
	return f.Close()
}
