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
		args []string
		run  error
		code int
		out  string
	}{
		{"ok", nil, nil, 0, ""},
		{"failure", nil, errors.New("disk full"), 1, "tool: disk full\n"},
		{"wrapped usage", nil, fmt.Errorf("ctx: %w", Usagef("--n must be positive")), 2, "tool: ctx: --n must be positive\n"},
		{"unknown flag", []string{"--nope"}, nil, 2, "tool: unknown flag: --nope\n"},
		{"bad flag value", []string{"--n", "x"}, nil, 2, ""},
		{"extra argument", []string{"extra"}, nil, 2, ""},
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
