package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"git.wntrmute.dev/kyle/mcr/adminapi/apitypes"
	"git.wntrmute.dev/kyle/mcr/grpcclient"
	"git.wntrmute.dev/kyle/mcr/internal/cli"
)

func (g *globals) table() *tabwriter.Writer {
	return tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// ---- status ----

func statusCmd(g *globals) *cobra.Command {
	var detail bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Check the server's health (prints ok)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cl, err := g.client(false)
			if err != nil {
				return err
			}
			status, checks, err := cl.Health(context.Background(), detail)
			if err != nil {
				return err
			}
			if g.json {
				body := map[string]any{"status": status}
				if checks != nil {
					body["checks"] = checks
				}
				return g.printValue(body)
			}
			fmt.Fprintln(g.stdout, status)
			if detail && len(checks) > 0 {
				fmt.Fprintln(g.stdout, fmtChecks(checks))
			}
			return nil
		},
	}
	c.Flags().BoolVar(&detail, "detail", false, "also check the database, storage and identity service")
	return c
}

func fmtChecks(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+": "+m[k])
	}
	return strings.Join(parts, ", ")
}

// ---- repo ----

func repoCmd(g *globals) *cobra.Command {
	var filter string
	list := &cobra.Command{
		Use:   "list",
		Short: "List repositories with tag and manifest counts and sizes",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cl, err := g.client(true)
			if err != nil {
				return err
			}
			repos := []apitypes.RepoSummary{}
			last := ""
			for {
				page, err := cl.Repositories(context.Background(), filter, last, 1000)
				if err != nil {
					return err
				}
				repos = append(repos, page.Repositories...)
				if page.Next == "" || len(page.Repositories) == 0 || page.Next == last {
					break
				}
				last = page.Next
			}
			if g.json {
				return g.printValue(map[string]any{"repositories": repos})
			}
			tw := g.table()
			fmt.Fprintln(tw, "NAME\tTAGS\tMANIFESTS\tSIZE\tLAST PUSH")
			for _, r := range repos {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", r.Name, r.TagCount, r.ManifestCount, humanBytes(r.TotalSize), fmtTime(r.LastPush))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&filter, "filter", "", "only repositories whose name contains this")

	var yes bool
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a repository: every tag and manifest (asks for confirmation unless --yes)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			name := strings.Trim(args[0], "/")
			if name == "" || strings.Contains(name, "..") || strings.ContainsAny(name, "?#% ") {
				return cli.Usagef("invalid repository name %q", args[0])
			}
			cl, err := g.client(true)
			if err != nil {
				return err
			}
			if !yes {
				fmt.Fprintf(g.stderr, "Delete repository %s with all its tags and manifests? [y/N] ", name)
				line, err := bufio.NewReader(g.stdin).ReadString('\n')
				switch strings.ToLower(strings.TrimSpace(line)) {
				case "y", "yes":
				case "":
					if err != nil {
						return fmt.Errorf("not confirmed (no answer on stdin; pass --yes to skip the question)")
					}
					return fmt.Errorf("not confirmed; nothing deleted")
				default:
					return fmt.Errorf("not confirmed; nothing deleted")
				}
			}
			if err := cl.DeleteRepository(context.Background(), name); err != nil {
				return err
			}
			if g.json {
				return g.printValue(map[string]any{"deleted": name})
			}
			fmt.Fprintf(g.stdout, "deleted %s (run `mcrctl gc` to reclaim its blobs)\n", name)
			return nil
		},
	}
	del.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return group("repo", "Repositories", list, del)
}

// ---- snapshot ----

func snapshotCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "snapshot",
		Short: "Write a database snapshot on the server (<data>/backups/mcr-YYYYMMDD-HHMMSS.db)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cl, err := g.client(true)
			if err != nil {
				return err
			}
			path, err := cl.Snapshot(context.Background())
			if err != nil {
				return err
			}
			if g.json {
				return g.printValue(apitypes.SnapshotCreated{Path: path})
			}
			fmt.Fprintln(g.stdout, path)
			return nil
		},
	}
}

// ---- audit ----

func auditCmd(g *globals) *cobra.Command {
	var n int
	var eventType, repository, actorID, since string
	tail := &cobra.Command{
		Use:   "tail",
		Short: "Show the newest audit events (oldest of them first)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if n < 1 || n > 1000 {
				return cli.Usagef("--n must be between 1 and 1000")
			}
			cl, err := g.client(true)
			if err != nil {
				return err
			}
			page, err := cl.Audit(context.Background(), grpcclient.AuditQuery{N: n, EventType: eventType,
				Repository: repository, ActorID: actorID, Since: since})
			if err != nil {
				return err
			}
			// The API answers newest first; a tail reads oldest first.
			for i, j := 0, len(page.Events)-1; i < j; i, j = i+1, j-1 {
				page.Events[i], page.Events[j] = page.Events[j], page.Events[i]
			}
			if g.json {
				if page.Events == nil {
					page.Events = []apitypes.AuditEvent{}
				}
				return g.printValue(map[string]any{"events": page.Events})
			}
			tw := g.table()
			fmt.Fprintln(tw, "TIME\tEVENT\tACTOR\tREPOSITORY\tREFERENCE\tIP\tDETAILS")
			for _, e := range page.Events {
				ref := e.Digest
				if e.Tag != "" {
					ref = e.Tag
					if e.Digest != "" {
						ref += "@" + shortDigest(e.Digest)
					}
				} else if ref != "" {
					ref = shortDigest(ref)
				}
				details := ""
				if len(e.Details) > 0 {
					b, _ := json.Marshal(e.Details)
					details = string(b)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", fmtTime(e.Time), e.Type, orDash(e.Actor), orDash(e.Repository),
					orDash(ref), orDash(e.IP), details)
			}
			return tw.Flush()
		},
	}
	tail.Flags().IntVar(&n, "n", 20, "number of events")
	tail.Flags().StringVar(&eventType, "event-type", "", "only this event type (e.g. policy_deny, gc_completed)")
	tail.Flags().StringVar(&repository, "repository", "", "only events of this repository")
	tail.Flags().StringVar(&actorID, "actor-id", "", "only events of this subject")
	tail.Flags().StringVar(&since, "since", "", "only events at or after this time (RFC 3339 or YYYY-MM-DD)")
	return group("audit", "Audit log", tail)
}

func shortDigest(d string) string {
	if alg, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return alg + ":" + hex[:12]
	}
	return d
}
