package store_test

import (
	"context"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/priora/priora/internal/testenv"
	"github.com/priora/priora/store"
)

// BenchmarkCommitChain: the durable write of a new chain as $submit makes
// it (its keys, the revision and the head), with the chain the approval
// kit Bundle leaves, 8 in flight (group commit).
func BenchmarkCommitChain(b *testing.B) {
	ctx := context.Background()
	a := submittedChain(b)
	s, err := store.Open(ctx, store.Options{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)
	parallelCPU(b, 4, func(i int64) error {
		c := *a
		c.ID = fmt.Sprintf("%s-%d", a.ID, i)
		c.SubmissionKeys = []string{fmt.Sprintf("bench-sub-%d", i)}
		c.ClaimKeys = []string{fmt.Sprintf("bench-claim-%d", i)}
		return s.CreateAuthorization(ctx, &c)
	})
}

// submittedChain is the chain a server stores for the approval kit Bundle.
func submittedChain(b *testing.B) *store.Authorization {
	ctx := context.Background()
	e := testenv.Start(b)
	defer e.Stop()
	if r := e.Post("/fhir/Claim/$submit", testenv.Fixture(b, "pas/kit/approval_pa_submit_request_payload.json")); r.Status != 200 {
		b.Fatalf("submit: %d %s", r.Status, r.Body)
	}
	var head struct {
		ID     string `bson:"_id"`
		Tenant string `bson:"tenant"`
	}
	if err := e.App.Store.DB().Collection("authorizations").FindOne(ctx, bson.D{}).Decode(&head); err != nil {
		b.Fatal(err)
	}
	a, err := e.App.Store.Authorization(ctx, head.Tenant, head.ID)
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := bson.Marshal(a)
	b.Logf("chain %s: %d bytes of BSON", a.ID, len(raw))
	return a
}
