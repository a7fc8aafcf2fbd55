package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestAuditPlansFromStatistics: a SQLite database that grew from empty
// gets planner statistics from Optimize (as mcrsrv runs it, at open and
// hourly), and with them each audit walk takes its key's index even when
// it also checks event_time, which without statistics went to the
// (event_type, id) index and read every row of the type in the window.
func TestAuditPlansFromStatistics(t *testing.T) {
	st := openSQLite(t)
	ctx := context.Background()
	types := []string{"manifest_pulled", "manifest_pushed", "blob_uploaded", "login_ok", "tag_deleted"}
	now := time.Now()
	rng := rand.New(rand.NewPCG(1, 2))
	for b := 0; b < 20; b++ {
		evs := make([]AuditEvent, 0, 500)
		for i := 0; i < 500; i++ {
			n := b*500 + i
			evs = append(evs, AuditEvent{Time: now.Add(time.Duration(n) * time.Second), Type: types[n%len(types)],
				ActorID: fmt.Sprintf("u-%d", rng.IntN(40)), Repository: fmt.Sprintf("r/%d", rng.IntN(300))})
		}
		if err := st.ApplyBatch(ctx, evs, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Optimize(ctx); err != nil {
		t.Fatal(err)
	}
	var analyzed int
	if err := st.db.QueryRow(`SELECT COUNT(*) FROM sqlite_stat1 WHERE tbl = 'audit_log' AND stat NOT LIKE '0%'`).Scan(&analyzed); err != nil {
		t.Fatalf("no planner statistics after Optimize: %v", err)
	}
	if analyzed < 4 {
		t.Fatalf("statistics for %d audit_log indexes, want 4", analyzed)
	}
	// The arms ListAudit builds (an edge segment checks event_time).
	cases := []struct{ where, index string }{
		{`repository = ? AND id >= ? AND id <= ? AND event_time >= ? AND event_type = ?`, "audit_log_repo_type"},
		{`actor_id = ? AND id >= ? AND id <= ? AND event_time <= ? AND event_type = ?`, "audit_log_actor_type"},
		{`repository = ? AND actor_id = ? AND ` + notPull + ` AND id < ? AND id >= ? AND id <= ? AND event_time >= ? AND event_time <= ? AND event_type = ?`, "audit_log_repo_actor_type"},
		{`repository = ? AND actor_id = ? AND ` + notPull + ` AND event_type = ?`, "audit_log_repo_actor_type"},
		// pullArm: the narrower key's walk, the other's probe.
		{`actor_id = ? AND EXISTS (SELECT 1 FROM audit_log AS o WHERE o.repository = ? AND o.event_type = a.event_type AND o.id = a.id) AND id >= ? AND id <= ? AND event_type = ?`, "audit_log_actor_type"},
		{`repository = ? AND EXISTS (SELECT 1 FROM audit_log AS o WHERE o.actor_id = ? AND o.event_type = a.event_type AND o.id = a.id) AND id >= ? AND event_time >= ? AND event_type = ?`, "audit_log_repo_type"},
	}
	for _, c := range cases {
		n := strings.Count(c.where, "?")
		args := make([]any, n)
		for i := range args {
			args[i] = "x"
		}
		rows, err := st.db.Query(`EXPLAIN QUERY PLAN SELECT id FROM audit_log AS a WHERE `+c.where+` ORDER BY id DESC LIMIT 50`, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		// The first step is the walk; a probe comes after it.
		if p := strings.Join(plan, "; "); len(plan) == 0 || !strings.Contains(plan[0], "INDEX "+c.index+" ") ||
			(strings.Contains(c.where, "EXISTS") && (len(plan) < 2 || !strings.Contains(plan[1], "COVERING INDEX"))) {
			t.Errorf("WHERE %s: plan %q, want a walk of %s", c.where, p, c.index)
		}
	}
}
