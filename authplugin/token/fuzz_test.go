package token

import (
	"context"
	"strings"
	"testing"
	"time"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
)

func fuzzIssuer(f *testing.F) *Issuer {
	f.Helper()
	dir := f.TempDir()
	if _, err := GenerateSigningKey(dir); err != nil {
		f.Fatal(err)
	}
	ks, err := LoadKeySet(dir)
	if err != nil {
		f.Fatal(err)
	}
	return NewIssuer(ks, "mcr", "mcr")
}

type gens map[string]int64

func (g gens) Generation(_ context.Context, sub string) (int64, error) { return g[sub], nil }

// FuzzVerify: whatever string is presented as a token, Peek and Verify
// never panic; nothing but a token this issuer signed verifies, for the
// use it was signed for; any change to a signed token is refused; and a
// token of an older generation is refused.
func FuzzVerify(f *testing.F) {
	is := fuzzIssuer(f)
	is.SetGenerations(gens{"u-old": 1})
	p := &identity.Principal{Subject: "u-1", Username: "alice", AccountType: identity.AccountHuman, Roles: []string{identity.RoleUser}}
	var signed []string
	for _, use := range []string{UseAccess, UseSession, UseRefresh} {
		tok, _, err := is.Issue(use, p, []AccessEntry{{Type: "repository", Name: "a/b", Actions: []string{"pull"}}}, time.Hour)
		if err != nil {
			f.Fatal(err)
		}
		signed = append(signed, tok)
		f.Add(tok, uint(0), byte(0))
		f.Add(tok, uint(len(tok)/2), byte('x'))
	}
	f.Add("", uint(0), byte(0))
	f.Add("a.b.c", uint(1), byte('.'))
	f.Add("eyJhbGciOiJub25lIn0.eyJ1c2UiOiJhY2Nlc3MifQ.", uint(0), byte(0))
	isSigned := func(s string) bool {
		for _, t := range signed {
			if s == t {
				return true
			}
		}
		return false
	}
	f.Fuzz(func(t *testing.T, tok string, at uint, b byte) {
		if len(tok) > 0 && b != 0 {
			i := int(at % uint(len(tok)))
			tok = tok[:i] + string([]byte{b}) + tok[i+1:]
		}
		_, _ = is.Peek(tok)
		for _, use := range []string{UseAccess, UseSession, UseRefresh} {
			c, err := is.Verify(use, tok)
			if err != nil {
				continue
			}
			if !isSigned(tok) && !sameSignedContent(tok, signed) {
				t.Fatalf("Verify(%s) accepted a token this issuer never signed: %q", use, tok)
			}
			if c.Use != use || c.Subject != "u-1" {
				t.Fatalf("Verify(%s) = %+v", use, c)
			}
		}
	})
}

// sameSignedContent: base64url's unused trailing bits let a signature
// segment change its last character without changing its bytes; such a
// token is the same signed token.
func sameSignedContent(tok string, signed []string) bool {
	for _, s := range signed {
		if len(s) == len(tok) && s[:strings.LastIndexByte(s, '.')] == tok[:strings.LastIndexByte(tok, '.')] {
			return true
		}
	}
	return false
}

// FuzzParseScopes: ParseScopes never panics, respects its bounds, and
// what it accepts prints back to scopes that parse to the same thing.
func FuzzParseScopes(f *testing.F) {
	for _, s := range []string{
		"repository:a/b:pull,push", "repository:localhost:5000/a/b:pull", "registry:catalog:*",
		"repository(plugin):x:pull", "repository:a:pull repository:b:push", "repository::pull", ":a:b", "a:b:", "",
		strings.Repeat("repository:a:pull ", 70),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseScopes([]string{s})
		if err != nil {
			return
		}
		if len(got) > MaxScopes || len(s) > MaxScopeBytes {
			t.Fatalf("bounds not enforced: %d scopes from %d bytes", len(got), len(s))
		}
		var printed []string
		for _, sc := range got {
			if sc.Type == "" || sc.Name == "" || len(sc.Actions) == 0 {
				t.Fatalf("ParseScopes(%q) gave an incomplete scope %+v", s, sc)
			}
			printed = append(printed, sc.String())
		}
		again, err := ParseScopes([]string{strings.Join(printed, " ")})
		if err != nil {
			t.Fatalf("printed scopes %q do not parse: %v", printed, err)
		}
		if len(again) != len(got) {
			t.Fatalf("round trip of %q: %d scopes, then %d", s, len(got), len(again))
		}
		for i := range got {
			if again[i].String() != got[i].String() {
				t.Fatalf("round trip of %q: %q became %q", s, got[i], again[i])
			}
		}
	})
}
