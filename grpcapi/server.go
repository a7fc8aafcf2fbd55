// Package grpcapi is MCR's gRPC admin API (mcr.v1, port 9443): thin
// handlers over the same business logic as /v1 (package adminsvc), behind
// the interceptor chain request logger → metrics → auth → role, plus the
// standard grpc.health.v1 service and server reflection (grpcurl,
// Kubernetes gRPC probes).
//
//	gs := grpcapi.NewServer(svc, tlsConfig, proxies)
//	go gs.Serve(ln)
//	defer gs.GracefulStop()
package grpcapi

import (
	"crypto/tls"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"git.wntrmute.dev/kyle/mcr/adminsvc"
	"git.wntrmute.dev/kyle/mcr/clientip"
	mcrv1 "git.wntrmute.dev/kyle/mcr/gen/mcr/v1"
)

// Server is the gRPC server with its health service.
type Server struct {
	*grpc.Server
	// Health is the grpc.health.v1 service: SERVING for "" and every
	// mcr.v1 service until Shutdown marks them NOT_SERVING.
	Health *health.Server
}

// serviceNames are the mcr.v1 services, as health checks name them.
var serviceNames = []string{
	mcrv1.AdminService_ServiceDesc.ServiceName,
	mcrv1.RegistryService_ServiceDesc.ServiceName,
	mcrv1.PolicyService_ServiceDesc.ServiceName,
	mcrv1.AuditService_ServiceDesc.ServiceName,
}

// NewServer builds the server over svc. tlsCfg carries the certificate;
// its minimum version is raised to TLS 1.3.
// proxies (server.trusted_proxies; nil: none) are the peers whose
// x-forwarded-for metadata names the client.
func NewServer(svc *adminsvc.Service, tlsCfg *tls.Config, proxies *clientip.Resolver) *Server {
	tlsCfg = tlsCfg.Clone()
	tlsCfg.MinVersion = tls.VersionTLS13
	a := &api{svc: svc, proxies: proxies}
	gs := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsCfg)),
		// One chain for every call, outermost first (see interceptors.go).
		grpc.ChainUnaryInterceptor(a.clientIPUnary, logUnary, metricsUnary, a.authUnary, roleUnary),
		grpc.ChainStreamInterceptor(logStream, metricsStream, a.authStream),
	)
	mcrv1.RegisterAdminServiceServer(gs, &adminServer{api: a})
	mcrv1.RegisterRegistryServiceServer(gs, &registryServer{api: a})
	mcrv1.RegisterPolicyServiceServer(gs, &policyServer{api: a})
	mcrv1.RegisterAuditServiceServer(gs, &auditServer{api: a})
	hs := health.NewServer()
	for _, name := range append([]string{""}, serviceNames...) {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
	return &Server{Server: gs, Health: hs}
}

// Shutdown reports NOT_SERVING (so probes and balancers stop sending)
// and stops gracefully: in-flight calls finish, new ones are refused.
func (s *Server) Shutdown() {
	s.Health.Shutdown()
	s.GracefulStop()
}

// api is what every service handler shares.
type api struct {
	svc     *adminsvc.Service
	proxies *clientip.Resolver
}
