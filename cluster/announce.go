package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"git.wntrmute.dev/kyle/mcr/store"
)

// Announce publishes a new version of topic from a process that is not a
// member (an operator command such as `mcrsrv user passwd`) and waits
// until every live member has applied it, so the change acts on the next
// request to any replica. It does nothing on a SQLite store (one node,
// which notices changes itself).
func Announce(ctx context.Context, st *store.Store, topic, payload string) error {
	if st.Dialect() != store.DialectPostgres {
		return nil
	}
	n := &Node{db: st.DB(), opt: Options{LiveWindow: 5 * time.Second, AckTimeout: 10 * time.Second}}
	var version int64
	if err := n.db.QueryRowContext(ctx, `INSERT INTO cluster_topics(topic, version, payload) VALUES (?, 1, ?)
		ON CONFLICT(topic) DO UPDATE SET version = cluster_topics.version + 1, payload = excluded.payload
		RETURNING version`, topic, payload).Scan(&version); err != nil {
		return fmt.Errorf("cluster: announce %s: %w", topic, err)
	}
	if err := n.awaitAcks(ctx, topic, version); err != nil {
		return errors.Join(errors.New("the change is saved; replicas that have not applied it will within their poll interval"), err)
	}
	return nil
}
