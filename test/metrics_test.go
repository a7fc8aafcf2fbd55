package e2e

// End-to-end test of the Prometheus endpoint (issue 4): after a push, a
// denied push and a failed sign-in, GET /metrics on [server] metrics_addr
// shows the matching counters, our audit histograms and distribution's own
// collectors; the registry's TLS port does not serve /metrics.

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// metSample is one sample line of the Prometheus text format.
type metSample struct {
	Labels map[string]string
	Name   string
	Value  float64
}

func metParse(t testing.TB, text string) []metSample {
	t.Helper()
	var out []metSample
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := metSample{Labels: map[string]string{}}
		var rest string
		if i := strings.IndexAny(line, "{ "); i >= 0 && line[i] == '{' {
			s.Name = line[:i]
			end := strings.LastIndex(line, "}")
			if end < i {
				t.Fatalf("bad metrics line %q", line)
			}
			for _, kv := range metSplitLabels(line[i+1 : end]) {
				k, v, _ := strings.Cut(kv, "=")
				uq, err := strconv.Unquote(v)
				if err != nil {
					t.Fatalf("bad label %q in %q", kv, line)
				}
				s.Labels[k] = uq
			}
			rest = strings.TrimSpace(line[end+1:])
		} else {
			s.Name, rest, _ = strings.Cut(line, " ")
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			t.Fatalf("metrics line without a value: %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		s.Value = v
		out = append(out, s)
	}
	return out
}

// metSplitLabels splits `a="x",b="y,z"` at commas outside quotes.
func metSplitLabels(s string) []string {
	var out []string
	inQ, esc, start := false, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case esc:
			esc = false
		case c == '\\':
			esc = true
		case c == '"':
			inQ = !inQ
		case c == ',' && !inQ:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// metSum adds the samples of name whose labels include want.
func metSum(samples []metSample, name string, want map[string]string) (float64, bool) {
	var sum float64
	found := false
	for _, s := range samples {
		if s.Name != name {
			continue
		}
		match := true
		for k, v := range want {
			if s.Labels[k] != v {
				match = false
				break
			}
		}
		if match {
			sum += s.Value
			found = true
		}
	}
	return sum, found
}

func metScrape(t testing.TB, addr string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape http://%s/metrics: %v", addr, err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d: %s", resp.StatusCode, body)
	}
	return string(body)
}

func TestMetricsAfterPushAndDenial(t *testing.T) {
	t.Parallel()
	metricsAddr := mcrtest.FreeAddr(t)
	srv := mcrtest.Start(t, mcrtest.WithConfig("server.metrics_addr", `"`+metricsAddr+`"`))
	const bobPass = "bob-password-1"
	srv.AddUser(t, "bob", bobPass, "user", "human")
	adminTok := srv.Login(t, "admin", mcrtest.AdminPassword)

	// A push (manifest PUT → 201), by bob.
	bob := remoteOpts(t, srv, basicAuth("bob", bobPass), nil)
	img, _ := random.Image(1024, 2)
	if err := remote.Write(ref(t, srv, "met/app:v1"), img, bob...); err != nil {
		t.Fatalf("push: %v", err)
	}
	// A denied push.
	rule, _ := json.Marshal(map[string]any{
		"priority": 1, "effect": "deny", "roles": []string{"user"},
		"actions": []string{"registry:push"}, "repositories": []string{"locked/*"},
	})
	expectStatus(t, srv.Do(t, http.MethodPost, "/v1/policy/rules", adminTok, rule, "Content-Type", "application/json"), http.StatusCreated)
	if err := remote.Write(ref(t, srv, "locked/x:v1"), img, bob...); err == nil {
		t.Fatal("push to locked/x succeeded despite the deny rule")
	}
	// A failed sign-in.
	expectStatus(t, tokenGET(t, srv, "bob", "not-the-password", "", nil), http.StatusUnauthorized)

	samples := metParse(t, metScrape(t, metricsAddr))
	atLeast := func(name string, labels map[string]string, least float64) {
		t.Helper()
		v, ok := metSum(samples, name, labels)
		if !ok {
			t.Errorf("/metrics has no %s%v", name, labels)
		} else if v < least {
			t.Errorf("/metrics: %s%v = %v, want ≥ %v", name, labels, v, least)
		}
	}
	atLeast("mcr_http_requests_total", map[string]string{"route": "manifest", "method": "PUT", "status": "201"}, 1)
	atLeast("mcr_http_requests_total", map[string]string{"route": "token", "method": "GET", "status": "200"}, 1)
	atLeast("mcr_http_requests_total", map[string]string{"route": "blob-upload", "status": "403"}, 1)
	atLeast("mcr_policy_denials_total", map[string]string{"action": "registry:push"}, 1)
	atLeast("mcr_tokens_issued_total", nil, 1)
	atLeast("mcr_auth_failures_total", nil, 1)
	atLeast("mcr_audit_commit_seconds_count", nil, 1)
	atLeast("mcr_audit_batch_events_count", nil, 1)
	if _, ok := metSum(samples, "mcr_audit_queue_depth", nil); !ok {
		t.Error("/metrics has no mcr_audit_queue_depth")
	}
	// distribution's own collectors.
	var registryNames []string
	seen := map[string]bool{}
	for _, s := range samples {
		if strings.HasPrefix(s.Name, "registry_") && !seen[s.Name] {
			seen[s.Name] = true
			registryNames = append(registryNames, s.Name)
		}
	}
	if len(registryNames) == 0 {
		t.Error("/metrics has no registry_* series (distribution's collectors)")
	} else {
		t.Logf("distribution series: %v", registryNames)
	}
	if _, ok := metSum(samples, "registry_http_requests_total", nil); !ok {
		t.Errorf("/metrics has no registry_http_requests_total (have %v)", registryNames)
	}

	// Counters grow: another push is another manifest PUT.
	before, _ := metSum(samples, "mcr_http_requests_total", map[string]string{"route": "manifest", "method": "PUT", "status": "201"})
	img2, _ := random.Image(512, 1)
	if err := remote.Write(ref(t, srv, "met/app:v2"), img2, bob...); err != nil {
		t.Fatal(err)
	}
	after, _ := metSum(metParse(t, metScrape(t, metricsAddr)), "mcr_http_requests_total", map[string]string{"route": "manifest", "method": "PUT", "status": "201"})
	if after != before+1 {
		t.Errorf("manifest PUT 201 counter went from %v to %v after one more push", before, after)
	}

	// The registry's own port does not serve /metrics.
	resp := srv.Do(t, http.MethodGet, "/metrics", "", nil)
	readAll(t, resp)
	if resp.StatusCode == http.StatusOK {
		t.Error("the registry's TLS listener serves /metrics")
	}
}

// metrics_addr empty (the default): no metrics listener, and the server
// runs normally.
func TestMetricsOffByDefault(t *testing.T) {
	t.Parallel()
	srv := mcrtest.Start(t)
	if strings.Contains(srv.Output.String(), "metrics listening") {
		t.Errorf("a metrics listener started with metrics_addr empty:\n%s", srv.Output.String())
	}
	resp := srv.Do(t, http.MethodGet, "/metrics", "", nil)
	readAll(t, resp)
	if resp.StatusCode == http.StatusOK {
		t.Error("the registry's TLS listener serves /metrics")
	}
}

// server.pprof adds Go's profiles to the metrics listener only; without it
// the metrics listener serves /metrics and nothing else.
func TestPprofOnMetricsListener(t *testing.T) {
	t.Parallel()
	get := func(addr, path string) int {
		t.Helper()
		c := &http.Client{Timeout: 10 * time.Second}
		resp, err := c.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET http://%s%s: %v", addr, path, err)
		}
		readAll(t, resp)
		return resp.StatusCode
	}
	on := mcrtest.FreeAddr(t)
	srv := mcrtest.Start(t, mcrtest.WithConfig("server.metrics_addr", `"`+on+`"`), mcrtest.WithConfig("server.pprof", "true"))
	if got := get(on, "/debug/pprof/heap?debug=1"); got != http.StatusOK {
		t.Errorf("pprof on: /debug/pprof/heap status %d, want 200", got)
	}
	if got := get(on, "/metrics"); got != http.StatusOK {
		t.Errorf("pprof on: /metrics status %d, want 200", got)
	}
	resp := srv.Do(t, http.MethodGet, "/debug/pprof/heap", "", nil)
	readAll(t, resp)
	if resp.StatusCode == http.StatusOK {
		t.Error("the registry's TLS listener serves /debug/pprof/")
	}

	off := mcrtest.FreeAddr(t)
	mcrtest.Start(t, mcrtest.WithConfig("server.metrics_addr", `"`+off+`"`))
	if got := get(off, "/debug/pprof/heap?debug=1"); got != http.StatusNotFound {
		t.Errorf("pprof off: /debug/pprof/heap status %d, want 404", got)
	}
}
