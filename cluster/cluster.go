// Package cluster coordinates mcrsrv replicas that share one PostgreSQL
// database (DESIGN §13): each replica is a member that heartbeats into
// cluster_members; a change one replica makes that the others must act
// on (policy reload, descriptor cache reset, the GC write gate) is a
// broadcast — a new version of a topic in cluster_topics, announced with
// NOTIFY — which every member applies and acknowledges in cluster_acks;
// Broadcast returns once every live member has, so the next request to
// any replica sees the change. A member that stops heartbeating (killed)
// stops counting after LiveWindow; one that missed a notification (its
// LISTEN connection dropped) catches up from cluster_topics.
//
//	n, err := cluster.Start(ctx, st, cluster.Options{})
//	n.Handle("policy", func(ctx context.Context, _ string) error { return engine.Reload(ctx) })
//	n.Run()
//	err = n.Broadcast(ctx, "policy", "") // every replica has reloaded
package cluster

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"git.wntrmute.dev/kyle/mcr/store"
)

// channel is the NOTIFY channel; payloads are "topic:version".
const channel = "mcr_cluster"

// Options tune a member. Zero values take the defaults.
type Options struct {
	Logger *slog.Logger
	// Heartbeat is how often the member records it is alive (1 s).
	Heartbeat time.Duration
	// LiveWindow is how long after its last heartbeat a member still
	// counts (5 s): broadcasts wait at most this long for a dead one.
	LiveWindow time.Duration
	// AckTimeout bounds how long Broadcast waits for live members (10 s).
	AckTimeout time.Duration
}

// Handler applies one broadcast on this member; payload is the topic's
// payload at the version being applied.
type Handler func(ctx context.Context, payload string) error

// Node is this replica's membership.
type Node struct {
	ID  string
	db  *sql.DB
	dsn string

	handlers map[string]Handler // guarded by mu
	applied  map[string]int64   // topic → version applied here; guarded by mu
	wake     chan struct{}

	ctx    context.Context
	cancel context.CancelFunc

	opt Options

	mu sync.Mutex // guards handlers and applied
	wg sync.WaitGroup
}

// Start joins the cluster: registers the member, starts heartbeats and
// the LISTEN loop. st must be a PostgreSQL store.
func Start(ctx context.Context, st *store.Store, opt Options) (*Node, error) {
	if st.Dialect() != store.DialectPostgres {
		return nil, errors.New("cluster: replicas need a shared PostgreSQL database (database.driver = \"postgres\")")
	}
	if opt.Heartbeat <= 0 {
		opt.Heartbeat = time.Second
	}
	if opt.LiveWindow <= 0 {
		opt.LiveWindow = 5 * time.Second
	}
	if opt.AckTimeout <= 0 {
		opt.AckTimeout = 10 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	n := &Node{ID: memberID(), db: st.DB(), dsn: st.DSN(), opt: opt,
		handlers: map[string]Handler{}, applied: map[string]int64{}, wake: make(chan struct{}, 1)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.beat(ctx); err != nil {
		return nil, fmt.Errorf("cluster: join: %w", err)
	}
	// Everything broadcast before this member started is already in the
	// state it loads at start-up (policy, empty caches): start from the
	// current versions, acknowledged.
	rows, err := n.db.QueryContext(ctx, `SELECT topic, version FROM cluster_topics`)
	if err != nil {
		return nil, fmt.Errorf("cluster: join: %w", err)
	}
	for rows.Next() {
		var t string
		var v int64
		if err := rows.Scan(&t, &v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("cluster: join: %w", err)
		}
		n.applied[t] = v
	}
	rows.Close()
	for t, v := range n.applied {
		if err := n.ack(ctx, t, v); err != nil {
			return nil, fmt.Errorf("cluster: join: %w", err)
		}
	}
	return n, nil
}

// Run starts the heartbeats and the LISTEN loop; register the handlers
// (Handle) first, so no broadcast is acknowledged unapplied.
func (n *Node) Run() {
	n.wg.Add(2)
	go n.heartbeats()
	go n.listen()
}

func memberID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Handle registers the handler of a topic (before Run). Topics without a
// handler here are acknowledged as they come.
func (n *Node) Handle(topic string, h Handler) {
	n.mu.Lock()
	n.handlers[topic] = h
	n.mu.Unlock()
	n.poke()
}

// Close leaves the cluster (the member row goes, so nobody waits for it).
func (n *Node) Close() {
	n.cancel()
	n.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n.db.ExecContext(ctx, `DELETE FROM cluster_members WHERE id = ?`, n.ID); err != nil {
		n.opt.Logger.Warn("cluster: leaving", "err", err)
	}
}

func (n *Node) beat(ctx context.Context) error {
	now := time.Now().UnixNano()
	_, err := n.db.ExecContext(ctx, `INSERT INTO cluster_members(id, started_at, last_seen) VALUES (?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET last_seen = excluded.last_seen`, n.ID, now, now)
	return err
}

func (n *Node) heartbeats() {
	defer n.wg.Done()
	t := time.NewTicker(n.opt.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(n.ctx, n.opt.LiveWindow)
		if err := n.beat(ctx); err != nil && n.ctx.Err() == nil {
			n.opt.Logger.Warn("cluster: heartbeat", "err", err)
		}
		cancel()
		n.poke() // also a periodic catch-up of missed notifications
	}
}

func (n *Node) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *Node) ack(ctx context.Context, topic string, version int64) error {
	_, err := n.db.ExecContext(ctx, `INSERT INTO cluster_acks(member, topic, version) VALUES (?, ?, ?)
		ON CONFLICT(member, topic) DO UPDATE SET version = excluded.version`, n.ID, topic, version)
	return err
}

// listen holds a LISTEN connection (reconnecting when it drops) and
// applies what is announced, or found newer in cluster_topics on a poke.
func (n *Node) listen() {
	defer n.wg.Done()
	backoff := 100 * time.Millisecond
	for n.ctx.Err() == nil {
		err := n.listenOnce()
		if n.ctx.Err() != nil {
			return
		}
		n.opt.Logger.Warn("cluster: LISTEN connection lost; reconnecting", "err", err)
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (n *Node) listenOnce() error {
	conn, err := pgx.Connect(n.ctx, n.dsn)
	if err != nil {
		return errors.New("connect failed") // pgx errors may quote the DSN
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(n.ctx, "LISTEN "+channel); err != nil {
		return err
	}
	n.catchUp() // what was announced while not listening
	notes := make(chan struct{}, 1)
	errc := make(chan error, 1)
	go func() {
		for {
			_, err := conn.WaitForNotification(n.ctx)
			if err != nil {
				errc <- err
				return
			}
			select {
			case notes <- struct{}{}:
			default:
			}
		}
	}()
	for {
		select {
		case err := <-errc:
			return err
		case <-notes:
		case <-n.wake:
		}
		n.catchUp()
	}
}

// catchUp applies every topic whose version is newer than the one applied
// here and has a handler.
func (n *Node) catchUp() {
	ctx, cancel := context.WithTimeout(n.ctx, n.opt.AckTimeout)
	defer cancel()
	rows, err := n.db.QueryContext(ctx, `SELECT topic, version, payload FROM cluster_topics`)
	if err != nil {
		if n.ctx.Err() == nil {
			n.opt.Logger.Warn("cluster: reading topics", "err", err)
		}
		return
	}
	type todo struct {
		topic, payload string
		version        int64
	}
	var list []todo
	for rows.Next() {
		var td todo
		if err := rows.Scan(&td.topic, &td.version, &td.payload); err != nil {
			break
		}
		list = append(list, td)
	}
	rows.Close()
	for _, td := range list {
		n.mu.Lock()
		h := n.handlers[td.topic]
		done := n.applied[td.topic] >= td.version
		n.mu.Unlock()
		if done {
			continue
		}
		if h == nil {
			h = func(context.Context, string) error { return nil }
		}
		if err := h(n.ctx, td.payload); err != nil {
			// Not acknowledged: the broadcaster reports this member, and
			// the next poke tries again.
			n.opt.Logger.Error("cluster: applying broadcast", "topic", td.topic, "version", td.version, "err", err)
			continue
		}
		n.mu.Lock()
		n.applied[td.topic] = td.version
		n.mu.Unlock()
		if err := n.ack(ctx, td.topic, td.version); err != nil {
			n.opt.Logger.Error("cluster: acknowledging broadcast", "topic", td.topic, "err", err)
		}
	}
}

// Broadcast publishes a new version of topic with payload and waits until
// every other live member has applied it (this member is counted as
// having applied it: the caller acts locally itself). It returns an error
// naming the members that did not apply it within AckTimeout.
func (n *Node) Broadcast(ctx context.Context, topic, payload string) error {
	var version int64
	if err := n.db.QueryRowContext(ctx, `INSERT INTO cluster_topics(topic, version, payload) VALUES (?, 1, ?)
		ON CONFLICT(topic) DO UPDATE SET version = cluster_topics.version + 1, payload = excluded.payload
		RETURNING version`, topic, payload).Scan(&version); err != nil {
		return fmt.Errorf("cluster: broadcast %s: %w", topic, err)
	}
	n.mu.Lock()
	n.applied[topic] = version
	n.mu.Unlock()
	if err := n.ack(ctx, topic, version); err != nil {
		return fmt.Errorf("cluster: broadcast %s: %w", topic, err)
	}
	return n.awaitAcks(ctx, topic, version)
}

func (n *Node) notify(ctx context.Context, topic string, version int64) error {
	_, err := n.db.ExecContext(ctx, `SELECT pg_notify(?, ?)`, channel, topic+":"+strconv.FormatInt(version, 10))
	return err
}

func (n *Node) awaitAcks(ctx context.Context, topic string, version int64) error {
	ctx, cancel := context.WithTimeout(ctx, n.opt.AckTimeout)
	defer cancel()
	var lastNotify time.Time
	for {
		if time.Since(lastNotify) > 500*time.Millisecond {
			// Again every half second: a member whose LISTEN connection
			// was being re-established hears it on the next one.
			if err := n.notify(ctx, topic, version); err != nil {
				return fmt.Errorf("cluster: broadcast %s: %w", topic, err)
			}
			lastNotify = time.Now()
		}
		pending, err := n.pending(ctx, topic, version)
		if err != nil {
			return fmt.Errorf("cluster: broadcast %s: %w", topic, err)
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: broadcast %s v%d not applied by %s: %w", topic, version, strings.Join(pending, ", "), ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// pending lists live members other than this one that have not applied
// topic at version.
func (n *Node) pending(ctx context.Context, topic string, version int64) ([]string, error) {
	return n.ids(ctx, `SELECT m.id FROM cluster_members m
		WHERE m.id <> ? AND m.last_seen > ?
		AND NOT EXISTS (SELECT 1 FROM cluster_acks a WHERE a.member = m.id AND a.topic = ? AND a.version >= ?)`,
		n.ID, time.Now().Add(-n.opt.LiveWindow).UnixNano(), topic, version)
}

// Members lists the live members' ids.
func (n *Node) Members(ctx context.Context) ([]string, error) {
	return n.ids(ctx, `SELECT id FROM cluster_members WHERE last_seen > ? ORDER BY id`,
		time.Now().Add(-n.opt.LiveWindow).UnixNano())
}

// ids runs a query of member ids (one text column).
func (n *Node) ids(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := n.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}
