package revocation

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

type source struct {
	gens  map[string]int64
	err   error
	mu    sync.Mutex
	reads int
}

func (s *source) Generations(context.Context) (map[string]int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.err != nil {
		return nil, s.err
	}
	out := map[string]int64{}
	for k, v := range s.gens {
		out[k] = v
	}
	return out, nil
}

func (s *source) set(sub string, g int64) { s.mu.Lock(); s.gens[sub] = g; s.mu.Unlock() }

func TestCache(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	marker := filepath.Join(t.TempDir(), "mcr.db-accounts")
	touch := func() {
		tmp := marker + ".tmp"
		if err := os.WriteFile(tmp, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, marker); err != nil {
			t.Fatal(err)
		}
	}
	src := &source{gens: map[string]int64{"alice": 1}}
	c := New(src, marker, 5*time.Second, clock)

	steps := []struct {
		name      string
		act       func()
		subject   string
		want      int64
		wantReads int
	}{
		{"first lookup reads", nil, "alice", 1, 1},
		{"second lookup is cached", nil, "alice", 1, 1},
		{"unknown subject is 0, cached", nil, "bob", 0, 1},
		{"a change without notice is not seen yet", func() { src.set("alice", 2) }, "alice", 1, 1},
		{"marker replaced: re-read", touch, "alice", 2, 2},
		{"Invalidate: re-read", func() { src.set("alice", 3); c.Invalidate() }, "alice", 3, 3},
		{"poll interval elapsed: re-read", func() { src.set("alice", 4); now = now.Add(5 * time.Second) }, "alice", 4, 4},
		{"then cached again", nil, "alice", 4, 4},
	}
	for _, s := range steps {
		if s.act != nil {
			s.act()
		}
		got, err := c.Generation(ctx, s.subject)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got != s.want || src.reads != s.wantReads {
			t.Fatalf("%s: generation %d after %d reads, want %d after %d", s.name, got, src.reads, s.want, s.wantReads)
		}
	}
}

func TestCacheReportsErrorsAndRetries(t *testing.T) {
	src := &source{gens: map[string]int64{}, err: errors.New("database is locked")}
	c := New(src, "", time.Minute, nil)
	if _, err := c.Generation(context.Background(), "alice"); err == nil {
		t.Fatal("error from the source swallowed")
	}
	src.mu.Lock()
	src.err = nil
	src.gens["alice"] = 7
	src.mu.Unlock()
	if g, err := c.Generation(context.Background(), "alice"); err != nil || g != 7 {
		t.Fatalf("after recovery: %d, %v; want 7", g, err)
	}
}
