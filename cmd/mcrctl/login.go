package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"git.wntrmute.dev/kyle/mcr/internal/cli"
)

// lineReader reads lines from stdin, shared by consecutive prompts.
type lineReader struct{ r *bufio.Reader }

func (l *lineReader) line() (string, error) {
	s, err := l.r.ReadString('\n')
	if err != nil && (err != io.EOF || s == "") {
		return "", err
	}
	return strings.TrimRight(s, "\r\n"), nil
}

func loginCmd(g *globals) *cobra.Command {
	var username string
	var passwordStdin bool
	c := &cobra.Command{
		Use:   "login",
		Short: "Sign in and print a token (use it with --token or MCR_TOKEN)",
		Long: `Sign in with a username and password and print the token on stdout:

  export MCR_TOKEN=$(mcrctl login --username alice)

The username is prompted for unless --username is given; the password is
read from stdin with --password-stdin, otherwise prompted for (without
echo on a terminal). With --json the whole answer (token, expiry, roles)
is printed.`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			cl, err := g.client(false)
			if err != nil {
				return err
			}
			in := &lineReader{r: bufio.NewReader(g.stdin)}
			if username == "" {
				fmt.Fprint(g.stderr, "Username: ")
				if username, err = in.line(); err != nil {
					return fmt.Errorf("reading the username: %w", err)
				}
			}
			if strings.TrimSpace(username) == "" {
				return cli.Usagef("a username is required (--username)")
			}
			var password string
			if passwordStdin {
				if password, err = in.line(); err != nil {
					return fmt.Errorf("reading the password from stdin: %w", err)
				}
			} else {
				fmt.Fprint(g.stderr, "Password: ")
				password, err = readPassword(g.stdin, in)
				fmt.Fprintln(g.stderr)
				if err != nil {
					return fmt.Errorf("reading the password: %w", err)
				}
			}
			if password == "" {
				return cli.Usagef("an empty password was given")
			}
			resp, err := cl.Login(context.Background(), username, password)
			if err != nil {
				var ae *apiError
				if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
					return fmt.Errorf("login failed: %s", ae.Message)
				}
				return err
			}
			if g.json {
				return g.printValue(resp)
			}
			fmt.Fprintln(g.stdout, resp.Token)
			if resp.ExpiresAt != "" {
				fmt.Fprintf(g.stderr, "signed in as %s (%s); token expires %s\n", resp.Username, strings.Join(resp.Roles, ","), resp.ExpiresAt)
			}
			return nil
		},
	}
	c.Flags().StringVar(&username, "username", "", "account name (prompted for if empty)")
	c.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	return c
}

// readPassword reads a password without echo when stdin is a terminal,
// else one line of stdin.
func readPassword(stdin io.Reader, in *lineReader) (string, error) {
	if f, ok := stdin.(*os.File); ok {
		if pw, ok, err := readNoEcho(f); ok {
			return pw, err
		}
	}
	return in.line()
}
