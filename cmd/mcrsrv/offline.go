package main

import (
	"context"
	"errors"
	"fmt"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"

	"git.wntrmute.dev/kyle/mcr/config"
	"git.wntrmute.dev/kyle/mcr/gc"
	"git.wntrmute.dev/kyle/mcr/internal/cli"
	"git.wntrmute.dev/kyle/mcr/store"
)

// runOffline runs fn on the database and storage of the configuration at
// cfgPath, with the data directory locked against a server, for the
// commands that change both without a server's help (`mcrsrv gc`,
// `mcrsrv reindex`). Offline means nothing else writes meanwhile, so it
// refuses a shared PostgreSQL database (other replicas may be serving)
// and a data directory a server holds; verb and online say what to do
// instead ("collect", "`mcrctl gc`").
func runOffline(cfgPath, verb, online string, fn func(ctx context.Context, cfg *config.Config, st *store.Store, d driver.StorageDriver) error) error {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	if cfg.Database.Driver == config.DatabasePostgres {
		return fmt.Errorf("refusing to run offline on a shared PostgreSQL database: %s online with %s (any replica)", verb, online)
	}
	lock, err := gc.LockDataDir(cfg.DataDir())
	if err != nil {
		if errors.Is(err, gc.ErrLocked) {
			return fmt.Errorf("refusing to run: a server is running on %s (%w); %s online with %s instead", cfg.DataDir(), err, verb, online)
		}
		return err
	}
	defer cli.Closing("the data-directory lock", lock.Unlock)
	ctx := context.Background()
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer cli.Closing("the database", st.Close)
	d, err := openStorage(ctx, cfg)
	if err != nil {
		return err
	}
	return fn(ctx, cfg, st, d)
}
