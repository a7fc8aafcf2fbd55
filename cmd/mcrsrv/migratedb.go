package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"

	"git.wntrmute.dev/kyle/mcr/config"
	"git.wntrmute.dev/kyle/mcr/internal/cli"
	"git.wntrmute.dev/kyle/mcr/store"
)

// migrateDBCmd moves a single node's SQLite metadata into the PostgreSQL
// database its configuration names (database.driver = "postgres"), the
// first step of scaling out (docs/scale-out.md).
func migrateDBCmd() *cobra.Command {
	var cfgPath, from string
	c := &cobra.Command{
		Use:   "migrate-db",
		Short: "Copy a SQLite database (--from, the server stopped) into the configured, empty PostgreSQL database",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
			if cfg.Database.Driver != config.DatabasePostgres {
				return cli.Usage(errors.New("database.driver must be \"postgres\" (the destination); set it in the file or MCR_DATABASE_DRIVER/MCR_DATABASE_DSN"))
			}
			if _, err := os.Stat(from); err != nil {
				return cli.Usage(fmt.Errorf("--from: %w", err))
			}
			// The server holds the data-directory lock while it runs; a
			// copy taken under it could miss its last writes.
			lock, err := lockDataDir(cfg)
			if err != nil {
				return fmt.Errorf("stop the server first: %w", err)
			}
			defer cli.Closing("the data-directory lock", lock.Unlock)
			ctx := context.Background()
			// The source stays as it is (it may be the operator's only
			// copy, or a snapshot): a copy of it is brought to this
			// binary's schema and read from.
			tmp, err := os.MkdirTemp(cfg.DataDir(), ".migrate-db-")
			if err != nil {
				return err
			}
			defer func() { _ = os.RemoveAll(tmp) }() // scratch copy
			scratch := filepath.Join(tmp, "mcr.db")
			if err := store.CopyFile(ctx, from, scratch); err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			src, err := store.Open(scratch)
			if err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			defer cli.Closing("the copy of the SQLite database", src.Close)
			dst, err := openStore(ctx, cfg)
			if err != nil {
				return err
			}
			defer cli.Closing("the PostgreSQL database", dst.Close)
			counts, err := src.CopyInto(ctx, dst)
			if err != nil {
				return err
			}
			names := make([]string, 0, len(counts))
			for t := range counts {
				names = append(names, t)
			}
			sort.Strings(names)
			for _, t := range names {
				fmt.Printf("%-20s %d rows\n", t, counts[t])
			}
			fmt.Println("copied; start the replicas with database.driver = \"postgres\"")
			return nil
		},
	}
	c.Flags().StringVar(&cfgPath, "config", "", "path to mcr.toml (its database.dsn is the destination)")
	c.Flags().StringVar(&from, "from", "", "the SQLite file to copy (e.g. /srv/mcr/mcr.db)")
	_ = c.MarkFlagRequired("config")
	_ = c.MarkFlagRequired("from")
	return c
}
