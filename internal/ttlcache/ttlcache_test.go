package ttlcache

import (
	"testing"
	"time"
)

func TestCache(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		name   string
		max    int
		puts   []string // keys put, each expiring at t0+10s
		at     time.Duration
		get    string
		wantOK bool
		maxLen int
	}{
		{"hit before expiry", 10, []string{"a"}, 9 * time.Second, "a", true, 1},
		{"miss at expiry", 10, []string{"a"}, 10 * time.Second, "a", false, 1},
		{"miss unknown", 10, []string{"a"}, 0, "b", false, 1},
		{"bounded", 2, []string{"a", "b", "c"}, 0, "c", true, 2},
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
