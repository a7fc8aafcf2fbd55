package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"git.wntrmute.dev/kyle/mcr/adminapi"
	"git.wntrmute.dev/kyle/mcr/adminsvc"
	"git.wntrmute.dev/kyle/mcr/authplugin"
	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/authplugin/identity/local"
	"git.wntrmute.dev/kyle/mcr/authplugin/identity/mcias"
	"git.wntrmute.dev/kyle/mcr/authplugin/token"
	"git.wntrmute.dev/kyle/mcr/config"
	"git.wntrmute.dev/kyle/mcr/edge"
	"git.wntrmute.dev/kyle/mcr/edge/exchange"
	"git.wntrmute.dev/kyle/mcr/metrics"
	"git.wntrmute.dev/kyle/mcr/notifications"
	"git.wntrmute.dev/kyle/mcr/ociext"
	"git.wntrmute.dev/kyle/mcr/policyplugin"
	"git.wntrmute.dev/kyle/mcr/storageguard"
	"git.wntrmute.dev/kyle/mcr/store"
)

// auditRecorder writes security events to the log and the audit log
// (committed before the response). Never the credentials.
type auditRecorder struct{ sink *notifications.Sink }

func (a auditRecorder) record(ev store.AuditEvent) {
	if err := a.sink.Record(ev); err != nil {
		slog.Error("audit write failed", "type", ev.Type, "err", err)
	}
}

func (a auditRecorder) LoginSucceeded(r *http.Request, p *identity.Principal) {
	slog.Info("login_ok", "username", p.Username, "sub", p.Subject, "ip", authplugin.ClientIP(r))
	a.record(store.AuditEvent{Type: "login_ok", ActorID: p.Subject, Actor: p.Username, IP: authplugin.ClientIP(r)})
}

func (a auditRecorder) LoginFailed(r *http.Request, username, reason string) {
	metrics.AuthFailures.WithLabelValues(reason).Inc()
	slog.Warn("login_fail", "username", username, "reason", reason, "ip", authplugin.ClientIP(r))
	a.record(store.AuditEvent{Type: "login_fail", Actor: username, IP: authplugin.ClientIP(r), Details: map[string]any{"reason": reason}})
}

func (a auditRecorder) Denied(r *http.Request, d exchange.Denial) {
	metrics.PolicyDenials.WithLabelValues(string(d.Action)).Inc()
	slog.Warn("policy_deny", "username", d.Principal.Username, "sub", d.Principal.Subject,
		"action", string(d.Action), "repository", d.Repository, "rule", d.RuleID, "ip", authplugin.ClientIP(r))
	a.record(store.AuditEvent{Type: "policy_deny", ActorID: d.Principal.Subject, Actor: d.Principal.Username,
		Repository: d.Repository, IP: authplugin.ClientIP(r),
		Details: map[string]any{"action": string(d.Action), "rule_id": d.RuleID, "method": r.Method, "path": r.URL.Path}})
}

// openProvider builds the configured identity provider.
func openProvider(cfg *config.Config, st *store.Store, issuer *token.Issuer) (identity.Provider, error) {
	switch cfg.Identity.Provider {
	case config.ProviderMCIAS:
		return mcias.New(mcias.Options{
			ServerURL:   cfg.MCIAS.ServerURL,
			CACertFile:  cfg.MCIAS.CACert,
			ServiceName: cfg.MCIAS.ServiceName,
			Tags:        cfg.MCIAS.Tags,
		})
	default:
		return local.New(st, issuer, cfg.Identity.SessionTTL), nil
	}
}

// serve runs the registry until SIGTERM/SIGINT, then drains.
func serve(cfg *config.Config) error {
	setupLogging(cfg.Log.SlogLevel())
	if _, err := tls.LoadX509KeyPair(cfg.Server.TLSCert, cfg.Server.TLSKey); err != nil {
		return fmt.Errorf("server.tls_cert/server.tls_key: %w", err)
	}
	if cfg.Storage.Driver != config.StorageS3 {
		if err := os.MkdirAll(cfg.Storage.LayersPath, 0o700); err != nil {
			return fmt.Errorf("storage.layers_path: %w", err)
		}
	}
	// gc: hold the data-directory lock (offline `mcrsrv gc` refuses while held).
	dirLock, err := lockDataDir(cfg)
	if err != nil {
		return err
	}
	defer dirLock.Unlock()
	st, err := openStore(context.Background(), cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	keys, err := token.LoadKeySet(cfg.Identity.KeysDir)
	if err != nil {
		return fmt.Errorf("identity.keys_dir: %w", err)
	}
	issuer := token.NewIssuer(keys, cfg.Identity.Issuer, cfg.Identity.ServiceName)
	provider, err := openProvider(cfg, st, issuer)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	engine := policyplugin.NewEngine(st)
	if err := engine.Reload(context.Background()); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	authn := &authplugin.Authenticator{Issuer: issuer, Provider: provider}
	sink := notifications.NewSink(st, notifications.Options{OnCommit: metrics.ObserveCommit, SkipPulls: !cfg.Audit.RecordPulls})
	metrics.RegisterQueueDepth(func() float64 { return float64(sink.Depth()) })
	defer func() {
		if err := sink.Close(); err != nil {
			slog.Error("flushing audit events", "err", err)
		}
	}()
	rec := auditRecorder{sink: sink}
	capt := &captured{}

	secret := cfg.Server.HTTPSecret
	if secret == "" {
		secret = keys.Secret("distribution http.secret")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	guardPath := cfg.Storage.LayersPath
	if cfg.Storage.Driver == config.StorageS3 {
		guardPath = "" // object storage: no local filesystem to watch
	}
	guard := storageguard.New(guardPath, cfg.Storage.MinFreeBytes())
	if err := guard.Check(context.Background()); err != nil {
		// Start anyway, read-only in effect: pulls work, writes get 507,
		// health says degraded, and GC through this server frees space.
		slog.Error("storage: cannot take writes; starting read-only until space is freed (pulls work, pushes get 507): delete what is unused and run `mcrctl gc --grace 0s`",
			"component", "storage", "layers", cfg.Storage.LayersPath, "err", err)
	}
	metrics.RegisterStorageFree(func() float64 {
		free, err := guard.Free()
		if err != nil {
			return -1
		}
		return float64(free)
	})
	// One access controller: distribution calls it for its routes, ociext
	// for the ones MCR answers itself.
	ac := authplugin.NewAccessController(engine, cfg.Identity.ServiceName, cfg.Server.Hostname)
	if cfg.Server.Hostname == "" {
		slog.Warn("server.hostname is not set: token realms follow the client's Host header; set it to the registry's external host[:port]")
	}
	app, err := newApp(context.Background(), distributionConfig(cfg, ac, secret, sink, capt, guard))
	if err != nil {
		return err
	}
	// gc: write gate, engine over the captured driver, runner (see gc.go).
	gcs, err := newServerGC(cfg, st, capt, rec.record)
	if err != nil {
		return err
	}
	defer gcs.Close()

	svc := adminsvc.New(adminsvc.Options{
		Store: st, Authn: authn, Policy: engine, Recorder: rec,
		Reload: func() error { return engine.Reload(context.Background()) },
		Audit:  func(_ context.Context, ev store.AuditEvent) error { return sink.Record(ev) },
		DeleteRepository: func(ctx context.Context, name string, actor *identity.Principal, ip string) error {
			return deleteRepository(ctx, capt, st, sink, name, actor, ip)
		},
		StorageCheck: func() error {
			if err := storageCheck(cfg, capt); err != nil {
				return err
			}
			return guard.Check(context.Background())
		},
		GC: gcs.runner, Snapshot: gcs.snapshot, // gc
	})
	api := adminapi.New(adminapi.Options{Service: svc})
	handler := edge.Handler(edge.Options{
		Registry: app,
		Auth:     &authplugin.Edge{Authn: authn, Service: cfg.Identity.ServiceName, Hostname: cfg.Server.Hostname, Recorder: rec},
		Storage:  storageguard.Wrap,
		OCI: ociext.Options{Store: st, Access: ac, Policy: engine, Registry: capt.get,
			CatalogMax: cfg.Storage.CatalogMaxEntries, BodyTimeout: cfg.Server.ReadTimeout},
		Gate: gcs.gate,
		Token: &authplugin.TokenHandler{
			Authn: authn, Policy: engine, Recorder: rec,
			TokenTTL: cfg.Identity.TokenTTL, RefreshTTL: cfg.Identity.RefreshTTL,
		},
		Admin: api,
	})

	if cfg.Server.MetricsAddr != "" {
		ml, err := net.Listen("tcp", cfg.Server.MetricsAddr)
		if err != nil {
			return fmt.Errorf("server.metrics_addr: %w", err)
		}
		msrv := &http.Server{Handler: metrics.DebugHandler(cfg.Server.Pprof), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = msrv.Serve(ml) }()
		defer msrv.Close()
		slog.Info("metrics listening", "addr", ml.Addr().String(), "pprof", cfg.Server.Pprof)
	}
	srv := &http.Server{
		Addr:              cfg.Server.ListenAddr,
		Handler:           handler,
		ReadHeaderTimeout: cfg.Server.ReadTimeout,
		WriteTimeout:      cfg.Server.WriteTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS13},
		ErrorLog:          slog.NewLogLogger(slog.Default().Handler(), slog.LevelDebug),
	}
	ln, err := net.Listen("tcp", cfg.Server.ListenAddr)
	if err != nil {
		return fmt.Errorf("server.listen_addr: %w", err)
	}
	stopPrune := startAuditPruner(st, cfg.Audit.RetentionDays)
	defer stopPrune()
	slog.Info("mcrsrv listening", "addr", ln.Addr().String(), "version", version,
		"identity", provider.Name(), "storage", cfg.Storage.Driver, "layers", cfg.Storage.LayersPath)
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, cfg.Server.TLSCert, cfg.Server.TLSKey) }()
	gl, err := startGRPC(cfg, svc)
	if err != nil {
		_ = srv.Close()
		return err
	}

	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
	case err := <-gl.failed():
		_ = srv.Close()
		return fmt.Errorf("grpc serve: %w", err)
	case <-ctx.Done():
		slog.Info("shutting down: draining in-flight requests", "timeout", cfg.Server.ShutdownTimeout)
		shCtx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
		defer cancel()
		start := time.Now()
		grpcDrained := make(chan struct{})
		go func() { gl.drain(shCtx); close(grpcDrained) }()
		if err := srv.Shutdown(shCtx); err != nil {
			slog.Warn("drain timed out; closing remaining connections", "err", err)
			_ = srv.Close()
		}
		<-grpcDrained
		slog.Info("drained", "took", time.Since(start).Round(time.Millisecond))
	}
	if err := app.Shutdown(); err != nil {
		slog.Warn("registry shutdown", "err", err)
	}
	slog.Info("mcrsrv stopped")
	return nil
}
