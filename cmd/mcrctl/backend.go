package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"git.wntrmute.dev/kyle/mcr/adminapi/apitypes"
	"git.wntrmute.dev/kyle/mcr/grpcclient"
	"git.wntrmute.dev/kyle/mcr/internal/cli"
)

// backend is the admin API as the commands use it: restBackend speaks
// /v1 (the default), grpcBackend the gRPC API (--grpc). Both answer with
// the /v1 wire types and the same error messages, so a command prints the
// same whichever is used.
type backend interface {
	// Health returns the status and, with detail, the checks; a degraded
	// server is an error carrying the checks.
	Health(ctx context.Context, detail bool) (string, map[string]string, error)
	Login(ctx context.Context, username, password string) (*apitypes.LoginResult, error)
	Repositories(ctx context.Context, filter, last string, n int) (*apitypes.RepoList, error)
	DeleteRepository(ctx context.Context, name string) error
	Snapshot(ctx context.Context) (string, error)
	Audit(ctx context.Context, q grpcclient.AuditQuery) (*apitypes.AuditPage, error)
	StartGC(ctx context.Context, reconcile bool, r apitypes.GCRequest) (int64, error)
	GCStatus(ctx context.Context) (*apitypes.GCStatus, error)
	Rules(ctx context.Context) (*apitypes.RuleList, error)
	Rule(ctx context.Context, id int64) (*apitypes.PolicyRule, error)
	// CreateRule and PatchRule take a typed body or the raw JSON of
	// --file ([]byte), which /v1 receives as is.
	CreateRule(ctx context.Context, body any) (*apitypes.PolicyRule, error)
	PatchRule(ctx context.Context, id int64, body any) (*apitypes.PolicyRule, error)
	DeleteRule(ctx context.Context, id int64) error
	Uploads(ctx context.Context) (*apitypes.UploadList, error)
	PurgeUploads(ctx context.Context, olderThan string) (*apitypes.UploadPurged, error)
	ReconcileIndex(ctx context.Context) (map[string]any, error)
	UnlockAccount(ctx context.Context, name string) (*apitypes.AccountUnlocked, error)
	RevokeAccount(ctx context.Context, name, subject string) (*apitypes.TokensRevoked, error)
}

// unhealthyError is a health check that did not answer ok.
type unhealthyError struct {
	checks map[string]string
	cause  error
	status int // HTTP status (503) or 0 over gRPC
}

func (e *unhealthyError) Error() string {
	if len(e.checks) > 0 {
		if e.status != 0 {
			return fmt.Sprintf("unhealthy (%d): %s", e.status, fmtChecks(e.checks))
		}
		return "unhealthy: " + fmtChecks(e.checks)
	}
	return fmt.Sprintf("unhealthy: %v", e.cause)
}

// restBackend is /v1 over HTTPS.
type restBackend struct{ c *client }

func (b restBackend) Health(ctx context.Context, detail bool) (string, map[string]string, error) {
	q := url.Values{}
	if detail {
		q.Set("detail", "1")
	}
	var body struct {
		Checks map[string]string `json:"checks"`
		Status string            `json:"status"`
	}
	raw, err := b.c.do(ctx, http.MethodGet, "/v1/health", q, nil, &body)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			_ = json.Unmarshal(raw, &body)
			return "", nil, &unhealthyError{status: ae.Status, checks: body.Checks, cause: ae}
		}
		return "", nil, err
	}
	return body.Status, body.Checks, nil
}

func (b restBackend) Login(ctx context.Context, username, password string) (*apitypes.LoginResult, error) {
	var out apitypes.LoginResult
	_, err := b.c.do(ctx, http.MethodPost, "/v1/auth/login", nil, apitypes.LoginRequest{Username: username, Password: password}, &out)
	return &out, err
}

func (b restBackend) Repositories(ctx context.Context, filter, last string, n int) (*apitypes.RepoList, error) {
	q := url.Values{"n": {strconv.Itoa(n)}}
	if filter != "" {
		q.Set("q", filter)
	}
	if last != "" {
		q.Set("last", last)
	}
	var out apitypes.RepoList
	_, err := b.c.do(ctx, http.MethodGet, "/v1/repositories", q, nil, &out)
	return &out, err
}

func (b restBackend) DeleteRepository(ctx context.Context, name string) error {
	_, err := b.c.do(ctx, http.MethodDelete, "/v1/repositories/"+name, nil, nil, nil)
	return err
}

func (b restBackend) Snapshot(ctx context.Context) (string, error) {
	var out apitypes.SnapshotCreated
	_, err := b.c.do(ctx, http.MethodPost, "/v1/snapshot", nil, nil, &out)
	return out.Path, err
}

func (b restBackend) Audit(ctx context.Context, aq grpcclient.AuditQuery) (*apitypes.AuditPage, error) {
	q := url.Values{}
	for k, v := range map[string]string{"event_type": aq.EventType, "repository": aq.Repository, "actor_id": aq.ActorID,
		"since": aq.Since, "until": aq.Until} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if aq.N != 0 {
		q.Set("n", strconv.Itoa(aq.N))
	}
	if aq.Before != 0 {
		q.Set("before", strconv.FormatInt(aq.Before, 10))
	}
	var out apitypes.AuditPage
	_, err := b.c.do(ctx, http.MethodGet, "/v1/audit", q, nil, &out)
	return &out, err
}

func (b restBackend) StartGC(ctx context.Context, reconcile bool, r apitypes.GCRequest) (int64, error) {
	path := "/v1/gc"
	if reconcile {
		path = "/v1/gc/reconcile"
	}
	var out apitypes.GCStarted
	_, err := b.c.do(ctx, http.MethodPost, path, nil, r, &out)
	return out.ID, err
}

func (b restBackend) GCStatus(ctx context.Context) (*apitypes.GCStatus, error) {
	var out apitypes.GCStatus
	_, err := b.c.do(ctx, http.MethodGet, "/v1/gc/status", nil, nil, &out)
	return &out, err
}

func (b restBackend) Rules(ctx context.Context) (*apitypes.RuleList, error) {
	var out apitypes.RuleList
	_, err := b.c.do(ctx, http.MethodGet, "/v1/policy/rules", url.Values{"n": {"1000"}}, nil, &out)
	return &out, err
}

func (b restBackend) Rule(ctx context.Context, id int64) (*apitypes.PolicyRule, error) {
	var out apitypes.PolicyRule
	_, err := b.c.do(ctx, http.MethodGet, "/v1/policy/rules/"+strconv.FormatInt(id, 10), nil, nil, &out)
	return &out, err
}

func (b restBackend) CreateRule(ctx context.Context, body any) (*apitypes.PolicyRule, error) {
	var out apitypes.PolicyRule
	_, err := b.c.do(ctx, http.MethodPost, "/v1/policy/rules", nil, body, &out)
	return &out, err
}

func (b restBackend) PatchRule(ctx context.Context, id int64, body any) (*apitypes.PolicyRule, error) {
	var out apitypes.PolicyRule
	_, err := b.c.do(ctx, http.MethodPatch, "/v1/policy/rules/"+strconv.FormatInt(id, 10), nil, body, &out)
	return &out, err
}

func (b restBackend) DeleteRule(ctx context.Context, id int64) error {
	_, err := b.c.do(ctx, http.MethodDelete, "/v1/policy/rules/"+strconv.FormatInt(id, 10), nil, nil, nil)
	return err
}

func (b restBackend) Uploads(ctx context.Context) (*apitypes.UploadList, error) {
	var out apitypes.UploadList
	_, err := b.c.do(ctx, http.MethodGet, "/v1/uploads", nil, nil, &out)
	return &out, err
}

func (b restBackend) PurgeUploads(ctx context.Context, olderThan string) (*apitypes.UploadPurged, error) {
	var out apitypes.UploadPurged
	_, err := b.c.do(ctx, http.MethodPost, "/v1/uploads/purge", nil, apitypes.UploadPurgeRequest{OlderThan: olderThan}, &out)
	return &out, err
}

func (b restBackend) ReconcileIndex(ctx context.Context) (map[string]any, error) {
	var out map[string]any
	_, err := b.c.do(ctx, http.MethodPost, "/v1/index/reconcile", nil, nil, &out)
	return out, err
}

func (b restBackend) UnlockAccount(ctx context.Context, name string) (*apitypes.AccountUnlocked, error) {
	var out apitypes.AccountUnlocked
	_, err := b.c.do(ctx, http.MethodPost, "/v1/accounts/"+url.PathEscape(name)+"/unlock", nil, nil, &out)
	return &out, err
}

func (b restBackend) RevokeAccount(ctx context.Context, name, subject string) (*apitypes.TokensRevoked, error) {
	var q url.Values
	if subject != "" {
		q = url.Values{"subject": {subject}}
	}
	var out apitypes.TokensRevoked
	_, err := b.c.do(ctx, http.MethodPost, "/v1/accounts/"+url.PathEscape(name)+"/revoke", q, nil, &out)
	return &out, err
}

// grpcBackend is the gRPC API (mcr.v1) at --grpc.
type grpcBackend struct {
	c      *grpcclient.Client
	token  string
	advice string // see client.advice
}

// fail maps a gRPC failure to what the REST path would report: the same
// apiError for an answer, transport advice for no answer.
func (b grpcBackend) fail(err error) error {
	if err == nil {
		return nil
	}
	var ge *grpcclient.Error
	if errors.As(err, &ge) {
		return &apiError{Status: ge.HTTPStatus(), Message: ge.Message}
	}
	var ue *grpcclient.UnreachableError
	if errors.As(err, &ue) {
		msg := ue.Err.Error()
		switch {
		case strings.Contains(msg, "x509") || strings.Contains(msg, "certificate"):
			return fmt.Errorf("TLS: the certificate of %s is not trusted (%s); %s", ue.Addr, msg, b.advice)
		case strings.Contains(msg, "connection refused"):
			return fmt.Errorf("cannot connect to %s: connection refused (is mcrsrv running with server.grpc_addr? check --grpc)", ue.Addr)
		case strings.Contains(msg, "DeadlineExceeded") || strings.Contains(msg, "deadline"):
			return fmt.Errorf("%s did not answer in time (--timeout): %s", ue.Addr, msg)
		}
		return fmt.Errorf("gRPC call to %s failed: %s", ue.Addr, msg)
	}
	return err
}

func (b grpcBackend) Health(ctx context.Context, detail bool) (string, map[string]string, error) {
	s, checks, err := b.c.Health(ctx, detail)
	if err != nil {
		return "", nil, b.fail(err)
	}
	if s != "ok" {
		return "", nil, &unhealthyError{checks: checks, cause: errors.New(s)}
	}
	return s, checks, nil
}

func (b grpcBackend) Login(ctx context.Context, username, password string) (*apitypes.LoginResult, error) {
	r, err := b.c.Login(ctx, username, password)
	return r, b.fail(err)
}

func (b grpcBackend) Repositories(ctx context.Context, filter, last string, n int) (*apitypes.RepoList, error) {
	r, err := b.c.Repositories(ctx, b.token, filter, last, n, 0)
	return r, b.fail(err)
}

func (b grpcBackend) DeleteRepository(ctx context.Context, name string) error {
	return b.fail(b.c.DeleteRepository(ctx, b.token, name))
}

func (b grpcBackend) Snapshot(ctx context.Context) (string, error) {
	p, err := b.c.Snapshot(ctx, b.token)
	return p, b.fail(err)
}

func (b grpcBackend) Audit(ctx context.Context, q grpcclient.AuditQuery) (*apitypes.AuditPage, error) {
	r, err := b.c.Audit(ctx, b.token, q)
	return r, b.fail(err)
}

func (b grpcBackend) StartGC(ctx context.Context, reconcile bool, r apitypes.GCRequest) (int64, error) {
	id, err := b.c.StartGC(ctx, b.token, reconcile, r)
	return id, b.fail(err)
}

func (b grpcBackend) GCStatus(ctx context.Context) (*apitypes.GCStatus, error) {
	r, err := b.c.GCStatus(ctx, b.token)
	return r, b.fail(err)
}

func (b grpcBackend) Rules(ctx context.Context) (*apitypes.RuleList, error) {
	r, err := b.c.Rules(ctx, b.token, 1000, 0)
	return r, b.fail(err)
}

func (b grpcBackend) Rule(ctx context.Context, id int64) (*apitypes.PolicyRule, error) {
	r, err := b.c.Rule(ctx, b.token, id)
	return r, b.fail(err)
}

// typed decodes a --file body into v, refusing unknown fields as /v1 does.
func typed(body any, v any) error {
	switch b := body.(type) {
	case []byte:
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return cli.Usagef("--file: %v", err)
		}
		return nil
	default:
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		return json.Unmarshal(raw, v)
	}
}

func (b grpcBackend) CreateRule(ctx context.Context, body any) (*apitypes.PolicyRule, error) {
	var rc apitypes.RuleCreate
	if err := typed(body, &rc); err != nil {
		return nil, err
	}
	r, err := b.c.CreateRule(ctx, b.token, rc)
	return r, b.fail(err)
}

func (b grpcBackend) PatchRule(ctx context.Context, id int64, body any) (*apitypes.PolicyRule, error) {
	var p apitypes.RulePatch
	if err := typed(body, &p); err != nil {
		return nil, err
	}
	r, err := b.c.PatchRule(ctx, b.token, id, p)
	return r, b.fail(err)
}

func (b grpcBackend) DeleteRule(ctx context.Context, id int64) error {
	return b.fail(b.c.DeleteRule(ctx, b.token, id))
}

func (b grpcBackend) Uploads(ctx context.Context) (*apitypes.UploadList, error) {
	r, err := b.c.Uploads(ctx, b.token)
	return r, b.fail(err)
}

func (b grpcBackend) PurgeUploads(ctx context.Context, olderThan string) (*apitypes.UploadPurged, error) {
	r, err := b.c.PurgeUploads(ctx, b.token, olderThan)
	return r, b.fail(err)
}

func (b grpcBackend) ReconcileIndex(ctx context.Context) (map[string]any, error) {
	r, err := b.c.ReconcileIndex(ctx, b.token)
	return r, b.fail(err)
}

func (b grpcBackend) UnlockAccount(ctx context.Context, name string) (*apitypes.AccountUnlocked, error) {
	r, err := b.c.UnlockAccount(ctx, b.token, name)
	return r, b.fail(err)
}

func (b grpcBackend) RevokeAccount(ctx context.Context, name, subject string) (*apitypes.TokensRevoked, error) {
	r, err := b.c.RevokeAccount(ctx, b.token, name, subject)
	return r, b.fail(err)
}
