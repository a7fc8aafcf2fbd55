package grpcapi

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"git.wntrmute.dev/kyle/mcr/adminapi/apitypes"
	"git.wntrmute.dev/kyle/mcr/adminsvc"
	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	mcrv1 "git.wntrmute.dev/kyle/mcr/gen/mcr/v1"
	"git.wntrmute.dev/kyle/mcr/metrics"
)

// The chain, outermost first, and why in this order:
//
//	logUnary     logs every call (method, peer, code, duration), including
//	             those auth refuses; never the metadata.
//	metricsUnary counts every call by method and final code.
//	authUnary    verifies the bearer in `authorization` metadata before any
//	             handler runs (public methods excepted) and puts the
//	             principal in the context.
//	roleUnary    applies /v1's role checks: admin RPCs need the admin role,
//	             repository reads refuse guests.
//
// The service (adminsvc) checks the roles again and applies the policy
// to repository reads, exactly as for /v1.

// public methods need no credentials: health (the runbook's check), the
// sign-in that yields a token, logout (which revokes the token it is
// given), the standard health service and reflection.
var public = map[string]bool{
	mcrv1.AdminService_Health_FullMethodName: true,
	mcrv1.AdminService_Login_FullMethodName:  true,
	mcrv1.AdminService_Logout_FullMethodName: true,
}

func isPublic(method string) bool {
	return public[method] || strings.HasPrefix(method, "/grpc.health.v1.") || strings.HasPrefix(method, "/grpc.reflection.")
}

// adminMethods need the admin role, as their /v1 routes do.
var adminMethods = map[string]bool{
	mcrv1.AdminService_UnlockAccount_FullMethodName:       true,
	mcrv1.AdminService_RevokeAccount_FullMethodName:       true,
	mcrv1.RegistryService_DeleteRepository_FullMethodName: true,
	mcrv1.RegistryService_GarbageCollect_FullMethodName:   true,
	mcrv1.RegistryService_Reconcile_FullMethodName:        true,
	mcrv1.RegistryService_GetGCStatus_FullMethodName:      true,
	mcrv1.RegistryService_Snapshot_FullMethodName:         true,
	mcrv1.RegistryService_ListUploads_FullMethodName:      true,
	mcrv1.RegistryService_PurgeUploads_FullMethodName:     true,
	mcrv1.RegistryService_ReconcileIndex_FullMethodName:   true,
	mcrv1.PolicyService_ListPolicyRules_FullMethodName:    true,
	mcrv1.PolicyService_GetPolicyRule_FullMethodName:      true,
	mcrv1.PolicyService_CreatePolicyRule_FullMethodName:   true,
	mcrv1.PolicyService_UpdatePolicyRule_FullMethodName:   true,
	mcrv1.PolicyService_DeletePolicyRule_FullMethodName:   true,
	mcrv1.AuditService_ListAuditEvents_FullMethodName:     true,
}

// bearer returns the token of `authorization: Bearer <token>` metadata.
func bearer(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			return strings.TrimSpace(v[7:])
		}
	}
	return ""
}

// peerIP is the client's address without the port.
func peerIP(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(p.Addr.String())
	if err != nil {
		return p.Addr.String()
	}
	return host
}

// caller is the service's view of a call.
func caller(ctx context.Context) adminsvc.Caller {
	m, _ := grpc.Method(ctx)
	return adminsvc.Caller{Principal: identity.PrincipalFrom(ctx), IP: clientIP(ctx), Method: m}
}

type clientIPKey struct{}

// clientIP is the address clientIPUnary resolved, else the peer's.
func clientIP(ctx context.Context) string {
	if ip, ok := ctx.Value(clientIPKey{}).(string); ok {
		return ip
	}
	return peerIP(ctx)
}

// clientIPUnary resolves the caller's address once: the peer, or the
// x-forwarded-for metadata when the peer is a trusted proxy (mcr-web
// naming the browser it signs in for).
func (a *api) clientIPUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	ip := a.proxies.ResolveFrom(peerIP(ctx), md.Get("x-forwarded-for"))
	return h(context.WithValue(ctx, clientIPKey{}, ip), req)
}

// toStatus maps a service error to its gRPC code with /v1's message.
func toStatus(method string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code, msg, unexpected := adminsvc.Classify(err)
	if unexpected {
		slog.Error("grpc api", "method", method, "err", err)
	}
	// RESOURCE_EXHAUSTED means three things; a detail tells a client
	// which: RetryInfo for a throttled sign-in (the wait /v1 sends as
	// Retry-After), ErrorInfo STORAGE_FULL for a full database disk (507
	// on /v1), neither for a body over the limit (413).
	var detail protoadapt.MessageV1
	if ra := adminsvc.RetryAfter(err); ra != "" {
		secs, _ := strconv.Atoi(ra)
		detail = &errdetails.RetryInfo{RetryDelay: durationpb.New(time.Duration(secs) * time.Second)}
	} else if code == adminsvc.StorageFull {
		detail = &errdetails.ErrorInfo{Reason: apitypes.ReasonStorageFull, Domain: apitypes.ErrorDomain}
	}
	if detail != nil {
		if st, derr := status.New(grpcCode[code], msg).WithDetails(detail); derr == nil {
			return st.Err()
		}
	}
	return status.Error(grpcCode[code], msg)
}

var grpcCode = map[adminsvc.Code]codes.Code{
	adminsvc.Internal: codes.Internal, adminsvc.InvalidArgument: codes.InvalidArgument,
	adminsvc.Unauthenticated: codes.Unauthenticated, adminsvc.PermissionDenied: codes.PermissionDenied,
	adminsvc.NotFound: codes.NotFound, adminsvc.FailedPrecondition: codes.FailedPrecondition,
	adminsvc.TooLarge: codes.ResourceExhausted, adminsvc.Unimplemented: codes.Unimplemented,
	adminsvc.Unavailable: codes.Unavailable, adminsvc.TooManyRequests: codes.ResourceExhausted,
	adminsvc.StorageFull: codes.ResourceExhausted,
}

func logUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	logCall(ctx, info.FullMethod, start, err)
	return resp, err
}

func logStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	start := time.Now()
	err := h(srv, ss)
	logCall(ss.Context(), info.FullMethod, start, err)
	return err
}

func logCall(ctx context.Context, method string, start time.Time, err error) {
	code := status.Code(err)
	lvl := slog.LevelInfo
	switch {
	case method == mcrv1.AdminService_Health_FullMethodName || strings.HasPrefix(method, "/grpc.health.v1."):
		lvl = slog.LevelDebug // probes every few seconds
	case code == codes.Internal || code == codes.Unknown:
		lvl = slog.LevelError
	}
	slog.Log(ctx, lvl, "grpc", "method", method, "peer", peerIP(ctx), "code", code.String(),
		"took", time.Since(start).Round(time.Microsecond))
}

func metricsUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	observe(info.FullMethod, start, err)
	return resp, err
}

func metricsStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	start := time.Now()
	err := h(srv, ss)
	observe(info.FullMethod, start, err)
	return err
}

func observe(method string, start time.Time, err error) {
	metrics.GRPCRequests.WithLabelValues(method, status.Code(err).String()).Inc()
	metrics.GRPCDuration.WithLabelValues(method).Observe(time.Since(start).Seconds())
}

// authenticate puts the verified principal of the call in the context.
func (a *api) authenticate(ctx context.Context, method string) (context.Context, error) {
	if isPublic(method) {
		return ctx, nil
	}
	p, err := a.svc.Authenticate(ctx, bearer(ctx))
	if err != nil {
		return nil, toStatus(method, err)
	}
	return identity.WithPrincipal(ctx, p), nil
}

func (a *api) authUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := a.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

// authStream authenticates streams too (today every stream is public:
// health Watch and reflection).
func (a *api) authStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := a.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return h(srv, &ctxStream{ServerStream: ss, ctx: ctx})
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

// roleUnary refuses callers without the role the method's /v1 route
// needs, before the handler reads the request.
func roleUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if isPublic(info.FullMethod) {
		return h(ctx, req)
	}
	p := identity.PrincipalFrom(ctx)
	var err error
	if adminMethods[info.FullMethod] {
		err = adminsvc.RequireAdmin(p)
	} else {
		err = adminsvc.RequireUser(p)
	}
	if err != nil {
		return nil, toStatus(info.FullMethod, err)
	}
	return h(ctx, req)
}
