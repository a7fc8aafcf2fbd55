package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
)

func testIssuer(t *testing.T) (*Issuer, *KeySet) {
	t.Helper()
	dir := t.TempDir()
	if _, err := GenerateSigningKey(dir); err != nil {
		t.Fatal(err)
	}
	ks, err := LoadKeySet(dir)
	if err != nil {
		t.Fatal(err)
	}
	return NewIssuer(ks, "mcr", "mcr"), ks
}

var alice = &identity.Principal{Subject: "u-1", Username: "alice", AccountType: identity.AccountHuman, Roles: []string{identity.RoleUser}}

func TestIssueVerifyRoundTrip(t *testing.T) {
	is, _ := testIssuer(t)
	access := []AccessEntry{{Type: "repository", Name: "a/b", Actions: []string{"pull"}}}
	tok, _, err := is.Issue(UseAccess, alice, access, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c, err := is.Verify(UseAccess, tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "u-1" || c.Username != "alice" || !reflect.DeepEqual(c.Access, access) || c.ID == "" {
		t.Fatalf("claims %+v", c)
	}
	if !c.Allows("repository", "a/b", "pull") || c.Allows("repository", "a/b", "push") || c.Allows("repository", "a/c", "pull") {
		t.Fatal("Allows wrong")
	}
	if use, ours := is.Peek(tok); !ours || use != UseAccess {
		t.Fatalf("Peek of an own access token = (%q, %v)", use, ours)
	}
}

// forge signs claims with an arbitrary method and key.
func forge(t *testing.T, m jwt.SigningMethod, key any, kid string, c *Claims) string {
	t.Helper()
	tk := jwt.NewWithClaims(m, c)
	if kid != "" {
		tk.Header["kid"] = kid
	}
	s, err := tk.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyRejects(t *testing.T) {
	is, ks := testIssuer(t)
	now := time.Now()
	base := func() *Claims {
		return &Claims{
			RegisteredClaims: jwt.RegisteredClaims{Issuer: "mcr", Subject: "u-1", Audience: jwt.ClaimStrings{"mcr"},
				ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)), NotBefore: jwt.NewNumericDate(now.Add(-time.Second)),
				IssuedAt: jwt.NewNumericDate(now.Add(-time.Second)), ID: "x"},
			Use: UseAccess,
		}
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pubDER, _ := x509.MarshalPKIXPublicKey(&ks.active.priv.PublicKey)
	kid := ks.ActiveKID()
	cases := []struct {
		token func() string
		name  string
	}{
		{func() string {
			c := base()
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour))
			return forge(t, jwt.SigningMethodES256, ks.active.priv, kid, c)
		}, "expired"},
		{func() string {
			c := base()
			c.ExpiresAt = nil
			return forge(t, jwt.SigningMethodES256, ks.active.priv, kid, c)
		}, "no exp"},
		{func() string {
			c := base()
			c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour))
			return forge(t, jwt.SigningMethodES256, ks.active.priv, kid, c)
		}, "not yet valid"},
		{func() string { return forge(t, jwt.SigningMethodES256, other, kid, base()) }, "other key, our kid"},
		{func() string { return forge(t, jwt.SigningMethodES256, other, "nope", base()) }, "other key, unknown kid"},
		{func() string {
			return forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, base())
		}, "alg none"},
		{func() string { return forge(t, jwt.SigningMethodHS256, pubDER, kid, base()) }, "HS256 with public key (key confusion)"},
		{func() string {
			c := base()
			c.Audience = jwt.ClaimStrings{"other"}
			return forge(t, jwt.SigningMethodES256, ks.active.priv, kid, c)
		}, "wrong audience"},
		{func() string {
			c := base()
			c.Issuer = "evil"
			return forge(t, jwt.SigningMethodES256, ks.active.priv, kid, c)
		}, "wrong issuer"},
		{func() string {
			tok, _, _ := is.Issue(UseSession, alice, nil, time.Minute)
			return tok
		}, "session token used as access"},
		{func() string { return "not.a.jwt" }, "garbage"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := is.Verify(UseAccess, tc.token())
			if !errors.Is(err, ErrTokenInvalid) {
				t.Fatalf("Verify accepted or wrong error: %v", err)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	dir := t.TempDir()
	if _, err := GenerateSigningKey(dir); err != nil {
		t.Fatal(err)
	}
	ks1, _ := LoadKeySet(dir)
	old := NewIssuer(ks1, "mcr", "mcr")
	tok, _, _ := old.Issue(UseAccess, alice, nil, time.Minute)
	// Key files are named by their creation time in nanoseconds, so the
	// second sorts after the first (an equal name fails O_EXCL, loudly).
	if _, err := GenerateSigningKey(dir); err != nil {
		t.Fatal(err)
	}
	ks2, _ := LoadKeySet(dir)
	if ks2.ActiveKID() == ks1.ActiveKID() {
		t.Fatal("newest key is not active")
	}
	if _, err := NewIssuer(ks2, "mcr", "mcr").Verify(UseAccess, tok); err != nil {
		t.Fatalf("token from the previous key refused after rotation: %v", err)
	}
}

func TestParseScopes(t *testing.T) {
	cases := []struct {
		in      []string
		wantErr string
		want    []Scope
	}{
		{[]string{"repository:a/b:pull,push"}, "", []Scope{{"repository", "a/b", []string{"pull", "push"}}}},
		{[]string{"repository:a:pull repository:b:push"}, "", []Scope{{"repository", "a", []string{"pull"}}, {"repository", "b", []string{"push"}}}},
		{[]string{"registry:catalog:*"}, "", []Scope{{"registry", "catalog", []string{"*"}}}},
		{[]string{"repository(plugin):a:pull"}, "", []Scope{{"repository", "a", []string{"pull"}}}},
		{[]string{"repository:localhost:5000/a:pull"}, "", []Scope{{"repository", "localhost:5000/a", []string{"pull"}}}},
		{[]string{"repository:a"}, "malformed", nil},
		{[]string{"repository::pull"}, "malformed", nil},
		{[]string{"repository:a:"}, "malformed", nil},
		{nil, "", nil},
	}
	for _, tc := range cases {
		got, err := ParseScopes(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: err %v", tc.in, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v: got %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestPeek(t *testing.T) {
	is, _ := testIssuer(t)
	other, _ := testIssuer(t)
	access, _, _ := is.Issue(UseAccess, alice, nil, time.Minute)
	session, _, _ := is.Issue(UseSession, alice, nil, time.Minute)
	foreign, _, _ := other.Issue(UseAccess, alice, nil, time.Minute)
	cases := []struct {
		name, token, use string
		ours             bool
	}{
		{"access", access, UseAccess, true},
		{"session", session, UseSession, true},
		{"other key", foreign, "", false},
		{"opaque MCIAS token", "mcias-opaque-0123456789", "", false},
		{"empty", "", "", false},
		{"garbage segments", "a.b.c", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			use, ours := is.Peek(tc.token)
			if use != tc.use || ours != tc.ours {
				t.Fatalf("Peek = (%q, %v), want (%q, %v)", use, ours, tc.use, tc.ours)
			}
		})
	}
}

type genMap map[string]int64

func (g genMap) Generation(_ context.Context, sub string) (int64, error) { return g[sub], nil }

// Tokens carry their subject's generation; a bump refuses every older one,
// whatever its use, while new ones verify.
func TestGenerationRevokes(t *testing.T) {
	is, _ := testIssuer(t)
	g := genMap{}
	is.SetGenerations(g)
	var toks []string
	for _, use := range []string{UseAccess, UseSession, UseRefresh} {
		tok, c, err := is.Issue(use, alice, nil, time.Minute)
		if err != nil || c.Generation != 0 {
			t.Fatalf("issue %s: %v gen %d", use, err, c.Generation)
		}
		if _, err := is.Verify(use, tok); err != nil {
			t.Fatalf("verify %s: %v", use, err)
		}
		toks = append(toks, tok)
	}
	g[alice.Subject] = 1
	for i, use := range []string{UseAccess, UseSession, UseRefresh} {
		if _, err := is.Verify(use, toks[i]); !errors.Is(err, ErrTokenInvalid) {
			t.Fatalf("%s token of generation 0 after a bump: %v", use, err)
		}
	}
	tok, c, err := is.Issue(UseAccess, alice, nil, time.Minute)
	if err != nil || c.Generation != 1 {
		t.Fatalf("issue after bump: %v gen %d", err, c.Generation)
	}
	if _, err := is.Verify(UseAccess, tok); err != nil {
		t.Fatal(err)
	}
	if err := is.Current(c); err != nil {
		t.Fatal(err)
	}
}
