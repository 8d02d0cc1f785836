package umevents

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/priora/priora/fhir"
	"github.com/priora/priora/store"
)

// Event is a UM event as the feed and the webhooks send it.
type Event struct {
	// Seq is the event's number in the feed: resume after it.
	Seq int64 `json:"seq"`
	store.UMEvent
	Links Links `json:"links"`
}

// Links say where to act on an event: the review task and its decision.
type Links struct {
	Task     string `json:"task"`
	Decision string `json:"decision"`
}

// Page is one page of the feed. Next is what to send as after for the
// next page (the last event's seq, or after itself when the page is
// empty: nothing new yet).
type Page struct {
	Events []Event `json:"events"`
	Next   int64   `json:"next"`
}

// MaxCount is the largest page the feed serves.
const MaxCount = 500

// ParseAfter reads the after parameter: a feed sequence number (0 or
// absent: from the start), or an event id that is in the feed.
func (s *Service) ParseAfter(ctx context.Context, v string) (int64, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, fhir.InvalidAt("value", "after", "after must be a feed seq (0 or more) or an event id")
		}
		return n, nil
	}
	if len(v) > 100 {
		return 0, fhir.InvalidAt("value", "after", "after must be a feed seq (0 or more) or an event id")
	}
	seq, err := s.feed.SeqOf(ctx, v)
	if errors.Is(err, store.ErrNotFound) {
		return 0, fhir.InvalidAt("value", "after", "no event %q in the feed: pass the seq or id of an event received", v)
	}
	return seq, err
}

// Feed returns up to count events after seq after, in order.
func (s *Service) Feed(ctx context.Context, after int64, count int) (*Page, error) {
	if count <= 0 || count > MaxCount {
		count = MaxCount
	}
	evs, err := s.feed.After(ctx, after, count)
	if err != nil {
		return nil, err
	}
	p := &Page{Events: make([]Event, 0, len(evs)), Next: after}
	for _, fe := range evs {
		p.Events = append(p.Events, s.render(fe))
		p.Next = fe.Seq
	}
	return p, nil
}

func (s *Service) render(fe store.FeedEvent) Event {
	task := s.cfg.BaseURL + "/review/tasks/" + fe.Authorization
	return Event{Seq: fe.Seq, UMEvent: fe.UMEvent, Links: Links{Task: task, Decision: task + "/decision"}}
}
