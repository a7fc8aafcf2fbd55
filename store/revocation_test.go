package store

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

func TestAccountChangesBumpGeneration(t *testing.T) { eachDialect(t, testAccountChanges) }

func testAccountChanges(t *testing.T, st *Store) {
	ctx := context.Background()
	u := &User{Username: "alice", PasswordHash: "h", Role: "user", AccountType: "human"}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	changes := []struct {
		do    func() error
		check func(*User) bool
		name  string
	}{
		{func() error { return st.SetPassword(ctx, "alice", "h2") }, func(u *User) bool { return u.PasswordHash == "h2" }, "passwd"},
		{func() error { return st.SetDisabled(ctx, "alice", true) }, func(u *User) bool { return u.Disabled }, "disable"},
		{func() error { return st.SetDisabled(ctx, "alice", false) }, func(u *User) bool { return !u.Disabled }, "enable"},
		{func() error { return st.SetRole(ctx, "alice", "admin") }, func(u *User) bool { return u.Role == "admin" }, "role"},
		{func() error { return st.RevokeSubject(ctx, u.UUID) }, func(*User) bool { return true }, "revoke"},
	}
	for i, c := range changes {
		before := statMarker(t, st.AccountsMarker())
		if err := c.do(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		gens, err := st.Generations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if gens[u.UUID] != int64(i+1) {
			t.Fatalf("%s: generation %d, want %d", c.name, gens[u.UUID], i+1)
		}
		got, err := st.UserByName(ctx, "alice")
		if err != nil || !c.check(got) {
			t.Fatalf("%s: user %+v, %v", c.name, got, err)
		}
		if after := statMarker(t, st.AccountsMarker()); st.AccountsMarker() != "" && after == before {
			t.Fatalf("%s: accounts marker not replaced", c.name)
		}
	}
	if err := st.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if gens, _ := st.Generations(ctx); gens[u.UUID] != int64(len(changes)+1) {
		t.Fatalf("delete did not bump the generation: %v", gens)
	}
	for _, err := range []error{st.SetPassword(ctx, "nobody", "h"), st.SetDisabled(ctx, "nobody", true), st.SetRole(ctx, "nobody", "user"), st.DeleteUser(ctx, "nobody")} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("change of a missing user: %v, want ErrNotFound", err)
		}
	}
}

func statMarker(t *testing.T, path string) string {
	t.Helper()
	if path == "" {
		return ""
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRefreshFamilyRotation(t *testing.T) { eachDialect(t, testRefreshFamilies) }

func testRefreshFamilies(t *testing.T, st *Store) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	if err := st.CreateFamily(ctx, RefreshFamily{ID: "f1", Subject: "s", Session: "sess", CurrentJTI: "j1", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateFamily(ctx, RefreshFamily{ID: "f2", Subject: "s", Session: "sess", CurrentJTI: "k1", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateFamily(ctx, RefreshFamily{ID: "f3", Subject: "s", CurrentJTI: "m1", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name          string
		want          error
		id, old, next string
	}{
		{"current rotates", nil, "f1", "j1", "j2"},
		{"next current rotates", nil, "f1", "j2", "j3"},
		{"an old one revokes the family", ErrReused, "f1", "j1", "j4"},
		{"even the current one is dead then", ErrNotFound, "f1", "j3", "j5"},
		{"unknown family", ErrNotFound, "nope", "x", "y"},
	}
	for _, s := range steps {
		_, err := st.RotateFamily(ctx, s.id, s.old, s.next, exp)
		if !errors.Is(err, s.want) && (s.want != nil || err != nil) {
			t.Fatalf("%s: %v, want %v", s.name, err, s.want)
		}
	}
	// A non-rotating family: its one token checks out until revoked.
	if err := st.CreateFamily(ctx, RefreshFamily{ID: "f4", Subject: "s", Session: "sess", CurrentJTI: "n1", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := st.CheckFamily(ctx, "f4", "n1"); err != nil {
			t.Fatalf("identity token family: %v", err)
		}
	}
	if err := st.CheckFamily(ctx, "f4", "other"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another id in the family: %v", err)
	}
	if err := st.RevokeSessionFamilies(ctx, "sess"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RotateFamily(ctx, "f2", "k1", "k2", exp); !errors.Is(err, ErrNotFound) {
		t.Fatalf("family of a logged-out session rotated: %v", err)
	}
	if err := st.CheckFamily(ctx, "f4", "n1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("identity token of a logged-out session: %v", err)
	}
	if _, err := st.RotateFamily(ctx, "f3", "m1", "m2", exp); err != nil {
		t.Fatalf("family of no session: %v", err)
	}
	if err := st.RevokeSubject(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RotateFamily(ctx, "f3", "m2", "m3", exp); !errors.Is(err, ErrNotFound) {
		t.Fatalf("family of a revoked subject rotated: %v", err)
	}
}
