package e2e

// The gRPC admin API (issue 16) against a real mcrsrv over TLS: grpcurl
// by reflection, the standard health service, auth and roles per
// service, the policy on repository reads, FailedPrecondition while a
// collection runs.

import (
	"context"
	"crypto/tls"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	mcrv1 "git.wntrmute.dev/kyle/mcr/gen/mcr/v1"
	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// grpcDial connects to srv's gRPC listener, trusting its certificate.
func grpcDial(t *testing.T, srv *mcrtest.Server) *grpc.ClientConn {
	t.Helper()
	creds := credentials.NewTLS(&tls.Config{RootCAs: srv.CertPool(), MinVersion: tls.VersionTLS13})
	cc, err := grpc.NewClient(srv.GRPCAddr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// grpcCtx is a context carrying `authorization: Bearer tok` (none for "").
func grpcCtx(t *testing.T, tok string) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	if tok != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	}
	return ctx
}

// grpcWantCode checks an RPC's error code and that its message names
// every string of mention.
func grpcWantCode(t *testing.T, what string, err error, want codes.Code, mention ...string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != want {
		t.Errorf("%s: code %s (%q), want %s", what, st.Code(), st.Message(), want)
		return
	}
	for _, m := range mention {
		if !strings.Contains(st.Message(), m) {
			t.Errorf("%s: message %q does not name %q", what, st.Message(), m)
		}
	}
}

// grpcurlBin finds grpcurl (CI installs it with go install); without it
// the test fails in CI and is skipped elsewhere.
func grpcurlBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("grpcurl"); err == nil {
		return p
	}
	home, _ := os.UserHomeDir()
	if p := filepath.Join(home, "go", "bin", "grpcurl"); fileExists(p) {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("grpcurl is missing; CI must `go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3`")
	}
	t.Skip("grpcurl is missing (go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3)")
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestGRPCurlReflectionAndHealth(t *testing.T) {
	t.Parallel()
	bin := grpcurlBin(t)
	srv := mcrtest.Start(t)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"-cacert", srv.CACert}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("grpcurl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	list := run(srv.GRPCAddr, "list")
	for _, svc := range []string{"mcr.v1.AdminService", "mcr.v1.RegistryService", "mcr.v1.PolicyService",
		"mcr.v1.AuditService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !strings.Contains(list, svc) {
			t.Errorf("grpcurl list does not show %s:\n%s", svc, list)
		}
	}
	if out := run(srv.GRPCAddr, "mcr.v1.AdminService/Health"); !strings.Contains(out, `"status": "ok"`) {
		t.Errorf("AdminService/Health without credentials: %s", out)
	}
	if out := run("-d", `{"detail":true}`, srv.GRPCAddr, "mcr.v1.AdminService/Health"); !strings.Contains(out, `"database": "ok"`) {
		t.Errorf("AdminService/Health detail: %s", out)
	}
	if out := run(srv.GRPCAddr, "grpc.health.v1.Health/Check"); !strings.Contains(out, `"status": "SERVING"`) {
		t.Errorf("grpc.health.v1.Health/Check: %s", out)
	}
	if out := run("-d", `{"service":"mcr.v1.RegistryService"}`, srv.GRPCAddr, "grpc.health.v1.Health/Check"); !strings.Contains(out, `"status": "SERVING"`) {
		t.Errorf("grpc.health.v1.Health/Check mcr.v1.RegistryService: %s", out)
	}
	// Described by reflection down to the messages.
	if out := run(srv.GRPCAddr, "describe", "mcr.v1.RegistryService.GarbageCollect"); !strings.Contains(out, "GarbageCollectRequest") {
		t.Errorf("describe GarbageCollect: %s", out)
	}
	// A call refused for want of credentials is refused through grpcurl too.
	cmd := exec.Command(bin, "-cacert", srv.CACert, srv.GRPCAddr, "mcr.v1.RegistryService/ListRepositories")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "Unauthenticated") {
		t.Errorf("ListRepositories without a token through grpcurl: %v\n%s", err, out)
	}
	// TLS 1.2 is refused.
	conn, err := tls.Dial("tcp", srv.GRPCAddr, &tls.Config{RootCAs: srv.CertPool(), MaxVersion: tls.VersionTLS12, NextProtos: []string{"h2"}})
	if err == nil {
		_ = conn.Close()
		t.Error("gRPC listener accepted TLS 1.2")
	}
}

func TestGRPCAuthRolesAndPolicy(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	srv.AddUser(t, "alice", "alice-password-1", "user", "human")
	adminTok := polAdminSession(t, srv)
	for _, repo := range []string{"dev/app", "secret/app"} {
		polMustPush(t, srv, polAdminToken(t, srv, polPushScope(repo)), repo)
	}
	polCreateRule(t, srv, adminTok, map[string]any{
		"priority": 10, "effect": "deny", "subject_uuid": polSubject(t, srv, "alice"),
		"actions": []string{"registry:pull"}, "repositories": []string{"secret/*"},
	})
	cc := grpcDial(t, srv)
	admin, reg := mcrv1.NewAdminServiceClient(cc), mcrv1.NewRegistryServiceClient(cc)
	pol, aud := mcrv1.NewPolicyServiceClient(cc), mcrv1.NewAuditServiceClient(cc)

	// Sign in over gRPC: the token works on gRPC and REST alike.
	login, err := admin.Login(grpcCtx(t, ""), &mcrv1.LoginRequest{Username: "alice", Password: "alice-password-1"})
	if err != nil {
		t.Fatal(err)
	}
	alice := login.GetToken()
	_, err = admin.Login(grpcCtx(t, ""), &mcrv1.LoginRequest{Username: "alice", Password: "wrong"})
	grpcWantCode(t, "Login with a wrong password", err, codes.Unauthenticated, "invalid username or password")

	// No token: Unauthenticated, with /v1's message.
	_, err = reg.ListRepositories(grpcCtx(t, ""), &mcrv1.ListRepositoriesRequest{})
	grpcWantCode(t, "ListRepositories without a token", err, codes.Unauthenticated, "authentication required")
	_, err = pol.ListPolicyRules(grpcCtx(t, ""), &mcrv1.ListPolicyRulesRequest{})
	grpcWantCode(t, "ListPolicyRules without a token", err, codes.Unauthenticated, "authentication required")
	_, err = aud.ListAuditEvents(grpcCtx(t, ""), &mcrv1.ListAuditEventsRequest{})
	grpcWantCode(t, "ListAuditEvents without a token", err, codes.Unauthenticated, "authentication required")
	_, err = admin.Logout(grpcCtx(t, ""), &mcrv1.LogoutRequest{})
	grpcWantCode(t, "Logout without a token", err, codes.Unauthenticated, "authentication required")
	_, err = reg.ListRepositories(grpcCtx(t, "not-a-token"), &mcrv1.ListRepositoriesRequest{})
	grpcWantCode(t, "ListRepositories with a bad token", err, codes.Unauthenticated, "invalid or expired token")
	// A registry token is not an identity.
	_, err = reg.ListRepositories(grpcCtx(t, srv.Token(t, "alice", "alice-password-1", polPullScope("dev/app"))), &mcrv1.ListRepositoriesRequest{})
	grpcWantCode(t, "ListRepositories with a registry token", err, codes.Unauthenticated)

	// A user on admin RPCs: PermissionDenied.
	_, err = reg.GarbageCollect(grpcCtx(t, alice), &mcrv1.GarbageCollectRequest{})
	grpcWantCode(t, "user GarbageCollect", err, codes.PermissionDenied, "admin role required")
	_, err = reg.DeleteRepository(grpcCtx(t, alice), &mcrv1.DeleteRepositoryRequest{Name: "dev/app"})
	grpcWantCode(t, "user DeleteRepository", err, codes.PermissionDenied, "admin role required")
	_, err = pol.CreatePolicyRule(grpcCtx(t, alice), &mcrv1.CreatePolicyRuleRequest{Match: &mcrv1.RuleMatch{Effect: "allow"}})
	grpcWantCode(t, "user CreatePolicyRule", err, codes.PermissionDenied, "admin role required")
	_, err = aud.ListAuditEvents(grpcCtx(t, alice), &mcrv1.ListAuditEventsRequest{})
	grpcWantCode(t, "user ListAuditEvents", err, codes.PermissionDenied, "admin role required")

	// The policy hides secret/* from alice: absent from the list, NotFound.
	list, err := reg.ListRepositories(grpcCtx(t, alice), &mcrv1.ListRepositoriesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetRepositories()) != 1 || list.GetRepositories()[0].GetName() != "dev/app" || list.GetTotal() != 1 {
		t.Errorf("alice ListRepositories: %v", list)
	}
	_, err = reg.GetRepository(grpcCtx(t, alice), &mcrv1.GetRepositoryRequest{Name: "secret/app"})
	grpcWantCode(t, "alice GetRepository secret/app", err, codes.NotFound, `repository "secret/app" not found`)
	if d, err := reg.GetRepository(grpcCtx(t, alice), &mcrv1.GetRepositoryRequest{Name: "dev/app"}); err != nil || len(d.GetManifests()) != 1 {
		t.Errorf("alice GetRepository dev/app: %v %v", d, err)
	}
	_, err = reg.GetRepository(grpcCtx(t, alice), &mcrv1.GetRepositoryRequest{Name: "Bad//Name"})
	grpcWantCode(t, "GetRepository with a bad name", err, codes.InvalidArgument, "invalid repository name")

	// The admin sees and may do everything.
	list, err = reg.ListRepositories(grpcCtx(t, adminTok), &mcrv1.ListRepositoriesRequest{})
	if err != nil || list.GetTotal() != 2 {
		t.Errorf("admin ListRepositories: %v %v", list, err)
	}
	if _, err := reg.GetRepository(grpcCtx(t, adminTok), &mcrv1.GetRepositoryRequest{Name: "secret/app"}); err != nil {
		t.Errorf("admin GetRepository secret/app: %v", err)
	}
	rules, err := pol.ListPolicyRules(grpcCtx(t, adminTok), &mcrv1.ListPolicyRulesRequest{})
	if err != nil || len(rules.GetRules()) != 1 || rules.GetRules()[0].GetMatch().GetEffect() != "deny" {
		t.Errorf("admin ListPolicyRules: %v %v", rules, err)
	}
	evs, err := aud.ListAuditEvents(grpcCtx(t, adminTok), &mcrv1.ListAuditEventsRequest{EventType: "login_ok", N: 5})
	if err != nil || len(evs.GetEvents()) == 0 {
		t.Errorf("admin ListAuditEvents login_ok: %v %v", evs, err)
	}
	_, err = aud.ListAuditEvents(grpcCtx(t, adminTok), &mcrv1.ListAuditEventsRequest{EventType: "nope"})
	grpcWantCode(t, "ListAuditEvents with an unknown type", err, codes.InvalidArgument, `unknown event type "nope"`)
	if _, err := admin.Logout(grpcCtx(t, alice), &mcrv1.LogoutRequest{}); err != nil {
		t.Errorf("Logout: %v", err)
	}
	_, err = reg.ListRepositories(grpcCtx(t, alice), &mcrv1.ListRepositoriesRequest{})
	grpcWantCode(t, "ListRepositories after Logout", err, codes.Unauthenticated)
}
