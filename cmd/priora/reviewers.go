package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/priora/priora/desk"
	"github.com/priora/priora/pas"
	"github.com/priora/priora/store"
)

const reviewersUsage = `Usage:
  priora reviewers add --username NAME --password-stdin [--role nurse|physician|admin] [--npi NPI] [--name "Full Name"]
  priora reviewers role --username NAME --role nurse|physician|admin
  priora reviewers list
  priora reviewers disable --username NAME
  priora reviewers enable --username NAME

Reviewer accounts sign in to the reviewer desk (/desk/). The password is
read from standard input (one line, %d to %d bytes) and stored as a bcrypt
hash; it is never taken from a flag, so it stays out of the shell history
and the process list. Disabling an account ends its sessions at once.

Roles: a nurse approves, requests information and changes what is
authorized without reducing it (or reduces it to a plan quantity limit,
reason code 0P); a physician also denies, reduces and reopens decided
items (adverse medical-necessity determinations need a physician); an
admin makes no decisions. --role defaults to nurse, and accounts made
before roles existed count as nurses.

Each takes --data-dir [PRIORA_DATA_DIR] or --mongodb-uri [MONGODB_URI], the
same store as the server; with the embedded store it works whether or not
the server runs (it uses the running server's store when there is one).
`

// reviewersCmd manages reviewer desk accounts.
func reviewersCmd(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintf(stdout, reviewersUsage, desk.MinPasswordLength, desk.MaxPasswordLength)
		return nil
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("priora reviewers "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.register(fs, getenv)
	var a desk.Account
	var passwordStdin bool
	fs.StringVar(&a.Username, "username", "", "the reviewer's sign-in name")
	switch sub {
	case "add":
		fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input (required)")
		fs.StringVar(&a.NPI, "npi", "", "the reviewer's NPI, recorded on their decisions")
		fs.StringVar(&a.Name, "name", "", "the reviewer's full name, recorded on their decisions")
		fs.StringVar(&a.Role, "role", pas.RoleNurse, "nurse, physician or admin")
	case "role":
		fs.StringVar(&a.Role, "role", "", "nurse, physician or admin (required)")
	case "list":
	case "disable", "enable":
	default:
		fmt.Fprintf(stderr, "unknown reviewers command %q\n\n"+reviewersUsage, sub, desk.MinPasswordLength, desk.MaxPasswordLength)
		return errUsage
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return errUsage
	}
	if sub != "list" && a.Username == "" {
		fmt.Fprintln(stderr, "--username is required")
		return errUsage
	}
	if sub == "add" {
		if !passwordStdin {
			fmt.Fprintln(stderr, "--password-stdin is required: pipe the password in, e.g. from a password manager or a secrets file")
			return errUsage
		}
		pw, err := readPassword(stdin)
		if err != nil {
			return err
		}
		a.Password = pw
	}
	st, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close(context.Background())

	switch sub {
	case "add":
		if err := desk.AddReviewer(ctx, st, a, time.Now()); err != nil {
			return fmt.Errorf("reviewer not added: %w", err)
		}
		fmt.Fprintf(stdout, "reviewer %s added\n", strings.ToLower(strings.TrimSpace(a.Username)))
	case "list":
		rs, err := st.Reviewers(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tROLE\tNAME\tNPI\tSTATUS\tCREATED\tLAST SIGN-IN")
		for _, r := range rs {
			status, last := "active", "never"
			if r.Disabled {
				status = "disabled"
			}
			if !r.LastLogin.IsZero() {
				last = r.LastLogin.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Username, pas.RoleOf(r.Role), dash(r.Name), dash(r.NPI), status, r.Created.UTC().Format(time.RFC3339), last)
		}
		return tw.Flush()
	case "role":
		name := strings.ToLower(strings.TrimSpace(a.Username))
		if !pas.ValidRole(a.Role) {
			fmt.Fprintln(stderr, "--role must be nurse, physician or admin")
			return errUsage
		}
		err := st.SetReviewerRole(ctx, name, a.Role)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no reviewer %s", name)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "reviewer %s is now %s\n", name, a.Role)
	case "disable", "enable":
		name := strings.ToLower(strings.TrimSpace(a.Username))
		err := st.SetReviewerDisabled(ctx, name, sub == "disable")
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no reviewer %s", name)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "reviewer %s %sd\n", name, sub)
	}
	return nil
}

// readPassword reads one line from r, without its line ending.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password from standard input: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on standard input")
	}
	return line, nil
}
