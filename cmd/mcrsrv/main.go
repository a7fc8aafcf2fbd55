// Command mcrsrv is the MCR registry server: the OCI distribution API on
// distribution v3, MCR's token service and admin REST API, plus the
// operator commands of DESIGN §11 (init, user, snapshot, gc, version).
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"git.wntrmute.dev/kyle/mcr/config"
)

// version is set at link time: -X main.version=...
var version = "dev"

// usageError marks errors that should exit 2.
type usageError struct{ error }

func main() {
	root := &cobra.Command{
		Use:           "mcrsrv",
		Short:         "MCR container registry server",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(initCmd(), userCmd(), serverCmd(), reindexCmd(), versionCmd(), gcCmd(), snapshotCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "mcrsrv:", err)
		var ue usageError
		if errors.As(err, &ue) || isCobraUsage(err) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "required flag", "accepts ", "invalid argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
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
	c := &cobra.Command{
		Use:   "server",
		Short: "Serve the registry, token endpoint and admin API",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			return serve(cfg)
		},
	}
	c.Flags().StringVar(&cfgPath, "config", "", "path to mcr.toml")
	_ = c.MarkFlagRequired("config")
	return c
}
