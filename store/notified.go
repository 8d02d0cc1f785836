package store

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// What the EHR was told of a chain's latest event (the review queue shows it).
const (
	// NotifiedNone: the chain has no event; its only answer was the
	// synchronous $submit response.
	NotifiedNone = "none"
	// NotifiedPending: the latest event is not fanned out or not
	// delivered yet, and no delivery has failed.
	NotifiedPending = "pending"
	// NotifiedDelivered: every subscription matching the chain has the
	// latest event.
	NotifiedDelivered = "delivered"
	// NotifiedFailing: a delivery of the latest event failed and is
	// being retried, or its subscription's handshake failed.
	NotifiedFailing = "failing"
	// NotifiedNoSubscription: the latest event was fanned out and no
	// subscription matched the chain.
	NotifiedNoSubscription = "no-subscription"
)

// NotifiedStates says, for each chain (by id, with the number of its
// latest event), what the EHR was told of that event: one read of the
// chains' notifications, of the subscriptions' delivery state and of the
// fan-out progress.
func (s *Store) NotifiedStates(ctx context.Context, latest map[string]int) (map[string]string, error) {
	out := map[string]string{}
	var ids []string
	for id, ev := range latest {
		if ev == 0 {
			out[id] = NotifiedNone
			continue
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return out, nil
	}
	cur, err := s.db.Collection("notifications").Find(ctx, bson.D{{Key: "authorization", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return nil, fmt.Errorf("store: notifications of chains: %w", err)
	}
	var notes []Notification
	if err := cur.All(ctx, &notes); err != nil {
		return nil, fmt.Errorf("store: notifications of chains: %w", err)
	}
	var subs []string
	for _, n := range notes {
		subs = append(subs, n.Subscription)
	}
	channels := map[string]Channel{}
	if len(subs) > 0 {
		cur, err := s.db.Collection("subscriptionChannels").Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: subs}}}})
		if err != nil {
			return nil, fmt.Errorf("store: subscription channels: %w", err)
		}
		var chs []Channel
		if err := cur.All(ctx, &chs); err != nil {
			return nil, fmt.Errorf("store: subscription channels: %w", err)
		}
		for _, c := range chs {
			channels[c.ID] = c
		}
	}
	seen := map[string]bool{}
	for _, n := range notes {
		if n.Event != latest[n.Authorization] || n.Status == NoteDropped {
			continue
		}
		seen[n.Authorization] = true
		state := NotifiedDelivered
		if n.Status == NotePending {
			state = NotifiedPending
			if c := channels[n.Subscription]; c.Attempts > 0 || c.HandshakeFailed > c.Handshaken {
				state = NotifiedFailing
			}
		}
		out[n.Authorization] = worse(out[n.Authorization], state)
	}
	cur, err = s.db.Collection("dispatches").Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return nil, fmt.Errorf("store: dispatch progress: %w", err)
	}
	var progress []struct {
		ID   string `bson:"_id"`
		UpTo int    `bson:"upTo"`
	}
	if err := cur.All(ctx, &progress); err != nil {
		return nil, fmt.Errorf("store: dispatch progress: %w", err)
	}
	dispatched := map[string]int{}
	for _, p := range progress {
		dispatched[p.ID] = p.UpTo
	}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		if dispatched[id] >= latest[id] {
			out[id] = NotifiedNoSubscription
		} else {
			out[id] = NotifiedPending
		}
	}
	return out, nil
}

// worse keeps the state that needs attention more: failing over pending
// over delivered.
func worse(a, b string) string {
	rank := map[string]int{"": 0, NotifiedDelivered: 1, NotifiedPending: 2, NotifiedFailing: 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}
