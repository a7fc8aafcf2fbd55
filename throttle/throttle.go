// Package throttle limits failed sign-ins per account and per client IP:
// after a few failures each further attempt waits an exponentially growing
// delay, after more the key is locked out for a while. It is pure logic
// over an injected clock; counters live in memory in one process.
//
//	l := throttle.New(throttle.DefaultConfig(), time.Now)
//	a, d := l.Begin(ctx, "alice", "192.0.2.7")
//	if !d.Allowed { /* 429, Retry-After: d.RetryAfter */ }
//	ok := checkPassword()
//	locks := a.Done(ok) // lockouts this failure caused, for the audit log
package throttle

import (
	"context"
	"math"
	"sort"
	"sync"
	"time"
)

// Kind names what a key stands for.
type Kind string

// Key kinds.
const (
	Account Kind = "account"
	IP      Kind = "ip"
)

// Rule says when failures of one kind of key start to cost.
type Rule struct {
	// BackoffAfter failures in a row open a delay before the next attempt:
	// Base, then doubling, up to Max. 0 disables backoff.
	BackoffAfter int
	// LockoutAfter failures lock the key for Config.LockoutDuration. 0
	// disables lockout.
	LockoutAfter int
	// Concurrent is how many sign-ins of one key may check a password at
	// the same time; the others wait their turn (so a burst is judged one
	// attempt at a time and cannot all run bcrypt before the first failure
	// counts). 0 means 1.
	Concurrent int
}

// Config tunes a Limiter.
type Config struct {
	Account Rule
	IP      Rule
	// BackoffBase is the first delay; each further failure doubles it.
	BackoffBase time.Duration
	// BackoffMax caps the delay.
	BackoffMax time.Duration
	// LockoutDuration is how long a locked key stays locked.
	LockoutDuration time.Duration
	// Window: failures are forgotten after this long without another.
	Window time.Duration
	// MaxWait bounds how long an attempt queues behind others of the same
	// key before it is answered "retry later".
	MaxWait time.Duration
	// MaxKeys bounds the memory: beyond it the idle keys that were quiet
	// longest are forgotten first (locked and busy keys are kept).
	MaxKeys int
}

// DefaultConfig is what `[identity]` defaults to.
func DefaultConfig() Config {
	return Config{
		Account:         Rule{BackoffAfter: 3, LockoutAfter: 10, Concurrent: 1},
		IP:              Rule{BackoffAfter: 20, LockoutAfter: 100, Concurrent: 4},
		BackoffBase:     time.Second,
		BackoffMax:      30 * time.Second,
		LockoutDuration: 15 * time.Minute,
		Window:          15 * time.Minute,
		MaxWait:         10 * time.Second,
		MaxKeys:         100000,
	}
}

// Decision is the answer to an attempt.
type Decision struct {
	// Kind says which key refused.
	Kind Kind
	// RetryAfter is how long the client should wait (refusals only).
	RetryAfter time.Duration
	Allowed    bool
	// Locked says the refusal is a lockout rather than a backoff delay.
	Locked bool
}

// Lockout is a key that has just become locked.
type Lockout struct {
	Kind     Kind
	Until    time.Time
	Key      string
	Failures int
}

type entry struct {
	last     time.Time // last failure
	until    time.Time // no attempt before this
	sem      chan struct{}
	failures int
	locked   bool // until is a lockout, not a backoff delay
}

// Limiter holds the counters. The zero value is not usable; call New.
type Limiter struct {
	now  func() time.Time
	keys map[string]*entry // guarded by mu
	cfg  Config
	mu   sync.Mutex
}

// New returns a limiter using cfg and the clock now.
func New(cfg Config, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = DefaultConfig().MaxKeys
	}
	return &Limiter{cfg: cfg, now: now, keys: make(map[string]*entry)}
}

func (l *Limiter) rule(k Kind) Rule {
	if k == IP {
		return l.cfg.IP
	}
	return l.cfg.Account
}

func mapKey(k Kind, key string) string { return string(k) + "\x00" + key }

// get returns the entry of a key, creating it; l.mu is held.
func (l *Limiter) get(k Kind, key string) *entry {
	mk := mapKey(k, key)
	e, ok := l.keys[mk]
	if !ok {
		if len(l.keys) >= l.cfg.MaxKeys {
			l.evict()
		}
		n := l.rule(k).Concurrent
		if n < 1 {
			n = 1
		}
		e = &entry{sem: make(chan struct{}, n)}
		l.keys[mk] = e
	}
	return e
}

// evict forgets expired keys, then, if the map is still full, the idle
// keys quiet the longest — an eighth of the map at once, so a flood of new
// keys pays for one scan per MaxKeys/8 insertions instead of one per
// insertion under the lock. Keys in use or locked out are kept; l.mu is
// held.
func (l *Limiter) evict() {
	now := l.now()
	type idle struct {
		at  time.Time
		key string
	}
	var quiet []idle
	for k, e := range l.keys {
		if len(e.sem) > 0 {
			continue
		}
		if l.expired(e, now) {
			delete(l.keys, k)
			continue
		}
		if !e.locked {
			quiet = append(quiet, idle{at: e.last, key: k})
		}
	}
	if len(l.keys) < l.cfg.MaxKeys {
		return
	}
	drop := min(len(quiet), len(l.keys)-l.cfg.MaxKeys+max(1, l.cfg.MaxKeys/8))
	sort.Slice(quiet, func(i, j int) bool { return quiet[i].at.Before(quiet[j].at) })
	for _, q := range quiet[:drop] {
		delete(l.keys, q.key)
	}
}

// expired: the key holds nothing worth remembering any more.
func (l *Limiter) expired(e *entry, now time.Time) bool {
	return !now.Before(e.until) && (e.failures == 0 || now.Sub(e.last) >= l.cfg.Window)
}

// refresh forgets stale failures and ended lockouts; l.mu is held.
func (l *Limiter) refresh(e *entry, now time.Time) {
	if e.locked && !now.Before(e.until) {
		e.failures, e.locked = 0, false // a served lockout starts afresh
	}
	if e.failures > 0 && now.Sub(e.last) >= l.cfg.Window && !now.Before(e.until) {
		e.failures = 0
	}
}

func (l *Limiter) blocked(k Kind, e *entry, now time.Time) (Decision, bool) {
	l.refresh(e, now)
	if now.Before(e.until) {
		return Decision{RetryAfter: e.until.Sub(now), Kind: k, Locked: e.locked}, true
	}
	return Decision{}, false
}

// Attempt is an admitted sign-in; Done must be called exactly once.
type Attempt struct {
	l    *Limiter
	keys [2]struct {
		kind Kind
		e    *entry
		key  string
	}
	n    int
	done bool
}

// Begin admits a sign-in of account from ip, or refuses it. An empty
// account or ip is not limited. It waits (up to MaxWait or ctx) while
// other attempts of the same key are checking a password. When refused,
// the returned Attempt is nil.
func (l *Limiter) Begin(ctx context.Context, account, ip string) (*Attempt, Decision) {
	a := &Attempt{l: l}
	for _, k := range []struct {
		kind Kind
		key  string
	}{{IP, ip}, {Account, account}} {
		if k.key == "" {
			continue
		}
		l.mu.Lock()
		e := l.get(k.kind, k.key)
		d, refused := l.blocked(k.kind, e, l.now())
		l.mu.Unlock()
		if refused {
			a.release()
			return nil, d
		}
		if !l.acquire(ctx, e) {
			a.release()
			return nil, Decision{RetryAfter: time.Second, Kind: k.kind}
		}
		a.keys[a.n].kind, a.keys[a.n].key, a.keys[a.n].e = k.kind, k.key, e
		a.n++
		// Re-check: the attempt this one waited for may have failed.
		l.mu.Lock()
		d, refused = l.blocked(k.kind, e, l.now())
		l.mu.Unlock()
		if refused {
			a.release()
			return nil, d
		}
	}
	return a, Decision{Allowed: true}
}

// acquire takes a slot of e's semaphore; no time is read here beyond the
// MaxWait timer, so tests with a fake clock never wait (their keys are
// free).
func (l *Limiter) acquire(ctx context.Context, e *entry) bool {
	select {
	case e.sem <- struct{}{}:
		return true
	default:
	}
	wait := l.cfg.MaxWait
	if wait <= 0 {
		wait = DefaultConfig().MaxWait
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case e.sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	case <-t.C:
		return false
	}
}

func (a *Attempt) release() {
	for i := range a.n {
		<-a.keys[i].e.sem
	}
	a.n = 0
}

// Done records the outcome and frees the attempt's slots. ok=true clears
// the account's failures (not the IP's: one good password must not wipe
// out a spray of guesses from the same address). It returns the keys this
// failure locked out.
func (a *Attempt) Done(ok bool) []Lockout {
	if a == nil || a.done {
		return nil
	}
	a.done = true
	l := a.l
	var out []Lockout
	l.mu.Lock()
	now := l.now()
	for i := range a.n {
		k := a.keys[i]
		if ok {
			if k.kind == Account {
				k.e.failures, k.e.until, k.e.locked = 0, time.Time{}, false
			}
			continue
		}
		if lo, locked := l.fail(k.kind, k.key, k.e, now); locked {
			out = append(out, lo)
		}
	}
	l.mu.Unlock()
	a.release()
	return out
}

// Abandon frees the attempt without counting it (the identity service
// could not be asked: nobody guessed anything).
func (a *Attempt) Abandon() {
	if a == nil || a.done {
		return
	}
	a.done = true
	a.release()
}

// fail counts one failure; l.mu is held.
func (l *Limiter) fail(k Kind, key string, e *entry, now time.Time) (Lockout, bool) {
	l.refresh(e, now)
	e.failures++
	e.last = now
	r := l.rule(k)
	if r.LockoutAfter > 0 && e.failures >= r.LockoutAfter {
		if e.locked {
			return Lockout{}, false
		}
		e.locked = true
		e.until = now.Add(l.cfg.LockoutDuration)
		return Lockout{Kind: k, Key: key, Failures: e.failures, Until: e.until}, true
	}
	if r.BackoffAfter > 0 && e.failures >= r.BackoffAfter {
		e.until = now.Add(l.backoff(e.failures - r.BackoffAfter))
	}
	return Lockout{}, false
}

// backoff is Base·2^n capped at Max.
func (l *Limiter) backoff(n int) time.Duration {
	base, ceiling := l.cfg.BackoffBase, l.cfg.BackoffMax
	if base <= 0 {
		return 0
	}
	if ceiling <= 0 {
		ceiling = base
	}
	if n >= 62 || float64(base)*math.Pow(2, float64(n)) >= float64(ceiling) {
		return ceiling
	}
	return base << n
}

// Unlock clears the failures and lockout of an account; it reports whether
// the account had any.
func (l *Limiter) Unlock(account string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.keys[mapKey(Account, account)]
	if !ok {
		return false
	}
	had := e.failures > 0 || l.now().Before(e.until)
	e.failures, e.until, e.locked = 0, time.Time{}, false
	return had
}

// State is what the limiter holds for one key (for operators and tests).
type State struct {
	Until    time.Time
	Failures int
	Locked   bool
}

// Peek returns the state of a key without changing it.
func (l *Limiter) Peek(k Kind, key string) State {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.keys[mapKey(k, key)]
	if !ok {
		return State{}
	}
	l.refresh(e, l.now())
	return State{Failures: e.failures, Until: e.until, Locked: e.locked && l.now().Before(e.until)}
}
