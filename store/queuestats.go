package store

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// QueueStats is the review queue at one moment, for monitoring.
type QueueStats struct {
	Pended  int
	Oldest  time.Time // creation time of the oldest pended chain; zero when none
	Overdue int       // pended chains past their decision deadline
}

// ReviewQueueStats counts the pended chains from the heads, reading only
// their creation time and deadline.
func (s *Store) ReviewQueueStats(ctx context.Context, now time.Time) (QueueStats, error) {
	cur, err := s.authorizations.Find(ctx, bson.D{{Key: "status", Value: "pended"}, {Key: "test", Value: bson.D{{Key: "$ne", Value: true}}}},
		options.Find().SetProjection(bson.D{{Key: "created", Value: 1}, {Key: "dueAt", Value: 1}}))
	if err != nil {
		return QueueStats{}, fmt.Errorf("store: queue stats: %w", err)
	}
	defer cur.Close(ctx)
	var st QueueStats
	for cur.Next(ctx) {
		var a struct {
			Created time.Time `bson:"created"`
			DueAt   time.Time `bson:"dueAt"`
		}
		if err := cur.Decode(&a); err != nil {
			return QueueStats{}, fmt.Errorf("store: queue stats: %w", err)
		}
		st.Pended++
		if st.Oldest.IsZero() || a.Created.Before(st.Oldest) {
			st.Oldest = a.Created
		}
		if !a.DueAt.IsZero() && now.After(a.DueAt) {
			st.Overdue++
		}
	}
	return st, cur.Err()
}
