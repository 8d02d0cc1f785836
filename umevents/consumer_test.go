package umevents_test

// consume is the minimal UM system of the README ("Integration API for a
// payer's UM system"): it pulls the events after seq and approves every
// item of each pend created, and returns the seq to resume after.
// TestReadmeConsumer keeps the README's copy the same as this one.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
)

// README consumer begins
func consume(base, token string, after int64) (int64, error) {
	get, _ := http.NewRequest("GET", fmt.Sprintf("%s/review/events?after=%d", base, after), nil)
	get.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(get)
	if err != nil {
		return after, err
	}
	defer resp.Body.Close()
	var page struct {
		Events []struct {
			Kind  string
			Items []struct{ Sequence int }
			Links struct{ Decision string }
		}
		Next int64
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return after, err
	}
	for _, ev := range page.Events {
		if ev.Kind != "pend-created" {
			continue
		}
		var items []map[string]any
		for _, it := range ev.Items {
			items = append(items, map[string]any{"sequence": it.Sequence, "action": "approve"})
		}
		body, _ := json.Marshal(map[string]any{"reviewer": map[string]string{"name": "UM auto-approval"}, "items": items})
		post, _ := http.NewRequest("POST", ev.Links.Decision, bytes.NewReader(body))
		post.Header.Set("Authorization", "Bearer "+token)
		post.Header.Set("Content-Type", "application/json")
		r, err := http.DefaultClient.Do(post)
		if err != nil {
			return after, err
		}
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			return after, fmt.Errorf("decision %s: %s", ev.Links.Decision, r.Status)
		}
	}
	return page.Next, nil
}

// README consumer ends
