package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/priora/priora/auth"
	"github.com/priora/priora/internal/outbound"
	"github.com/priora/priora/store"
)

const clientsUsage = `Usage:
  priora clients add --id ID --org ORG [--kind provider|payer] [--npi NPI]
                     [--sender-id ISA06] (--jwks-file FILE | --jwks-url URL)
                     [--jku-allow URL]... --scopes "system/Claim.c system/ClaimResponse.r"
                     [--test] [--replace]
                     [--webhook URL [--webhook-secret-file FILE]]   (payer clients: UM events)
  priora clients list [--json]
  priora clients disable ID
  priora clients enable ID

Each takes --data-dir [PRIORA_DATA_DIR] or --mongodb-uri [MONGODB_URI], the
same store as the server; with the embedded store it works whether or not
the server runs (it uses the running server's store when there is one).

A provider client (the default kind) is an EHR or clearinghouse: its org is
its tenant. A payer client is one of the payer's own systems: only it may
hold priora/review (deciding requests of every provider tenant) and
priora/admin, and it never submits.

--webhook gives a payer client a URL that receives UM events (pend created,
information received, deadline approaching, decided, ...) signed with
HMAC-SHA256 under the client's webhook secret: read from
--webhook-secret-file (at least 32 bytes), or made and printed once when
none is given. The URL must pass the outbound rules (PRIORA_OUTBOUND_ALLOW,
PRIORA_INSECURE_DEV, read from the environment as the server does).
`

// storeFlags are the flags that say which store to open.
type storeFlags struct{ dataDir, uri string }

func (sf *storeFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	dd := getenv("PRIORA_DATA_DIR")
	if dd == "" {
		dd = "./data"
	}
	fs.StringVar(&sf.dataDir, "data-dir", dd, "data directory of the embedded store [PRIORA_DATA_DIR]")
	fs.StringVar(&sf.uri, "mongodb-uri", getenv("MONGODB_URI"), "MongoDB URI [MONGODB_URI]")
}

// open opens the store the server uses: MongoDB when a URI is given, else
// the running server's embedded engine when one holds the data directory,
// else the embedded engine started here.
func (sf *storeFlags) open(ctx context.Context) (*store.Store, error) {
	if sf.uri != "" {
		return store.Open(ctx, store.Options{URI: sf.uri})
	}
	uri, running, err := store.RunningURI(sf.dataDir)
	if err != nil {
		return nil, err
	}
	if running {
		return store.Open(ctx, store.Options{URI: uri})
	}
	st, err := store.Open(ctx, store.Options{DataDir: sf.dataDir})
	if errors.Is(err, store.ErrLocked) { // the server started meanwhile
		if uri, running, err := store.RunningURI(sf.dataDir); err == nil && running {
			return store.Open(ctx, store.Options{URI: uri})
		}
	}
	return st, err
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func clientsCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, clientsUsage)
		return nil
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("priora clients "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.register(fs, getenv)
	switch sub {
	case "add":
		var c store.Client
		var jwksFile, scopes string
		var jku stringList
		var replace bool
		var secretFile string
		fs.StringVar(&c.ID, "id", "", "client id (for a CDS Hooks EHR: its JWT iss)")
		fs.StringVar(&c.Org, "org", "", "the client's organization: its tenant")
		fs.StringVar(&c.Kind, "kind", auth.KindProvider, "provider (an EHR: submits for its org) or payer (the payer's own system: reviews, never submits)")
		fs.StringVar(&c.NPI, "npi", "", "the organization's NPI")
		fs.StringVar(&c.SenderID, "sender-id", "", "the organization's X12 sender id (ISA06)")
		fs.StringVar(&jwksFile, "jwks-file", "", "JWK Set file with the client's public keys")
		fs.StringVar(&c.JWKSURL, "jwks-url", "", "URL where the client publishes its JWK Set")
		fs.Var(&jku, "jku-allow", "a jku URL honoured for this client (repeatable)")
		fs.StringVar(&scopes, "scopes", "", "space-separated scopes the client may be granted")
		fs.BoolVar(&replace, "replace", false, "replace a client with the same id")
		fs.StringVar(&c.Webhook, "webhook", "", "payer clients: URL that receives UM events (signed webhooks)")
		fs.StringVar(&secretFile, "webhook-secret-file", "", "file holding the webhook signing secret (at least 32 bytes); made and printed when absent")
		fs.BoolVar(&c.Test, "test", false, "a test client: everything it submits is test data (kept out of the default work queue and the CMS-0057-F figures)")
		if err := fs.Parse(args); err != nil {
			return errUsage
		}
		if jwksFile != "" {
			b, err := os.ReadFile(jwksFile)
			if err != nil {
				return err
			}
			c.JWKS = string(b)
		}
		c.JKUAllow = jku
		c.Scopes = strings.Fields(scopes)
		madeSecret := false
		if c.Webhook != "" {
			if err := checkWebhookURL(c.Webhook, getenv); err != nil {
				return fmt.Errorf("client not added:\nwebhook %q: %w", c.Webhook, err)
			}
			switch {
			case secretFile != "":
				b, err := os.ReadFile(secretFile)
				if err != nil {
					return err
				}
				c.WebhookSecret = strings.TrimSpace(string(b))
			default:
				var b [32]byte
				_, _ = rand.Read(b[:])
				c.WebhookSecret, madeSecret = "whsec_"+base64.RawURLEncoding.EncodeToString(b[:]), true
			}
		} else if secretFile != "" {
			return errors.New("client not added:\n--webhook-secret-file needs --webhook")
		}
		if err := auth.CheckClient(&c); err != nil {
			return fmt.Errorf("client not added:\n%w", err)
		}
		st, err := sf.open(ctx)
		if err != nil {
			return err
		}
		defer st.Close(context.Background())
		c.Created, c.Updated = time.Now().UTC(), time.Now().UTC()
		if replace {
			err = st.PutClient(ctx, &c)
		} else if err = st.AddClient(ctx, &c); errors.Is(err, store.ErrDuplicate) {
			return fmt.Errorf("client %q exists; use --replace to change it", c.ID)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "client %s added (%s, org %s, scopes %s)\n", c.ID, c.Kind, c.Org, strings.Join(c.Scopes, " "))
		if c.Webhook != "" {
			fmt.Fprintf(stdout, "UM events go to %s, signed with HMAC-SHA256 (header Priora-Signature)\n", c.Webhook)
		}
		if madeSecret {
			fmt.Fprintf(stdout, "webhook secret (shown once; give it to the receiver): %s\n", c.WebhookSecret)
		}
		return nil
	case "list":
		asJSON := fs.Bool("json", false, "print JSON")
		if err := fs.Parse(args); err != nil {
			return errUsage
		}
		st, err := sf.open(ctx)
		if err != nil {
			return err
		}
		defer st.Close(context.Background())
		cs, err := st.Clients(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(cs)
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tORG\tNPI\tSENDER\tKEYS\tSTATUS\tSCOPES\tWEBHOOK")
		for _, c := range cs {
			keys, status := "jwks", "enabled"
			if c.JWKSURL != "" {
				keys = c.JWKSURL
			}
			if c.Disabled {
				status = "disabled"
			}
			if c.Test {
				status += ",test"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, auth.KindOf(&c), c.Org, dash(c.NPI), dash(c.SenderID), keys, status,
				strings.Join(c.Scopes, " "), dash(c.Webhook))
		}
		return tw.Flush()
	case "disable", "enable":
		var id string
		fs.StringVar(&id, "id", "", "client id")
		if err := fs.Parse(args); err != nil {
			return errUsage
		}
		if id == "" && fs.NArg() == 1 {
			id = fs.Arg(0)
		}
		if id == "" {
			fmt.Fprint(stderr, clientsUsage)
			return errUsage
		}
		st, err := sf.open(ctx)
		if err != nil {
			return err
		}
		defer st.Close(context.Background())
		if err := st.SetClientDisabled(ctx, id, sub == "disable", time.Now().UTC()); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no client %q", id)
		} else if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "client %s %sd (a running server applies it to access tokens at once, to CDS Hooks JWTs within 30 s)\n", id, sub)
		return nil
	}
	fmt.Fprintf(stderr, "unknown clients command %q\n\n%s", sub, clientsUsage)
	return errUsage
}

// checkWebhookURL applies the server's outbound rules, as the environment
// sets them, to a webhook URL.
func checkWebhookURL(u string, getenv func(string) string) error {
	allow, err := outbound.ParseAllow(getenv("PRIORA_OUTBOUND_ALLOW"))
	if err != nil {
		return fmt.Errorf("PRIORA_OUTBOUND_ALLOW: %w", err)
	}
	dev := getenv("PRIORA_INSECURE_DEV")
	p, err := outbound.New(outbound.Config{Allow: allow, InsecureDev: dev == "1" || strings.EqualFold(dev, "true")})
	if err != nil {
		return err
	}
	return p.CheckURL(u)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// keysCmd is `priora keys rotate`: a new token signing key becomes current;
// the old one keeps verifying until its tokens have expired.
func keysCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "new" {
		return keysNew(args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "rotate" {
		fmt.Fprint(stderr, "Usage: priora keys new [--alg ES384|RS384] [--out private.jwk] [--jwks public.jwks]\n       priora keys rotate [--data-dir DIR | --mongodb-uri URI]\n")
		return errUsage
	}
	fs := flag.NewFlagSet("priora keys rotate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.register(fs, getenv)
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	st, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close(context.Background())
	svc, err := auth.New(ctx, auth.Config{Store: st})
	if err != nil {
		return err
	}
	kid, err := svc.RotateKey(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "signing key %s is current (a running server signs with it within a minute)\n", kid)
	return nil
}

// auditCmd is `priora audit`: the newest audit records as JSON lines.
func auditCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("priora audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.register(fs, getenv)
	var f store.AuditFilter
	var since string
	fs.StringVar(&f.Client, "client", "", "only this client's records")
	fs.StringVar(&f.Tenant, "tenant", "", "only this organization's records")
	fs.StringVar(&since, "since", "", "only records from this RFC 3339 time on")
	fs.Int64Var(&f.Limit, "limit", 100, "at most this many records (1-1000)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if since != "" {
		t, err := time.Parse(time.RFC3339, since)
		if err != nil {
			return fmt.Errorf("--since %q is not an RFC 3339 time", since)
		}
		f.Since = t
	}
	st, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close(context.Background())
	recs, err := st.Audit(ctx, f)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}
