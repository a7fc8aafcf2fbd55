package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"

	"git.wntrmute.dev/kyle/mcr/adminapi/apitypes"
)

// ---- account ----

func accountCmd(g *globals) *cobra.Command {
	unlock := &cobra.Command{
		Use:   "unlock NAME",
		Short: "Clear an account's failed sign-ins and lockout (on the server answering; each replica keeps its own)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			cl, err := g.restClient(true) // REST only: no RPC for it yet
			if err != nil {
				return err
			}
			var resp apitypes.AccountUnlocked
			_, err = cl.do(context.Background(), http.MethodPost, "/v1/accounts/"+url.PathEscape(args[0])+"/unlock", nil, nil, &resp)
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
			cl, err := g.restClient(true) // REST only: no RPC for it yet
			if err != nil {
				return err
			}
			var q url.Values
			if subject != "" {
				q = url.Values{"subject": {subject}}
			}
			var resp apitypes.TokensRevoked
			_, err = cl.do(context.Background(), http.MethodPost, "/v1/accounts/"+url.PathEscape(args[0])+"/revoke", q, nil, &resp)
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
	return group("account", "Sign-in lockouts and token revocation (over REST, --addr)", unlock, revoke)
}
