package server_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/priora/priora/internal/testenv"
)

// umKinds lists a chain's UM events as "kind:items@response".
func umKinds(t *testing.T, e *testenv.Env, id string) []string {
	t.Helper()
	a, err := e.App.Store.Authorization(context.Background(), "", id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range a.UMEvents {
		s := ev.Kind + ":"
		for _, it := range ev.Items {
			s += string(rune('0'+it.Sequence)) + it.Action
		}
		out = append(out, s)
		if ev.ID != id+"-"+string(rune('0'+ev.Number)) || ev.Authorization != id || ev.Tenant == "" {
			t.Errorf("event %+v: id, authorization or tenant wrong", ev)
		}
	}
	return out
}

// A pend, each decision and an approaching deadline are recorded on the
// chain as UM events in the same write as the change, once each.
func TestUMEventsRecorded(t *testing.T) {
	e := testenv.Start(t)
	id := submitPended(t, e)
	if got, want := umKinds(t, e, id), []string{"pend-created:1pend2pend"}; !cmp.Equal(got, want) {
		t.Fatalf("after submit: %v, want %v", got, want)
	}
	r := postDecision(t, e, id, `{"reviewer": {"name": "Dr. Rivera", "role": "physician"}, "items": [{"sequence": 1, "action": "approve"}]}`)
	if r.Status != http.StatusOK {
		t.Fatalf("decide: %d %s", r.Status, r.Body)
	}
	// A request for information keeps the item pended: no event of this API.
	r = postDecision(t, e, id, `{"reviewer": {"name": "Dr. Rivera", "role": "physician"}, "items": [{"sequence": 2, "action": "request-info", "codes": ["11506-3"]}]}`)
	if r.Status != http.StatusOK {
		t.Fatalf("request info: %d %s", r.Status, r.Body)
	}
	ctx := context.Background()
	// The deadline is 7 days away: a lead of 8 days makes it approaching, once.
	for i, want := range []int{1, 0} {
		n, err := e.App.PAS.MarkDeadlines(ctx, 8*24*time.Hour)
		if err != nil || n != want {
			t.Fatalf("scan %d: %d events, %v; want %d", i, n, err, want)
		}
	}
	if n, _ := e.App.PAS.MarkDeadlines(ctx, time.Hour); n != 0 {
		t.Fatalf("a deadline 7 days away is not within an hour: %d events", n)
	}
	r = postDecision(t, e, id, `{"reviewer": {"name": "Dr. Rivera", "role": "physician"}, "items": [{"sequence": 2, "action": "deny", "reasonCode": "0U", "note": "Not medically necessary."}]}`)
	if r.Status != http.StatusOK {
		t.Fatalf("deny: %d %s", r.Status, r.Body)
	}
	want := []string{"pend-created:1pend2pend", "decided:1approve", "deadline-approaching:2pend", "decided:2deny"}
	if got := umKinds(t, e, id); !cmp.Equal(got, want) {
		t.Fatalf("events: %v, want %v", got, want)
	}
	a, _ := e.App.Store.Authorization(ctx, "", id)
	if last := a.UMEvents[3]; last.Status != "complete" || last.Response != len(a.Responses) || last.Items[0].ReasonCodes[0] != "0U" {
		t.Errorf("decided event: %+v, want status complete, response %d, reason 0U", last, len(a.Responses))
	}
	if dl := a.UMEvents[2]; !dl.DueAt.Equal(a.DueAt) || dl.Response != 0 || dl.Status != "pended" {
		t.Errorf("deadline event: %+v, want due %s, no response, pended", dl, a.DueAt)
	}
	if n, _ := e.App.PAS.MarkDeadlines(ctx, 8*24*time.Hour); n != 0 {
		t.Fatalf("a decided request has no approaching deadline: %d events", n)
	}
}
