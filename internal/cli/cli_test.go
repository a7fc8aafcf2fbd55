package cli

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/spf13/cobra"
)

func TestRunExitCodes(t *testing.T) {
	cases := []struct {
		run  error
		name string
		out  string
		args []string
		code int
	}{
		{nil, "ok", "", nil, 0},
		{errors.New("disk full"), "failure", "tool: disk full\n", nil, 1},
		{fmt.Errorf("ctx: %w", Usagef("--n must be positive")), "wrapped usage", "tool: ctx: --n must be positive\n", nil, 2},
		{nil, "unknown flag", "tool: unknown flag: --nope\n", []string{"--nope"}, 2},
		{nil, "bad flag value", "", []string{"--n", "x"}, 2},
		{nil, "extra argument", "", []string{"extra"}, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := &cobra.Command{Use: "tool", Args: cobra.NoArgs, RunE: func(*cobra.Command, []string) error { return tc.run }}
			root.Flags().Int("n", 1, "")
			root.SetArgs(tc.args)
			var stderr bytes.Buffer
			root.SetErr(&bytes.Buffer{})
			if got := Run(root, &stderr); got != tc.code {
				t.Fatalf("exit %d, want %d (stderr %q)", got, tc.code, stderr.String())
			}
			if tc.out != "" && stderr.String() != tc.out {
				t.Fatalf("stderr %q, want %q", stderr.String(), tc.out)
			}
		})
	}
}
