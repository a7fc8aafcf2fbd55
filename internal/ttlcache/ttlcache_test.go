package ttlcache

import (
	"testing"
	"time"
)

func TestCache(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		name   string
		get    string
		puts   []string // keys put, each expiring at t0+10s
		max    int
		at     time.Duration
		wantOK bool
		maxLen int
	}{
		{"hit before expiry", "a", []string{"a"}, 10, 9 * time.Second, true, 1},
		{"miss at expiry", "a", []string{"a"}, 10, 10 * time.Second, false, 1},
		{"miss unknown", "b", []string{"a"}, 10, 0, false, 1},
		{"bounded", "c", []string{"a", "b", "c"}, 2, 0, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New[int](tc.max)
			for i, k := range tc.puts {
				c.Put(Key(k), i, t0.Add(10*time.Second), t0)
			}
			_, ok := c.Get(Key(tc.get), t0.Add(tc.at))
			if ok != tc.wantOK {
				t.Fatalf("Get(%q) ok = %v, want %v", tc.get, ok, tc.wantOK)
			}
			if c.Len() > tc.maxLen {
				t.Fatalf("Len = %d, want <= %d", c.Len(), tc.maxLen)
			}
		})
	}
	if Key("ab", "c") == Key("a", "bc") {
		t.Fatal("Key must separate its parts")
	}
}

// A full cache of live entries evicts an eighth of itself at once, so the
// insertions after it find room without scanning the map again; expired
// entries go first.
func TestPutEvictsInBatches(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		name    string
		expired int // of the 64 entries filling the cache, how many have expired
		wantLen int // after one more Put
	}{
		{"all live: an eighth dropped", 0, 64 - 8 + 1},
		{"expired ones suffice", 20, 64 - 20 + 1},
		{"a few expired, then arbitrary", 3, 64 - 8 + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New[int](64)
			for i := range 64 {
				exp := t0.Add(time.Hour)
				if i < tc.expired {
					exp = t0.Add(time.Second)
				}
				c.Put(Key(string(rune('A'+i))), i, exp, t0)
			}
			now := t0.Add(time.Minute)
			c.Put(Key("new"), 1, now.Add(time.Hour), now)
			if c.Len() != tc.wantLen {
				t.Fatalf("Len = %d, want %d", c.Len(), tc.wantLen)
			}
			if _, ok := c.Get(Key("new"), now); !ok {
				t.Fatal("the new entry is missing")
			}
		})
	}
}
