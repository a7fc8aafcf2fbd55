package local

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/authplugin/token"
	"git.wntrmute.dev/kyle/mcr/store"
)

func TestLocalLoginAndRememberedChecks(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "mcr.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	}()
	is := testIssuer(t)
	l := New(st, is, time.Hour)
	ctx := context.Background()
	add := func(pw string) {
		h, err := HashPassword(pw)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateUser(ctx, &store.User{Username: "alice", PasswordHash: h, Role: identity.RoleUser, AccountType: identity.AccountHuman}); err != nil {
			t.Fatal(err)
		}
	}
	add("first-password")
	for i := 0; i < 2; i++ { // the second login is served by the remembered check
		s, err := l.Login(ctx, "alice", "first-password")
		if err != nil || s.Principal.Username != "alice" {
			t.Fatalf("login %d: %v", i, err)
		}
		p, err := l.Validate(ctx, s.Token)
		if err != nil || p.Username != "alice" {
			t.Fatalf("validate session: %v", err)
		}
	}
	if _, err := l.Login(ctx, "alice", "wrong-password"); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := l.Login(ctx, "nobody", "first-password"); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("unknown user: %v", err)
	}
	// A password change (new hash) invalidates the remembered check.
	if err := st.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Login(ctx, "alice", "first-password"); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("deleted user still logs in: %v", err)
	}
	add("second-password")
	if _, err := l.Login(ctx, "alice", "first-password"); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("old password still accepted after change: %v", err)
	}
	s, err := l.Login(ctx, "alice", "second-password")
	if err != nil {
		t.Fatal(err)
	}
	// Logout revokes the session.
	if err := l.Logout(ctx, s.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Validate(ctx, s.Token); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("revoked session still valid: %v", err)
	}
}

func testIssuer(t *testing.T) *token.Issuer {
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
