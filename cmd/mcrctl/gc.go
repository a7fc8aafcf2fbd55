package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"git.wntrmute.dev/kyle/mcr/adminapi/apitypes"
	"git.wntrmute.dev/kyle/mcr/internal/cli"
)

func gcCmd(g *globals) *cobra.Command {
	var reconcile, dryRun, removeUntagged, wait bool
	var grace string
	c := &cobra.Command{
		Use:   "gc",
		Short: "Start garbage collection on the server (online: pulls never wait, pushes wait briefly)",
		Long: `Start garbage collection on the server. Blobs no manifest references
are removed (blobs younger than the server's gc.grace are kept); with
--remove-untagged, manifests no tag reaches are removed first. With
--reconcile, remove instead the files nothing references after a crash
(for example between the phases of a collection).

With --grace DURATION (for example 0s on a full disk), the server's
gc.grace is replaced for this run: uploads in flight younger than that
may lose their blobs. Blobs of repositories deleted through MCR are
collectable at once in any case.

The run continues on the server; follow it with "mcrctl gc status", or
pass --wait.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cl, err := g.client(true)
			if err != nil {
				return err
			}
			if grace != "" {
				if reconcile {
					return cli.Usagef("--grace applies to a collection, not to --reconcile")
				}
				if d, err := time.ParseDuration(grace); err != nil || d < 0 {
					return cli.Usagef("--grace: want a non-negative duration such as 0s or 10m, got %q", grace)
				}
				fmt.Fprintf(g.stderr, "WARNING: grace period overridden (%s) for this run: uploads in flight younger than that may lose their blobs\n", grace)
			}
			body := apitypes.GCRequest{DryRun: dryRun, RemoveUntagged: removeUntagged, Grace: grace}
			id, err := cl.StartGC(context.Background(), reconcile, body)
			if err != nil {
				return err
			}
			started := apitypes.GCStarted{ID: id}
			if !wait {
				if g.json {
					return g.printValue(started)
				}
				what := "gc"
				if reconcile {
					what = "reconcile"
				}
				fmt.Fprintf(g.stdout, "%s started (run %d); follow it with `mcrctl gc status`\n", what, started.ID)
				return nil
			}
			run, err := waitRun(cl, started.ID)
			if err != nil {
				return err
			}
			if g.json {
				if err := g.printValue(run); err != nil {
					return err
				}
			} else {
				printGCRun(g.stdout, run)
			}
			if run.Error != "" {
				return fmt.Errorf("run %d failed: %s", run.ID, run.Error)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&reconcile, "reconcile", false, "remove files no blob or link references (after a crash) instead of collecting")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "report what would be removed, remove nothing")
	c.Flags().BoolVar(&removeUntagged, "remove-untagged", false, "also remove manifests no tag reaches")
	c.Flags().BoolVar(&wait, "wait", false, "wait for the run to finish and print its result")
	c.Flags().StringVar(&grace, "grace", "", "override the server's gc.grace for this run (e.g. 0s); uploads in flight younger than it may lose their blobs")

	status := &cobra.Command{
		Use:   "status",
		Short: "Show whether a collection is running and the last run's result",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cl, err := g.client(true)
			if err != nil {
				return err
			}
			st, err := cl.GCStatus(context.Background())
			if err != nil {
				return err
			}
			if g.json {
				return g.printValue(st)
			}
			fmt.Fprintf(g.stdout, "running: %s\n", yesNo(st.Running))
			if st.LastRun == nil {
				fmt.Fprintln(g.stdout, "last run: none")
				return nil
			}
			printGCRun(g.stdout, st.LastRun)
			return nil
		},
	}
	c.AddCommand(status)
	return c
}

// waitRun polls the status until run id has completed.
func waitRun(cl backend, id int64) (*apitypes.GCRun, error) {
	for {
		st, err := cl.GCStatus(context.Background())
		if err != nil {
			return nil, err
		}
		if st.LastRun != nil && st.LastRun.ID >= id && (st.LastRun.ID > id || st.LastRun.Completed != nil) {
			if st.LastRun.ID == id {
				return st.LastRun, nil
			}
			// A newer run started meanwhile: ours has finished.
			return nil, fmt.Errorf("run %d finished; a newer run (%d) has started since (see `mcrctl gc status`)", id, st.LastRun.ID)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func printGCRun(w io.Writer, r *apitypes.GCRun) {
	dry := ""
	if r.DryRun {
		dry = ", dry run"
	}
	fmt.Fprintf(w, "last run: %d (%s%s)\n", r.ID, r.Kind, dry)
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	fmt.Fprintf(tw, "  started:\t%s\n", fmtTime(r.Started))
	if r.Completed != nil {
		fmt.Fprintf(tw, "  completed:\t%s (took %s)\n", fmtTime(*r.Completed), r.Completed.Sub(r.Started).Round(time.Millisecond))
	} else {
		fmt.Fprintf(tw, "  completed:\t- (running for %s)\n", time.Since(r.Started).Round(time.Second))
	}
	verb := "removed"
	if r.DryRun {
		verb = "to remove"
	}
	fmt.Fprintf(tw, "  blobs %s:\t%d\n", verb, r.BlobsRemoved)
	fmt.Fprintf(tw, "  bytes freed:\t%s (%d)\n", humanBytes(r.BytesFreed), r.BytesFreed)
	fmt.Fprintf(tw, "  manifests %s:\t%d\n", verb, r.ManifestsRemoved)
	if r.Actor != "" {
		fmt.Fprintf(tw, "  by:\t%s\n", r.Actor)
	}
	if r.Error != "" {
		fmt.Fprintf(tw, "  error:\t%s\n", r.Error)
	}
	_ = tw.Flush()
	if len(r.Details) > 0 {
		keys := make([]string, 0, len(r.Details))
		for k := range r.Details {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			v, _ := json.Marshal(r.Details[k])
			parts = append(parts, k+"="+string(v))
		}
		fmt.Fprintf(w, "  details: %s\n", strings.Join(parts, " "))
	}
}
