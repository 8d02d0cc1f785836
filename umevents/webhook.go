package umevents

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/priora/priora/auth"
	"github.com/priora/priora/internal/worker"
	"github.com/priora/priora/store"
)

// Webhook request headers.
const (
	// HeaderSignature is "t=<unix seconds>,v1=<hex HMAC-SHA256>": the MAC
	// under the client's webhook secret of "<t>.<body>" (Stripe's scheme,
	// so that existing verifiers fit).
	HeaderSignature = "Priora-Signature"
	// HeaderEventID is the event id: de-duplicate by it (delivery is at
	// least once).
	HeaderEventID = "Priora-Event-Id"
	// HeaderEventSeq is the event's feed sequence number.
	HeaderEventSeq = "Priora-Event-Seq"
	// HeaderEventKind is the event kind.
	HeaderEventKind = "Priora-Event-Kind"
)

// Sign is the Priora-Signature header value of body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks a Priora-Signature header against body: a v1 MAC under
// secret, made no more than tolerance from now (which refuses replays of
// old deliveries).
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return errors.New("umevents: signature header without t= and v1=")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return errors.New("umevents: signature timestamp outside the tolerance")
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return errors.New("umevents: signature does not match")
}

// webhookPage is how many events one lease turn reads at a time.
const webhookPage = 20

// deliverAll runs one delivery turn for every enabled payer client with a
// webhook, concurrently, and waits for them.
func (s *Service) deliverAll(ctx context.Context) error {
	clients, err := s.st.Clients(ctx)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		if c.Webhook == "" || c.Disabled || c.Kind != auth.KindPayer {
			continue
		}
		wg.Go(func() {
			if err := s.deliverTo(ctx, &c); err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "UM webhook delivery turn failed", "client", c.ID, "err", err)
			}
		})
	}
	wg.Wait()
	return nil
}

// deliverTo posts the client's undelivered events in feed order under
// its webhook lease, stopping at the first failure (later events wait for
// earlier ones), which sets the next try by exponential backoff.
func (s *Service) deliverTo(ctx context.Context, c *store.Client) error {
	now := s.cfg.Now()
	// Look before taking the lease: an idle poll writes nothing.
	if cur, err := s.feed.Cursor(ctx, c.ID); err != nil || cur.RetryAt.After(now) {
		return err
	} else if evs, err := s.feed.After(ctx, cur.Delivered, 1); err != nil || len(evs) == 0 {
		return err
	}
	l, err := s.acquire(ctx, "um-webhook:"+c.ID, now)
	if errors.Is(err, store.ErrConflict) {
		return nil
	}
	if err != nil {
		return err
	}
	defer s.release(ctx, l)
	cur, err := s.feed.Cursor(ctx, c.ID) // again, under the lease
	if err != nil {
		return err
	}
	if cur.RetryAt.After(now) {
		return nil
	}
	cur.Webhook = c.Webhook
	for {
		evs, err := s.feed.After(ctx, cur.Delivered, webhookPage)
		if err != nil || len(evs) == 0 {
			return err
		}
		for _, fe := range evs {
			now := s.cfg.Now()
			if err := s.leases.Renew(ctx, l, now, now.Add(s.opt.Lease+15*time.Second), s.opt.Lease/2); err != nil {
				if errors.Is(err, store.ErrConflict) {
					return nil // the lease ran out: another process goes on
				}
				return err
			}
			err := s.post(ctx, c, s.render(fe))
			if ctx.Err() != nil {
				return nil // shutting down: the event is sent again next time
			}
			if s.cfg.Counter != nil {
				s.cfg.Counter.UMWebhook(err == nil)
			}
			now = s.cfg.Now()
			if err != nil {
				cur.Attempts++
				cur.RetryAt = now.Add(s.backoff(cur.Attempts))
				cur.Error = err.Error()
				s.log.WarnContext(ctx, "UM webhook delivery failed", "client", c.ID, "event", fe.ID, "seq", fe.Seq,
					"attempt", cur.Attempts, "retryAt", cur.RetryAt, "err", err)
				return s.feed.SaveCursor(ctx, cur)
			}
			cur.Delivered, cur.Attempts, cur.RetryAt, cur.Error = fe.Seq, 0, time.Time{}, ""
			if err := s.feed.SaveCursor(ctx, cur); err != nil {
				return err
			}
			s.log.InfoContext(ctx, "UM webhook delivered", "client", c.ID, "event", fe.ID, "seq", fe.Seq)
		}
	}
}

// backoff is the wait after the n-th failure in a row.
func (s *Service) backoff(n int) time.Duration {
	return worker.Backoff(s.opt.RetryBase, s.opt.RetryCap, n)
}

// post sends one event; any answer but 2xx is a failure.
func (s *Service) post(ctx context.Context, c *store.Client, ev Event) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Webhook, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("the webhook URL cannot be used: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Priora UM events")
	req.Header.Set(HeaderEventID, ev.ID)
	req.Header.Set(HeaderEventSeq, strconv.FormatInt(ev.Seq, 10))
	req.Header.Set(HeaderEventKind, ev.Kind)
	req.Header.Set(HeaderSignature, Sign([]byte(c.WebhookSecret), s.cfg.Now(), body))
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body) // bounded by the client
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the webhook answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	return nil
}
