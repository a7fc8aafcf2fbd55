package authplugin

import (
	"context"
	"errors"
	"testing"
	"time"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/authplugin/token"
)

// A session token presented where a registry token is expected is verified
// once, as a session; a registry token with a forged use is refused.
func TestBearerVerifiesClaimedUse(t *testing.T) {
	is := testIssuer(t)
	a := &Authenticator{Issuer: is, Provider: staticProvider{p: alice}}
	session, _, _ := is.Issue(token.UseSession, alice, nil, time.Minute)
	id, err := a.Bearer(context.Background(), session)
	if err != nil || id.Claims != nil || id.Principal.Username != "alice" {
		t.Fatalf("session bearer: %+v, %v", id, err)
	}
	refresh, _, _ := is.Issue(token.UseRefresh, alice, nil, time.Minute)
	if _, err := a.Bearer(context.Background(), refresh); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("refresh token as bearer: %v, want identity.ErrInvalidCredentials", err)
	}
	expired, _, _ := is.Issue(token.UseSession, alice, nil, time.Millisecond)
	is.SetClock(func() time.Time { return time.Now().Add(time.Minute) })
	defer is.SetClock(time.Now)
	if _, err := a.Bearer(context.Background(), expired); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("expired session token: %v, want identity.ErrInvalidCredentials", err)
	}
}

// staticProvider accepts every token as p.
type staticProvider struct{ p *identity.Principal }

func (s staticProvider) Name() string { return "static" }
func (s staticProvider) Login(context.Context, string, string) (*identity.Session, error) {
	return nil, identity.ErrInvalidCredentials
}
func (s staticProvider) Validate(context.Context, string) (*identity.Principal, error) {
	return s.p, nil
}
func (s staticProvider) Logout(context.Context, string) error { return nil }
func (s staticProvider) Ping(context.Context) error           { return nil }

func TestAuthenticatorRemembersVerifiedTokens(t *testing.T) {
	is := testIssuer(t)
	a := &Authenticator{Issuer: is}
	tok, _, _ := is.Issue(token.UseAccess, alice, []token.AccessEntry{{Type: "repository", Name: "a", Actions: []string{"pull"}}}, time.Minute)
	for i := 0; i < 3; i++ {
		id, err := a.Bearer(context.Background(), tok)
		if err != nil || id.Claims == nil || id.Principal.Username != "alice" {
			t.Fatalf("bearer %d: %v", i, err)
		}
	}
	// An expired token is refused even though it was remembered.
	a2 := &Authenticator{Issuer: is}
	short, _, _ := is.Issue(token.UseAccess, alice, nil, time.Second)
	if _, err := a2.Bearer(context.Background(), short); err != nil {
		t.Fatal(err)
	}
	is.SetClock(func() time.Time { return time.Now().Add(time.Minute) })
	defer is.SetClock(time.Now)
	if _, err := a2.Bearer(context.Background(), short); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("expired token from the cache: %v, want ErrInvalidCredentials", err)
	}
}

var alice = &identity.Principal{Subject: "u-1", Username: "alice", AccountType: identity.AccountHuman, Roles: []string{identity.RoleUser}}

func testIssuer(t testing.TB) *token.Issuer {
	t.Helper()
	dir := t.TempDir()
	if _, err := token.GenerateSigningKey(dir); err != nil {
		t.Fatal(err)
	}
	ks, err := token.LoadKeySet(dir)
	if err != nil {
		t.Fatal(err)
	}
	return token.NewIssuer(ks, "mcr", "mcr")
}
