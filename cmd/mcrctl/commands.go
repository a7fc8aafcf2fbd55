package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"git.wntrmute.dev/kyle/mcr/adminapi/apitypes"
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
			q := url.Values{}
			if detail {
				q.Set("detail", "1")
			}
			var body struct {
				Status string            `json:"status"`
				Checks map[string]string `json:"checks"`
			}
			raw, err := cl.do(context.Background(), http.MethodGet, "/v1/health", q, nil, &body)
			if err != nil {
				var ae *apiError
				if errors.As(err, &ae) {
					_ = json.Unmarshal(raw, &body)
					if len(body.Checks) > 0 {
						return fmt.Errorf("unhealthy (%d): %s", ae.Status, fmtChecks(body.Checks))
					}
					return fmt.Errorf("unhealthy: %w", ae)
				}
				return err
			}
			if g.json {
				return g.printJSON(raw)
			}
			fmt.Fprintln(g.stdout, body.Status)
			if detail && len(body.Checks) > 0 {
				fmt.Fprintln(g.stdout, fmtChecks(body.Checks))
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
			var all []json.RawMessage
			var repos []apitypes.RepoSummary
			last := ""
			for {
				q := url.Values{"n": {"1000"}}
				if filter != "" {
					q.Set("q", filter)
				}
				if last != "" {
					q.Set("last", last)
				}
				var page struct {
					Repositories []json.RawMessage `json:"repositories"`
					Next         string            `json:"next"`
				}
				if _, err := cl.do(context.Background(), http.MethodGet, "/v1/repositories", q, nil, &page); err != nil {
					return err
				}
				for _, r := range page.Repositories {
					var s apitypes.RepoSummary
					if err := json.Unmarshal(r, &s); err != nil {
						return fmt.Errorf("unexpected repository entry: %w", err)
					}
					repos = append(repos, s)
				}
				all = append(all, page.Repositories...)
				if page.Next == "" || len(page.Repositories) == 0 || page.Next == last {
					break
				}
				last = page.Next
			}
			if g.json {
				if all == nil {
					all = []json.RawMessage{}
				}
				return g.printValue(map[string]any{"repositories": all})
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
			if _, err := cl.do(context.Background(), http.MethodDelete, "/v1/repositories/"+name, nil, nil, nil); err != nil {
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
			var resp apitypes.SnapshotCreated
			raw, err := cl.do(context.Background(), http.MethodPost, "/v1/snapshot", nil, nil, &resp)
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(raw)
			}
			fmt.Fprintln(g.stdout, resp.Path)
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
			q := url.Values{"n": {strconv.Itoa(n)}}
			for k, v := range map[string]string{"event_type": eventType, "repository": repository, "actor_id": actorID, "since": since} {
				if v != "" {
					q.Set(k, v)
				}
			}
			var page struct {
				Events []json.RawMessage `json:"events"`
			}
			if _, err := cl.do(context.Background(), http.MethodGet, "/v1/audit", q, nil, &page); err != nil {
				return err
			}
			// The API answers newest first; a tail reads oldest first.
			for i, j := 0, len(page.Events)-1; i < j; i, j = i+1, j-1 {
				page.Events[i], page.Events[j] = page.Events[j], page.Events[i]
			}
			if g.json {
				if page.Events == nil {
					page.Events = []json.RawMessage{}
				}
				return g.printValue(map[string]any{"events": page.Events})
			}
			tw := g.table()
			fmt.Fprintln(tw, "TIME\tEVENT\tACTOR\tREPOSITORY\tREFERENCE\tIP\tDETAILS")
			for _, raw := range page.Events {
				var e apitypes.AuditEvent
				if err := json.Unmarshal(raw, &e); err != nil {
					return fmt.Errorf("unexpected audit entry: %w", err)
				}
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
