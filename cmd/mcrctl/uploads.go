package main

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"git.wntrmute.dev/kyle/mcr/internal/cli"
)

func uploadsCmd(g *globals) *cobra.Command {
	list := &cobra.Command{
		Use:   "list",
		Short: "List blob uploads on the server (repository, upload id, size, age)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cl, err := g.client(true)
			if err != nil {
				return err
			}
			l, err := cl.Uploads(context.Background())
			if err != nil {
				return err
			}
			if g.json {
				return g.printValue(l)
			}
			tw := g.table()
			fmt.Fprintln(tw, "REPOSITORY\tUPLOAD ID\tSIZE\tAGE")
			for _, u := range l.Uploads {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Repository, u.ID, humanBytes(u.Size),
					(time.Duration(u.AgeSeconds) * time.Second).String())
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%d uploads, %s\n", len(l.Uploads), humanBytes(l.TotalBytes))
			return nil
		},
	}
	var olderThan string
	purge := &cobra.Command{
		Use:   "purge --older-than DURATION",
		Short: "Remove uploads that started at least DURATION ago (their clients must start over)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if olderThan == "" {
				return cli.Usagef("--older-than is required (for example 24h)")
			}
			if d, err := time.ParseDuration(olderThan); err != nil || d < 0 {
				return cli.Usagef("--older-than: want a non-negative duration such as 24h, got %q", olderThan)
			}
			cl, err := g.client(true)
			if err != nil {
				return err
			}
			res, err := cl.PurgeUploads(context.Background(), olderThan)
			if err != nil {
				return err
			}
			if g.json {
				return g.printValue(res)
			}
			fmt.Fprintf(g.stdout, "purged %d uploads, %s freed\n", len(res.Purged), humanBytes(res.BytesFreed))
			return nil
		},
	}
	purge.Flags().StringVar(&olderThan, "older-than", "", "remove uploads started at least this long ago (e.g. 24h; 0s removes every upload, in progress or not)")
	return group("uploads", "List or purge blob uploads (stale ones hold disk space)", list, purge)
}

func indexCmd(g *globals) *cobra.Command {
	reconcile := &cobra.Command{
		Use:   "reconcile",
		Short: "Re-derive the repository index from storage where they differ (the server also does it at start-up)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cl, err := g.client(true)
			if err != nil {
				return err
			}
			res, err := cl.ReconcileIndex(context.Background())
			if err != nil {
				return err
			}
			if g.json {
				return g.printValue(res)
			}
			keys := make([]string, 0, len(res))
			for k := range res {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(g.stdout, "%s: %v\n", k, res[k])
			}
			return nil
		},
	}
	return group("index", "Maintain the repository index", reconcile)
}
