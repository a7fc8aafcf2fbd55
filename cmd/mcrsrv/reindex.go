package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/spf13/cobra"

	"git.wntrmute.dev/kyle/mcr/config"
	"git.wntrmute.dev/kyle/mcr/gc"
	"git.wntrmute.dev/kyle/mcr/internal/cli"
	"git.wntrmute.dev/kyle/mcr/notifications"
)

func reindexCmd() *cobra.Command {
	var cfgPath string
	c := &cobra.Command{
		Use:   "reindex",
		Short: "Rebuild the repository index (tags, manifests, sizes, referrers) from blob storage, offline (refuses while a server holds the data directory; use `mcrctl index reconcile` then)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
			// As `mcrsrv gc`: offline means no server writes the index
			// meanwhile; a serving registry reconciles online instead.
			if cfg.Database.Driver == config.DatabasePostgres {
				return errors.New("refusing to run offline on a shared PostgreSQL database: reconcile online with `mcrctl index reconcile` (any replica)")
			}
			lock, err := gc.LockDataDir(cfg.DataDir())
			if err != nil {
				if errors.Is(err, gc.ErrLocked) {
					return fmt.Errorf("refusing to run: a server is running on %s (%w); reconcile online with `mcrctl index reconcile` instead", cfg.DataDir(), err)
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
			driver, err := openStorage(ctx, cfg)
			if err != nil {
				return err
			}
			ns, err := storage.NewRegistry(ctx, driver, storage.EnableDelete)
			if err != nil {
				return fmt.Errorf("storage: %w", err)
			}
			repos, manifests, err := notifications.Reindex(ctx, ns, driver, st)
			if err != nil {
				return err
			}
			fmt.Printf("reindexed %d repositories, %d manifests\n", repos, manifests)
			return nil
		},
	}
	c.Flags().StringVar(&cfgPath, "config", "", "path to mcr.toml")
	_ = c.MarkFlagRequired("config")
	return c
}
