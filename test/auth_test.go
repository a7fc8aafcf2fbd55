package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"git.wntrmute.dev/kyle/mcr/test/fakemcias"
	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// signingKey reads the server's (only) token signing key from
// <data>/keys/*.pem and returns it with its kid (hex of the first 16 bytes
// of SHA-256 over the PKIX public key, as authplugin.KeyID computes it).
func signingKey(t *testing.T, srv *mcrtest.Server) (*ecdsa.PrivateKey, string) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(srv.Dir, "keys", "*.pem"))
	if err != nil || len(names) != 1 {
		t.Fatalf("signing keys in %s: %v %v", srv.Dir, names, err)
	}
	data, err := os.ReadFile(names[0])
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM block", names[0])
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", names[0], err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("%s: %T, want an ECDSA key", names[0], k)
	}
	return ek, keyID(t, &ek.PublicKey)
}

func keyID(t *testing.T, pub *ecdsa.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:16])
}

// realClaims returns the claims of a token the server issued.
func realClaims(t *testing.T, token string) (jwt.MapClaims, map[string]any) {
	t.Helper()
	c := jwt.MapClaims{}
	tok, _, err := jwt.NewParser().ParseUnverified(token, c)
	if err != nil {
		t.Fatalf("parse server token: %v", err)
	}
	return c, tok.Header
}

// forge signs claims with method and key, setting the kid header.
func forge(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign forged token: %v", err)
	}
	return s
}

// expectChallenge asserts a 401 with a Bearer challenge and an OCI
// UNAUTHORIZED body, and returns the WWW-Authenticate header.
func expectChallenge(t *testing.T, resp *http.Response) string {
	t.Helper()
	expectOCIError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED")
	h := resp.Header.Get("WWW-Authenticate")
	if !strings.HasPrefix(h, "Bearer ") {
		t.Fatalf("%s %s: WWW-Authenticate %q, want a Bearer challenge", resp.Request.Method, resp.Request.URL.Path, h)
	}
	return h
}

// expectRejected asserts that token is refused on /v2/ and on a repository
// with 401, an invalid_token challenge and an OCI UNAUTHORIZED body.
func expectRejected(t *testing.T, srv *mcrtest.Server, token, repo string) {
	t.Helper()
	for _, path := range []string{"/v2/", "/v2/" + repo + "/tags/list", "/v2/" + repo + "/manifests/v1"} {
		h := expectChallenge(t, srv.Do(t, http.MethodGet, path, token, nil))
		if !strings.Contains(h, `error="invalid_token"`) {
			t.Errorf("GET %s: WWW-Authenticate %q, want error=\"invalid_token\"", path, h)
		}
	}
	// Writes are refused too.
	h := expectChallenge(t, srv.Do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", token, nil))
	if !strings.Contains(h, `error="invalid_token"`) {
		t.Errorf("POST uploads: WWW-Authenticate %q, want error=\"invalid_token\"", h)
	}
}

// TestAuthNegatives runs the token and credential negatives against one
// local-identity server; each subtest is one case.
func TestAuthNegatives(t *testing.T) {
	t.Parallel()
	// Wrong passwords here test answers, not the throttle (signin_test.go).
	srv := mcrtest.Start(t, noThrottle()...)
	srv.AddUser(t, "alice", "alice-password-1", "user", "human")
	srv.AddUser(t, "gus", "guest-password-1", "guest", "human")
	const repo, otherRepo = "neg/a", "neg/b"

	// Both repositories exist, so a 200 means "authorized" below.
	img, err := random.Image(2048, 1)
	if err != nil {
		t.Fatal(err)
	}
	admin := remoteOpts(t, srv, adminAuth(), nil)
	for _, r := range []string{repo, otherRepo} {
		if err := remote.Write(ref(t, srv, r+":v1"), img, admin...); err != nil {
			t.Fatalf("push %s: %v", r, err)
		}
	}

	key, kid := signingKey(t, srv)
	good := srv.Token(t, "admin", mcrtest.AdminPassword, "repository:"+repo+":pull,push")
	base, header := realClaims(t, good)
	if header["alg"] != "ES256" || header["kid"] != kid {
		t.Fatalf("server token header %v, want alg ES256 and kid %s (the key in %s/keys)", header, kid, srv.Dir)
	}
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{}
		for k, v := range base {
			c[k] = v
		}
		now := time.Now()
		c["iat"] = now.Unix()
		c["nbf"] = now.Unix()
		c["exp"] = now.Add(5 * time.Minute).Unix()
		c["jti"] = hex.EncodeToString([]byte(now.String()))[:32]
		if mod != nil {
			mod(c)
		}
		return c
	}

	t.Run("control: real and re-signed tokens work", func(t *testing.T) {
		// Without this the negatives below would prove nothing.
		expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list", good, nil), http.StatusOK)
		forged := forge(t, jwt.SigningMethodES256, key, kid, claims(nil))
		expectStatus(t, srv.Do(t, http.MethodGet, "/v2/", forged, nil), http.StatusOK)
		expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list", forged, nil), http.StatusOK)
	})

	t.Run("token format", func(t *testing.T) {
		tr := decodeToken(t, tokenGET(t, srv, "alice", "alice-password-1", "", url.Values{"scope": {"repository:" + repo + ":pull,push"}}))
		if tr.AccessToken != tr.Token {
			t.Errorf("token and access_token differ")
		}
		if tr.ExpiresIn != 300 {
			t.Errorf("expires_in %d, want 300 (5 min default)", tr.ExpiresIn)
		}
		if _, err := time.Parse(time.RFC3339, tr.IssuedAt); err != nil {
			t.Errorf("issued_at %q: %v", tr.IssuedAt, err)
		}
		// Verify it as a client would, with the server's public key.
		c := jwt.MapClaims{}
		tok, err := jwt.ParseWithClaims(tr.Token, c, func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
			jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer("mcr"), jwt.WithAudience("mcr"), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
		if err != nil {
			t.Fatalf("the server's token does not verify with its own key: %v", err)
		}
		if tok.Header["kid"] != kid {
			t.Errorf("kid %v, want %s", tok.Header["kid"], kid)
		}
		for _, claim := range []string{"sub", "exp", "nbf", "iat", "jti"} {
			if _, ok := c[claim]; !ok {
				t.Errorf("claim %s missing from %v", claim, c)
			}
		}
		exp, _ := c.GetExpirationTime()
		iat, _ := c.GetIssuedAt()
		if exp == nil || iat == nil || exp.Sub(iat.Time) != 5*time.Minute {
			t.Errorf("token lifetime exp-iat = %v, want 5m", exp.Sub(iat.Time))
		}
		raw, _ := json.Marshal(c["access"])
		var access []struct {
			Type    string   `json:"type"`
			Name    string   `json:"name"`
			Actions []string `json:"actions"`
		}
		if err := json.Unmarshal(raw, &access); err != nil || len(access) != 1 || access[0].Type != "repository" || access[0].Name != repo {
			t.Fatalf("access claim %s, want one entry for repository %s", raw, repo)
		}
		acts := slices.Clone(access[0].Actions)
		slices.Sort(acts)
		if !slices.Equal(acts, []string{"pull", "push"}) {
			t.Errorf("granted actions %v, want pull and push", access[0].Actions)
		}
		other := decodeToken(t, tokenGET(t, srv, "alice", "alice-password-1", "", url.Values{"scope": {"repository:" + repo + ":pull"}}))
		oc, _ := realClaims(t, other.Token)
		if oc["jti"] == c["jti"] {
			t.Errorf("two tokens share jti %v", c["jti"])
		}
		// Several scopes in one request; unknown service refused.
		multi := decodeToken(t, tokenGET(t, srv, "alice", "alice-password-1", "", url.Values{"scope": {"repository:" + repo + ":pull", "repository:" + otherRepo + ":pull"}}))
		for _, r := range []string{repo, otherRepo} {
			expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+r+"/tags/list", multi.Token, nil), http.StatusOK)
		}
		resp := tokenGET(t, srv, "alice", "alice-password-1", "", url.Values{"service": {"not-mcr"}, "scope": {"repository:" + repo + ":pull"}})
		if resp.StatusCode == http.StatusOK {
			t.Errorf("a token for service not-mcr was issued")
		}
		readAll(t, resp)
	})

	t.Run("wrong password", func(t *testing.T) {
		for _, user := range []string{"admin", "alice"} {
			resp := tokenGET(t, srv, user, "wrong-password-1", "", url.Values{"scope": {"repository:" + repo + ":pull"}})
			expectOCIError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED")
			resp = tokenPOST(t, srv, url.Values{"grant_type": {"password"}, "username": {user}, "password": {"wrong-password-1"}, "service": {"mcr"}})
			expectOCIError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED")
		}
		// go-containerregistry reports the failed login.
		_, err := remote.Image(ref(t, srv, repo+":v1"), remoteOpts(t, srv, basicAuth("admin", "wrong-password-1"), nil)...)
		var te *transport.Error
		if err == nil || !asTransportError(err, &te) || te.StatusCode != http.StatusUnauthorized {
			t.Fatalf("pull with a wrong password: %v, want a 401", err)
		}
	})

	t.Run("unknown user", func(t *testing.T) {
		resp := tokenGET(t, srv, "nobody", "any-password-1", "", url.Values{"scope": {"repository:" + repo + ":pull"}})
		expectOCIError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED")
		resp = tokenPOST(t, srv, url.Values{"grant_type": {"password"}, "username": {"nobody"}, "password": {"any-password-1"}})
		expectOCIError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED")
		// No credentials at all.
		resp = tokenGET(t, srv, "", "", "", nil)
		expectOCIError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED")
	})

	t.Run("expired token", func(t *testing.T) {
		tok := forge(t, jwt.SigningMethodES256, key, kid, claims(func(c jwt.MapClaims) {
			c["iat"] = time.Now().Add(-2 * time.Hour).Unix()
			c["nbf"] = time.Now().Add(-2 * time.Hour).Unix()
			c["exp"] = time.Now().Add(-time.Hour).Unix()
		}))
		expectRejected(t, srv, tok, repo)
		// Just past expiry, beyond any reasonable leeway.
		tok = forge(t, jwt.SigningMethodES256, key, kid, claims(func(c jwt.MapClaims) {
			c["iat"] = time.Now().Add(-10 * time.Minute).Unix()
			c["nbf"] = time.Now().Add(-10 * time.Minute).Unix()
			c["exp"] = time.Now().Add(-2 * time.Minute).Unix()
		}))
		expectRejected(t, srv, tok, repo)
		// No expiry at all.
		tok = forge(t, jwt.SigningMethodES256, key, kid, claims(func(c jwt.MapClaims) { delete(c, "exp") }))
		expectRejected(t, srv, tok, repo)
		// Not valid yet.
		tok = forge(t, jwt.SigningMethodES256, key, kid, claims(func(c jwt.MapClaims) {
			c["nbf"] = time.Now().Add(time.Hour).Unix()
			c["exp"] = time.Now().Add(2 * time.Hour).Unix()
		}))
		expectRejected(t, srv, tok, repo)
	})

	t.Run("signed by another key", func(t *testing.T) {
		other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		// Its own kid, which the server does not know.
		expectRejected(t, srv, forge(t, jwt.SigningMethodES256, other, keyID(t, &other.PublicKey), claims(nil)), repo)
		// Our kid, someone else's signature.
		expectRejected(t, srv, forge(t, jwt.SigningMethodES256, other, kid, claims(nil)), repo)
		// No kid.
		expectRejected(t, srv, forge(t, jwt.SigningMethodES256, other, "", claims(nil)), repo)
	})

	t.Run("alg none", func(t *testing.T) {
		tok := forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, claims(nil))
		expectRejected(t, srv, tok, repo)
		// A valid ES256 header and claims with the signature stripped.
		signed := forge(t, jwt.SigningMethodES256, key, kid, claims(nil))
		expectRejected(t, srv, signed[:strings.LastIndexByte(signed, '.')+1], repo)
	})

	t.Run("HS256 with the public key (key confusion)", func(t *testing.T) {
		der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		unc, err := key.PublicKey.Bytes() // 0x04 || X || Y
		if err != nil {
			t.Fatal(err)
		}
		raw := append([]byte{2 | unc[len(unc)-1]&1}, unc[1:33]...) // the compressed point
		for _, secret := range [][]byte{pemKey, der, raw} {
			expectRejected(t, srv, forge(t, jwt.SigningMethodHS256, secret, kid, claims(nil)), repo)
		}
	})

	t.Run("wrong audience", func(t *testing.T) {
		for _, aud := range []any{"not-mcr", []string{"registry.example"}, "mcr:session", "mcr:refresh"} {
			expectRejected(t, srv, forge(t, jwt.SigningMethodES256, key, kid, claims(func(c jwt.MapClaims) { c["aud"] = aud })), repo)
		}
		// Wrong issuer.
		expectRejected(t, srv, forge(t, jwt.SigningMethodES256, key, kid, claims(func(c jwt.MapClaims) { c["iss"] = "someone-else" })), repo)
		// A refresh token is not an access token.
		resp := tokenPOST(t, srv, url.Values{"grant_type": {"password"}, "username": {"admin"}, "password": {mcrtest.AdminPassword},
			"access_type": {"offline"}, "scope": {"repository:" + repo + ":pull"}, "service": {"mcr"}})
		tr := decodeToken(t, resp)
		if tr.RefreshToken == "" {
			t.Fatal("no refresh token with access_type=offline")
		}
		expectRejected(t, srv, tr.RefreshToken, repo)
	})

	t.Run("token for repo A used on repo B", func(t *testing.T) {
		for _, tok := range []string{
			good, // admin: the token's grants bound even an admin
			srv.Token(t, "alice", "alice-password-1", "repository:"+repo+":pull,push"),
		} {
			expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list", tok, nil), http.StatusOK)
			for _, req := range []struct{ method, path string }{
				{http.MethodGet, "/v2/" + otherRepo + "/tags/list"},
				{http.MethodGet, "/v2/" + otherRepo + "/manifests/v1"},
				{http.MethodPost, "/v2/" + otherRepo + "/blobs/uploads/"},
			} {
				h := expectChallenge(t, srv.Do(t, req.method, req.path, tok, nil))
				if !strings.Contains(h, `error="insufficient_scope"`) {
					t.Errorf("%s %s: WWW-Authenticate %q, want error=\"insufficient_scope\"", req.method, req.path, h)
				}
				if !strings.Contains(h, `scope="repository:`+otherRepo+`:`) {
					t.Errorf("%s %s: WWW-Authenticate %q does not name the scope needed", req.method, req.path, h)
				}
			}
		}
		// A pull-only token cannot push to its own repository either.
		pull := srv.Token(t, "alice", "alice-password-1", "repository:"+repo+":pull")
		h := expectChallenge(t, srv.Do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", pull, nil))
		if !strings.Contains(h, `error="insufficient_scope"`) {
			t.Errorf("push with a pull token: WWW-Authenticate %q, want insufficient_scope", h)
		}
		// A forged token claiming access to B, signed with another key, is
		// not a way around it.
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tok := forge(t, jwt.SigningMethodES256, other, kid, claims(func(c jwt.MapClaims) {
			c["access"] = []map[string]any{{"type": "repository", "name": otherRepo, "actions": []string{"pull"}}}
		}))
		expectRejected(t, srv, tok, otherRepo)
	})

	t.Run("guest account", func(t *testing.T) {
		resp := tokenGET(t, srv, "gus", "guest-password-1", "", url.Values{"scope": {"repository:" + repo + ":pull,push"}})
		tr := decodeToken(t, resp)
		if tr.Scope != "" {
			t.Errorf("guest was granted %q", tr.Scope)
		}
		expectStatus(t, srv.Do(t, http.MethodGet, "/v2/", tr.Token, nil), http.StatusOK)
		expectOCIError(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list", tr.Token, nil), http.StatusForbidden, "DENIED")
		expectOCIError(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/manifests/v1", tr.Token, nil), http.StatusForbidden, "DENIED")
		expectOCIError(t, srv.Do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", tr.Token, nil), http.StatusForbidden, "DENIED")
		expectOCIError(t, srv.Do(t, http.MethodDelete, "/v2/"+repo+"/manifests/v1", tr.Token, nil), http.StatusForbidden, "DENIED")

		// With a real client.
		guest := remoteOpts(t, srv, basicAuth("gus", "guest-password-1"), nil)
		var te *transport.Error
		if _, err := remote.Image(ref(t, srv, repo+":v1"), guest...); err == nil || !asTransportError(err, &te) || te.StatusCode != http.StatusForbidden {
			t.Errorf("guest pull: %v, want 403", err)
		}
		if err := remote.Write(ref(t, srv, "guest/own:v1"), img, guest...); err == nil || !asTransportError(err, &te) || te.StatusCode != http.StatusForbidden {
			t.Errorf("guest push: %v, want 403", err)
		}
	})

	t.Run("no credentials", func(t *testing.T) {
		resp := srv.Do(t, http.MethodGet, "/v2/", "", nil)
		h := expectChallenge(t, resp)
		want := `Bearer realm="https://` + srv.Addr + `/v2/token",service="mcr"`
		if h != want {
			t.Errorf("WWW-Authenticate %q, want %q", h, want)
		}
		h = expectChallenge(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list", "", nil))
		if !strings.HasPrefix(h, want) || !strings.Contains(h, `scope="repository:`+repo+`:pull"`) {
			t.Errorf("WWW-Authenticate on a repository %q, want %s plus scope=\"repository:%s:pull\"", h, want, repo)
		}
		expectChallenge(t, srv.Do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", "", nil))
		expectChallenge(t, srv.Do(t, http.MethodGet, "/v2/_catalog", "", nil))
		// The realm names server.hostname (written by init), never the
		// host the client sent.
		_, port, _ := strings.Cut(srv.Addr, ":")
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/", nil)
		req.Host = "localhost:" + port
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if h := expectChallenge(t, resp); h != want {
			t.Errorf("WWW-Authenticate for Host localhost:%s: %q, want %q", port, h, want)
		}
		// Garbage bearer and Basic credentials on /v2/ are challenged too.
		expectChallenge(t, srv.Do(t, http.MethodGet, "/v2/", "not-a-token", nil))
		req, _ = http.NewRequest(http.MethodGet, srv.URL+"/v2/", nil)
		req.SetBasicAuth("admin", mcrtest.AdminPassword)
		resp, err = srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		expectChallenge(t, resp)
	})

	t.Run("refresh token grant", func(t *testing.T) {
		testRefreshGrant(t, srv, "alice", "alice-password-1", repo, "admin", mcrtest.AdminPassword)
	})

	t.Run("session login and logout", func(t *testing.T) {
		b, _ := json.Marshal(map[string]string{"username": "alice", "password": "wrong-password-1"})
		resp := srv.Do(t, http.MethodPost, "/v1/auth/login", "", b, "Content-Type", "application/json")
		expectStatus(t, resp, http.StatusUnauthorized)
		session := srv.Login(t, "alice", "alice-password-1")
		// The session token is an identity: it mints registry tokens.
		tr := decodeToken(t, tokenGET(t, srv, "", "", session, url.Values{"scope": {"repository:" + repo + ":pull"}}))
		expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list", tr.Token, nil), http.StatusOK)
		// A registry token is not an identity: it cannot mint others.
		expectOCIError(t, tokenGET(t, srv, "", "", tr.Token, url.Values{"scope": {"repository:" + otherRepo + ":pull"}}), http.StatusUnauthorized, "UNAUTHORIZED")

		expectStatus(t, srv.Do(t, http.MethodPost, "/v1/auth/logout", session, nil), http.StatusNoContent)
		expectOCIError(t, tokenGET(t, srv, "", "", session, url.Values{"scope": {"repository:" + repo + ":pull"}}), http.StatusUnauthorized, "UNAUTHORIZED")
		expectChallenge(t, srv.Do(t, http.MethodGet, "/v2/", session, nil))
	})
}

// testRefreshGrant: POST /v2/token password grant with access_type=offline
// gives a refresh token; the refresh_token grant gives working access
// tokens; bad refresh tokens are refused with 401.
func testRefreshGrant(t *testing.T, srv *mcrtest.Server, user, pass, repo, adminUser, adminPass string) {
	t.Helper()
	scope := "repository:" + repo + ":pull"
	tr := decodeToken(t, tokenPOST(t, srv, url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass},
		"service": {"mcr"}, "scope": {scope}, "access_type": {"offline"}, "client_id": {"e2e"}}))
	if tr.AccessToken == "" || tr.RefreshToken == "" {
		t.Fatalf("password grant with access_type=offline: %+v, want access_token and refresh_token", tr)
	}
	expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list", tr.AccessToken, nil), http.StatusOK)

	// GET with offline_token=true gives one as well.
	off := decodeToken(t, tokenGET(t, srv, user, pass, "", url.Values{"scope": {scope}, "offline_token": {"true"}}))
	if off.RefreshToken == "" {
		t.Fatalf("GET /v2/token?offline_token=true returned no refresh_token")
	}
	// That one is docker login's identity token: docker stores it once and
	// presents it for every token it needs, so it does not rotate.
	for i := range 3 {
		again := decodeToken(t, tokenPOST(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {off.RefreshToken}, "scope": {scope}}))
		if again.RefreshToken != "" {
			t.Fatalf("identity token redeemed (%d) answered a new refresh token", i+1)
		}
		expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list", again.AccessToken, nil), http.StatusOK)
	}

	// Without access_type=offline there is no refresh token.
	plain := decodeToken(t, tokenPOST(t, srv, url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass},
		"service": {"mcr"}, "scope": {scope}}))
	if plain.RefreshToken != "" {
		t.Errorf("password grant without access_type=offline returned a refresh token")
	}

	rt := decodeToken(t, tokenPOST(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken},
		"service": {"mcr"}, "scope": {scope}, "client_id": {"e2e"}}))
	expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list", rt.AccessToken, nil), http.StatusOK)
	// Rotation: the answer carries the family's next refresh token, which
	// works once; the one just redeemed does not work again.
	if rt.RefreshToken == "" || rt.RefreshToken == tr.RefreshToken {
		t.Fatalf("refresh grant did not rotate the refresh token: %+v", rt)
	}
	rt2 := decodeToken(t, tokenPOST(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt.RefreshToken}, "scope": {scope}}))
	expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list", rt2.AccessToken, nil), http.StatusOK)
	// Reuse of an old one revokes the whole family: the current one too.
	expectOCIError(t, tokenPOST(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "scope": {scope}}),
		http.StatusUnauthorized, "UNAUTHORIZED")
	expectOCIError(t, tokenPOST(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt2.RefreshToken}, "scope": {scope}}),
		http.StatusUnauthorized, "UNAUTHORIZED")
	if evs := auditOf(t, srv, srv.Login(t, adminUser, adminPass), "refresh_reuse", user); len(evs) == 0 {
		t.Errorf("no refresh_reuse audit row for %s", user)
	}

	// Bad refresh tokens.
	tamper := []byte(tr.RefreshToken)
	tamper[len(tamper)-3] ^= 'A' ^ 'B'
	for name, bad := range map[string]string{
		"garbage":      "not-a-refresh-token",
		"tampered":     string(tamper),
		"access token": tr.AccessToken,
	} {
		resp := tokenPOST(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {bad}, "service": {"mcr"}, "scope": {scope}})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("refresh_token grant with a %s: status %d, want 401; body %s", name, resp.StatusCode, readAll(t, resp))
			continue
		}
		expectOCIError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED")
	}
}

// TestAuthMCIAS exercises the mcias identity provider against the fake
// MCIAS: sign-in, refresh, and surviving an MCIAS outage.
func TestAuthMCIAS(t *testing.T) {
	t.Parallel()
	fake, srv := startMCIAS(t)
	fake.AddUser("carol", "carol-password-1", "human", "user")
	fake.AddUser("root", "root-password-1", "human", "admin")
	fake.AddUser("gwen", "gwen-password-1", "human", "guest")
	const repo = "mcias/app"
	img, err := random.Image(8192, 2)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("login with Basic at /v2/token", func(t *testing.T) {
		tr := decodeToken(t, tokenGET(t, srv, "carol", "carol-password-1", "", url.Values{"scope": {"repository:" + repo + ":pull,push"}}))
		if !strings.Contains(tr.Scope, "push") {
			t.Errorf("carol's scope %q, want pull,push", tr.Scope)
		}
		if got := fake.LastLogin(); got.Username != "carol" || got.ServiceName != "mcr" {
			t.Errorf("MCIAS saw login %+v, want carol for service mcr", got)
		}
		expectStatus(t, srv.Do(t, http.MethodGet, "/v2/", tr.Token, nil), http.StatusOK)

		// Real client: push and pull as carol.
		carol := remoteOpts(t, srv, basicAuth("carol", "carol-password-1"), nil)
		if err := remote.Write(ref(t, srv, repo+":v1"), img, carol...); err != nil {
			t.Fatalf("push as carol: %v", err)
		}
		got, err := remote.Image(ref(t, srv, repo+":v1"), carol...)
		if err != nil {
			t.Fatalf("pull as carol: %v", err)
		}
		compareImages(t, img, got)

		// Negatives through MCIAS.
		expectOCIError(t, tokenGET(t, srv, "carol", "wrong-password-1", "", nil), http.StatusUnauthorized, "UNAUTHORIZED")
		expectOCIError(t, tokenGET(t, srv, "nobody", "wrong-password-1", "", nil), http.StatusUnauthorized, "UNAUTHORIZED")

		// An MCIAS token is accepted at the token endpoint and directly on /v2.
		mt := fake.IssueToken("carol")
		tr = decodeToken(t, tokenGET(t, srv, "", "", mt, url.Values{"scope": {"repository:" + repo + ":pull"}}))
		expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list", tr.Token, nil), http.StatusOK)
		expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list", mt, nil), http.StatusOK)
		// A revoked MCIAS token is not (a fresh one: the 30 s cache would
		// legitimately keep the one above working).
		revoked := fake.IssueToken("carol")
		fake.Revoke(revoked)
		expectOCIError(t, tokenGET(t, srv, "", "", revoked, nil), http.StatusUnauthorized, "UNAUTHORIZED")
		expectChallenge(t, srv.Do(t, http.MethodGet, "/v2/", revoked, nil))

		// MCIAS roles: a guest gets /v2/ only.
		gtr := decodeToken(t, tokenGET(t, srv, "gwen", "gwen-password-1", "", url.Values{"scope": {"repository:" + repo + ":pull"}}))
		expectStatus(t, srv.Do(t, http.MethodGet, "/v2/", gtr.Token, nil), http.StatusOK)
		expectOCIError(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list", gtr.Token, nil), http.StatusForbidden, "DENIED")
	})

	t.Run("refresh token grant", func(t *testing.T) {
		testRefreshGrant(t, srv, "carol", "carol-password-1", repo, "root", "root-password-1")
	})

	t.Run("MCIAS down", func(t *testing.T) {
		// Seen while MCIAS is up: a registry token and an MCIAS token
		// (validated once on /v2, so cached).
		regTok := srv.Token(t, "carol", "carol-password-1", "repository:"+repo+":pull")
		mciasTok := fake.IssueToken("carol")
		expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list", mciasTok, nil), http.StatusOK)
		seen := time.Now()

		fake.SetDown(true)
		t.Cleanup(func() { fake.SetDown(false) })
		calls := fake.ValidateCalls()

		expectStatus(t, srv.Do(t, http.MethodGet, "/v2/", regTok, nil), http.StatusOK)
		expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list", regTok, nil), http.StatusOK)
		expectStatus(t, srv.Do(t, http.MethodGet, "/v2/", mciasTok, nil), http.StatusOK)
		expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list", mciasTok, nil), http.StatusOK)
		// The cached MCIAS token still mints registry tokens.
		fresh := decodeToken(t, tokenGET(t, srv, "", "", mciasTok, url.Values{"scope": {"repository:" + repo + ":pull"}}))
		expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list", fresh.Token, nil), http.StatusOK)
		got, err := remote.Image(ref(t, srv, repo+":v1"), remoteOpts(t, srv, authn.FromConfig(authn.AuthConfig{RegistryToken: regTok}), nil)...)
		if err != nil {
			t.Fatalf("pull with a registry token while MCIAS is down: %v", err)
		}
		compareImages(t, img, got)
		if n := fake.ValidateCalls(); n != calls {
			t.Errorf("%d validate calls reached MCIAS for a token validated %s ago; want the 30 s cache to answer", n-calls, time.Since(seen).Round(time.Millisecond))
		}

		// A new login fails with a clear 5xx, not a 401.
		for _, mode := range []fakemcias.DownMode{fakemcias.DownClose, fakemcias.Down503} {
			fake.SetDownMode(mode)
			resp := tokenGET(t, srv, "carol", "carol-password-1", "", url.Values{"scope": {"repository:" + repo + ":pull"}})
			body := readAll(t, resp)
			if resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("login while MCIAS is down (mode %d): status %d, want 502; body %s", mode, resp.StatusCode, body)
			}
			var e ociErrors
			if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
				t.Fatalf("login while MCIAS is down: body %q is not an OCI error", body)
			}
			if !strings.Contains(strings.ToLower(e.Errors[0].Message), "unavailable") {
				t.Errorf("login while MCIAS is down: message %q does not say the identity service is unavailable", e.Errors[0].Message)
			}
			if resp.Header.Get("WWW-Authenticate") != "" {
				t.Errorf("a 502 carries a WWW-Authenticate challenge %q (clients would re-prompt for a password)", resp.Header.Get("WWW-Authenticate"))
			}
			resp = tokenPOST(t, srv, url.Values{"grant_type": {"password"}, "username": {"carol"}, "password": {"carol-password-1"}, "service": {"mcr"}})
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("password grant while MCIAS is down: status %d, want 502; body %s", resp.StatusCode, readAll(t, resp))
			} else {
				resp.Body.Close()
			}
		}
		// The admin API's login says the same.
		b, _ := json.Marshal(map[string]string{"username": "carol", "password": "carol-password-1"})
		resp := srv.Do(t, http.MethodPost, "/v1/auth/login", "", b, "Content-Type", "application/json")
		expectStatus(t, resp, http.StatusBadGateway)
		fake.SetDownMode(fakemcias.DownClose)

		// /v2/ still answers with a challenge.
		h := expectChallenge(t, srv.Do(t, http.MethodGet, "/v2/", "", nil))
		if want := `Bearer realm="https://` + srv.Addr + `/v2/token",service="mcr"`; h != want {
			t.Errorf("WWW-Authenticate %q, want %q", h, want)
		}
		// An MCIAS token never seen before cannot be validated: refused
		// (not accepted, not a crash).
		resp = srv.Do(t, http.MethodGet, "/v2/", fake.IssueToken("carol"), nil)
		if resp.StatusCode == http.StatusOK {
			t.Errorf("an unvalidated MCIAS token was accepted while MCIAS is down")
		}
		readAll(t, resp)
		if time.Since(seen) > 25*time.Second {
			t.Fatalf("the outage checks took %s, too close to the 30 s cache lifetime to mean anything", time.Since(seen))
		}

		// MCIAS back: logins work again.
		fake.SetDown(false)
		decodeToken(t, tokenGET(t, srv, "carol", "carol-password-1", "", url.Values{"scope": {"repository:" + repo + ":pull"}}))
	})

	t.Run("admin role from MCIAS", func(t *testing.T) {
		tr := decodeToken(t, tokenGET(t, srv, "root", "root-password-1", "", url.Values{"scope": {"registry:catalog:*"}}))
		body := expectStatus(t, srv.Do(t, http.MethodGet, "/v2/_catalog", tr.Token, nil), http.StatusOK)
		var cat struct{ Repositories []string }
		if err := json.Unmarshal(body, &cat); err != nil || !slices.Contains(cat.Repositories, repo) {
			t.Errorf("catalog as MCIAS admin: %s", body)
		}
	})
}

// TestAuthMCIASUntrustedCertificate: mcias.ca_cert pins the CA; an MCIAS
// presenting another certificate is unavailable (502), never trusted.
func TestAuthMCIASUntrustedCertificate(t *testing.T) {
	t.Parallel()
	fake := fakemcias.New(t)
	fake.AddUser("carol", "carol-password-1", "human", "user")
	// Some other CA (every httptest server shares one certificate, so
	// make a new one), valid for the same names.
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		DNSNames: []string{"localhost", "example.com"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := mcrtest.Start(t,
		mcrtest.WithConfig("identity.provider", `"mcias"`),
		mcrtest.WithConfig("mcias.server_url", `"`+fake.URL()+`"`),
		mcrtest.WithConfig("mcias.ca_cert", `"`+caFile+`"`),
	)
	resp := tokenGET(t, srv, "carol", "carol-password-1", "", url.Values{"scope": {"repository:x/y:pull"}})
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("login through an MCIAS with an untrusted certificate: status %d, want 502; body %s", resp.StatusCode, body)
	}
	if n := fake.LoginCalls(); n != 0 {
		t.Errorf("the password reached an MCIAS whose certificate is not trusted (%d login requests)", n)
	}
	expectChallenge(t, srv.Do(t, http.MethodGet, "/v2/", "", nil))
}
