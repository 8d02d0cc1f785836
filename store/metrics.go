package store

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// EachAuthorization calls fn with every chain received in [from, to)
// (zero bounds are open), without the bulky fields metrics never read:
// response bodies, echoed resources, the latest Claim and each item's JSON.
// It stops at the first error fn returns and returns that error.
//
// This is a full scan of the authorizations collection on every engine
// (the embedded one pushes down no filter but {_id}), so callers use it for
// reports and cache what they compute, never on a request's hot path.
func (s *Store) EachAuthorization(ctx context.Context, from, to time.Time, fn func(*Authorization) error) error {
	q := bson.D{}
	created := bson.D{}
	if !from.IsZero() {
		created = append(created, bson.E{Key: "$gte", Value: from})
	}
	if !to.IsZero() {
		created = append(created, bson.E{Key: "$lt", Value: to})
	}
	if len(created) > 0 {
		q = append(q, bson.E{Key: "created", Value: created})
	}
	opts := options.Find().SetBatchSize(200).SetProjection(bson.D{
		{Key: "responses", Value: 0}, {Key: "echo", Value: 0}, {Key: "latestClaim", Value: 0},
		{Key: "items.itemJson", Value: 0},
	})
	cur, err := s.authorizations.Find(ctx, q, opts)
	if err != nil {
		return fmt.Errorf("store: scan authorizations: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var a Authorization
		if err := cur.Decode(&a); err != nil {
			return fmt.Errorf("store: scan authorizations: %w", err)
		}
		if err := fn(&a); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("store: scan authorizations: %w", err)
	}
	return nil
}
