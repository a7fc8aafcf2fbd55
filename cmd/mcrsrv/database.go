package main

import (
	"context"
	"fmt"

	"git.wntrmute.dev/kyle/mcr/config"
	"git.wntrmute.dev/kyle/mcr/store"
)

// openStore opens the configured metadata database: the SQLite file at
// database.path, or PostgreSQL at database.dsn (shared by replicas).
// Errors name the key at fault, never the DSN (it may hold a password).
func openStore(ctx context.Context, cfg *config.Config) (*store.Store, error) {
	if cfg.Database.Driver == config.DatabasePostgres {
		st, err := store.OpenPostgres(ctx, cfg.Database.DSN)
		if err != nil {
			return nil, fmt.Errorf("database.dsn: %w", err)
		}
		return st, nil
	}
	st, err := store.Open(cfg.Database.Path)
	if err != nil {
		return nil, fmt.Errorf("database.path: %w", err)
	}
	return st, nil
}
