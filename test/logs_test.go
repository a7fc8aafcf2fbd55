package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// secretSet collects every credential a test used, to grep the server's
// log for them afterwards.
type secretSet struct {
	names   []string
	secrets []string
}

func (s *secretSet) add(name, secret string) {
	if secret == "" {
		return
	}
	s.names = append(s.names, name)
	s.secrets = append(s.secrets, secret)
}

// addBasic records a password and the Basic header value carrying it.
func (s *secretSet) addBasic(user, pass string) {
	s.add("password of "+user, pass)
	s.add("Basic credentials of "+user, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
}

// addFromClient records the tokens a go-containerregistry client obtained
// and sent.
func (s *secretSet) addFromClient(rt *recordingTransport) {
	for _, r := range rt.records() {
		if _, v, ok := strings.Cut(r.Authorization, " "); ok {
			s.add("Authorization sent by the client to "+r.Path, v)
		}
		if len(r.Body) > 0 {
			var tr tokenResponse
			if json.Unmarshal(r.Body, &tr) == nil {
				s.add("token issued to the client", tr.Token)
				s.add("access_token issued to the client", tr.AccessToken)
				s.add("refresh_token issued to the client", tr.RefreshToken)
			}
		}
	}
}

// check fails for every recorded secret (and every JWT) found in log.
func (s *secretSet) check(t *testing.T, log string) {
	t.Helper()
	if len(s.secrets) < 8 {
		t.Fatalf("only %d secrets collected; the test did not exercise enough", len(s.secrets))
	}
	for i, sec := range s.secrets {
		if strings.Contains(log, sec) {
			t.Errorf("the server log contains the %s", s.names[i])
		}
		// Also a distinctive fragment (a token cut by a log formatter).
		if len(sec) > 40 {
			frag := sec[len(sec)-24:]
			if strings.Contains(log, frag) {
				t.Errorf("the server log contains a fragment of the %s", s.names[i])
			}
		}
	}
	if i := strings.Index(log, "eyJ"); i >= 0 {
		t.Errorf("the server log contains a JWT-looking string: %q", log[max(0, i-80):min(len(log), i+80)])
	}
}

func uniqueSecret(prefix string) string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()

	t.Run("local", func(t *testing.T) {
		t.Parallel()
		srv := mcrtest.Start(t, mcrtest.WithConfig("log.level", `"debug"`))
		var ss secretSet
		ss.addBasic("admin", mcrtest.AdminPassword)
		alicePass := uniqueSecret("alice-pw")
		srv.AddUser(t, "alice", alicePass, "user", "human")
		ss.addBasic("alice", alicePass)
		const repo = "logs/app"

		// Session login, good and bad.
		session := srv.Login(t, "alice", alicePass)
		ss.add("session token", session)
		wrong := uniqueSecret("wrong-pw")
		ss.addBasic("alice (wrong)", wrong)
		b, _ := json.Marshal(map[string]string{"username": "alice", "password": wrong})
		resp := srv.Do(t, http.MethodPost, "/v1/auth/login", "", b, "Content-Type", "application/json")
		expectStatus(t, resp, http.StatusUnauthorized)

		// Token endpoint: Basic, bearer session, password and refresh grants.
		scope := "repository:" + repo + ":pull,push"
		t1 := decodeToken(t, tokenGET(t, srv, "alice", alicePass, "", url.Values{"scope": {scope}}))
		ss.add("registry token (Basic)", t1.Token)
		t2 := decodeToken(t, tokenGET(t, srv, "", "", session, url.Values{"scope": {scope}}))
		ss.add("registry token (session bearer)", t2.Token)
		t3 := decodeToken(t, tokenPOST(t, srv, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePass},
			"access_type": {"offline"}, "scope": {scope}, "service": {"mcr"}}))
		ss.add("registry token (password grant)", t3.Token)
		ss.add("refresh token", t3.RefreshToken)
		t4 := decodeToken(t, tokenPOST(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {t3.RefreshToken}, "scope": {scope}}))
		ss.add("registry token (refresh grant)", t4.Token)
		expectOCIError(t, tokenGET(t, srv, "alice", wrong, "", url.Values{"scope": {scope}}), http.StatusUnauthorized, "UNAUTHORIZED")
		badRefresh := uniqueSecret("bogus-refresh-token")
		ss.add("bogus refresh token", badRefresh)
		expectStatus(t, tokenPOST(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {badRefresh}}), http.StatusUnauthorized)
		badBearer := uniqueSecret("bogus-bearer")
		ss.add("bogus bearer", badBearer)
		expectChallenge(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list", badBearer, nil))

		// Pushes and pulls with real clients.
		img, _ := random.Image(4096, 2)
		rec := &recordingTransport{inner: srv.Transport()}
		opts := remoteOpts(t, srv, basicAuth("alice", alicePass), rec)
		if err := remote.Write(ref(t, srv, repo+":v1"), img, opts...); err != nil {
			t.Fatalf("push: %v", err)
		}
		if _, err := remote.Image(ref(t, srv, repo+":v1"), opts...); err != nil {
			t.Fatalf("pull: %v", err)
		}
		admRec := &recordingTransport{inner: srv.Transport()}
		if err := remote.Write(ref(t, srv, "logs/admin:v1"), img, remoteOpts(t, srv, adminAuth(), admRec)...); err != nil {
			t.Fatalf("admin push: %v", err)
		}
		badRec := &recordingTransport{inner: srv.Transport()}
		if _, err := remote.Image(ref(t, srv, repo+":v1"), remoteOpts(t, srv, basicAuth("alice", wrong), badRec)...); err == nil {
			t.Fatal("pull with a wrong password succeeded")
		}
		ss.addFromClient(rec)
		ss.addFromClient(admRec)
		ss.addFromClient(badRec)

		// Raw requests with tokens: allowed, out of scope, denied.
		expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/tags/list", t1.Token, nil), http.StatusOK)
		expectChallenge(t, srv.Do(t, http.MethodGet, "/v2/logs/admin/tags/list", t1.Token, nil))
		expectStatus(t, srv.Do(t, http.MethodGet, "/v2/"+repo+"/manifests/v1", t4.Token, nil,
			"Accept", "application/vnd.oci.image.manifest.v1+json"), http.StatusOK)

		// Logout.
		expectStatus(t, srv.Do(t, http.MethodPost, "/v1/auth/logout", session, nil), http.StatusNoContent)

		// Stop first, so every log line is flushed.
		if err := srv.Stop(t); err != nil {
			t.Errorf("mcrsrv exited with %v", err)
		}
		log := srv.Output.String()
		if !strings.Contains(log, "alice") || !strings.Contains(log, "login_fail") {
			t.Fatalf("the log does not record the logins (is this the right output?):\n%s", log)
		}
		ss.check(t, log)
		if os.Getenv("E2E_DUMP_LOG") != "" {
			t.Logf("server log:\n%s", log)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", log)
		}
	})

	t.Run("mcias", func(t *testing.T) {
		t.Parallel()
		fake, srv := startMCIAS(t, mcrtest.WithConfig("log.level", `"debug"`))
		var ss secretSet
		pass := uniqueSecret("dana-pw")
		fake.AddUser("dana", pass, "human", "user")
		ss.addBasic("dana", pass)
		const repo = "logs/mcias"

		session := srv.Login(t, "dana", pass)
		ss.add("MCIAS token from /v1/auth/login", session)
		scope := "repository:" + repo + ":pull,push"
		t1 := decodeToken(t, tokenGET(t, srv, "dana", pass, "", url.Values{"scope": {scope}}))
		ss.add("registry token (Basic)", t1.Token)
		mt := fake.IssueToken("dana")
		ss.add("MCIAS token", mt)
		t2 := decodeToken(t, tokenGET(t, srv, "", "", mt, url.Values{"scope": {scope}}))
		ss.add("registry token (MCIAS bearer)", t2.Token)
		expectStatus(t, srv.Do(t, http.MethodGet, "/v2/", mt, nil), http.StatusOK)
		wrong := uniqueSecret("wrong-pw")
		ss.addBasic("dana (wrong)", wrong)
		expectOCIError(t, tokenGET(t, srv, "dana", wrong, "", url.Values{"scope": {scope}}), http.StatusUnauthorized, "UNAUTHORIZED")

		img, _ := random.Image(4096, 1)
		rec := &recordingTransport{inner: srv.Transport()}
		opts := remoteOpts(t, srv, basicAuth("dana", pass), rec)
		if err := remote.Write(ref(t, srv, repo+":v1"), img, opts...); err != nil {
			t.Fatalf("push: %v", err)
		}
		if _, err := remote.Image(ref(t, srv, repo+":v1"), opts...); err != nil {
			t.Fatalf("pull: %v", err)
		}
		ss.addFromClient(rec)

		// MCIAS down: the failures are logged, the credentials are not.
		fake.SetDown(true)
		down := uniqueSecret("down-pw")
		ss.addBasic("dana (during outage)", down)
		resp := tokenGET(t, srv, "dana", down, "", nil)
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("login while MCIAS is down: %d, want 502", resp.StatusCode)
		}
		readAll(t, resp)
		unseen := fake.IssueToken("dana")
		ss.add("unvalidated MCIAS token", unseen)
		readAll(t, srv.Do(t, http.MethodGet, "/v2/", unseen, nil))
		fake.SetDown(false)
		expectStatus(t, srv.Do(t, http.MethodPost, "/v1/auth/logout", session, nil), http.StatusNoContent)

		if err := srv.Stop(t); err != nil {
			t.Errorf("mcrsrv exited with %v", err)
		}
		log := srv.Output.String()
		if !strings.Contains(log, "dana") {
			t.Fatalf("the log does not record the logins (is this the right output?):\n%s", log)
		}
		ss.check(t, log)
		if bytes.Contains([]byte(log), []byte("fake-mcias.")) {
			t.Errorf("the server log contains an MCIAS token prefix")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", log)
		}
	})
}
