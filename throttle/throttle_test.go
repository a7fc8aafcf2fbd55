package throttle

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

type clock struct {
	t  time.Time
	mu sync.Mutex
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testConfig() Config {
	return Config{
		Account:         Rule{BackoffAfter: 2, LockoutAfter: 5, Concurrent: 1},
		IP:              Rule{BackoffAfter: 4, LockoutAfter: 8, Concurrent: 2},
		BackoffBase:     time.Second,
		BackoffMax:      4 * time.Second,
		LockoutDuration: time.Minute,
		Window:          10 * time.Minute,
		MaxWait:         time.Second,
		MaxKeys:         100,
	}
}

// step is one sign-in attempt (or a clock advance) and what must happen.
type step struct {
	account string
	ip      string
	unlock  string

	kind Kind

	advance time.Duration

	retryAfter time.Duration
	lockouts   int

	ok bool // the password was right

	allowed bool
	locked  bool
}

func TestLimiter(t *testing.T) {
	const a, ip1, ip2 = "alice", "192.0.2.1", "192.0.2.2"
	tests := []struct {
		name  string
		steps []step
	}{
		{"failures below backoff are free", []step{
			{account: a, ip: ip1, allowed: true},
			{account: a, ip: ip1, allowed: true},
		}},
		{"backoff doubles and is capped", []step{
			{account: a, ip: ip1, allowed: true},
			{account: a, ip: ip1, allowed: true}, // 2nd failure: 1 s delay
			{account: a, ip: ip1, retryAfter: time.Second, kind: Account},
			{advance: time.Second, account: a, ip: ip1, allowed: true}, // 3rd: 2 s
			{advance: time.Second, account: a, ip: ip1, retryAfter: time.Second, kind: Account},
			{advance: time.Second, account: a, ip: ip1, allowed: true}, // 4th: 4 s
			{advance: 3 * time.Second, account: a, ip: ip1, retryAfter: time.Second, kind: Account},
		}},
		{"lockout refuses the right password and is reported once", []step{
			{account: a, ip: ip1, allowed: true},
			{account: a, ip: ip1, allowed: true},
			{advance: time.Second, account: a, ip: ip1, allowed: true},
			{advance: 2 * time.Second, account: a, ip: ip1, allowed: true},
			{advance: 4 * time.Second, account: a, ip: ip1, allowed: true, lockouts: 1}, // 5th failure
			{advance: time.Second, account: a, ip: ip2, ok: true, retryAfter: 59 * time.Second, kind: Account, locked: true},
			{advance: 59 * time.Second, account: a, ip: ip2, ok: true, allowed: true},
			{account: a, ip: ip2, allowed: true}, // counter started afresh
			{account: a, ip: ip2, allowed: true},
		}},
		{"admin unlock ends a lockout", []step{
			{account: a, ip: ip1, allowed: true},
			{account: a, ip: ip1, allowed: true},
			{advance: time.Second, account: a, ip: ip1, allowed: true},
			{advance: 2 * time.Second, account: a, ip: ip1, allowed: true},
			{advance: 4 * time.Second, account: a, ip: ip1, allowed: true, lockouts: 1},
			{account: a, ip: ip2, ok: true, retryAfter: time.Minute, kind: Account, locked: true},
			{unlock: a},
			{account: a, ip: ip2, ok: true, allowed: true},
		}},
		{"success clears the account, not the IP", []step{
			{account: a, ip: ip1, allowed: true},
			{account: a, ip: ip1, ok: true, allowed: true},
			{account: a, ip: ip1, allowed: true},
			{account: a, ip: ip1, allowed: true},     // account: 2 failures → 1 s
			{account: "bob", ip: ip1, allowed: true}, // ip: 4 failures (the success did not count)
			{account: "carol", ip: ip1, retryAfter: time.Second, kind: IP},
		}},
		{"many usernames from one IP lock the IP", []step{
			{account: "u1", ip: ip1, allowed: true},
			{account: "u2", ip: ip1, allowed: true},
			{account: "u3", ip: ip1, allowed: true},
			{account: "u4", ip: ip1, allowed: true},
			{advance: time.Second, account: "u5", ip: ip1, allowed: true},
			{advance: 2 * time.Second, account: "u6", ip: ip1, allowed: true},
			{advance: 4 * time.Second, account: "u7", ip: ip1, allowed: true},
			{advance: 4 * time.Second, account: "u8", ip: ip1, allowed: true, lockouts: 1},
			{account: "u9", ip: ip1, ok: true, retryAfter: time.Minute, kind: IP, locked: true},
			{account: "other", ip: ip2, ok: true, allowed: true},
		}},
		{"failures are forgotten after the window", []step{
			{account: a, ip: ip1, allowed: true},
			{advance: 10 * time.Minute, account: a, ip: ip1, allowed: true},
			{account: a, ip: ip1, allowed: true}, // only the 2nd failure in the window
		}},
		{"empty keys are not limited", []step{
			{allowed: true}, {allowed: true}, {allowed: true}, {allowed: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			l := New(testConfig(), c.now)
			for i, s := range tt.steps {
				c.add(s.advance)
				if s.unlock != "" {
					if !l.Unlock(s.unlock) {
						t.Fatalf("step %d: Unlock(%q) = false, want true", i, s.unlock)
					}
					continue
				}
				at, d := l.Begin(context.Background(), s.account, s.ip)
				if d.Allowed != s.allowed || d.RetryAfter != s.retryAfter || d.Kind != s.kind || d.Locked != s.locked {
					t.Fatalf("step %d: decision %+v, want allowed=%v retry=%v kind=%q locked=%v", i, d, s.allowed, s.retryAfter, s.kind, s.locked)
				}
				if !d.Allowed {
					if at != nil {
						t.Fatalf("step %d: refused attempt returned non-nil", i)
					}
					continue
				}
				if got := at.Done(s.ok); len(got) != s.lockouts {
					t.Fatalf("step %d: %d lockouts %+v, want %d", i, len(got), got, s.lockouts)
				}
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	l := New(Config{BackoffBase: time.Second, BackoffMax: 30 * time.Second}, nil)
	for _, tt := range []struct {
		n    int
		want time.Duration
	}{{0, time.Second}, {1, 2 * time.Second}, {4, 16 * time.Second}, {5, 30 * time.Second}, {100, 30 * time.Second}} {
		if got := l.backoff(tt.n); got != tt.want {
			t.Errorf("backoff(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
}

// A burst on one account is judged one attempt at a time: while one
// attempt holds the account, another waits; after it fails into backoff,
// the waiter is refused without checking a password.
func TestBeginQueuesPerAccount(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := testConfig()
	cfg.Account.BackoffAfter = 1
	cfg.MaxWait = time.Minute
	l := New(cfg, c.now)
	first, d := l.Begin(context.Background(), "alice", "ip")
	if !d.Allowed {
		t.Fatal("first attempt refused")
	}
	got := make(chan Decision, 1)
	go func() {
		at, d := l.Begin(context.Background(), "alice", "ip2")
		if at != nil {
			at.Abandon()
		}
		got <- d
	}()
	select {
	case d := <-got:
		t.Fatalf("second attempt answered %+v while the first was running", d)
	default:
	}
	first.Done(false)
	if d := <-got; d.Allowed || d.Kind != Account || d.RetryAfter != time.Second {
		t.Fatalf("waiter: %+v, want refused by account backoff of 1s", d)
	}
}

func TestBeginWaitEndsWithContext(t *testing.T) {
	l := New(testConfig(), nil)
	first, _ := l.Begin(context.Background(), "alice", "")
	defer first.Abandon()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if at, d := l.Begin(ctx, "alice", ""); at != nil || d.Allowed || d.RetryAfter != time.Second {
		t.Fatalf("Begin with cancelled context: %v %+v", at, d)
	}
}

func TestMaxKeysBoundsMemory(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := testConfig()
	cfg.MaxKeys = 10
	l := New(cfg, c.now)
	for i := range 100 {
		c.add(time.Millisecond)
		at, d := l.Begin(context.Background(), string(rune('a'+i%26))+string(rune('a'+i/26)), "")
		if !d.Allowed {
			t.Fatalf("attempt %d refused", i)
		}
		at.Done(false)
	}
	if n := len(l.keys); n > 10 {
		t.Fatalf("%d keys held, want <= 10", n)
	}
}

// Once full, the limiter drops the keys quiet the longest, an eighth of
// the map at a time, and never a key that is locked out.
func TestEvictionDropsTheQuietestButKeepsLockouts(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := testConfig()
	cfg.MaxKeys = 16
	l := New(cfg, c.now)
	// The first key is locked out; then 15 more keys fill the map.
	for i := range cfg.Account.LockoutAfter {
		c.add(cfg.BackoffMax + time.Second) // past any backoff
		at, d := l.Begin(context.Background(), "victim", "")
		if !d.Allowed {
			t.Fatalf("setup: attempt %d refused: %+v", i, d)
		}
		at.Done(false)
	}
	if !l.keys[mapKey(Account, "victim")].locked {
		t.Fatal("setup: victim not locked out")
	}
	for i := range 15 {
		c.add(time.Millisecond)
		at, _ := l.Begin(context.Background(), fmt.Sprintf("user%02d", i), "")
		at.Done(false)
	}
	c.add(time.Millisecond)
	at, _ := l.Begin(context.Background(), "newcomer", "")
	at.Done(false)
	if _, ok := l.keys[mapKey(Account, "victim")]; !ok {
		t.Fatal("a locked-out key was evicted")
	}
	for _, gone := range []string{"user00", "user01"} {
		if _, ok := l.keys[mapKey(Account, gone)]; ok {
			t.Errorf("%s, among the quietest, was kept", gone)
		}
	}
	if _, ok := l.keys[mapKey(Account, "user14")]; !ok {
		t.Error("user14, the most recent, was evicted")
	}
	if n := len(l.keys); n > cfg.MaxKeys-cfg.MaxKeys/8+1 {
		t.Fatalf("%d keys after eviction, want <= %d", n, cfg.MaxKeys-cfg.MaxKeys/8+1)
	}
}
