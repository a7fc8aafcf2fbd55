package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/authplugin/identity/local"
	"git.wntrmute.dev/kyle/mcr/config"
	"git.wntrmute.dev/kyle/mcr/internal/cli"
	"git.wntrmute.dev/kyle/mcr/store"
)

func openLocalStore(cfgPath string) (*store.Store, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	if cfg.Identity.Provider != config.ProviderLocal {
		return nil, fmt.Errorf("identity.provider is %q: accounts are managed in MCIAS, not by mcrsrv", cfg.Identity.Provider)
	}
	return openStore(context.Background(), cfg)
}

func userCmd() *cobra.Command {
	c := &cobra.Command{Use: "user", Short: "Manage local-identity accounts"}
	var cfgPath string
	c.PersistentFlags().StringVar(&cfgPath, "config", "", "path to mcr.toml")
	_ = c.MarkPersistentFlagRequired("config")

	var username, role, accountType string
	var passwordStdin bool
	add := &cobra.Command{
		Use:   "add",
		Short: "Add an account (password read from stdin with --password-stdin)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			switch role {
			case identity.RoleAdmin, identity.RoleUser, identity.RoleGuest:
			default:
				return cli.Usage(fmt.Errorf("--role must be admin, user or guest, got %q", role))
			}
			switch accountType {
			case identity.AccountHuman, identity.AccountSystem:
			default:
				return cli.Usage(fmt.Errorf("--account-type must be human or system, got %q", accountType))
			}
			if err := store.ValidUsername(username); err != nil {
				return cli.Usage(err)
			}
			if !passwordStdin {
				return cli.Usage(errors.New("--password-stdin is required (the password is never taken from the command line)"))
			}
			line, err := bufio.NewReader(os.Stdin).ReadString('\n')
			if err != nil && line == "" {
				return fmt.Errorf("reading password from stdin: %w", err)
			}
			pw := strings.TrimRight(line, "\r\n")
			hash, err := local.HashPassword(pw)
			if err != nil {
				return err
			}
			st, err := openLocalStore(cfgPath)
			if err != nil {
				return err
			}
			defer cli.Closing("the database", st.Close)
			u := &store.User{Username: username, PasswordHash: hash, Role: role, AccountType: accountType}
			if err := st.CreateUser(context.Background(), u); err != nil {
				return err
			}
			fmt.Printf("added %s (%s, %s) sub=%s\n", u.Username, u.Role, u.AccountType, u.UUID)
			return nil
		},
	}
	add.Flags().StringVar(&username, "username", "", "account name")
	add.Flags().StringVar(&role, "role", "", "admin, user or guest")
	add.Flags().StringVar(&accountType, "account-type", identity.AccountHuman, "human or system")
	add.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	_ = add.MarkFlagRequired("username")
	_ = add.MarkFlagRequired("role")

	list := &cobra.Command{
		Use:   "list",
		Short: "List accounts",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			st, err := openLocalStore(cfgPath)
			if err != nil {
				return err
			}
			defer cli.Closing("the database", st.Close)
			users, err := st.ListUsers(context.Background())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "USERNAME\tROLE\tTYPE\tSUB\tCREATED\tSTATE")
			for _, u := range users {
				state := "enabled"
				if u.Disabled {
					state = "disabled"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.Username, u.Role, u.AccountType, u.UUID, u.CreatedAt.Format("2006-01-02 15:04"), state)
			}
			return tw.Flush()
		},
	}
	var delName string
	del := &cobra.Command{
		Use:   "delete",
		Short: "Delete an account",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			st, err := openLocalStore(cfgPath)
			if err != nil {
				return err
			}
			defer cli.Closing("the database", st.Close)
			if err := st.DeleteUser(context.Background(), delName); err != nil {
				return err
			}
			fmt.Printf("deleted %s\n", delName)
			return announceAccounts(st)
		},
	}
	del.Flags().StringVar(&delName, "username", "", "account name")
	_ = del.MarkFlagRequired("username")
	c.AddCommand(add, list, del)
	c.AddCommand(userChangeCmds(&cfgPath)...)
	return c
}
