package subscriptions_test

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/priora/priora/internal/testenv"
)

// A queue entry of a subscription deleted while its notification was
// being written (found in a review: the notification's add queues again
// after its insert, which can land after the delete) is dropped by the
// delivery worker, which would otherwise be sent to that subscription
// every poll.
func TestQueueOfDeletedSubscriptionForgotten(t *testing.T) {
	e := start(t)
	queue := e.App.Store.DB().Collection("notificationQueue")
	ctx := context.Background()
	if _, err := queue.InsertOne(ctx, bson.D{{Key: "_id", Value: "n-gone"}, {Key: "subscription", Value: "deleted-subscription"},
		{Key: "created", Value: time.Now().UTC()}}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the deleted subscription's queue entry dropped", func() bool {
		n, err := queue.CountDocuments(ctx, bson.D{{Key: "_id", Value: "n-gone"}})
		return err == nil && n == 0
	})
}
