package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkApplyBatchPulls measures the committer's cost per pull event: a
// group commit of 128 manifest_pulled rows into an audit log that already
// holds rows (every index is a B-tree of realistic depth). ns/op is per
// commit of 128 rows.
func BenchmarkApplyBatchPulls(b *testing.B) {
	for _, repos := range []int{1, 300} {
		b.Run(fmt.Sprintf("repos=%d", repos), func(b *testing.B) { benchApplyBatchPulls(b, repos) })
	}
}

func benchApplyBatchPulls(b *testing.B, repos int) {
	st := openSQLite(b)
	ctx := context.Background()
	const batch = 128
	mk := func(i int) []AuditEvent {
		evs := make([]AuditEvent, batch)
		for j := range evs {
			n := i*batch + j
			evs[j] = AuditEvent{
				Time: time.Now(), Type: "manifest_pulled", ActorID: fmt.Sprintf("u-%d", n%repos%50), Actor: fmt.Sprintf("user%d", n%repos%50),
				Repository: fmt.Sprintf("team%d/app%d", n%repos%20, n%repos), Digest: "sha256:" + fmt.Sprintf("%064x", n), Tag: "v1",
				IP: "10.0.0.1", Details: map[string]any{"media_type": "application/vnd.oci.image.manifest.v1+json"},
			}
		}
		return evs
	}
	for i := 0; i < 400; i++ { // 51,200 rows already there
		if err := st.ApplyBatch(ctx, mk(i), nil); err != nil {
			b.Fatal(err)
		}
	}
	batches := make([][]AuditEvent, 64)
	for i := range batches {
		batches[i] = mk(1000 + i)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := st.ApplyBatch(ctx, batches[i%len(batches)], nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyPush measures the commit of one change event (a manifest
// push with its audit row and no index operation), as a request waits for
// it: the events that, unlike pulls, the (repository, actor_id,
// event_type, id) index holds. ns/op is per commit.
func BenchmarkApplyPush(b *testing.B) {
	st := openSQLite(b)
	ctx := context.Background()
	ev := func(n int) AuditEvent {
		return AuditEvent{Time: time.Now(), Type: "manifest_pushed", ActorID: fmt.Sprintf("u-%d", n%50), Actor: fmt.Sprintf("user%d", n%50),
			Repository: fmt.Sprintf("team%d/app%d", n%20, n%300), Digest: "sha256:" + fmt.Sprintf("%064x", n), Tag: "v1",
			IP: "10.0.0.1", Details: map[string]any{"media_type": "application/vnd.oci.image.manifest.v1+json", "size": 1234}}
	}
	for i := 0; i < 200; i++ { // 51,200 rows already there
		evs := make([]AuditEvent, 256)
		for j := range evs {
			evs[j] = ev(i*256 + j)
		}
		if err := st.ApplyBatch(ctx, evs, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := st.ApplyBatch(ctx, []AuditEvent{ev(100000 + i)}, nil); err != nil {
			b.Fatal(err)
		}
	}
}
