// Command mcr-web is MCR's web dashboard (DESIGN §1, §11): it reads the
// [web] section of mcr.toml and serves the UI, talking to mcrsrv over its
// gRPC admin API at web.grpc_addr (the REST API at web.api_url when that
// is empty). web.api_url also serves manifest bodies (/v2), which have no
// gRPC equivalent.
//
//	mcr-web server --config /srv/mcr/mcr.toml
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"git.wntrmute.dev/kyle/mcr/clientip"
	"git.wntrmute.dev/kyle/mcr/config"
	"git.wntrmute.dev/kyle/mcr/grpcclient"
	"git.wntrmute.dev/kyle/mcr/internal/cli"
	"git.wntrmute.dev/kyle/mcr/webui"
)

// version is set at link time: -X main.version=...
var version = "dev"

func main() {
	root := &cobra.Command{
		Use:     "mcr-web",
		Short:   "MCR web dashboard",
		Version: version,
	}
	root.AddCommand(serverCmd(), versionCmd())
	os.Exit(cli.Run(root, os.Stderr))
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(*cobra.Command, []string) { fmt.Println("mcr-web", version) },
	}
}

func serverCmd() *cobra.Command {
	var cfgPath, keyFile string
	c := &cobra.Command{
		Use:   "server",
		Short: "Serve the web dashboard ([web] listen_addr) in front of mcrsrv's admin API ([web] api_url)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			return serve(cfg, keyFile)
		},
	}
	c.Flags().StringVar(&cfgPath, "config", "", "path to mcr.toml")
	c.Flags().StringVar(&keyFile, "session-key", "", "file holding the session key (default: web-session.key in the data directory; a random per-process key if it cannot be created)")
	_ = c.MarkFlagRequired("config")
	return c
}

// apiClient trusts web.ca_cert (or the system roots when it is empty).
func apiClient(caFile string) (*http.Client, error) {
	tlsCfg, err := apiTLS(caFile)
	if err != nil {
		return nil, err
	}
	def, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return nil, errors.New("http.DefaultTransport is not an *http.Transport")
	}
	tr := def.Clone()
	tr.TLSClientConfig = tlsCfg
	tr.MaxIdleConnsPerHost = 16
	return &http.Client{Transport: tr, Timeout: apiTimeout}, nil
}

// apiTLS is the TLS configuration of both links to mcrsrv.
func apiTLS(caFile string) (*tls.Config, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS13}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("config: web.ca_cert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("config: web.ca_cert: %s holds no PEM certificate", caFile)
		}
		tlsCfg.RootCAs = pool
	}
	return tlsCfg, nil
}

// sessionKey reads the session key from path, creating it (0600) when
// missing; when that fails, sessions use a random key for this process
// only (users sign in again after a restart).
func sessionKey(path string) []byte {
	if b, err := os.ReadFile(path); err == nil {
		if k, err := hex.DecodeString(strings.TrimSpace(string(b))); err == nil && len(k) >= 32 {
			return k
		}
		slog.Warn("mcr-web: session key file is not 32+ hex-encoded bytes; using a per-process key", "path", path)
	} else {
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			_, werr := f.WriteString(hex.EncodeToString(k) + "\n")
			if cerr := f.Close(); werr == nil && cerr == nil {
				slog.Info("mcr-web: created session key", "path", path)
				return k
			}
			_ = os.Remove(path)
		}
		slog.Warn("mcr-web: cannot create the session key file; using a per-process key (sign-ins end on restart)", "path", path, "err", err)
	}
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}

func serve(cfg *config.Config, keyFile string) error {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.Log.SlogLevel()})))
	w := cfg.Web
	// Platform convention: the web component is handed its port in $PORT.
	if p := os.Getenv("PORT"); p != "" {
		w.ListenAddr = ":" + p
	}
	if strings.TrimSpace(w.APIURL) == "" {
		return errors.New("config: web.api_url is required for mcr-web (e.g. \"https://localhost:8443\")")
	}
	if w.ListenAddr == "" {
		return errors.New("config: web.listen_addr is required for mcr-web (e.g. \":8080\")")
	}
	if (w.TLSCert == "") != (w.TLSKey == "") {
		return errors.New("config: web.tls_cert and web.tls_key must be set together")
	}
	if strings.HasPrefix(w.APIURL, "http://") {
		slog.Warn("mcr-web: web.api_url is plain http; session tokens cross the network unencrypted", "api_url", w.APIURL)
	}
	hc, err := apiClient(w.CACert)
	if err != nil {
		return err
	}
	if keyFile == "" {
		keyFile = filepath.Join(cfg.DataDir(), "web-session.key")
	}
	// Behind a TLS-terminating proxy mcr-web speaks plain HTTP, but the
	// browser sees HTTPS: web.secure_cookies says so.
	secure := w.TLSCert != "" || w.SecureCookies
	proxies, err := clientip.New(w.TrustedProxies)
	if err != nil {
		return fmt.Errorf("config: web.trusted_proxies: %w", err)
	}
	var backend webui.Backend
	via := "rest"
	if w.GRPCAddr != "" {
		tlsCfg, err := apiTLS(w.CACert)
		if err != nil {
			return err
		}
		gc, err := grpcclient.Dial(w.GRPCAddr, tlsCfg, grpcclient.CallTimeout(apiTimeout))
		if err != nil {
			return fmt.Errorf("config: web.grpc_addr: %w", err)
		}
		defer cli.Closing("the gRPC connection", gc.Close)
		backend, via = webui.NewGRPCBackend(gc), "grpc "+w.GRPCAddr
	}
	ui, err := webui.New(webui.Options{
		APIURL: w.APIURL, HTTPClient: hc, Backend: backend, ServiceName: cfg.Identity.ServiceName,
		RegistryHost: cfg.Server.Hostname, SessionKey: sessionKey(keyFile), Secure: secure, Version: version,
		ClientIP: proxies,
	})
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	srv := &http.Server{
		Addr: w.ListenAddr, Handler: ui,
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 90 * time.Second, IdleTimeout: 120 * time.Second,
	}
	ln, err := net.Listen("tcp", w.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", w.ListenAddr, err)
	}
	serveTLS := w.TLSCert != ""
	scheme := "http"
	if serveTLS {
		scheme = "https"
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS13}
	}
	slog.Info("mcr-web listening", "addr", ln.Addr().String(), "url", scheme+"://"+displayAddr(ln.Addr().String()), "api_url", w.APIURL,
		"admin_api", via, "secure_cookies", secure, "version", version)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() {
		if serveTLS {
			errc <- srv.ServeTLS(ln, w.TLSCert, w.TLSKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	slog.Info("mcr-web shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// displayAddr turns ":8080" or "[::]:8080" into "localhost:8080" for the
// log line a newcomer copies into a browser.
func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// apiTimeout bounds each call to mcrsrv's admin API, REST or gRPC alike: a
// server that stops answering fails the page instead of holding it.
const apiTimeout = 30 * time.Second
