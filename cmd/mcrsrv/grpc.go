package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"

	"git.wntrmute.dev/kyle/mcr/adminsvc"
	"git.wntrmute.dev/kyle/mcr/clientip"
	"git.wntrmute.dev/kyle/mcr/config"
	"git.wntrmute.dev/kyle/mcr/grpcapi"
)

// grpcListener is the gRPC admin API of `mcrsrv server` (server.grpc_addr).
type grpcListener struct {
	srv  *grpcapi.Server
	errc chan error
}

// startGRPC serves the gRPC admin API on cfg.Server.GRPCAddr with the
// REST listener's certificate; nil when the address is empty.
func startGRPC(cfg *config.Config, svc *adminsvc.Service, proxies *clientip.Resolver) (*grpcListener, error) {
	if cfg.Server.GRPCAddr == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.Server.TLSCert, cfg.Server.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("server.tls_cert/server.tls_key: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Server.GRPCAddr)
	if err != nil {
		return nil, fmt.Errorf("server.grpc_addr: %w", err)
	}
	g := &grpcListener{srv: grpcapi.NewServer(svc, &tls.Config{Certificates: []tls.Certificate{cert}}, proxies), errc: make(chan error, 1)}
	slog.Info("grpc listening", "addr", ln.Addr().String())
	go func() { g.errc <- g.srv.Serve(ln) }()
	return g, nil
}

// drain stops accepting calls and waits for in-flight ones until ctx
// ends, then cuts the rest (the SIGTERM drain shares one deadline with
// the REST listener).
func (g *grpcListener) drain(ctx context.Context) {
	if g == nil {
		return
	}
	done := make(chan struct{})
	go func() { g.srv.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		slog.Warn("grpc drain timed out; closing remaining calls")
		g.srv.Stop()
		<-done
	}
}

// failed reports a Serve that returned on its own.
func (g *grpcListener) failed() <-chan error {
	if g == nil {
		return nil
	}
	return g.errc
}
