// Package grpcclient is the client side of MCR's gRPC admin API (mcr.v1)
// for mcrctl and mcr-web: it dials over TLS, sends the bearer token as
// `authorization` metadata and converts every answer to the /v1 wire types
// of adminapi/apitypes, so a caller handles one set of types whichever
// transport it uses. It imports no server package (no store, no
// distribution).
//
//	c, err := grpcclient.Dial("mcr.example.net:9443", tlsConfig)
//	list, err := c.Repositories(ctx, token, "", "", 50, 0)
package grpcclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"git.wntrmute.dev/kyle/mcr/adminapi/apitypes"
	"git.wntrmute.dev/kyle/mcr/clientip"
	mcrv1 "git.wntrmute.dev/kyle/mcr/gen/mcr/v1"
)

// Client is a connection to mcrsrv's gRPC listener. It is safe for
// concurrent use.
type Client struct {
	cc       *grpc.ClientConn
	admin    mcrv1.AdminServiceClient
	registry mcrv1.RegistryServiceClient
	policy   mcrv1.PolicyServiceClient
	audit    mcrv1.AuditServiceClient
	addr     string
}

// Dial connects (lazily) to addr (host:port) over TLS with cfg (its
// minimum version is raised to TLS 1.3, as the server requires).
func Dial(addr string, cfg *tls.Config, opts ...Option) (*Client, error) {
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg = cfg.Clone()
	cfg.MinVersion = tls.VersionTLS13
	var o dialOptions
	for _, f := range opts {
		f(&o)
	}
	// Answers as large as /v1's (a repository with thousands of
	// manifests) fit: 64 MiB, what mcrctl accepts over REST.
	dial := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20))}
	if o.callTimeout > 0 {
		dial = append(dial, grpc.WithUnaryInterceptor(deadline(o.callTimeout)))
	}
	cc, err := grpc.NewClient(addr, dial...)
	if err != nil {
		return nil, fmt.Errorf("grpc %s: %w", addr, err)
	}
	return &Client{addr: addr, cc: cc, admin: mcrv1.NewAdminServiceClient(cc), registry: mcrv1.NewRegistryServiceClient(cc),
		policy: mcrv1.NewPolicyServiceClient(cc), audit: mcrv1.NewAuditServiceClient(cc)}, nil
}

// Option configures Dial.
type Option func(*dialOptions)

type dialOptions struct{ callTimeout time.Duration }

// CallTimeout bounds every call whose context has no deadline of its own,
// so a server that stops answering fails the caller's request instead of
// holding it (mcr-web's REST client has the same bound).
func CallTimeout(d time.Duration) Option { return func(o *dialOptions) { o.callTimeout = d } }

func deadline(d time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// Addr is the address dialled.
func (c *Client) Addr() string { return c.addr }

// Close closes the connection.
func (c *Client) Close() error { return c.cc.Close() }

// Error is a non-OK answer: the gRPC code and the server's message (the
// message /v1 gives for the same failure).
type Error struct {
	Message string
	// Reason is the server's ErrorInfo reason, if it sent one
	// (apitypes.ReasonStorageFull: the database's disk is full).
	Reason string
	// RetryAfter is the server's wait before a retry (a throttled
	// sign-in: RESOURCE_EXHAUSTED with RetryInfo), or 0.
	RetryAfter time.Duration
	Code       codes.Code
}

func (e *Error) Error() string { return e.Message }

// HTTPStatus is the status /v1 answers for the same failure, for callers
// that branch on it (401: sign in again, 404, 409 ...).
func (e *Error) HTTPStatus() int {
	switch e.Code {
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.FailedPrecondition:
		return http.StatusConflict
	case codes.ResourceExhausted:
		switch {
		case e.RetryAfter > 0:
			return http.StatusTooManyRequests
		case e.Reason == apitypes.ReasonStorageFull:
			return http.StatusInsufficientStorage
		}
		return http.StatusRequestEntityTooLarge
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

// UnreachableError means the server did not answer (connection, TLS,
// deadline): the call never reached a handler.
type UnreachableError struct {
	Err  error
	Addr string
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("the gRPC API at %s did not answer: %v", e.Addr, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// wrap turns a gRPC error into *Error or *UnreachableError.
func (c *Client) wrap(err error) error {
	if err == nil {
		return nil
	}
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		// Unavailable is also what mcrsrv answers when its identity
		// service is down; the message tells the two apart.
		if st.Message() == "identity service unavailable" || st.Message() == "identity service unavailable; try again later" {
			return &Error{Code: st.Code(), Message: st.Message()}
		}
		return &UnreachableError{Addr: c.addr, Err: err}
	}
	e := &Error{Code: st.Code(), Message: st.Message()}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.RetryInfo:
			e.RetryAfter = d.GetRetryDelay().AsDuration()
		case *errdetails.ErrorInfo:
			e.Reason = d.GetReason()
		}
	}
	return e
}

func auth(ctx context.Context, token string) context.Context {
	if token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// Health is AdminService/Health: status "ok" or "degraded" and, with
// detail, the checks.
func (c *Client) Health(ctx context.Context, detail bool) (string, map[string]string, error) {
	r, err := c.admin.Health(ctx, &mcrv1.HealthRequest{Detail: detail})
	if err != nil {
		return "", nil, c.wrap(err)
	}
	return r.GetStatus(), r.GetChecks(), nil
}

// Login exchanges credentials for an identity token.
func (c *Client) Login(ctx context.Context, username, password string) (*apitypes.LoginResult, error) {
	if ip := clientip.Forwarded(ctx); ip != "" {
		// mcrsrv believes it only from a peer in server.trusted_proxies;
		// it throttles sign-ins by it.
		ctx = metadata.AppendToOutgoingContext(ctx, "x-forwarded-for", ip)
	}
	r, err := c.admin.Login(ctx, &mcrv1.LoginRequest{Username: username, Password: password})
	if err != nil {
		return nil, c.wrap(err)
	}
	return &apitypes.LoginResult{Token: r.GetToken(), ExpiresAt: r.GetExpiresAt().AsTime().UTC().Format(time.RFC3339),
		Username: r.GetUsername(), Roles: r.GetRoles(), AccountType: r.GetAccountType()}, nil
}

// Logout revokes the token.
func (c *Client) Logout(ctx context.Context, token string) error {
	_, err := c.admin.Logout(auth(ctx, token), &mcrv1.LogoutRequest{})
	return c.wrap(err)
}

// Repositories lists a page of the repositories the caller may pull.
func (c *Client) Repositories(ctx context.Context, token, filter, last string, n, offset int) (*apitypes.RepoList, error) {
	r, err := c.registry.ListRepositories(auth(ctx, token), &mcrv1.ListRepositoriesRequest{Q: filter, Last: last,
		N: int32(n), Offset: int32(offset)}) //nolint:gosec // page sizes and offsets are small
	if err != nil {
		return nil, c.wrap(err)
	}
	return repoList(r), nil
}

// Repository returns one repository with its tags and manifests.
func (c *Client) Repository(ctx context.Context, token, name string) (*apitypes.RepoDetail, error) {
	r, err := c.registry.GetRepository(auth(ctx, token), &mcrv1.GetRepositoryRequest{Name: name})
	if err != nil {
		return nil, c.wrap(err)
	}
	return repoDetail(r), nil
}

// DeleteRepository removes a repository.
func (c *Client) DeleteRepository(ctx context.Context, token, name string) error {
	_, err := c.registry.DeleteRepository(auth(ctx, token), &mcrv1.DeleteRepositoryRequest{Name: name})
	return c.wrap(err)
}

// StartGC starts a collection (or, with reconcile, a reconciliation) and
// returns its run id.
func (c *Client) StartGC(ctx context.Context, token string, reconcile bool, o apitypes.GCRequest) (int64, error) {
	if reconcile {
		r, err := c.registry.Reconcile(auth(ctx, token), &mcrv1.ReconcileRequest{DryRun: o.DryRun, RemoveUntagged: o.RemoveUntagged})
		if err != nil {
			return 0, c.wrap(err)
		}
		return r.GetId(), nil
	}
	r, err := c.registry.GarbageCollect(auth(ctx, token), &mcrv1.GarbageCollectRequest{DryRun: o.DryRun,
		RemoveUntagged: o.RemoveUntagged, Grace: o.Grace})
	if err != nil {
		return 0, c.wrap(err)
	}
	return r.GetId(), nil
}

// GCStatus reports garbage collection state.
func (c *Client) GCStatus(ctx context.Context, token string) (*apitypes.GCStatus, error) {
	r, err := c.registry.GetGCStatus(auth(ctx, token), &mcrv1.GetGCStatusRequest{})
	if err != nil {
		return nil, c.wrap(err)
	}
	return &apitypes.GCStatus{Running: r.GetRunning(), LastRun: gcRun(r.GetLastRun())}, nil
}

// Snapshot writes a database snapshot on the server and returns its path.
func (c *Client) Snapshot(ctx context.Context, token string) (string, error) {
	r, err := c.registry.Snapshot(auth(ctx, token), &mcrv1.SnapshotRequest{})
	if err != nil {
		return "", c.wrap(err)
	}
	return r.GetPath(), nil
}

// Rules lists a page of policy rules.
func (c *Client) Rules(ctx context.Context, token string, n, offset int) (*apitypes.RuleList, error) {
	r, err := c.policy.ListPolicyRules(auth(ctx, token), &mcrv1.ListPolicyRulesRequest{N: int32(n), Offset: int32(offset)}) //nolint:gosec // small
	if err != nil {
		return nil, c.wrap(err)
	}
	out := &apitypes.RuleList{Rules: make([]apitypes.PolicyRule, 0, len(r.GetRules())), Total: int(r.GetTotal()),
		N: int(r.GetN()), Offset: int(r.GetOffset())}
	for _, p := range r.GetRules() {
		out.Rules = append(out.Rules, rule(p))
	}
	return out, nil
}

// Rule returns one policy rule.
func (c *Client) Rule(ctx context.Context, token string, id int64) (*apitypes.PolicyRule, error) {
	r, err := c.policy.GetPolicyRule(auth(ctx, token), &mcrv1.GetPolicyRuleRequest{Id: id})
	if err != nil {
		return nil, c.wrap(err)
	}
	out := rule(r.GetRule())
	return &out, nil
}

// CreateRule creates a policy rule.
func (c *Client) CreateRule(ctx context.Context, token string, rc apitypes.RuleCreate) (*apitypes.PolicyRule, error) {
	r, err := c.policy.CreatePolicyRule(auth(ctx, token), &mcrv1.CreatePolicyRuleRequest{Priority: int32(rc.Priority), //nolint:gosec // small
		Description: rc.Description, Enabled: rc.Enabled, Match: ruleMatchPB(rc.RuleMatch)})
	if err != nil {
		return nil, c.wrap(err)
	}
	out := rule(r.GetRule())
	return &out, nil
}

// PatchRule changes the fields of a rule p sets.
func (c *Client) PatchRule(ctx context.Context, token string, id int64, p apitypes.RulePatch) (*apitypes.PolicyRule, error) {
	req := &mcrv1.UpdatePolicyRuleRequest{Id: id, Description: p.Description, Enabled: p.Enabled}
	if p.Priority != nil {
		n := int32(*p.Priority) //nolint:gosec // small
		req.Priority = &n
	}
	if p.Rule != nil {
		req.Match = ruleMatchPB(*p.Rule)
	}
	r, err := c.policy.UpdatePolicyRule(auth(ctx, token), req)
	if err != nil {
		return nil, c.wrap(err)
	}
	out := rule(r.GetRule())
	return &out, nil
}

// DeleteRule removes a policy rule.
func (c *Client) DeleteRule(ctx context.Context, token string, id int64) error {
	_, err := c.policy.DeletePolicyRule(auth(ctx, token), &mcrv1.DeletePolicyRuleRequest{Id: id})
	return c.wrap(err)
}

// AuditQuery is what /v1/audit's query parameters select.
type AuditQuery struct {
	EventType, ActorID, Repository, Since, Until string
	Before                                       int64
	N, Offset                                    int
}

// Audit lists audit events, newest first.
func (c *Client) Audit(ctx context.Context, token string, q AuditQuery) (*apitypes.AuditPage, error) {
	r, err := c.audit.ListAuditEvents(auth(ctx, token), &mcrv1.ListAuditEventsRequest{EventType: q.EventType,
		ActorId: q.ActorID, Repository: q.Repository, Since: q.Since, Until: q.Until, Before: q.Before,
		N: int32(q.N), Offset: int32(q.Offset)}) //nolint:gosec // small
	if err != nil {
		return nil, c.wrap(err)
	}
	out := &apitypes.AuditPage{Events: make([]apitypes.AuditEvent, 0, len(r.GetEvents())), Next: r.GetNext()}
	for _, e := range r.GetEvents() {
		out.Events = append(out.Events, auditEvent(e))
	}
	return out, nil
}

func uploads(us []*mcrv1.Upload) []apitypes.UploadInfo {
	out := make([]apitypes.UploadInfo, 0, len(us))
	for _, u := range us {
		out = append(out, apitypes.UploadInfo{Repository: u.GetRepository(), ID: u.GetId(), Size: u.GetSize(),
			Started: t(u.GetStarted()), Modified: t(u.GetModified()), AgeSeconds: u.GetAgeSeconds()})
	}
	return out
}

// Uploads lists blob uploads on the server.
func (c *Client) Uploads(ctx context.Context, token string) (*apitypes.UploadList, error) {
	r, err := c.registry.ListUploads(auth(ctx, token), &mcrv1.ListUploadsRequest{})
	if err != nil {
		return nil, c.wrap(err)
	}
	return &apitypes.UploadList{Uploads: uploads(r.GetUploads()), TotalBytes: r.GetTotalBytes()}, nil
}

// PurgeUploads removes uploads started at least olderThan ago.
func (c *Client) PurgeUploads(ctx context.Context, token, olderThan string) (*apitypes.UploadPurged, error) {
	r, err := c.registry.PurgeUploads(auth(ctx, token), &mcrv1.PurgeUploadsRequest{OlderThan: olderThan})
	if err != nil {
		return nil, c.wrap(err)
	}
	return &apitypes.UploadPurged{Purged: uploads(r.GetPurged()), BytesFreed: r.GetBytesFreed()}, nil
}

// ReconcileIndex re-derives the repository index from storage and returns
// what changed.
func (c *Client) ReconcileIndex(ctx context.Context, token string) (map[string]any, error) {
	r, err := c.registry.ReconcileIndex(auth(ctx, token), &mcrv1.ReconcileIndexRequest{})
	if err != nil {
		return nil, c.wrap(err)
	}
	return details(r.GetResult()), nil
}

// UnlockAccount clears an account's failed sign-ins and lockout on the
// server answering; it reports whether there was anything to clear.
func (c *Client) UnlockAccount(ctx context.Context, token, username string) (*apitypes.AccountUnlocked, error) {
	r, err := c.admin.UnlockAccount(auth(ctx, token), &mcrv1.UnlockAccountRequest{Username: username})
	if err != nil {
		return nil, c.wrap(err)
	}
	return &apitypes.AccountUnlocked{Username: r.GetUsername(), Unlocked: r.GetUnlocked()}, nil
}

// RevokeAccount ends every token of an account (subject: of an MCIAS
// account; local accounts are found by name).
func (c *Client) RevokeAccount(ctx context.Context, token, username, subject string) (*apitypes.TokensRevoked, error) {
	r, err := c.admin.RevokeAccount(auth(ctx, token), &mcrv1.RevokeAccountRequest{Username: username, Subject: subject})
	if err != nil {
		return nil, c.wrap(err)
	}
	return &apitypes.TokensRevoked{Username: r.GetUsername(), Subject: r.GetSubject()}, nil
}
