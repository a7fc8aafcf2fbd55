package main

import (
	"context"
	"fmt"

	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/spf13/cobra"

	"git.wntrmute.dev/kyle/mcr/internal/cli"
	"git.wntrmute.dev/kyle/mcr/notifications"
)

func reindexCmd() *cobra.Command {
	var cfgPath string
	c := &cobra.Command{
		Use:   "reindex",
		Short: "Rebuild the repository index (tags, manifests, sizes, referrers) from blob storage",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
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
