package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

// ---- account ----

func accountCmd(g *globals) *cobra.Command {
	unlock := &cobra.Command{
		Use:   "unlock NAME",
		Short: "Clear an account's failed sign-ins and lockout (on the server answering; each replica keeps its own)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			cl, err := g.client(true)
			if err != nil {
				return err
			}
			resp, err := cl.UnlockAccount(context.Background(), args[0])
			if err != nil {
				return err
			}
			if g.json {
				return g.printValue(resp)
			}
			if resp.Unlocked {
				fmt.Fprintf(g.stdout, "unlocked %s\n", resp.Username)
			} else {
				fmt.Fprintf(g.stdout, "%s had no failed sign-ins\n", resp.Username)
			}
			return nil
		},
	}
	var subject string
	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "End every session, refresh and access token of an account",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			cl, err := g.client(true)
			if err != nil {
				return err
			}
			resp, err := cl.RevokeAccount(context.Background(), args[0], subject)
			if err != nil {
				return err
			}
			if g.json {
				return g.printValue(resp)
			}
			fmt.Fprintf(g.stdout, "revoked every token of %s (sub %s)\n", resp.Username, resp.Subject)
			return nil
		},
	}
	revoke.Flags().StringVar(&subject, "subject", "", "subject UUID of an MCIAS account (local accounts are found by name)")
	return group("account", "Sign-in lockouts and token revocation", unlock, revoke)
}
