package umevents_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/priora/priora/auth"
	"github.com/priora/priora/internal/app"
	"github.com/priora/priora/internal/testenv"
	"github.com/priora/priora/store"
	"github.com/priora/priora/umevents"
)

// The README shows consume as it is in consumer_test.go.
func TestReadmeConsumer(t *testing.T) {
	src, err := os.ReadFile("consumer_test.go")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	code := s[strings.Index(s, "// README consumer begins\n")+len("// README consumer begins\n") : strings.Index(s, "// README consumer ends")]
	readme, err := os.ReadFile(filepath.Join(testenv.Root(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```go\n"+code+"```\n") {
		t.Errorf("README.md does not show consume as consumer_test.go has it:\n%s", code)
	}
}

// The README's consumer pulls the feed, approves what is pended through
// the review API, and resumes after the last event it saw.
func TestConsumerDecides(t *testing.T) {
	e := testenv.Start(t, testenv.WithAuth(), testenv.WithConfig(func(c *app.Config) {
		c.UMEvents = umevents.Options{PollInterval: 20 * time.Millisecond}
	}))
	ehr := testenv.LoadKey(t, "auth/ES384.private.json", "")
	um := testenv.LoadKey(t, "auth/RS384.private.json", "")
	e.RegisterClient(store.Client{ID: "ehr", Org: "org-a", Scopes: []string{"system/Claim.c"}}, ehr)
	e.RegisterClient(store.Client{ID: "um", Org: "payer", Kind: auth.KindPayer, Scopes: []string{auth.ScopeReview}}, um)
	ehrToken, umToken := e.Token(ehr, "ehr", "system/Claim.c"), e.Token(um, "um", auth.ScopeReview)

	body := pended(t)
	r := e.Post("/fhir/Claim/$submit", body, testenv.Bearer(ehrToken)...)
	if r.Status != http.StatusOK {
		t.Fatalf("submit: %d %s", r.Status, r.Body)
	}
	id := testenv.AuthorizationID(t, r.Body)

	var after int64
	testenv.WaitFor(t, 10*time.Second, "the consumer to see the pend", func() bool {
		var err error
		if after, err = consume(e.URL, umToken, after); err != nil {
			t.Fatal(err)
		}
		return after > 0
	})
	task := e.Get("/review/tasks/"+id, testenv.Bearer(umToken)...)
	if task.Status != http.StatusOK || !strings.Contains(string(task.Body), `"status":"complete"`) ||
		!strings.Contains(string(task.Body), `"reviewerName":"UM auto-approval"`) {
		t.Fatalf("task after the consumer: %d %.600s", task.Status, task.Body)
	}
	// The decision is the next event; consuming it decides nothing more.
	testenv.WaitFor(t, 10*time.Second, "the decided event", func() bool {
		next, err := consume(e.URL, umToken, after)
		if err != nil {
			t.Fatal(err)
		}
		if next == after {
			return false
		}
		after = next
		return true
	})
	if after != 2 {
		t.Errorf("resumed after %d, want 2 (pend-created, decided)", after)
	}
}

// A clients file whose webhook the outbound rules refuse registers nothing
// (Priora does not start with it); on the allow list it is accepted.
func TestClientsFileWebhookOutboundRules(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "um.jwks.json"), testenv.LoadKey(t, "auth/ES384.private.json", "").JWKS, 0o600)
	os.WriteFile(filepath.Join(dir, "um.secret"), []byte("0123456789abcdef0123456789abcdef"), 0o600)
	file := filepath.Join(dir, "clients.yaml")
	os.WriteFile(file, []byte(`clients:
  - id: um
    org: payer
    kind: payer
    jwksFile: um.jwks.json
    scopes: [priora/review]
    webhook: https://10.20.30.40/events
    webhookSecretFile: um.secret
`), 0o600)
	cfg := app.Config{BaseURL: "http://127.0.0.1:1", DataDir: t.TempDir()}
	cfg.Security.ClientsFile = file
	a, err := app.New(context.Background(), cfg)
	if err == nil {
		a.Close()
		t.Fatal("a webhook to a private address was registered")
	}
	if !strings.Contains(err.Error(), "webhook") || !strings.Contains(err.Error(), "public address") {
		t.Errorf("err = %v, want one naming the webhook and the outbound rule", err)
	}
	cfg.Security.OutboundAllow = []string{"10.20.0.0/16"}
	a, err = app.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("on the allow list: %v", err)
	}
	defer a.Close()
	c, err := a.Store.Client(context.Background(), "um")
	if err != nil || c.Webhook != "https://10.20.30.40/events" || c.WebhookSecret != "0123456789abcdef0123456789abcdef" {
		t.Errorf("registered %+v, %v", c, err)
	}
}
