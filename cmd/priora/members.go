package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/priora/priora/members"
	"github.com/priora/priora/store"
)

const membersUsage = `Usage:
  priora members import [--all-or-nothing] FILE...
  priora members show MEMBER-ID

import reads the payer's member roster from FHIR: NDJSON (one resource a
line, .ndjson) or a Bundle (.json) of Patient, Coverage and payer
Organization resources, streamed entry by entry. Each Coverage is one
coverage of the member it names (Coverage.identifier of type MB, else
subscriberId with relationship self, else the Patient's MB identifier);
members are upserted by member id, so importing the same file again
changes nothing. Bad entries are reported (file, line or entry, FHIRPath,
reason) and skipped; with --all-or-nothing nothing is written when any
entry is bad. Terminate a coverage by importing it with status cancelled or
a period end.

show prints a member (system|value, or the bare member id) with their
coverages as JSON.

Each takes --data-dir [PRIORA_DATA_DIR] or --mongodb-uri [MONGODB_URI], the
server's store; it works whether or not the server runs.
`

func membersCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, membersUsage)
		return nil
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("priora members "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.register(fs, getenv)
	allOrNothing := false
	switch sub {
	case "import":
		fs.BoolVar(&allOrNothing, "all-or-nothing", false, "write nothing when any entry is bad")
	case "show":
	default:
		fmt.Fprintf(stderr, "unknown members command %q\n\n%s", sub, membersUsage)
		return errUsage
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() == 0 || sub == "show" && fs.NArg() != 1 {
		fmt.Fprint(stderr, membersUsage)
		return errUsage
	}
	var sources []members.Source
	if sub == "import" {
		for _, name := range fs.Args() {
			if _, err := os.Stat(name); err != nil {
				return err
			}
			format := members.Sniff
			switch strings.ToLower(filepath.Ext(name)) {
			case ".ndjson", ".jsonl":
				format = members.NDJSON
			}
			sources = append(sources, members.Source{Name: name, Format: format, Open: func() (io.ReadCloser, error) { return os.Open(name) }})
		}
	}
	st, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close(context.Background())
	roster := members.New(st, members.Auto, nil)
	if sub == "show" {
		m, err := roster.Member(ctx, fs.Arg(0))
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no member %s", fs.Arg(0))
		}
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	}
	now := time.Now().UTC()
	host, _ := os.Hostname()
	rep, err := roster.Import(ctx, sources, members.Options{AllOrNothing: allOrNothing,
		Run: "cli:" + host + "@" + now.Format(time.RFC3339), Now: now.Format(time.RFC3339)})
	if rep != nil {
		for _, e := range rep.Errors {
			fmt.Fprintln(stderr, e.Error())
		}
		fmt.Fprintf(stdout, "%d resources read: %d coverage(s) created, %d updated, %d unchanged, %d bad entr(y/ies)\n",
			rep.Resources, rep.Created, rep.Updated, rep.Unchanged, len(rep.Errors))
		if allOrNothing && len(rep.Errors) > 0 {
			return errors.New("nothing imported: fix the entries above, or import without --all-or-nothing")
		}
	}
	if err != nil {
		return err
	}
	if len(rep.Errors) > 0 {
		return fmt.Errorf("%d bad entr(y/ies) skipped", len(rep.Errors))
	}
	return nil
}
