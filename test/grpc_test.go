package e2e

// The gRPC admin API (issue 16) against a real mcrsrv over TLS: grpcurl
// by reflection, the standard health service, auth and roles per
// service, the policy on repository reads, FailedPrecondition while a
// collection runs.

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
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
	_, err = admin.UnlockAccount(grpcCtx(t, alice), &mcrv1.UnlockAccountRequest{Username: "alice"})
	grpcWantCode(t, "user UnlockAccount", err, codes.PermissionDenied, "admin role required")
	_, err = admin.UnlockAccount(grpcCtx(t, ""), &mcrv1.UnlockAccountRequest{Username: "alice"})
	grpcWantCode(t, "UnlockAccount without a token", err, codes.Unauthenticated, "authentication required")

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

// GarbageCollect while a collection runs: FailedPrecondition with /v1's
// 409 message. A manifest PUT held in flight keeps the collection waiting
// at the write gate, so the run lasts until the test lets it finish.
func TestGRPCGarbageCollectWhileRunning(t *testing.T) {
	t.Parallel()
	// The collection is held inside its gated section by a test hook (a
	// stalled client no longer holds one: see TestEdgeStalledPutsHoldNothing).
	hold := filepath.Join(t.TempDir(), "hold")
	if err := os.WriteFile(hold, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := mcrtest.Start(t, mcrtest.WithConfig("gc.max_wait", `"20s"`), mcrtest.WithEnv("MCR_TEST_GC_HOLD_FILE="+hold))
	adminTok := polAdminSession(t, srv)
	img := gcImage(t, nil, 1, 4<<10)
	if err := remote.Write(ref(t, srv, "gc/app:v1"), img, remoteOpts(t, srv, adminAuth(), nil)...); err != nil {
		t.Fatal(err)
	}
	reg := mcrv1.NewRegistryServiceClient(grpcDial(t, srv))
	first, err := reg.GarbageCollect(grpcCtx(t, adminTok), &mcrv1.GarbageCollectRequest{})
	if err != nil {
		t.Fatalf("GarbageCollect: %v", err)
	}
	gcWaitOutput(t, srv, "holding the collection")
	_, err = reg.GarbageCollect(grpcCtx(t, adminTok), &mcrv1.GarbageCollectRequest{})
	var restMsg map[string]string
	restStatus := gcAPI(t, srv, http.MethodPost, "/v1/gc", adminTok, nil, &restMsg)
	_, rerr := reg.Reconcile(grpcCtx(t, adminTok), &mcrv1.ReconcileRequest{})
	st, stErr := reg.GetGCStatus(grpcCtx(t, adminTok), &mcrv1.GetGCStatusRequest{})
	if err := os.Remove(hold); err != nil {
		t.Fatal(err)
	}
	gcWaitID(t, reg, adminTok, first.GetId())
	grpcWantCode(t, "GarbageCollect while a run is in progress", err, codes.FailedPrecondition, "already running")
	grpcWantCode(t, "Reconcile while a run is in progress", rerr, codes.FailedPrecondition, "already running")
	if restStatus != http.StatusConflict || restMsg["error"] != status.Convert(err).Message() {
		t.Errorf("/v1 %d says %q, gRPC says %q", restStatus, restMsg["error"], status.Convert(err).Message())
	}
	if stErr != nil || !st.GetRunning() || st.GetLastRun().GetId() != first.GetId() {
		t.Errorf("GetGCStatus while running: %v %v", st, stErr)
	}
}

// gcWaitID polls GetGCStatus until run id has completed.
func gcWaitID(t *testing.T, reg mcrv1.RegistryServiceClient, tok string, id int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		st, err := reg.GetGCStatus(grpcCtx(t, tok), &mcrv1.GetGCStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if r := st.GetLastRun(); r.GetId() >= id && !st.GetRunning() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("gc run %d did not complete", id)
}

// SIGTERM with a call in flight (a Login the identity service holds):
// the call completes, new calls are refused, the server exits 0 within
// the drain.
func TestGRPCDrainOnSIGTERM(t *testing.T) {
	t.Parallel()
	fake, srv := startMCIAS(t, mcrtest.WithConfig("server.shutdown_timeout", `"30s"`))
	fake.AddUser("carol", "carol-password-1", "human", "user")
	cc := grpcDial(t, srv)
	admin := mcrv1.NewAdminServiceClient(cc)
	if _, err := admin.Health(grpcCtx(t, ""), &mcrv1.HealthRequest{}); err != nil {
		t.Fatal(err) // the connection is up before the drain starts
	}
	release := fake.HoldLogins()
	defer release()
	type result struct {
		r   *mcrv1.LoginResponse
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := admin.Login(grpcCtx(t, ""), &mcrv1.LoginRequest{Username: "carol", Password: "carol-password-1"})
		done <- result{r, err}
	}()
	waitFor(t, "the login to reach the identity service", func() bool { return fake.Held() == 1 })
	start := time.Now()
	if err := srv.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the server to start draining", func() bool { return strings.Contains(srv.Output.String(), "shutting down") })
	// Draining: the listener takes no new connections.
	fresh := mcrv1.NewAdminServiceClient(grpcDial(t, srv))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	_, err := fresh.Health(ctx, &mcrv1.HealthRequest{})
	cancel()
	if err == nil {
		t.Error("a new connection was served while draining")
	}
	select {
	case <-srv.Done():
		t.Fatalf("exited before the in-flight call finished: %v", srv.ExitErr())
	default:
	}
	release()
	res := <-done
	if res.err != nil || res.r.GetToken() == "" {
		t.Errorf("in-flight Login: %v %v", res.r, res.err)
	}
	select {
	case <-srv.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("mcrsrv did not exit within the drain")
	}
	if err := srv.ExitErr(); err != nil {
		t.Errorf("exit: %v\n%s", err, srv.Output.String())
	}
	t.Logf("SIGTERM to exit with a call in flight: %s", time.Since(start).Round(time.Millisecond))
}

// waitFor polls cond until it holds (at most 20 s).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Every RPC is counted by method and code on /metrics, and the log
// records each call (method, peer, code) but never the token.
func TestGRPCMetricsAndLogs(t *testing.T) {
	t.Parallel()
	metricsAddr := mcrtest.FreeAddr(t)
	srv := mcrtest.Start(t, mcrtest.WithConfig("server.metrics_addr", `"`+metricsAddr+`"`))
	admin := polAdminSession(t, srv)
	cc := grpcDial(t, srv)
	reg := mcrv1.NewRegistryServiceClient(cc)
	for range 3 {
		if _, err := reg.ListRepositories(grpcCtx(t, admin), &mcrv1.ListRepositoriesRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := reg.ListRepositories(grpcCtx(t, "wrong-token"), &mcrv1.ListRepositoriesRequest{})
	grpcWantCode(t, "bad token", err, codes.Unauthenticated)
	if _, err := mcrv1.NewAdminServiceClient(cc).Health(grpcCtx(t, ""), &mcrv1.HealthRequest{}); err != nil {
		t.Fatal(err)
	}
	// A method nobody registered is Unimplemented and adds no label.
	err = cc.Invoke(grpcCtx(t, admin), "/mcr.v1.NoSuchService/Rnd12345", &mcrv1.HealthRequest{}, &mcrv1.HealthResponse{})
	grpcWantCode(t, "unknown method", err, codes.Unimplemented)
	samples := metParse(t, metScrape(t, metricsAddr))
	for _, s := range samples {
		if s.Name == "mcr_grpc_requests_total" && strings.Contains(s.Labels["method"], "NoSuchService") {
			t.Errorf("an unknown method made a label: %v", s.Labels)
		}
	}
	for _, c := range []struct {
		method, code string
		min          float64
	}{
		{"/mcr.v1.RegistryService/ListRepositories", "OK", 3},
		{"/mcr.v1.RegistryService/ListRepositories", "Unauthenticated", 1},
		{"/mcr.v1.AdminService/Health", "OK", 1},
	} {
		v, ok := metSum(samples, "mcr_grpc_requests_total", map[string]string{"method": c.method, "code": c.code})
		if !ok || v < c.min {
			t.Errorf("mcr_grpc_requests_total{method=%q,code=%q} = %v (present %v), want ≥ %v", c.method, c.code, v, ok, c.min)
		}
	}
	if _, ok := metSum(samples, "mcr_grpc_request_duration_seconds_count", map[string]string{"method": "/mcr.v1.RegistryService/ListRepositories"}); !ok {
		t.Error("/metrics has no mcr_grpc_request_duration_seconds for ListRepositories")
	}
	log := srv.Output.String()
	if !strings.Contains(log, "/mcr.v1.RegistryService/ListRepositories") || !strings.Contains(log, "code=Unauthenticated") {
		t.Errorf("the log does not record the calls:\n%s", log)
	}
	for _, secret := range []string{admin, "wrong-token"} {
		if strings.Contains(log, secret) {
			t.Errorf("the log contains a token %q", secret[:8])
		}
	}
}

// server.grpc_addr = "" disables the listener; $PORT_GRPC moves it.
func TestGRPCListenerConfig(t *testing.T) {
	t.Parallel()
	off := mcrtest.Start(t, mcrtest.WithConfig("server.grpc_addr", `""`))
	if strings.Contains(off.Output.String(), "grpc listening") {
		t.Errorf("grpc_addr \"\" still listens:\n%s", off.Output.String())
	}
	if c, err := net.DialTimeout("tcp", off.GRPCAddr, time.Second); err == nil {
		_ = c.Close()
		t.Errorf("something listens on %s with grpc_addr \"\"", off.GRPCAddr)
	}
	_, port, _ := net.SplitHostPort(mcrtest.FreeAddr(t))
	moved := mcrtest.Start(t, mcrtest.WithEnv("PORT_GRPC="+port))
	moved.GRPCAddr = "127.0.0.1:" + port
	if _, err := mcrv1.NewAdminServiceClient(grpcDial(t, moved)).Health(grpcCtx(t, ""), &mcrv1.HealthRequest{}); err != nil {
		t.Errorf("Health on $PORT_GRPC=%s: %v", port, err)
	}
}
