package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/authplugin/identity/local"
	"git.wntrmute.dev/kyle/mcr/cluster"
	"git.wntrmute.dev/kyle/mcr/internal/cli"
	"git.wntrmute.dev/kyle/mcr/store"
)

// readPasswordLine reads one line (the password) from r.
func readPasswordLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("reading password from stdin: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// announceAccounts tells running replicas sharing a PostgreSQL database
// that an account changed and waits until each has re-read the account
// generations (on SQLite the marker file next to the database does it).
func announceAccounts(st *store.Store) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return cluster.Announce(ctx, st, topicAccounts, "")
}

// userChangeCmds are the commands that change an existing account. Each
// commits the change and ends every session, refresh and access token of
// the account (a running server refuses them on their next use).
func userChangeCmds(cfgPath *string) []*cobra.Command {
	change := func(use, short string, run func(ctx context.Context, st *store.Store, name string) (string, error), extra func(*cobra.Command)) *cobra.Command {
		var name string
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				st, err := openLocalStore(*cfgPath)
				if err != nil {
					return err
				}
				defer func() { _ = st.Close() }()
				msg, err := run(context.Background(), st, name)
				if err != nil {
					return err
				}
				fmt.Println(msg)
				return announceAccounts(st)
			},
		}
		c.Flags().StringVar(&name, "username", "", "account name")
		_ = c.MarkFlagRequired("username")
		if extra != nil {
			extra(c)
		}
		return c
	}
	passwd := change("passwd", "Set an account's password (read from stdin); ends its sessions and tokens",
		func(ctx context.Context, st *store.Store, name string) (string, error) {
			pw, err := readPasswordLine(os.Stdin)
			if err != nil {
				return "", err
			}
			hash, err := local.HashPassword(pw)
			if err != nil {
				return "", err
			}
			if err := st.SetPassword(ctx, name, hash); err != nil {
				return "", err
			}
			return "password changed for " + name + "; its sessions and tokens were revoked", nil
		}, nil)
	disable := change("disable", "Disable an account: it cannot sign in and its tokens stop working",
		func(ctx context.Context, st *store.Store, name string) (string, error) {
			if err := st.SetDisabled(ctx, name, true); err != nil {
				return "", err
			}
			return "disabled " + name, nil
		}, nil)
	enable := change("enable", "Enable a disabled account (its old tokens stay revoked)",
		func(ctx context.Context, st *store.Store, name string) (string, error) {
			if err := st.SetDisabled(ctx, name, false); err != nil {
				return "", err
			}
			return "enabled " + name, nil
		}, nil)
	var role string
	setRole := change("role", "Change an account's role; ends its sessions and tokens",
		func(ctx context.Context, st *store.Store, name string) (string, error) {
			switch role {
			case identity.RoleAdmin, identity.RoleUser, identity.RoleGuest:
			default:
				return "", cli.Usage(fmt.Errorf("--role must be admin, user or guest, got %q", role))
			}
			if err := st.SetRole(ctx, name, role); err != nil {
				return "", err
			}
			return name + " is now " + role + "; its sessions and tokens were revoked", nil
		}, func(c *cobra.Command) {
			c.Flags().StringVar(&role, "role", "", "admin, user or guest")
			_ = c.MarkFlagRequired("role")
		})
	return []*cobra.Command{passwd, disable, enable, setRole}
}
