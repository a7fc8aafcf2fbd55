package authplugin

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/authplugin/token"
	"git.wntrmute.dev/kyle/mcr/revocation"
	"git.wntrmute.dev/kyle/mcr/store"
)

func revokingAuthenticator(t testing.TB) (*Authenticator, *store.Store) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "mcr.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	is := testIssuer(t)
	is.SetGenerations(revocation.New(st, st.AccountsMarker(), time.Minute, nil))
	return &Authenticator{Issuer: is, Provider: staticProvider{p: alice}}, st
}

// A registry token verified (and remembered) before its account changed
// is refused on its next use, from the cache too.
func TestBearerRefusesRevokedCachedToken(t *testing.T) {
	a, st := revokingAuthenticator(t)
	tok, _, err := a.Issuer.Issue(token.UseAccess, alice, nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second answer comes from the cache
		if _, err := a.Bearer(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.RevokeSubject(context.Background(), alice.Subject); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Bearer(context.Background(), tok); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("revoked cached token: %v, want ErrInvalidCredentials", err)
	}
	fresh, _, err := a.Issuer.Issue(token.UseAccess, alice, nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Bearer(context.Background(), fresh); err != nil {
		t.Fatalf("token issued after the revocation: %v", err)
	}
}

// BenchmarkBearerCached is the per-request cost of a remembered registry
// token (every blob and manifest request of a pull), without and with the
// revocation check (a stat of the marker file and a map lookup).
func BenchmarkBearerCached(b *testing.B) {
	for _, withGen := range []bool{false, true} {
		name := "plain"
		if withGen {
			name = "generation"
		}
		b.Run(name, func(b *testing.B) {
			var a *Authenticator
			if withGen {
				a, _ = revokingAuthenticator(b)
			} else {
				a = &Authenticator{Issuer: testIssuer(b), Provider: staticProvider{p: alice}}
			}
			tok, _, err := a.Issuer.Issue(token.UseAccess, alice, nil, time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if _, err := a.Bearer(ctx, tok); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := a.Bearer(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
