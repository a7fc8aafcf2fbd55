package clientip

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestResolve(t *testing.T) {
	tests := []struct {
		name    string
		peer    string
		want    string
		trusted []string
		xff     []string
	}{
		{"no proxies: peer, header ignored", "192.0.2.1:5000", "192.0.2.1", nil, []string{"203.0.113.9"}},
		{"untrusted peer: header ignored", "192.0.2.1:5000", "192.0.2.1", []string{"10.0.0.0/8"}, []string{"203.0.113.9"}},
		{"trusted peer: last hop", "10.1.2.3:5000", "203.0.113.9", []string{"10.0.0.0/8"}, []string{"203.0.113.9"}},
		{"client-written hops are skipped", "10.1.2.3:5000", "203.0.113.9", []string{"10.0.0.0/8"}, []string{"1.1.1.1, 203.0.113.9"}},
		{"chained trusted proxies", "127.0.0.1:1", "203.0.113.9", []string{"10.0.0.0/8", "127.0.0.1"}, []string{"203.0.113.9, 10.0.0.5"}},
		{"several header lines", "127.0.0.1:1", "203.0.113.9", []string{"127.0.0.1/32"}, []string{"1.1.1.1", "203.0.113.9"}},
		{"trusted peer, no header", "127.0.0.1:1", "127.0.0.1", []string{"127.0.0.1/32"}, nil},
		{"garbage stops the walk", "127.0.0.1:1", "127.0.0.1", []string{"127.0.0.1/32"}, []string{"203.0.113.9, not-an-ip"}},
		{"ipv6 and mapped", "[::1]:1", "203.0.113.9", []string{"::1/128"}, []string{"::ffff:203.0.113.9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := New(tt.trusted)
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.RemoteAddr = tt.peer
			for _, h := range tt.xff {
				req.Header.Add("X-Forwarded-For", h)
			}
			if got := res.Resolve(req); got != tt.want {
				t.Fatalf("Resolve = %q, want %q", got, tt.want)
			}
			var seen string
			res.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { seen = From(r) })).ServeHTTP(httptest.NewRecorder(), req)
			if seen != tt.want {
				t.Fatalf("From after Middleware = %q, want %q", seen, tt.want)
			}
		})
	}
}

func TestNewRejectsGarbage(t *testing.T) {
	for _, c := range []string{"10.0.0.0/33", "example.com", "10.0.0"} {
		if _, err := New([]string{c}); err == nil {
			t.Errorf("New(%q) accepted", c)
		}
	}
}
