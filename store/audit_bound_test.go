package store

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string
		n    int
	}{
		{"short", "short", 10},
		{"exactly10!", "exactly10!", 10},
		{"abcdefghijkl", "abcdefg…", 10},
		{"ééééééé", "éé…", 8}, // never half a rune
	} {
		got := Truncate(tt.in, tt.n)
		if got != tt.want || len(got) > tt.n || !utf8.ValidString(got) {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// Whatever a caller hands the audit writer, a row stays bounded.
func TestAuditRowIsBounded(t *testing.T) {
	st := openSQLite(t)
	huge := strings.Repeat("x", 1<<20)
	ctx := context.Background()
	if err := st.WriteAudit(ctx,
		AuditEvent{Type: "login_fail", Actor: huge, IP: huge, Repository: huge, Details: map[string]any{"reason": huge}},
		AuditEvent{Type: "policy_deny", Details: map[string]any{"a": strings.Repeat("y", 1000), "b": strings.Repeat("y", 1000),
			"c": strings.Repeat("y", 1000), "d": strings.Repeat("y", 1000), "e": strings.Repeat("y", 1000), "f": strings.Repeat("y", 1000),
			"g": strings.Repeat("y", 1000), "h": strings.Repeat("y", 1000), "i": strings.Repeat("y", 1000)}},
	); err != nil {
		t.Fatal(err)
	}
	var longest int
	if err := st.DB().QueryRowContext(ctx, `SELECT MAX(length(actor) + length(ip) + length(repository) + length(details_json)) FROM audit_log`).Scan(&longest); err != nil {
		t.Fatal(err)
	}
	if bound := 3*MaxAuditField + MaxAuditDetails; longest > bound {
		t.Fatalf("an audit row holds %d bytes of caller text, bound %d", longest, bound)
	}
	evs, err := st.ListAudit(ctx, AuditFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Type == "policy_deny" && e.Details["truncated"] != true {
			t.Errorf("oversized details kept: %v", e.Details)
		}
	}
}
