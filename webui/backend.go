package webui

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"git.wntrmute.dev/kyle/mcr/grpcclient"
)

// Backend is the admin API as the pages use it. *Client speaks /v1 (REST);
// GRPCBackend speaks the gRPC API (web.grpc_addr), which the runbook
// names as mcr-web's link to mcrsrv. Both answer with the /v1 wire types
// and fail with *APIError (an answer) or *UnreachableError (none).
//
// Manifest bodies are not part of it: they come from the registry API
// (/v2, with a pull token from /v2/token), which has no gRPC equivalent,
// so the REST client stays for that one page.
type Backend interface {
	Login(ctx context.Context, username, password string) (*LoginResult, error)
	Logout(ctx context.Context, token string) error
	Repositories(ctx context.Context, token, filter, last string, n, offset int) (*RepoList, error)
	Repository(ctx context.Context, token, name string) (*RepoDetail, error)
	DeleteRepository(ctx context.Context, token, name string) error
	Audit(ctx context.Context, token string, q url.Values) (*AuditPage, error)
	Rules(ctx context.Context, token string) (*RuleList, error)
	Rule(ctx context.Context, token string, id int64) (*PolicyRule, error)
	CreateRule(ctx context.Context, token string, r RuleCreate) (*PolicyRule, error)
	PatchRule(ctx context.Context, token string, id int64, p RulePatch) (*PolicyRule, error)
	DeleteRule(ctx context.Context, token string, id int64) error
	GCStatus(ctx context.Context, token string) (*GCStatus, error)
	StartGC(ctx context.Context, token string, reconcile bool, o GCOptions) (int64, error)
}

var _ Backend = (*Client)(nil)

// GRPCBackend is the Backend over mcrsrv's gRPC API.
type GRPCBackend struct{ c *grpcclient.Client }

// NewGRPCBackend uses c (grpcclient.Dial of web.grpc_addr).
func NewGRPCBackend(c *grpcclient.Client) *GRPCBackend { return &GRPCBackend{c: c} }

var _ Backend = (*GRPCBackend)(nil)

// fail gives gRPC failures the REST client's error types, so the pages
// branch on them alike (401: sign in again, 404, ...).
func (b *GRPCBackend) fail(err error) error {
	var ge *grpcclient.Error
	var ue *grpcclient.UnreachableError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ge):
		return &APIError{Status: ge.HTTPStatus(), Message: ge.Message, RetryAfter: int((ge.RetryAfter + time.Second - 1) / time.Second)}
	case errors.As(err, &ue):
		return &UnreachableError{URL: ue.Addr, Err: ue.Err}
	}
	return err
}

// Login implements Backend over gRPC.
func (b *GRPCBackend) Login(ctx context.Context, username, password string) (*LoginResult, error) {
	r, err := b.c.Login(ctx, username, password)
	return r, b.fail(err)
}

// Logout implements Backend over gRPC.
func (b *GRPCBackend) Logout(ctx context.Context, token string) error {
	return b.fail(b.c.Logout(ctx, token))
}

// Repositories implements Backend over gRPC.
func (b *GRPCBackend) Repositories(ctx context.Context, token, filter, last string, n, offset int) (*RepoList, error) {
	r, err := b.c.Repositories(ctx, token, filter, last, n, offset)
	return r, b.fail(err)
}

// Repository implements Backend over gRPC.
func (b *GRPCBackend) Repository(ctx context.Context, token, name string) (*RepoDetail, error) {
	r, err := b.c.Repository(ctx, token, name)
	return r, b.fail(err)
}

// DeleteRepository implements Backend over gRPC.
func (b *GRPCBackend) DeleteRepository(ctx context.Context, token, name string) error {
	return b.fail(b.c.DeleteRepository(ctx, token, name))
}

// Audit takes /v1/audit's query parameters (what the audit page builds).
func (b *GRPCBackend) Audit(ctx context.Context, token string, q url.Values) (*AuditPage, error) {
	aq := grpcclient.AuditQuery{EventType: q.Get("event_type"), ActorID: q.Get("actor_id"),
		Repository: q.Get("repository"), Since: q.Get("since"), Until: q.Get("until")}
	ints := []struct {
		set      func(int64)
		key, msg string
		min      int64
	}{
		{func(v int64) { aq.N = int(v) }, "n", "n: must be a positive integer", 1},
		{func(v int64) { aq.Offset = int(v) }, "offset", "offset: must be a non-negative integer", 0},
		{func(v int64) { aq.Before = v }, "before", "before: must be a cursor returned as `next`", 1},
	}
	for _, p := range ints {
		s := q.Get(p.key)
		if s == "" {
			continue
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < p.min {
			return nil, &APIError{Status: http.StatusBadRequest, Message: p.msg}
		}
		p.set(v)
	}
	r, err := b.c.Audit(ctx, token, aq)
	return r, b.fail(err)
}

// Rules implements Backend over gRPC.
func (b *GRPCBackend) Rules(ctx context.Context, token string) (*RuleList, error) {
	r, err := b.c.Rules(ctx, token, 1000, 0)
	return r, b.fail(err)
}

// Rule implements Backend over gRPC.
func (b *GRPCBackend) Rule(ctx context.Context, token string, id int64) (*PolicyRule, error) {
	r, err := b.c.Rule(ctx, token, id)
	return r, b.fail(err)
}

// CreateRule implements Backend over gRPC.
func (b *GRPCBackend) CreateRule(ctx context.Context, token string, rc RuleCreate) (*PolicyRule, error) {
	r, err := b.c.CreateRule(ctx, token, rc)
	return r, b.fail(err)
}

// PatchRule implements Backend over gRPC.
func (b *GRPCBackend) PatchRule(ctx context.Context, token string, id int64, p RulePatch) (*PolicyRule, error) {
	r, err := b.c.PatchRule(ctx, token, id, p)
	return r, b.fail(err)
}

// DeleteRule implements Backend over gRPC.
func (b *GRPCBackend) DeleteRule(ctx context.Context, token string, id int64) error {
	return b.fail(b.c.DeleteRule(ctx, token, id))
}

// GCStatus implements Backend over gRPC.
func (b *GRPCBackend) GCStatus(ctx context.Context, token string) (*GCStatus, error) {
	r, err := b.c.GCStatus(ctx, token)
	return r, b.fail(err)
}

// StartGC implements Backend over gRPC.
func (b *GRPCBackend) StartGC(ctx context.Context, token string, reconcile bool, o GCOptions) (int64, error) {
	id, err := b.c.StartGC(ctx, token, reconcile, o)
	return id, b.fail(err)
}
