// Command mcrsrv is the MCR registry server: the OCI distribution API on
// distribution v3, MCR's token service and admin REST API, plus the
// operator commands of DESIGN §11 (init, user, snapshot, gc, version).
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"git.wntrmute.dev/kyle/mcr/config"
	"git.wntrmute.dev/kyle/mcr/internal/cli"
)

// version is set at link time: -X main.version=...
var version = "dev"

func main() {
	root := &cobra.Command{
		Use:     "mcrsrv",
		Short:   "MCR container registry server",
		Version: version,
	}
	root.AddCommand(initCmd(), userCmd(), serverCmd(), reindexCmd(), versionCmd(), gcCmd(), snapshotCmd(), migrateDBCmd())
	os.Exit(cli.Run(root, os.Stderr))
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(*cobra.Command, []string) { fmt.Println("mcrsrv", version) },
	}
}

func serverCmd() *cobra.Command {
	var cfgPath string
	var fullCheck bool
	c := &cobra.Command{
		Use:   "server",
		Short: "Serve the registry, token endpoint and admin API",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			return serve(cfg, serveOptions{integrityCheck: fullCheck})
		},
	}
	c.Flags().StringVar(&cfgPath, "config", "", "path to mcr.toml")
	c.Flags().BoolVar(&fullCheck, "integrity-check", false, "run the full PRAGMA integrity_check at start-up instead of quick_check (slower: also verifies index contents)")
	_ = c.MarkFlagRequired("config")
	return c
}
