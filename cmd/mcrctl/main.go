// Command mcrctl is MCR's admin CLI over the admin REST API (DESIGN §11):
//
//	mcrctl [--addr URL] [--ca-cert PEM] [--token T | $MCR_TOKEN] [--json] \
//	      login | status | repo list | repo delete NAME | gc [--reconcile] | gc status |
//	      policy list|create|update|delete | audit tail [--n N] | snapshot
//
// Output is a human-readable table unless --json is given. Exit codes: 0
// ok, 1 the operation failed (message on stderr), 2 usage error.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"git.wntrmute.dev/kyle/mcr/internal/cli"
)

// version is set at link time: -X main.version=...
var version = "dev"

// globals are the flags every command shares.
type globals struct {
	addr     string
	grpcAddr string
	caCert   string
	// configPath is --config: the server's mcr.toml, read for its
	// certificate and (without --addr/$MCR_ADDR) its listen address.
	configPath string
	caFrom     string // where the trusted certificate came from (for errors)
	token      string

	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	timeout string
	addrSet bool
	json    bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := rootCmd(g)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return cli.Run(root, stderr)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func rootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "mcrctl",
		Short: "Administer an MCR registry over its admin API",
		Long: `mcrctl administers an MCR registry through its admin REST API (/v1).

Authenticate with a token from "mcrctl login" (--token, or $MCR_TOKEN).
The server address defaults to $MCR_ADDR, else https://localhost:8443;
the certificate to trust is --ca-cert, else $MCR_CA_CERT, else (with
--config mcr.toml) the server's own server.tls_cert, else
/srv/mcr/certs/cert.pem when readable. On the registry host,
"mcrctl --config /srv/mcr/mcr.toml status" needs nothing else (after
"make run": --config srv/mcr.toml).

Exit codes: 0 ok, 1 the operation failed, 2 usage error.`,
		Version: version,
		Args:    cobra.NoArgs,
		PersistentPreRun: func(c *cobra.Command, _ []string) {
			_, env := os.LookupEnv("MCR_ADDR")
			g.addrSet = env || c.Flags().Changed("addr") || c.Flags().Changed("server")
		},
		RunE: func(c *cobra.Command, _ []string) error {
			c.SetOut(c.ErrOrStderr())
			_ = c.Help()
			return cli.Usagef("a command is required")
		},
	}
	pf := root.PersistentFlags()
	def := envOr("MCR_ADDR", "https://localhost:8443")
	pf.StringVar(&g.addr, "addr", def, "server URL ($MCR_ADDR)")
	pf.StringVar(&g.addr, "server", def, "alias of --addr")
	_ = pf.MarkHidden("server")
	pf.StringVar(&g.caCert, "ca-cert", os.Getenv("MCR_CA_CERT"), "PEM file of the CA (or self-signed certificate) to trust ($MCR_CA_CERT; else /srv/mcr/certs/cert.pem if readable)")
	pf.StringVar(&g.configPath, "config", os.Getenv("MCR_CONFIG"), "the server's mcr.toml: trust its server.tls_cert and, without --addr, use its listen address ($MCR_CONFIG)")
	pf.StringVar(&g.grpcAddr, "grpc", os.Getenv("MCR_GRPC"), "use the gRPC API at HOST:PORT (e.g. localhost:9443) instead of REST ($MCR_GRPC)")
	pf.StringVar(&g.token, "token", "", "bearer token from \"mcrctl login\" (default $MCR_TOKEN)")
	pf.BoolVar(&g.json, "json", false, "print JSON instead of tables")
	pf.StringVar(&g.timeout, "timeout", "60s", "request timeout")

	root.AddCommand(loginCmd(g), statusCmd(g), repoCmd(g), gcCmd(g), policyCmd(g), auditCmd(g), snapshotCmd(g), accountCmd(g), uploadsCmd(g), indexCmd(g), versionCmd(g))
	return root
}

// group returns a command that only holds subcommands: without one it is a
// usage error (exit 2), not a silent help page.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return cli.Usagef("unknown command %q for %q", args[0], c.CommandPath())
			}
			c.SetOut(c.ErrOrStderr())
			_ = c.Help()
			return cli.Usagef("%s needs a subcommand", c.CommandPath())
		},
	}
	c.AddCommand(subs...)
	return c
}

func versionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(*cobra.Command, []string) { fmt.Fprintln(g.stdout, "mcrctl", version) },
	}
}
