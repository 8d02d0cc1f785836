package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/priora/priora/coverage"
	"github.com/priora/priora/pas"
)

const rulesUsage = `Usage:
  priora rules check FILE              validate a rules file without starting the server
  priora rules test [--today YYYY-MM-DD] FILE REQUEST...
                                       decide PAS request Bundles under the rules and print
                                       each item's decision with every criterion's outcome

check prints one line per problem (line numbers included) and exits 1 when there is any:
FHIRPath that does not compile, NPI check digits, X12 reason codes not in the shipped list,
unknown code system URLs, duplicate ids, unknown fields. test stores nothing; frequency
limits, which need the member's stored authorizations, are reported unknown.
`

// rulesCmd is `priora rules check|test`.
func rulesCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, rulesUsage)
		return errUsage
	}
	switch args[0] {
	case "check":
		return rulesCheck(args[1:], stdout, stderr)
	case "test":
		return rulesTest(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, rulesUsage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown rules command %q\n\n%s", args[0], rulesUsage)
	return errUsage
}

func rulesCheck(args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		fmt.Fprint(stderr, rulesUsage)
		return errUsage
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	probs := coverage.Check(b)
	for _, p := range probs {
		fmt.Fprintf(stdout, "%s:%s\n", args[0], strings.TrimPrefix(p.String(), "line "))
	}
	if len(probs) > 0 {
		fmt.Fprintf(stdout, "%d problem(s); the file would not load\n", len(probs))
		return errInvalid
	}
	r, _ := coverage.Parse(b)
	fmt.Fprintf(stdout, "%s: ok, %d rules, version %s\n", args[0], len(r.All()), r.Version)
	return nil
}

func rulesTest(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("priora rules test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	today := fs.String("today", "", "decide as of this date (YYYY-MM-DD; default today)")
	fs.Usage = func() { fmt.Fprint(fs.Output(), rulesUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() < 2 {
		fs.Usage()
		return errUsage
	}
	now := time.Now().UTC()
	if *today != "" {
		t, err := time.Parse(time.DateOnly, *today)
		if err != nil {
			return fmt.Errorf("--today %q is not a date (YYYY-MM-DD)", *today)
		}
		now = t.Add(12 * time.Hour)
	}
	rules, err := coverage.Load(fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rules %s (version %s), decided as of %s\n", fs.Arg(0), rules.Version, now.Format(time.DateOnly))
	failed := false
	for _, file := range fs.Args()[1:] {
		body, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		items, err := pas.Preview(rules, body, now, nil)
		if err != nil {
			fmt.Fprintf(stdout, "\n%s: not a PAS request: %v\n", file, err)
			failed = true
			continue
		}
		fmt.Fprintf(stdout, "\n%s\n", file)
		for _, it := range items {
			o := it.Outcome
			d := o.Decision
			fmt.Fprintf(stdout, "  item %d %s: %s (%s) by rule %s — %s\n", it.Sequence, it.Code, d.Action, d.Action.ReviewAction(), o.RuleID(), o.Reason)
			if len(d.RequestInfo) > 0 {
				fmt.Fprintf(stdout, "    asks for: %s (LOINC)\n", strings.Join(d.RequestInfo, ", "))
			}
			if d.ReasonCode != "" {
				fmt.Fprintf(stdout, "    reason code: %s\n", d.ReasonCode)
			}
			for _, c := range o.Criteria {
				fmt.Fprintf(stdout, "    %-8s %s — %s", c.Finding, c.ID, c.Description)
				if c.Detail != "" {
					fmt.Fprintf(stdout, " (%s)", c.Detail)
				}
				fmt.Fprintln(stdout)
				for _, e := range c.Evidence {
					fmt.Fprintf(stdout, "             evidence: %s\n", e)
				}
			}
		}
	}
	if failed {
		return errInvalid
	}
	return nil
}
