package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"git.wntrmute.dev/kyle/mcr/adminapi/apitypes"
	"git.wntrmute.dev/kyle/mcr/internal/cli"
)

// ruleFlags are the flags of policy create and update.
type ruleFlags struct {
	effect       string
	actions      []string
	repositories []string
	roles        []string
	subject      string
	description  string
	file         string
	accountTypes []string
	priority     int
	enabled      bool
}

func (f *ruleFlags) register(fs *pflag.FlagSet, update bool) {
	fs.IntVar(&f.priority, "priority", 0, "evaluation order (lower first, >= 1)")
	fs.StringVar(&f.effect, "effect", "", "allow or deny")
	fs.StringSliceVar(&f.actions, "actions", nil, "comma-separated actions (registry:pull, registry:push, registry:delete, registry:catalog, registry:version_check, policy:manage)")
	fs.StringSliceVar(&f.repositories, "repositories", nil, "comma-separated repository globs (empty: any, and global operations)")
	fs.StringSliceVar(&f.roles, "roles", nil, "comma-separated roles (admin, user, guest)")
	fs.StringSliceVar(&f.accountTypes, "account-types", nil, "comma-separated account types (human, system)")
	fs.StringVar(&f.subject, "subject", "", "subject UUID the rule applies to")
	fs.StringVar(&f.description, "description", "", "free text")
	fs.BoolVar(&f.enabled, "enabled", true, "whether the rule takes part in evaluation")
	what := "rule"
	if update {
		what = "patch"
	}
	fs.StringVar(&f.file, "file", "", "JSON "+what+" body to send as is (- for stdin) instead of the flags")
}

func readBody(file string, stdin io.Reader) ([]byte, error) {
	var b []byte
	var err error
	if file == "-" {
		b, err = io.ReadAll(stdin)
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("--file: %w", err)
	}
	if !json.Valid(b) {
		return nil, cli.Usagef("--file %s: not valid JSON", file)
	}
	return b, nil
}

func cleanList(in []string) []string {
	out := []string{}
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func ruleID(arg string) (int64, error) {
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || id < 1 {
		return 0, cli.Usagef("rule id %q: want a positive integer (see `mcrctl policy list`)", arg)
	}
	return id, nil
}

func policyCmd(g *globals) *cobra.Command {
	list := &cobra.Command{
		Use:   "list",
		Short: "List policy rules",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cl, err := g.client(true)
			if err != nil {
				return err
			}
			page, err := cl.Rules(context.Background())
			if err != nil {
				return err
			}
			if g.json {
				return g.printValue(page)
			}
			tw := g.table()
			fmt.Fprintln(tw, "ID\tPRIORITY\tEFFECT\tENABLED\tACTIONS\tREPOSITORIES\tROLES\tACCOUNT TYPES\tSUBJECT\tDESCRIPTION")
			for _, r := range page.Rules {
				fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Priority, r.Effect, yesNo(r.Enabled),
					orDash(strings.Join(r.Actions, ",")), orDash(strings.Join(r.Repositories, ",")), orDash(strings.Join(r.Roles, ",")),
					orDash(strings.Join(r.AccountTypes, ",")), orDash(r.SubjectUUID), orDash(r.Description))
			}
			return tw.Flush()
		},
	}

	var cf ruleFlags
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a policy rule from flags or a JSON file",
		Example: `  mcrctl policy create --priority 10 --effect deny --actions registry:push \
      --repositories 'production/*' --roles user --description "only CI pushes to production"
  mcrctl policy create --file rule.json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var body any
			if cf.file != "" {
				b, err := readBody(cf.file, g.stdin)
				if err != nil {
					return err
				}
				body = b
			} else {
				if !c.Flags().Changed("priority") || cf.effect == "" || len(cf.actions) == 0 {
					return cli.Usagef("--priority, --effect and --actions are required (or --file)")
				}
				enabled := cf.enabled
				body = apitypes.RuleCreate{
					Priority: cf.priority, Description: cf.description, Enabled: &enabled,
					RuleMatch: apitypes.RuleMatch{
						Effect: cf.effect, Actions: cleanList(cf.actions),
						Repositories: cleanList(cf.repositories), Roles: cleanList(cf.roles),
						AccountTypes: cleanList(cf.accountTypes), SubjectUUID: cf.subject,
					},
				}
			}
			cl, err := g.client(true)
			if err != nil {
				return err
			}
			r, err := cl.CreateRule(context.Background(), body)
			return g.printRule(r, err, "created")
		},
	}
	cf.register(create.Flags(), false)

	var uf ruleFlags
	update := &cobra.Command{
		Use:   "update ID",
		Short: "Change a policy rule: only the flags given change (or send a JSON patch with --file)",
		Example: `  mcrctl policy update 3 --enabled=false
  mcrctl policy update 3 --actions registry:pull,registry:push`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			id, err := ruleID(args[0])
			if err != nil {
				return err
			}
			cl, err := g.client(true)
			if err != nil {
				return err
			}
			var body any
			if uf.file != "" {
				b, err := readBody(uf.file, g.stdin)
				if err != nil {
					return err
				}
				body = b
			} else {
				fs := c.Flags()
				var patch apitypes.RulePatch
				if fs.Changed("priority") {
					patch.Priority = &uf.priority
				}
				if fs.Changed("description") {
					patch.Description = &uf.description
				}
				if fs.Changed("enabled") {
					patch.Enabled = &uf.enabled
				}
				matchChanged := false
				for _, n := range []string{"effect", "actions", "repositories", "roles", "account-types", "subject"} {
					matchChanged = matchChanged || fs.Changed(n)
				}
				if matchChanged {
					// The API replaces all matching fields at once: start
					// from the rule as it is.
					cur, err := cl.Rule(context.Background(), id)
					if err != nil {
						return err
					}
					m := cur.Match()
					if fs.Changed("effect") {
						m.Effect = uf.effect
					}
					if fs.Changed("actions") {
						m.Actions = cleanList(uf.actions)
					}
					if fs.Changed("repositories") {
						m.Repositories = cleanList(uf.repositories)
					}
					if fs.Changed("roles") {
						m.Roles = cleanList(uf.roles)
					}
					if fs.Changed("account-types") {
						m.AccountTypes = cleanList(uf.accountTypes)
					}
					if fs.Changed("subject") {
						m.SubjectUUID = uf.subject
					}
					patch.Rule = &m
				}
				if patch == (apitypes.RulePatch{}) {
					return cli.Usagef("nothing to change: give at least one flag (or --file)")
				}
				body = patch
			}
			r, err := cl.PatchRule(context.Background(), id, body)
			return g.printRule(r, err, "updated")
		},
	}
	uf.register(update.Flags(), true)

	del := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a policy rule",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			id, err := ruleID(args[0])
			if err != nil {
				return err
			}
			cl, err := g.client(true)
			if err != nil {
				return err
			}
			if err := cl.DeleteRule(context.Background(), id); err != nil {
				return err
			}
			if g.json {
				return g.printValue(map[string]any{"deleted": id})
			}
			fmt.Fprintf(g.stdout, "deleted rule %d\n", id)
			return nil
		},
	}
	return group("policy", "Policy rules", list, create, update, del)
}

// printRule reports the rule a create or change returned.
func (g *globals) printRule(r *apitypes.PolicyRule, err error, verb string) error {
	if err != nil {
		return err
	}
	if g.json {
		return g.printValue(r)
	}
	fmt.Fprintf(g.stdout, "%s rule %d\n", verb, r.ID)
	return nil
}
