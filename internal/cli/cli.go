// Package cli holds what MCR's three commands (mcrsrv, mcrctl, mcr-web)
// share about running a cobra command tree: one exit-code contract (0 ok,
// 1 the operation failed, 2 usage error) and the "name: error" line.
//
//	root := &cobra.Command{Use: "mcrctl", RunE: ...}
//	os.Exit(cli.Run(root, os.Stderr))
//
// Commands return cli.Usage(err) or cli.Usagef(...) for bad input; cobra's
// own flag and argument errors are recognised as usage errors too.
package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
)

// UsageError marks an error as the caller's mistake (exit status 2).
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usage marks err as a usage error.
func Usage(err error) error { return UsageError{Err: err} }

// Usagef formats a usage error.
func Usagef(format string, a ...any) error { return UsageError{Err: fmt.Errorf(format, a...)} }

// Run executes root, prints a failure as "<root name>: <error>" on stderr
// and returns the exit status.
func Run(root *cobra.Command, stderr io.Writer) int {
	root.SilenceUsage = true
	root.SilenceErrors = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return Usage(err) })
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "%s: %v\n", root.Name(), err)
	return ExitCode(err)
}

// Closing runs a deferred close (or unlock) of what, whose error has no
// caller left to return to, and logs its failure rather than dropping it.
//
//	defer cli.Closing("the database", st.Close)
func Closing(what string, closeFn func() error) {
	if err := closeFn(); err != nil {
		slog.Error("closing "+what, "err", err)
	}
}

// ExitCode is 2 for usage errors (ours or cobra's), 1 for anything else,
// 0 for nil.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ue UsageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		return 2
	}
	return 1
}

// isCobraUsage recognises cobra's argument errors, which it returns as
// plain errors.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "required flag", "accepts ",
		"invalid argument", "flag needs an argument", "requires at least", "received "} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
