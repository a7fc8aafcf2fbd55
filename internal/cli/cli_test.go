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
		name string
		run  error
		out  string
		args []string
		code int
	}{
		{"ok", nil, "", nil, 0},
		{"failure", errors.New("disk full"), "tool: disk full\n", nil, 1},
		{"wrapped usage", fmt.Errorf("ctx: %w", Usagef("--n must be positive")), "tool: ctx: --n must be positive\n", nil, 2},
		{"unknown flag", nil, "tool: unknown flag: --nope\n", []string{"--nope"}, 2},
		{"bad flag value", nil, "", []string{"--n", "x"}, 2},
		{"extra argument", nil, "", []string{"extra"}, 2},
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
