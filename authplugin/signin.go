package authplugin

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/metrics"
	"git.wntrmute.dev/kyle/mcr/throttle"
)

// Bounds on sign-in input, checked before anything else is done with it
// (no hashing, logging or audit): longer values are refused with 400.
const (
	MaxUsername = 256
	MaxPassword = 1024
)

// ErrInputTooLong means a username or password exceeds its bound.
var ErrInputTooLong = errors.New("username or password too long")

// ThrottledError refuses a sign-in without checking the password: the
// account or the client address failed too often recently.
type ThrottledError struct {
	Kind       throttle.Kind
	RetryAfter time.Duration
	Locked     bool
}

func (e *ThrottledError) Error() string {
	what := "too many failed sign-ins"
	if e.Locked {
		what = "sign-in temporarily locked after too many failures"
	}
	return fmt.Sprintf("%s; retry after %s s", what, e.RetryAfterSeconds())
}

// RetryAfterSeconds is the Retry-After header value: whole seconds,
// rounded up, at least 1.
func (e *ThrottledError) RetryAfterSeconds() string {
	s := int64(math.Ceil(e.RetryAfter.Seconds()))
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}

// SignIn is the one path every username/password sign-in takes — the
// token endpoint's Basic and password grants, /v1/auth/login (and through
// it the web UI) — whatever the identity provider: bounds, throttle,
// provider, audit.
type SignIn struct {
	Provider identity.Provider
	// Limiter throttles failed sign-ins; nil disables throttling.
	Limiter  *throttle.Limiter
	Recorder Recorder
	// OnLockout records a key that has just been locked out (login_locked).
	OnLockout func(r *http.Request, lo throttle.Lockout)
}

// Login checks username and password. Errors: ErrInputTooLong,
// *ThrottledError, identity.ErrInvalidCredentials, identity.ErrUnavailable.
func (s *SignIn) Login(r *http.Request, username, password string) (*identity.Session, error) {
	if len(username) > MaxUsername || len(password) > MaxPassword {
		return nil, ErrInputTooLong
	}
	var at *throttle.Attempt
	if s.Limiter != nil {
		var d throttle.Decision
		at, d = s.Limiter.Begin(r.Context(), throttleKey(username), ClientIP(r))
		if !d.Allowed {
			// Not audited: a flood of refusals would be a flood of rows.
			// The lockout itself was recorded when it began.
			metrics.AuthFailures.WithLabelValues("throttled").Inc()
			return nil, &ThrottledError{RetryAfter: d.RetryAfter, Kind: d.Kind, Locked: d.Locked}
		}
	}
	sess, err := s.Provider.Login(r.Context(), username, password)
	switch {
	case err == nil:
		at.Done(true)
		if s.Recorder != nil {
			s.Recorder.LoginSucceeded(r, &sess.Principal)
		}
		return sess, nil
	case errors.Is(err, identity.ErrUnavailable):
		at.Abandon() // nothing was guessed
		if s.Recorder != nil {
			s.Recorder.LoginFailed(r, username, "identity service unavailable")
		}
		return nil, err
	default:
		locks := at.Done(false)
		if s.Recorder != nil {
			s.Recorder.LoginFailed(r, username, "invalid credentials")
		}
		for _, lo := range locks {
			if s.OnLockout != nil {
				s.OnLockout(r, lo)
			}
		}
		return nil, identity.ErrInvalidCredentials
	}
}

// Unlock clears the failed sign-ins of an account in this process.
func (s *SignIn) Unlock(username string) bool {
	if s.Limiter == nil {
		return false
	}
	return s.Limiter.Unlock(throttleKey(username))
}

// throttleKey is the account key of the throttle: case-folded, so
// "Alice" and "alice" share one count whatever the identity provider
// makes of case.
func throttleKey(username string) string { return strings.ToLower(username) }
