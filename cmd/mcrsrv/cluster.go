package main

import (
	"context"
	"fmt"
	"log/slog"

	"git.wntrmute.dev/kyle/mcr/cluster"
	"git.wntrmute.dev/kyle/mcr/config"
	"git.wntrmute.dev/kyle/mcr/policyplugin"
	"git.wntrmute.dev/kyle/mcr/revocation"
	"git.wntrmute.dev/kyle/mcr/store"
)

// topicPolicy is the replicas' broadcast of a rule change: reload.
const topicPolicy = "policy"

// joinCluster makes this server a member of the replicas sharing its
// PostgreSQL database (nil on SQLite: a single node). Handlers are added
// by the caller, then Run.
func joinCluster(ctx context.Context, cfg *config.Config, st *store.Store) (*cluster.Node, error) {
	if cfg.Database.Driver != config.DatabasePostgres {
		return nil, nil
	}
	// Replicas run without the blob descriptor cache: a blob or manifest
	// deleted through one would still be answered 200 from another's.
	descriptorCache.Disable()
	n, err := cluster.Start(ctx, st, cluster.Options{})
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	slog.Info("joined the replicas sharing the database", "member", n.ID)
	return n, nil
}

// clusterPolicy registers the policy reload on node and returns the
// function the admin API calls after a rule change: reload here, then
// have every other replica reload before the change is acknowledged.
func clusterPolicy(node *cluster.Node, engine *policyplugin.Engine) func() error {
	reload := func() error { return engine.Reload(context.Background()) }
	if node == nil {
		return reload
	}
	node.Handle(topicPolicy, func(ctx context.Context, _ string) error { return engine.Reload(ctx) })
	return func() error {
		if err := reload(); err != nil {
			return err
		}
		if err := node.Broadcast(context.Background(), topicPolicy, ""); err != nil {
			return fmt.Errorf("policy saved, but not every replica has reloaded it yet: %w", err)
		}
		return nil
	}
}

// topicAccounts is the replicas' broadcast of an account change (tokens
// revoked): re-read the account generations.
const topicAccounts = "accounts"

// clusterAccounts registers the generation re-read on node and returns
// what the server calls after it revoked an account's tokens: forget here,
// then have every other replica forget before the change is acknowledged.
func clusterAccounts(node *cluster.Node, revs *revocation.Cache) func(ctx context.Context) error {
	if node == nil {
		return func(context.Context) error { revs.Invalidate(); return nil }
	}
	node.Handle(topicAccounts, func(context.Context, string) error { revs.Invalidate(); return nil })
	return func(ctx context.Context) error {
		revs.Invalidate()
		if err := node.Broadcast(ctx, topicAccounts, ""); err != nil {
			return fmt.Errorf("tokens revoked, but not every replica has applied it yet: %w", err)
		}
		return nil
	}
}
