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
// once, by the provider that issued it (not again by the Authenticator); a
// token of ours with any other use never reaches the provider.
func TestBearerVerifiesClaimedUse(t *testing.T) {
	is := testIssuer(t)
	prov := &sessionProvider{is: is}
	a := &Authenticator{Issuer: is, Provider: prov}
	session, _, _ := is.Issue(token.UseSession, alice, nil, time.Minute)
	id, err := a.Bearer(context.Background(), session)
	if err != nil || id.Claims != nil || id.Principal.Username != "alice" || prov.calls != 1 {
		t.Fatalf("session bearer: %+v, %v, %d provider calls", id, err, prov.calls)
	}
	refresh, _, _ := is.Issue(token.UseRefresh, alice, nil, time.Minute)
	if _, err := a.Bearer(context.Background(), refresh); !errors.Is(err, identity.ErrInvalidCredentials) || prov.calls != 1 {
		t.Fatalf("refresh token as bearer: %v (%d provider calls), want identity.ErrInvalidCredentials without the provider", err, prov.calls)
	}
	if _, err := a.Identity(context.Background(), refresh); !errors.Is(err, ErrNotIdentity) || prov.calls != 1 {
		t.Fatalf("refresh token as identity: %v (%d provider calls), want ErrNotIdentity without the provider", err, prov.calls)
	}
	access, _, _ := is.Issue(token.UseAccess, alice, nil, time.Minute)
	if _, err := a.Identity(context.Background(), access); !errors.Is(err, ErrNotIdentity) || prov.calls != 1 {
		t.Fatalf("registry token as identity: %v (%d provider calls), want ErrNotIdentity", err, prov.calls)
	}
	expired, _, _ := is.Issue(token.UseSession, alice, nil, time.Millisecond)
	is.SetClock(func() time.Time { return time.Now().Add(time.Minute) })
	defer is.SetClock(time.Now)
	if _, err := a.Bearer(context.Background(), expired); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("expired session token: %v, want identity.ErrInvalidCredentials", err)
	}
}

// sessionProvider verifies sessions as the local provider does (signature,
// use, expiry) and counts its calls.
type sessionProvider struct {
	is    *token.Issuer
	calls int
}

func (s *sessionProvider) Name() string { return "sessions" }
func (s *sessionProvider) Login(context.Context, string, string) (*identity.Session, error) {
	return nil, identity.ErrInvalidCredentials
}
func (s *sessionProvider) Validate(_ context.Context, tok string) (*identity.Principal, error) {
	s.calls++
	c, err := s.is.Verify(token.UseSession, tok)
	if err != nil {
		return nil, identity.ErrInvalidCredentials
	}
	return c.Principal(), nil
}
func (s *sessionProvider) Logout(context.Context, string) error { return nil }
func (s *sessionProvider) Ping(context.Context) error           { return nil }

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
