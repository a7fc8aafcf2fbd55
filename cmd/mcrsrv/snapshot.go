package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"git.wntrmute.dev/kyle/mcr/internal/cli"
	"git.wntrmute.dev/kyle/mcr/store"
)

func snapshotCmd() *cobra.Command {
	var cfgPath string
	c := &cobra.Command{
		Use:   "snapshot",
		Short: "Write a consistent database snapshot to <data>/backups/mcr-YYYYMMDD-HHMMSS.db (safe while the server runs)",
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
			path, err := st.Snapshot(ctx, filepath.Join(cfg.DataDir(), "backups"), cfg.Snapshot.Keep)
			if err != nil {
				return err
			}
			user := os.Getenv("USER")
			ev := store.AuditEvent{Type: "snapshot_created", Actor: "mcrsrv", Details: map[string]any{"path": path, "os_user": user}}
			if err := st.WriteAudit(ctx, ev); err != nil {
				fmt.Fprintln(os.Stderr, "mcrsrv: warning: audit write failed:", err)
			}
			fmt.Println(path)
			return nil
		},
	}
	c.Flags().StringVar(&cfgPath, "config", "", "path to mcr.toml")
	_ = c.MarkFlagRequired("config")
	return c
}
