package webui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"git.wntrmute.dev/kyle/mcr/adminapi/apitypes"
	"git.wntrmute.dev/kyle/mcr/clientip"
)

// The web UI reaches mcrsrv only through its admin REST API (/v1) and, for
// manifest bodies, the registry API (/v2) with a pull token. The API's
// JSON types come from adminapi/apitypes, which imports only the standard
// library, so the UI never links the store.
type (
	// LoginResult is POST /v1/auth/login (apitypes.LoginResult).
	LoginResult = apitypes.LoginResult
	// RepoSummary is one row of GET /v1/repositories (apitypes.RepoSummary).
	RepoSummary = apitypes.RepoSummary
	// RepoList is GET /v1/repositories (apitypes.RepoList).
	RepoList = apitypes.RepoList
	// TagInfo is a tag and its manifest (apitypes.TagInfo).
	TagInfo = apitypes.TagInfo
	// Ref is a descriptor a manifest references (apitypes.Ref).
	Ref = apitypes.Ref
	// ManifestInfo is an indexed manifest (apitypes.ManifestInfo).
	ManifestInfo = apitypes.ManifestInfo
	// RepoDetail is GET /v1/repositories/{name} (apitypes.RepoDetail).
	RepoDetail = apitypes.RepoDetail
	// AuditEvent is one audit log row (apitypes.AuditEvent).
	AuditEvent = apitypes.AuditEvent
	// AuditPage is GET /v1/audit (apitypes.AuditPage).
	AuditPage = apitypes.AuditPage
	// PolicyRule is a stored policy rule (apitypes.PolicyRule).
	PolicyRule = apitypes.PolicyRule
	// RuleList is GET /v1/policy/rules (apitypes.RuleList).
	RuleList = apitypes.RuleList
	// RuleCreate is POST /v1/policy/rules (apitypes.RuleCreate).
	RuleCreate = apitypes.RuleCreate
	// RulePatch is PATCH /v1/policy/rules/{id} (apitypes.RulePatch).
	RulePatch = apitypes.RulePatch
	// GCRun is one garbage collection run (apitypes.GCRun).
	GCRun = apitypes.GCRun
	// GCStatus is GET /v1/gc/status (apitypes.GCStatus).
	GCStatus = apitypes.GCStatus
	// GCOptions is POST /v1/gc, /v1/gc/reconcile (apitypes.GCRequest).
	GCOptions = apitypes.GCRequest
)

// APIError is a non-2xx answer from mcrsrv.
type APIError struct {
	Message string
	Status  int
	// RetryAfter is mcrsrv's Retry-After in seconds (429), or 0.
	RetryAfter int
}

func (e *APIError) Error() string {
	return fmt.Sprintf("mcrsrv answered %d: %s", e.Status, e.Message)
}

// UnreachableError means mcrsrv did not answer at all.
type UnreachableError struct {
	Err error
	URL string
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("the registry at %s did not answer: %v", e.URL, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// statusOf returns the API status of err, or 0.
func statusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// WithClientIP returns a context whose requests to mcrsrv name ip as the
// client (X-Forwarded-For over REST, x-forwarded-for metadata over gRPC).
func WithClientIP(ctx context.Context, ip string) context.Context {
	return clientip.WithForwarded(ctx, ip)
}

// messageOf is the registry's message in an *APIError anywhere in err's
// chain, or err's text.
func messageOf(err error) string {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Message
	}
	return err.Error()
}

// Client talks to mcrsrv.
type Client struct {
	base    *url.URL
	hc      *http.Client
	service string
}

// NewClient returns a client for the API at baseURL (https://host:port).
func NewClient(baseURL string, hc *http.Client, service string) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("web.api_url must be an http(s) URL like https://localhost:8443, got %q", baseURL)
	}
	if service == "" {
		service = "mcr"
	}
	return &Client{base: u, hc: hc, service: service}, nil
}

// Host is the registry's host[:port] as the API URL names it.
func (c *Client) Host() string { return c.base.Host }

// URL is the API's base URL.
func (c *Client) URL() string { return c.base.String() }

func (c *Client) url(path string, q url.Values) string {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// do sends a request with an optional bearer token and JSON body and
// decodes a JSON answer into out (when non-nil).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ip := clientip.Forwarded(ctx); ip != "" {
		// mcrsrv believes this only if mcr-web is in its
		// server.trusted_proxies; it throttles sign-ins by it.
		req.Header.Set("X-Forwarded-For", ip)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return &UnreachableError{URL: c.base.String(), Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return &UnreachableError{URL: c.base.String(), Err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return &APIError{Status: resp.StatusCode, Message: errorMessage(resp.StatusCode, data), RetryAfter: ra}
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: unexpected answer from mcrsrv: %w", method, path, err)
	}
	return nil
}

// errorMessage extracts {"error":"..."} or an OCI error envelope.
func errorMessage(status int, data []byte) string {
	var e struct {
		Error  string `json:"error"`
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(data, &e) == nil {
		if e.Error != "" {
			return e.Error
		}
		if len(e.Errors) > 0 {
			if e.Errors[0].Message != "" {
				return e.Errors[0].Message
			}
			return e.Errors[0].Code
		}
	}
	return http.StatusText(status)
}

// repoPath escapes each component of a repository name.
func repoPath(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// Login exchanges credentials for an identity token.
func (c *Client) Login(ctx context.Context, username, password string) (*LoginResult, error) {
	var out LoginResult
	err := c.do(ctx, http.MethodPost, "/v1/auth/login", nil, "", apitypes.LoginRequest{Username: username, Password: password}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Logout revokes the token.
func (c *Client) Logout(ctx context.Context, token string) error {
	return c.do(ctx, http.MethodPost, "/v1/auth/logout", nil, token, nil, nil)
}

// Repositories lists a page of repositories.
func (c *Client) Repositories(ctx context.Context, token, filter, last string, n, offset int) (*RepoList, error) {
	q := url.Values{"n": {strconv.Itoa(n)}}
	if filter != "" {
		q.Set("q", filter)
	}
	if last != "" {
		q.Set("last", last)
	}
	if offset > 0 {
		q.Set("offset", strconv.Itoa(offset))
	}
	var out RepoList
	if err := c.do(ctx, http.MethodGet, "/v1/repositories", q, token, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Repository returns one repository with its tags and manifests.
func (c *Client) Repository(ctx context.Context, token, name string) (*RepoDetail, error) {
	var out RepoDetail
	if err := c.do(ctx, http.MethodGet, "/v1/repositories/"+repoPath(name), nil, token, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteRepository removes a repository.
func (c *Client) DeleteRepository(ctx context.Context, token, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/repositories/"+repoPath(name), nil, token, nil, nil)
}

// Audit lists audit events.
func (c *Client) Audit(ctx context.Context, token string, q url.Values) (*AuditPage, error) {
	var out AuditPage
	if err := c.do(ctx, http.MethodGet, "/v1/audit", q, token, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Rules lists policy rules.
func (c *Client) Rules(ctx context.Context, token string) (*RuleList, error) {
	var out RuleList
	if err := c.do(ctx, http.MethodGet, "/v1/policy/rules", url.Values{"n": {"1000"}}, token, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Rule returns one rule.
func (c *Client) Rule(ctx context.Context, token string, id int64) (*PolicyRule, error) {
	var out PolicyRule
	if err := c.do(ctx, http.MethodGet, "/v1/policy/rules/"+strconv.FormatInt(id, 10), nil, token, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateRule creates a policy rule.
func (c *Client) CreateRule(ctx context.Context, token string, r RuleCreate) (*PolicyRule, error) {
	var out PolicyRule
	if err := c.do(ctx, http.MethodPost, "/v1/policy/rules", nil, token, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PatchRule updates a policy rule.
func (c *Client) PatchRule(ctx context.Context, token string, id int64, p RulePatch) (*PolicyRule, error) {
	var out PolicyRule
	if err := c.do(ctx, http.MethodPatch, "/v1/policy/rules/"+strconv.FormatInt(id, 10), nil, token, p, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteRule removes a policy rule.
func (c *Client) DeleteRule(ctx context.Context, token string, id int64) error {
	return c.do(ctx, http.MethodDelete, "/v1/policy/rules/"+strconv.FormatInt(id, 10), nil, token, nil, nil)
}

// GCStatus reports garbage collection state.
func (c *Client) GCStatus(ctx context.Context, token string) (*GCStatus, error) {
	var out GCStatus
	if err := c.do(ctx, http.MethodGet, "/v1/gc/status", nil, token, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// StartGC triggers an online garbage collection (or, with reconcile, a
// storage reconciliation) and returns its id. Without options no body is
// sent (the runbook's `curl -X POST /v1/gc`).
func (c *Client) StartGC(ctx context.Context, token string, reconcile bool, o GCOptions) (int64, error) {
	var out apitypes.GCStarted
	path := "/v1/gc"
	if reconcile {
		path = "/v1/gc/reconcile"
	}
	var body any
	if o != (GCOptions{}) {
		body = o
	}
	if err := c.do(ctx, http.MethodPost, path, nil, token, body, &out); err != nil {
		return 0, err
	}
	return out.ID, nil
}

// manifestAccept lists the manifest media types the UI can show.
var manifestAccept = strings.Join([]string{
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
}, ", ")

// RegistryToken exchanges the session (identity) token for a registry
// token allowed to pull repo.
func (c *Client) RegistryToken(ctx context.Context, token, repo string) (string, error) {
	q := url.Values{"service": {c.service}, "scope": {"repository:" + repo + ":pull"}}
	var out struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := c.do(ctx, http.MethodGet, "/v2/token", q, token, nil, &out); err != nil {
		return "", err
	}
	if out.Token == "" {
		out.Token = out.AccessToken
	}
	return out.Token, nil
}

// Manifest fetches a manifest body through the registry API.
func (c *Client) Manifest(ctx context.Context, regToken, repo, digest string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/v2/"+repoPath(repo)+"/manifests/"+url.PathEscape(digest), nil), nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", manifestAccept)
	req.Header.Set("Authorization", "Bearer "+regToken)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, "", &UnreachableError{URL: c.base.String(), Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, "", &UnreachableError{URL: c.base.String(), Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", &APIError{Status: resp.StatusCode, Message: errorMessage(resp.StatusCode, data)}
	}
	return data, resp.Header.Get("Content-Type"), nil
}
