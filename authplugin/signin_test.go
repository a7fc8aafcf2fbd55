package authplugin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/throttle"
)

// countingProvider accepts one password and counts the checks it makes.
type countingProvider struct {
	identity.Provider
	checks int
	down   bool
}

func (p *countingProvider) Login(_ context.Context, user, pass string) (*identity.Session, error) {
	p.checks++
	if p.down {
		return nil, identity.ErrUnavailable
	}
	if pass != "right-password" {
		return nil, identity.ErrInvalidCredentials
	}
	return &identity.Session{Token: "t", Principal: identity.Principal{Subject: "s-" + user, Username: user}}, nil
}

func TestSignIn(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg := throttle.DefaultConfig()
	cfg.Account = throttle.Rule{LockoutAfter: 3, Concurrent: 1}
	cfg.IP = throttle.Rule{}
	prov := &countingProvider{}
	var locks []throttle.Lockout
	s := &SignIn{Provider: prov, Limiter: throttle.New(cfg, func() time.Time { return now }),
		OnLockout: func(_ *http.Request, lo throttle.Lockout) { locks = append(locks, lo) }}
	steps := []struct {
		want       error
		user, pass string
		down       bool
		locked     bool // want a *ThrottledError lockout instead of want
		checks     int  // provider checks so far
	}{
		{identity.ErrInvalidCredentials, "alice", "wrong", false, false, 1},
		{identity.ErrUnavailable, "alice", "wrong", true, false, 2}, // not counted as a failure
		{identity.ErrInvalidCredentials, "alice", "wrong", false, false, 3},
		{identity.ErrInvalidCredentials, "ALICE", "wrong", false, false, 4}, // third failure (case folded): locked
		{nil, "alice", "right-password", false, true, 4},                    // refused unchecked
		{nil, "bob", "right-password", false, false, 5},
		{ErrInputTooLong, strings.Repeat("u", MaxUsername+1), "right-password", false, false, 5},
		{ErrInputTooLong, "bob", strings.Repeat("p", MaxPassword+1), false, false, 5},
	}
	for i, st := range steps {
		prov.down = st.down
		r := httptest.NewRequest("POST", "/v1/auth/login", nil)
		_, err := s.Login(r, st.user, st.pass)
		var te *ThrottledError
		switch {
		case st.locked:
			if !errors.As(err, &te) || !te.Locked || te.RetryAfterSeconds() != "900" {
				t.Fatalf("step %d: %v, want a lockout of 900 s", i, err)
			}
		case st.want == nil:
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		case !errors.Is(err, st.want):
			t.Fatalf("step %d: %v, want %v", i, err, st.want)
		}
		if prov.checks != st.checks {
			t.Fatalf("step %d: %d password checks, want %d", i, prov.checks, st.checks)
		}
	}
	if len(locks) != 1 || locks[0].Key != "alice" || locks[0].Kind != throttle.Account {
		t.Fatalf("lockouts %+v, want alice's", locks)
	}
}
