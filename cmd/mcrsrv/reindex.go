package main

import (
	"context"
	"fmt"

	"github.com/distribution/distribution/v3/registry/storage"
	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/spf13/cobra"

	"git.wntrmute.dev/kyle/mcr/config"
	"git.wntrmute.dev/kyle/mcr/notifications"
	"git.wntrmute.dev/kyle/mcr/store"
)

func reindexCmd() *cobra.Command {
	var cfgPath string
	c := &cobra.Command{
		Use:   "reindex",
		Short: "Rebuild the repository index (tags, manifests, sizes, referrers) from blob storage, offline (refuses while a server holds the data directory; use `mcrctl index reconcile` then)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return runOffline(cfgPath, "reconcile", "`mcrctl index reconcile`", func(ctx context.Context, _ *config.Config, st *store.Store, drv driver.StorageDriver) error {
				ns, err := storage.NewRegistry(ctx, drv, storage.EnableDelete)
				if err != nil {
					return fmt.Errorf("storage: %w", err)
				}
				repos, manifests, err := notifications.Reindex(ctx, ns, drv, st)
				if err != nil {
					return err
				}
				fmt.Printf("reindexed %d repositories, %d manifests\n", repos, manifests)
				return nil
			})
		},
	}
	c.Flags().StringVar(&cfgPath, "config", "", "path to mcr.toml")
	_ = c.MarkFlagRequired("config")
	return c
}
