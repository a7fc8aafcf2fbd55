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
	"path/filepath"
	"syscall"
	"time"

	"git.wntrmute.dev/kyle/mcr/adminapi"
	"git.wntrmute.dev/kyle/mcr/adminsvc"
	"git.wntrmute.dev/kyle/mcr/authplugin"
	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/authplugin/identity/local"
	"git.wntrmute.dev/kyle/mcr/authplugin/identity/mcias"
	"git.wntrmute.dev/kyle/mcr/authplugin/token"
	"git.wntrmute.dev/kyle/mcr/clientip"
	"git.wntrmute.dev/kyle/mcr/config"
	"git.wntrmute.dev/kyle/mcr/edge"
	"git.wntrmute.dev/kyle/mcr/edge/exchange"
	"git.wntrmute.dev/kyle/mcr/internal/cli"
	"git.wntrmute.dev/kyle/mcr/metrics"
	"git.wntrmute.dev/kyle/mcr/notifications"
	"git.wntrmute.dev/kyle/mcr/ociext"
	"git.wntrmute.dev/kyle/mcr/policyplugin"
	"git.wntrmute.dev/kyle/mcr/revocation"
	"git.wntrmute.dev/kyle/mcr/storageguard"
	"git.wntrmute.dev/kyle/mcr/store"
	"git.wntrmute.dev/kyle/mcr/throttle"
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

func (a auditRecorder) lockedOut(r *http.Request, lo throttle.Lockout) {
	metrics.AuthFailures.WithLabelValues("locked").Inc()
	ev := store.AuditEvent{Type: "login_locked", IP: authplugin.ClientIP(r),
		Details: map[string]any{"key": string(lo.Kind), "failures": lo.Failures, "until": lo.Until.UTC().Format(time.RFC3339)}}
	if lo.Kind == throttle.Account {
		ev.Actor = lo.Key
	}
	slog.Warn("login_locked", "key", string(lo.Kind), "value", lo.Key, "failures", lo.Failures, "until", lo.Until, "ip", ev.IP)
	a.record(ev)
}

func (a auditRecorder) refreshReused(r *http.Request, c *token.Claims) {
	slog.Warn("refresh_reuse: a rotated refresh token was presented again; its family is revoked",
		"username", c.Username, "sub", c.Subject, "ip", authplugin.ClientIP(r))
	a.record(store.AuditEvent{Type: "refresh_reuse", ActorID: c.Subject, Actor: c.Username, IP: authplugin.ClientIP(r),
		Details: map[string]any{"family": c.Family}})
}

// accounts serves /v1/accounts: unlock in this process's throttle, revoke
// through the store (and at once in this process's generation cache).
type accounts struct {
	signIn *authplugin.SignIn
	st     *store.Store
	// changed makes every replica re-read the generations.
	changed func(ctx context.Context) error
}

func (a accounts) Unlock(username string) bool { return a.signIn.Unlock(username) }

func (a accounts) RevokeTokens(ctx context.Context, subject string) error {
	if err := a.st.RevokeSubject(ctx, subject); err != nil {
		return err
	}
	return a.changed(ctx)
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

// serveOptions are the server's command-line switches.
type serveOptions struct {
	// integrityCheck runs integrity_check at start-up instead of quick_check.
	integrityCheck bool
}

// serve runs the registry until SIGTERM/SIGINT, then drains. A damaged
// database fails start-up with one message that says so and points to the
// restore procedure, whichever step first tripped over it.
func serve(cfg *config.Config, so serveOptions) error {
	err := serveRegistry(cfg, so)
	if err != nil && store.IsCorrupt(err) {
		return corruptDatabase(cfg, err)
	}
	return err
}

// corruptDatabase is the start-up failure for a damaged database.
func corruptDatabase(cfg *config.Config, err error) error {
	return fmt.Errorf("database: %s is corrupt; refusing to start. Restore it from the newest snapshot "+
		"(docs/runbook.md, \"Restore from snapshot\"): keep the damaged file (mv %[1]s %[1]s.corrupt, with its -wal and -shm), "+
		"copy %[2]s/mcr-YYYYMMDD-HHMMSS.db to %[1]s, start the server; the repository index is rebuilt from storage in the background. Cause: %[3]w",
		cfg.Database.Path, filepath.Join(cfg.DataDir(), "backups"), err)
}

// checkDatabase runs the start-up integrity check within
// database.check_timeout.
func checkDatabase(cfg *config.Config, st *store.Store, full bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Database.CheckTimeout)
	defer cancel()
	start := time.Now()
	res := st.Check(ctx, full)
	switch {
	case res.Err != nil:
		return fmt.Errorf("database: integrity check: %w", res.Err)
	case res.Incomplete:
		slog.Warn("database: integrity check did not finish within database.check_timeout; starting anyway (run `sqlite3 mcr.db 'PRAGMA integrity_check'` offline)",
			"component", "database", "timeout", cfg.Database.CheckTimeout, "full", full)
	default:
		slog.Info("database: integrity check ok", "component", "database", "full", full, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// startDatabaseChecks re-runs quick_check every database.check_interval;
// the result feeds /v1/health?detail=1.
func startDatabaseChecks(cfg *config.Config, st *store.Store) (stop func()) {
	if cfg.Database.CheckInterval <= 0 {
		return func() {}
	}
	return every(cfg.Database.CheckInterval, cfg.Database.CheckInterval, func(ctx context.Context) {
		cctx, ccancel := context.WithTimeout(ctx, cfg.Database.CheckTimeout)
		res := st.Check(cctx, false)
		ccancel()
		if res.Err != nil && ctx.Err() == nil {
			slog.Error("database: periodic integrity check found damage; restore from a snapshot (docs/runbook.md)",
				"component", "database", "err", res.Err)
		}
	})
}

func serveRegistry(cfg *config.Config, so serveOptions) error {
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
	defer cli.Closing("the data-directory lock", dirLock.Unlock)
	st, err := openStore(context.Background(), cfg)
	var released int64 // the reserve deleted to start: pushes leave it to the database
	if err != nil && isNoSpace(err) && cfg.Database.Driver != config.DatabasePostgres {
		if n := releaseReserve(cfg); n > 0 {
			released = n
			slog.Error("database: the filesystem holding the database is full; released the database reserve to start (read-only until space is freed: mcrctl uploads purge, repo delete, gc --grace 0s)",
				"component", "database", "released_bytes", n)
			st, err = openStore(context.Background(), cfg)
		}
	}
	if err != nil {
		if isNoSpace(err) {
			return fmt.Errorf("%w (the filesystem holding the database is full and no database reserve is left: free space on it, e.g. stale uploads under storage.layers_path, then start again)", err)
		}
		return err
	}
	defer cli.Closing("the database", st.Close)
	if err := ensureReserve(cfg, func(dir string) (int64, error) { return storageguard.New(dir, 0).Free() }); err != nil {
		slog.Warn("database: reserve", "component", "database", "err", err)
	}
	if err := checkDatabase(cfg, st, so.integrityCheck); err != nil {
		return err
	}
	stopChecks := startDatabaseChecks(cfg, st)
	defer stopChecks()
	keys, err := token.LoadKeySet(cfg.Identity.KeysDir)
	if err != nil {
		return fmt.Errorf("identity.keys_dir: %w", err)
	}
	issuer := token.NewIssuer(keys, cfg.Identity.Issuer, cfg.Identity.ServiceName)
	// Every token carries its subject's generation; an account change
	// bumps it (revocation acts on the next request, from memory).
	revs := revocation.New(st, st.AccountsMarker(), revocation.DefaultPoll, nil)
	issuer.SetGenerations(revs)
	proxies, err := clientip.New(cfg.Server.TrustedProxies)
	if err != nil {
		return fmt.Errorf("server.trusted_proxies: %w", err)
	}
	provider, err := openProvider(cfg, st, issuer)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	engine := policyplugin.NewEngine(st)
	if err := engine.Reload(context.Background()); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	authn := &authplugin.Authenticator{Issuer: issuer, Provider: provider}
	ix := newIndexer(st)
	sink := notifications.NewSink(st, notifications.Options{OnCommit: metrics.ObserveCommit, SkipPulls: !cfg.Audit.RecordPulls,
		OnIndexFailure: ix.markDirty, CommitTimeout: cfg.Audit.CommitTimeout, OnFailure: metrics.ObserveAuditFailure})
	metrics.RegisterQueueDepth(func() float64 { return float64(sink.Depth()) })
	defer func() {
		if err := sink.Close(); err != nil {
			slog.Error("flushing audit events", "err", err)
		}
	}()
	rec := auditRecorder{sink: sink}
	capt := &captured{}
	ix.capt = capt

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
	// After the database reserve was released, pushes are refused until
	// the space it freed is free again on top of storage.min_free: it is
	// the database's, not the next blob's.
	guard := storageguard.New(guardPath, cfg.Storage.MinFreeBytes()+released)
	if err := guard.Check(context.Background()); err != nil {
		// Start anyway, read-only in effect: pulls work, writes get 507,
		// health says degraded, and GC through this server frees space.
		slog.Error("storage: cannot take writes; starting read-only until space is freed (pulls work, pushes get 507): delete what is unused and run `mcrctl gc --grace 0s`",
			"component", "storage", "layers", cfg.Storage.LayersPath, "err", err)
	}
	// The database's filesystem too (SQLite): a push whose audit or index
	// row finds it full answers 507 like one whose blob does
	// (notifications), and health reports storage failing for either.
	var dbGuard *storageguard.Guard
	if cfg.Database.Driver != config.DatabasePostgres {
		dbGuard = storageguard.New(filepath.Dir(cfg.Database.Path), 0)
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
	node, err := joinCluster(context.Background(), cfg, st)
	if err != nil {
		return err
	}
	gcs, err := newServerGC(cfg, st, capt, rec.record, node)
	if err != nil {
		return err
	}
	defer gcs.Close()
	reload := clusterPolicy(node, engine)
	accountsChanged := clusterAccounts(node, revs)
	if node != nil {
		node.Run()
		defer node.Close()
	}

	signIn := &authplugin.SignIn{Provider: provider, Limiter: throttle.New(cfg.Identity.Throttle(), time.Now),
		Recorder: rec, OnLockout: rec.lockedOut}
	svc := adminsvc.New(adminsvc.Options{
		Store: st, Authn: authn, Policy: engine, Recorder: rec,
		SignIn: signIn, Accounts: accounts{signIn: signIn, st: st, changed: accountsChanged},
		Reload:     reload,
		Audit:      func(ctx context.Context, ev store.AuditEvent) error { return sink.RecordContext(ctx, ev) },
		AuditCheck: sink.Healthy,
		DeleteRepository: func(ctx context.Context, name string, actor *identity.Principal, ip string) error {
			return deleteRepository(ctx, capt, st, sink, name, actor, ip)
		},
		StorageCheck: func() error {
			if err := storageCheck(cfg, capt); err != nil {
				return err
			}
			if err := guard.Check(context.Background()); err != nil {
				return err
			}
			if dbGuard != nil {
				if err := dbGuard.Check(context.Background()); err != nil {
					return fmt.Errorf("database filesystem: %w", err)
				}
			}
			return nil
		},
		GC: gcs.runner, Snapshot: gcs.snapshot, // gc
		Uploads: uploadService{capt: capt},
		ReconcileIndex: func(ctx context.Context) (any, error) {
			return ix.reconcile(ctx, nil)
		},
	})
	api := adminapi.New(adminapi.Options{Service: svc})
	handler := edge.Handler(edge.Options{
		ClientIP: proxies.Middleware,
		Registry: app,
		Auth:     &authplugin.Edge{Authn: authn, Service: cfg.Identity.ServiceName, Hostname: cfg.Server.Hostname, Recorder: rec},
		Storage:  storageguard.Wrap,
		OCI: ociext.Options{Store: st, Access: ac, Policy: engine, Registry: capt.get,
			CatalogMax: cfg.Storage.CatalogMaxEntries, BodyTimeout: cfg.Server.ReadTimeout},
		Gate: gcs.gate,
		Token: &authplugin.TokenHandler{
			Authn: authn, Policy: engine, Recorder: rec, SignIn: signIn, Families: st, OnRefreshReuse: rec.refreshReused,
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
		defer cli.Closing("the metrics listener", msrv.Close)
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
	stopOptimize := startOptimizer(st)
	defer stopOptimize()
	slog.Info("mcrsrv listening", "addr", ln.Addr().String(), "version", version,
		"identity", provider.Name(), "storage", cfg.Storage.Driver, "layers", cfg.Storage.LayersPath)
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, cfg.Server.TLSCert, cfg.Server.TLSKey) }()
	gl, err := startGRPC(cfg, svc, proxies)
	if err != nil {
		_ = srv.Close()
		return err
	}
	ixCtx, ixCancel := context.WithCancel(context.Background())
	ixDone := make(chan struct{})
	go func() { defer close(ixDone); ix.run(ixCtx) }()
	defer func() { ixCancel(); <-ixDone }()

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
