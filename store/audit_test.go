package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestListAuditMatchesScan checks every query plan of ListAudit (rowid,
// type index, merged per-type walks, id bounds from time bounds) against a
// plain filter over all rows, on a log whose times are out of commit order
// by up to commitSlack, as asynchronous pull batches make them.
func TestListAuditMatchesScan(t *testing.T) { eachDialect(t, testListAuditMatchesScan) }

func testListAuditMatchesScan(t *testing.T, st *Store) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	types := []string{"manifest_pulled", "manifest_pushed", "blob_uploaded", "login_ok", "repo_deleted"}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var all []AuditEvent
	for b := 0; b < 40; b++ {
		var evs []AuditEvent
		for i := 0; i < 50; i++ {
			n := b*50 + i
			// Time advances 10 s per row; each row may be up to 55 s late.
			at := base.Add(time.Duration(n)*10*time.Second - time.Duration(rng.IntN(55))*time.Second)
			typ := types[rng.IntN(len(types))]
			if rng.IntN(10) > 0 {
				typ = types[0]
			}
			evs = append(evs, AuditEvent{Time: at, Type: typ,
				ActorID: fmt.Sprintf("u-%d", rng.IntN(4)), Repository: fmt.Sprintf("r/%d", rng.IntN(6))})
		}
		if err := st.ApplyBatch(ctx, evs, nil); err != nil {
			t.Fatal(err)
		}
		all = append(all, evs...)
	}
	for i := range all {
		all[i].ID = int64(i + 1)
	}
	// Delete a stretch, as pruning or a repository delete leaves gaps.
	if _, err := st.db.Exec(`DELETE FROM audit_log WHERE id BETWEEN 700 AND 760`); err != nil {
		t.Fatal(err)
	}
	all = slices.DeleteFunc(all, func(e AuditEvent) bool { return e.ID >= 700 && e.ID <= 760 })

	at := func(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }
	cases := []AuditFilter{
		{},
		{EventType: "manifest_pushed"},
		{EventType: "nope"},
		{Repository: "r/3"},
		{Repository: "r/3", Offset: 7},
		{Repository: "r/none"},
		{ActorID: "u-1"},
		{ActorID: "u-1", Repository: "r/2"},
		{Repository: "r/1", EventType: "repo_deleted"},
		{Before: 900},
		{Repository: "r/0", Before: 500},
		{Since: at(5000)},
		{Until: at(5000)},
		{Since: at(5000), Until: at(5600)},
		{Since: at(7000), Until: at(7600)}, // across the deleted stretch
		{Since: at(-100000), Until: at(-50000)},
		{Since: at(1e6)},
		{Until: at(-1)},
		{Since: at(3000), Until: at(9000), EventType: "login_ok"},
		{Since: at(3000), Until: at(9000), Repository: "r/4"},
		{Since: at(3000), Until: at(9000), ActorID: "u-0", Offset: 3},
		{Since: at(0), Until: at(20000), Before: 1500, Repository: "r/5"},
		// Issue 17: a key and a window walk the key's index; with both
		// keys, their index for all but pulls, and for pulls the narrower
		// key's with a probe of the other's.
		{Since: at(5000), Until: at(6000), Repository: "r/2"},
		{Since: at(5000), Until: at(6000), ActorID: "u-3"},
		{Since: at(2000), Until: at(9000), ActorID: "u-1", Repository: "r/2"},
		{Since: at(2000), Until: at(9000), ActorID: "u-1", Repository: "r/2", EventType: "manifest_pulled"},
		{ActorID: "u-2", Repository: "r/4", EventType: "manifest_pulled", Before: 1200},
		{ActorID: "u-none", Repository: "r/2"},
		{ActorID: "u-0", Repository: "r/none", EventType: "login_ok"},
	}
	for _, f := range cases {
		for _, limit := range []int{1, 10, 5000} {
			f := f
			f.Limit = limit
			t.Run(fmt.Sprintf("%+v", f), func(t *testing.T) {
				got, err := st.ListAudit(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				want := scanAudit(all, f)
				if len(got) != len(want) {
					t.Fatalf("%d rows, want %d", len(got), len(want))
				}
				for i := range got {
					if got[i].ID != want[i] {
						t.Fatalf("row %d: id %d, want %d", i, got[i].ID, want[i])
					}
				}
			})
		}
	}
}

// scanAudit is ListAudit by brute force: the ids, newest first.
func scanAudit(all []AuditEvent, f AuditFilter) []int64 {
	var ids []int64
	for i := len(all) - 1; i >= 0; i-- {
		e := all[i]
		switch {
		case f.EventType != "" && e.Type != f.EventType,
			f.ActorID != "" && e.ActorID != f.ActorID,
			f.Repository != "" && e.Repository != f.Repository,
			!f.Since.IsZero() && e.Time.Before(f.Since),
			!f.Until.IsZero() && e.Time.After(f.Until),
			f.Before > 0 && e.ID >= f.Before:
			continue
		}
		ids = append(ids, e.ID)
	}
	if f.Offset >= len(ids) {
		return nil
	}
	ids = ids[f.Offset:]
	if len(ids) > f.Limit {
		ids = ids[:f.Limit]
	}
	return ids
}

func TestPruneAudit(t *testing.T) { eachDialect(t, testPruneAudit) }

func testPruneAudit(t *testing.T, st *Store) {
	ctx := context.Background()
	now := time.Now()
	var evs []AuditEvent
	for i := 0; i < 300; i++ {
		// Days ago: 299 … 0, with a late-committed old row in the middle.
		at := now.Add(-time.Duration(299-i) * 24 * time.Hour)
		if i == 150 {
			at = now.Add(-200 * 24 * time.Hour)
		}
		evs = append(evs, AuditEvent{Time: at, Type: "login_ok"})
	}
	if err := st.ApplyBatch(ctx, evs, nil); err != nil {
		t.Fatal(err)
	}
	cutoff := now.Add(-90 * 24 * time.Hour)
	var total int64
	for {
		n, err := st.PruneAudit(ctx, cutoff, 50)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	// Rows 0..208 are older than the cutoff; row 209 is exactly at it.
	left, err := st.ListAudit(ctx, AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		if e.Time.Before(cutoff) {
			t.Errorf("row %d at %v survived pruning before %v", e.ID, e.Time, cutoff)
		}
	}
	if want := int64(300 - len(left)); total != want {
		t.Errorf("pruned %d, but %d rows are gone", total, want)
	}
	if len(left) != 91 {
		t.Errorf("%d rows left, want 91 (the last 90 days and the row at the cutoff)", len(left))
	}
}
