package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// authKind is how a target wants clients to authenticate.
type authKind int

const (
	authNone   authKind = iota // upstream without auth
	authBasic                  // upstream htpasswd: Basic on every request
	authBearer                 // MCR: registry token from the realm in the 401 challenge
)

// target is one server variant under test.
type target struct {
	Name  string // short key used in JSON: mcr, mcr-filesystem, upstream, upstream-htpasswd
	Label string // column header
	Desc  string
	URL   string
	User  string
	srv   *process
	hc    *http.Client
	Pass  string
	Auth  authKind
}

// newHTTPClient returns a client trusting the bench certificate. HTTP/1.1
// unless h2 (Docker's daemon speaks HTTP/1.1 to registries).
func newHTTPClient(pool *x509.CertPool, conns int, h2 bool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		IdleConnTimeout:     90 * time.Second,
		WriteBufferSize:     256 << 10,
		ReadBufferSize:      256 << 10,
		DisableCompression:  true,
	}
	if h2 {
		tr.ForceAttemptHTTP2 = true
	} else {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 5 * time.Minute}
}

// session is one client's conversation with a target, like one `docker
// push` or `docker pull`: it pings /v2/, learns the token realm from the
// challenge and caches one token per scope. Not safe for concurrent use.
type session struct {
	t       *target
	ctx     context.Context
	realm   string
	service string
	tokens  map[string]string // scope -> registry token
	actions string            // "pull" or "pull,push"
}

func newSession(ctx context.Context, t *target, actions string) (*session, error) {
	s := &session{t: t, ctx: ctx, tokens: map[string]string{}, actions: actions}
	return s, s.ping()
}

// ping is GET /v2/, as every client does first; for a Bearer target the
// 401 challenge names the token realm.
func (s *session) ping() error {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodGet, s.t.URL+"/v2/", nil)
	if err != nil {
		return err
	}
	if s.t.Auth == authBasic {
		req.SetBasicAuth(s.t.User, s.t.Pass)
	}
	resp, err := s.t.hc.Do(req)
	if err != nil {
		return err
	}
	defer drain(resp)
	switch {
	case resp.StatusCode == http.StatusOK && s.t.Auth != authBearer:
		return nil
	case resp.StatusCode == http.StatusUnauthorized && s.t.Auth == authBearer:
		params, ok := parseBearerChallenge(resp.Header.Get("WWW-Authenticate"))
		if !ok || params["realm"] == "" {
			return fmt.Errorf("%s: GET /v2/: 401 without a Bearer realm: %q", s.t.Name, resp.Header.Get("WWW-Authenticate"))
		}
		s.realm, s.service = params["realm"], params["service"]
		return nil
	}
	return fmt.Errorf("%s: GET /v2/: unexpected status %d", s.t.Name, resp.StatusCode)
}

// parseBearerChallenge parses `Bearer realm="...",service="..."`.
func parseBearerChallenge(h string) (map[string]string, bool) {
	rest, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return nil, false
	}
	out := map[string]string{}
	for rest != "" {
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		k = strings.TrimSpace(k)
		if strings.HasPrefix(v, `"`) {
			end := strings.IndexByte(v[1:], '"')
			if end < 0 {
				return nil, false
			}
			out[k] = v[1 : end+1]
			rest = strings.TrimPrefix(v[end+2:], ",")
		} else {
			val, r, _ := strings.Cut(v, ",")
			out[k] = val
			rest = r
		}
	}
	return out, true
}

// token returns the cached registry token for repo, fetching it from the
// realm with Basic credentials the first time (as docker does).
func (s *session) token(repo string) (string, error) {
	scope := "repository:" + repo + ":" + s.actions
	if tok, ok := s.tokens[scope]; ok {
		return tok, nil
	}
	tok, err := fetchToken(s.ctx, s.t, s.realm, s.service, scope, "")
	if err != nil {
		return "", err
	}
	s.tokens[scope] = tok
	return tok, nil
}

// fetchToken calls GET realm?service&scope with Basic credentials, or with
// bearer (an identity token) when it is not empty.
func fetchToken(ctx context.Context, t *target, realm, service, scope, bearer string) (string, error) {
	q := url.Values{}
	if service != "" {
		q.Set("service", service)
	}
	if scope != "" {
		q.Set("scope", scope)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm+"?"+q.Encode(), nil)
	if err != nil {
		return "", err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	} else {
		req.SetBasicAuth(t.User, t.Pass)
	}
	resp, err := t.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: token for %s: status %d: %s", t.Name, scope, resp.StatusCode, snippet(resp))
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", fmt.Errorf("%s: token response: %w", t.Name, err)
	}
	if body.Token == "" {
		body.Token = body.AccessToken
	}
	if body.Token == "" {
		return "", fmt.Errorf("%s: empty token for %s", t.Name, scope)
	}
	return body.Token, nil
}

// newRequest builds a request for repo with the session's credentials.
func (s *session) newRequest(method, rawURL, repo string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(s.ctx, method, rawURL, body)
	if err != nil {
		return nil, err
	}
	switch s.t.Auth {
	case authBasic:
		req.SetBasicAuth(s.t.User, s.t.Pass)
	case authBearer:
		tok, err := s.token(repo)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return req, nil
}

// do sends a request and checks the status; the caller closes the body of
// a returned response.
func (s *session) do(req *http.Request, want ...int) (*http.Response, error) {
	resp, err := s.t.hc.Do(req)
	if err != nil {
		return nil, err
	}
	for _, w := range want {
		if resp.StatusCode == w {
			return resp, nil
		}
	}
	defer drain(resp)
	return nil, fmt.Errorf("%s: %s %s: status %d (want %v): %s", s.t.Name, req.Method, req.URL.Path, resp.StatusCode, want, snippet(resp))
}

func snippet(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return strings.TrimSpace(string(b))
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
}

func (s *session) resolve(loc string) (string, error) {
	base, err := url.Parse(s.t.URL)
	if err != nil {
		return "", err
	}
	u, err := base.Parse(loc)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

func withDigest(loc, digest string) string {
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	return loc + sep + "digest=" + url.QueryEscape(digest)
}

// pushStyle is how a client uploads a blob (distribution-spec "pushing
// blobs"): the three ways real clients do it.
type pushStyle int

const (
	// pushMonolithic is POST, then one PUT ?digest= carrying the whole
	// body (curl, crane/go-containerregistry for a streamed layer
	// of known size, oras).
	pushMonolithic pushStyle = iota
	// pushPatch is POST, one streamed PATCH with the whole body, then PUT
	// ?digest= (docker, containerd).
	pushPatch
	// pushChunked is POST, PATCHes of a fixed size with Content-Range,
	// then PUT ?digest= (podman/skopeo with chunking, containers/image).
	pushChunked
)

var pushStyleNames = map[pushStyle]string{pushMonolithic: "put", pushPatch: "patch", pushChunked: "chunked"}

func (p pushStyle) String() string { return pushStyleNames[p] }

func parseStyle(name string) (pushStyle, bool) {
	for st, n := range pushStyleNames {
		if n == name {
			return st, true
		}
	}
	return 0, false
}

// describe is the style's line in the table title.
func (p pushStyle) describe(chunkMiB int) string {
	switch p {
	case pushMonolithic:
		return "POST+PUT"
	case pushChunked:
		return fmt.Sprintf("%d MiB PATCHes", chunkMiB)
	}
	return "POST+PATCH+PUT"
}

// startUpload is POST /v2/<repo>/blobs/uploads/; it returns the absolute
// upload URL from Location.
func (s *session) startUpload(repo string) (string, error) {
	req, err := s.newRequest(http.MethodPost, s.t.URL+"/v2/"+repo+"/blobs/uploads/", repo, nil)
	if err != nil {
		return "", err
	}
	resp, err := s.do(req, http.StatusAccepted)
	if err != nil {
		return "", err
	}
	loc := resp.Header.Get("Location")
	drain(resp)
	return s.resolve(loc)
}

// patch sends one PATCH of length bytes to the upload at loc; cr, if set,
// is its Content-Range. It returns the next upload URL.
func (s *session) patch(repo, loc string, body io.Reader, length int64, cr string) (string, error) {
	req, err := s.newRequest(http.MethodPatch, loc, repo, body)
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if cr != "" {
		req.Header.Set("Content-Range", cr)
	}
	req.ContentLength = length
	if length == 0 {
		req.Body = http.NoBody
	}
	resp, err := s.do(req, http.StatusAccepted, http.StatusNoContent)
	if err != nil {
		return "", err
	}
	if l := resp.Header.Get("Location"); l != "" {
		loc = l
	}
	drain(resp)
	return s.resolve(loc)
}

// finishUpload is PUT <loc>?digest=, with the body (length bytes) or none.
func (s *session) finishUpload(repo, loc, digest string, body io.Reader, length int64) error {
	if body == nil || length == 0 {
		body, length = http.NoBody, 0
	}
	req, err := s.newRequest(http.MethodPut, withDigest(loc, digest), repo, body)
	if err != nil {
		return err
	}
	req.ContentLength = length
	if length > 0 {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := s.do(req, http.StatusCreated)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// pushBlob uploads a blob the way docker and containerd do: POST to start
// an upload, one PATCH with the whole body, PUT ?digest= to commit.
func (s *session) pushBlob(repo, digest string, body io.Reader, length int64) error {
	return s.pushBlobStyle(pushPatch, repo, digest, body, length, 0)
}

// pushBlobStyle uploads a blob of length bytes in the given style; chunk is
// the PATCH size of pushChunked.
func (s *session) pushBlobStyle(style pushStyle, repo, digest string, body io.Reader, length, chunk int64) error {
	loc, err := s.startUpload(repo)
	if err != nil {
		return err
	}
	switch style {
	case pushMonolithic:
		return s.finishUpload(repo, loc, digest, body, length)
	case pushChunked:
		if chunk <= 0 {
			return fmt.Errorf("chunked push needs a chunk size")
		}
		for off := int64(0); off < length; off += chunk {
			n := min(chunk, length-off)
			cr := fmt.Sprintf("%d-%d", off, off+n-1)
			if loc, err = s.patch(repo, loc, io.LimitReader(body, n), n, cr); err != nil {
				return err
			}
		}
	default:
		if loc, err = s.patch(repo, loc, body, length, ""); err != nil {
			return err
		}
	}
	return s.finishUpload(repo, loc, digest, nil, 0)
}

// blobExists is the HEAD docker sends before uploading a layer.
func (s *session) blobExists(repo, digest string) (bool, error) {
	req, err := s.newRequest(http.MethodHead, s.t.URL+"/v2/"+repo+"/blobs/"+digest, repo, nil)
	if err != nil {
		return false, err
	}
	resp, err := s.do(req, http.StatusOK, http.StatusNotFound)
	if err != nil {
		return false, err
	}
	drain(resp)
	return resp.StatusCode == http.StatusOK, nil
}

// pushSmallBlob is HEAD, then POST/PATCH/PUT unless the blob exists.
func (s *session) pushSmallBlob(repo, digest string, data []byte) error {
	ok, err := s.blobExists(repo, digest)
	if err != nil || ok {
		return err
	}
	return s.pushBlob(repo, digest, bytes.NewReader(data), int64(len(data)))
}

// getBlob streams a blob into buf-sized reads and returns the byte count;
// sink, if not nil, sees every byte.
func (s *session) getBlob(repo, digest string, buf []byte, sink io.Writer) (int64, error) {
	req, err := s.newRequest(http.MethodGet, s.t.URL+"/v2/"+repo+"/blobs/"+digest, repo, nil)
	if err != nil {
		return 0, err
	}
	resp, err := s.do(req, http.StatusOK)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var n int64
	for {
		m, err := resp.Body.Read(buf)
		if m > 0 {
			n += int64(m)
			if sink != nil {
				_, _ = sink.Write(buf[:m])
			}
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

const manifestAccept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, " +
	"application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"

func (s *session) putManifest(repo, ref, mediaType string, body []byte) error {
	req, err := s.newRequest(http.MethodPut, s.t.URL+"/v2/"+repo+"/manifests/"+ref, repo, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", mediaType)
	resp, err := s.do(req, http.StatusCreated)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// getManifest fetches a manifest by tag or digest; head sends HEAD.
func (s *session) getManifest(repo, ref string, head bool, buf []byte) ([]byte, error) {
	method := http.MethodGet
	if head {
		method = http.MethodHead
	}
	req, err := s.newRequest(method, s.t.URL+"/v2/"+repo+"/manifests/"+ref, repo, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := s.do(req, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if head {
		if resp.Header.Get("Docker-Content-Digest") == "" {
			return nil, fmt.Errorf("%s: HEAD manifest: no Docker-Content-Digest", s.t.Name)
		}
		return nil, nil
	}
	b := bytes.NewBuffer(buf[:0])
	if _, err := b.ReadFrom(resp.Body); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
