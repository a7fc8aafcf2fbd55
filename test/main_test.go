// Package e2e holds MCR's end-to-end tests: every test starts real mcrsrv
// processes (built once per run by mcrtest) on loopback over TLS and talks
// to them with real clients (go-containerregistry, raw HTTP, raw TLS).
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"git.wntrmute.dev/kyle/mcr/test/fakemcias"
	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

func TestMain(m *testing.M) { os.Exit(mcrtest.Main(m)) }

// basicAuth is a go-containerregistry authenticator for a username and
// password (what `crane auth login` stores).
func basicAuth(user, pass string) authn.Authenticator {
	return authn.FromConfig(authn.AuthConfig{Username: user, Password: pass})
}

// adminAuth authenticates as the `admin` account every test server has.
func adminAuth() authn.Authenticator { return basicAuth("admin", mcrtest.AdminPassword) }

// remoteOpts are the go-containerregistry options for srv: its TLS trust,
// the given credentials and a deadline bound to the test.
func remoteOpts(t testing.TB, srv *mcrtest.Server, auth authn.Authenticator, rt http.RoundTripper, extra ...remote.Option) []remote.Option {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	if rt == nil {
		rt = srv.Transport()
	}
	return append([]remote.Option{remote.WithAuth(auth), remote.WithTransport(rt), remote.WithContext(ctx)}, extra...)
}

// ref parses "repo:tag" or "repo@sha256:..." on srv.
func ref(t testing.TB, srv *mcrtest.Server, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(srv.Addr+"/"+s, name.StrictValidation)
	if err != nil {
		t.Fatalf("parse reference %q: %v", s, err)
	}
	return r
}

// repoRef parses a repository name on srv.
func repoRef(t testing.TB, srv *mcrtest.Server, repo string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(srv.Addr + "/" + repo)
	if err != nil {
		t.Fatalf("parse repository %q: %v", repo, err)
	}
	return r
}

// aliasRegistry returns a registry host name for srv ("mcr.test:<port>")
// and a transport that dials srv for it. go-containerregistry assumes a
// 127.0.0.1 or localhost registry speaks plain HTTP and then refuses the
// server's https:// pagination links; under another name it expects HTTPS.
func aliasRegistry(srv *mcrtest.Server) (string, http.RoundTripper) {
	_, port, _ := net.SplitHostPort(srv.Addr)
	tr := srv.Transport()
	tr.TLSClientConfig.ServerName = "localhost" // a SAN of the self-signed certificate
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, srv.Addr)
	}
	return "mcr.test:" + port, tr
}

// ociErrors is the OCI distribution error envelope.
type ociErrors struct {
	Errors []struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	} `json:"errors"`
}

// readAll reads and closes a response body.
func readAll(t testing.TB, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return b
}

// expectOCIError asserts the response has status and an OCI error body
// whose first code is code; it returns the body.
func expectOCIError(t testing.TB, resp *http.Response, status int, code string) []byte {
	t.Helper()
	body := readAll(t, resp)
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, body)
	}
	var e ociErrors
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("%s %s: body is not an OCI error envelope: %v: %q", resp.Request.Method, resp.Request.URL.Path, err, body)
	}
	if len(e.Errors) == 0 || e.Errors[0].Code != code {
		t.Fatalf("%s %s: error codes %s, want %s", resp.Request.Method, resp.Request.URL.Path, body, code)
	}
	return body
}

// expectStatus asserts status and returns the body.
func expectStatus(t testing.TB, resp *http.Response, status int) []byte {
	t.Helper()
	body := readAll(t, resp)
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, status, body)
	}
	return body
}

// tokenResponse is the JSON of /v2/token.
type tokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
	ExpiresIn    int    `json:"expires_in"`
}

// tokenGET calls GET /v2/token with Basic credentials (user != "") or a
// bearer token and returns the response.
func tokenGET(t testing.TB, srv *mcrtest.Server, user, pass, bearer string, q url.Values) *http.Response {
	t.Helper()
	if q == nil {
		q = url.Values{}
	}
	if q.Get("service") == "" {
		q.Set("service", "mcr")
	}
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/v2/token?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("GET /v2/token: %v", err)
	}
	return resp
}

// tokenPOST calls POST /v2/token with a form.
func tokenPOST(t testing.TB, srv *mcrtest.Server, form url.Values) *http.Response {
	t.Helper()
	resp, err := srv.Client().Post(srv.URL+"/v2/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatalf("POST /v2/token: %v", err)
	}
	return resp
}

func decodeToken(t testing.TB, resp *http.Response) tokenResponse {
	t.Helper()
	body := expectStatus(t, resp, http.StatusOK)
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatalf("token response %q: %v", body, err)
	}
	if tr.Token == "" && tr.AccessToken == "" {
		t.Fatalf("token response without a token: %s", body)
	}
	if tr.Token == "" {
		tr.Token = tr.AccessToken
	}
	return tr
}

// startMCIAS starts a fake MCIAS and an mcrsrv using it as identity
// provider.
func startMCIAS(t testing.TB, opts ...mcrtest.Option) (*fakemcias.Server, *mcrtest.Server) {
	t.Helper()
	fake := fakemcias.New(t)
	o := append([]mcrtest.Option{
		mcrtest.WithConfig("identity.provider", `"mcias"`),
		mcrtest.WithConfig("mcias.server_url", `"`+fake.URL()+`"`),
		mcrtest.WithConfig("mcias.ca_cert", `"`+fake.CACertFile(t)+`"`),
	}, opts...)
	return fake, mcrtest.Start(t, o...)
}

// recorded is one exchange seen by a recordingTransport.
type recorded struct {
	Method, Path, RawQuery string
	Authorization          string
	// Body is the response body of /v2/token requests (to learn tokens a
	// client obtained).
	Body   []byte
	Status int
}

// recordingTransport records every exchange of a client.
type recordingTransport struct {
	inner http.RoundTripper
	log   []recorded
	mu    sync.Mutex
}

func (rt *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.inner.RoundTrip(req)
	rec := recorded{Method: req.Method, Path: req.URL.Path, RawQuery: req.URL.RawQuery, Authorization: req.Header.Get("Authorization")}
	if err == nil {
		rec.Status = resp.StatusCode
		if req.URL.Path == "/v2/token" {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(b))
			if rerr == nil {
				rec.Body = b
			}
		}
	}
	rt.mu.Lock()
	rt.log = append(rt.log, rec)
	rt.mu.Unlock()
	return resp, err
}

func (rt *recordingTransport) records() []recorded {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]recorded(nil), rt.log...)
}
