// Package telemetry holds Priora's Prometheus metrics and serves them, with
// net/http/pprof, on a private listener (PRIORA_METRICS_ADDR, loopback by
// default) that is never the public one.
//
// Every method is safe on a nil *Metrics, so a package given no metrics
// (unit tests, the CLI) counts nothing without checking.
package telemetry

import (
	"context"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "priora"

// Metrics is one process's set of series.
type Metrics struct {
	reg *prometheus.Registry

	requests     *prometheus.HistogramVec
	decisions    *prometheus.CounterVec
	overturns    *prometheus.CounterVec
	crdAnswers   *prometheus.CounterVec
	deliveries   *prometheus.CounterVec
	deliveryLag  prometheus.Histogram
	storeOps     *prometheus.HistogramVec
	rulesReloads *prometheus.CounterVec
	rulesInfo    *prometheus.GaugeVec
	umEvents     *prometheus.CounterVec
	umWebhooks   *prometheus.CounterVec
	connsRefused *prometheus.CounterVec

	rulesMu      sync.Mutex
	rulesVersion []string // label values of the rulesInfo series now set
}

// New registers every series, the Go runtime and the process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "http_request_duration_seconds",
			Help:    "HTTP requests by route pattern (never the raw path), method and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "status"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "pas_decisions_total",
			Help: "PAS item decisions by X12 review action (A1 approved, A3 denied, A4 pended, A6 modified, error) and by what decided (rule, criteria, reviewer, assertion, gold-card, eligibility).",
		}, []string{"outcome", "by"}),
		overturns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "pas_overturns_total",
			Help: "Item decisions reversed after a reconsideration or an appeal, by the action reversed (deny, approve, modify) and the new one.",
		}, []string{"from", "to"}),
		crdAnswers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "crd_coverage_answers_total",
			Help: "CRD coverage-information answers by hook and covered value (covered, not-covered, conditional, indeterminate).",
		}, []string{"hook", "covered"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "subscription_deliveries_total",
			Help: "Subscription notification deliveries by type (handshake, heartbeat, event-notification) and result (delivered, failed).",
		}, []string{"type", "result"}),
		deliveryLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "subscription_delivery_lag_seconds",
			Help:    "Time from an event's creation to its successful delivery.",
			Buckets: []float64{.01, .05, .1, .5, 1, 5, 15, 60, 300, 1800, 3600},
		}),
		storeOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "store_operation_duration_seconds",
			Help:    "MongoDB commands by command name and result (ok, error).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
		}, []string{"command", "result"}),
		rulesReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "rules_reloads_total",
			Help: "Coverage rules reloads by result (ok, invalid).",
		}, []string{"result"}),
		rulesInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "rules_info",
			Help: "1 for the coverage rules in force: the file's version label and content hash.",
		}, []string{"version", "hash"}),
		umEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "um_events_total",
			Help: "UM events moved into the feed (GET /review/events, webhooks) by kind.",
		}, []string{"kind"}),
		umWebhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "um_webhook_deliveries_total",
			Help: "UM event webhook deliveries to payer clients by result (delivered, failed).",
		}, []string{"result"}),
		connsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "connections_refused_total",
			Help: "Connections over the per-address cap (PRIORA_MAX_CONNS_PER_IP) by how they were refused: answered 429, or closed unanswered (too many refusals at once, or a failed TLS handshake).",
		}, []string{"answer"}),
	}
	reg.MustRegister(m.requests, m.decisions, m.overturns, m.crdAnswers, m.deliveries, m.deliveryLag, m.storeOps, m.rulesReloads, m.rulesInfo,
		m.umEvents, m.umWebhooks, m.connsRefused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where extra collectors (QueueCollector) are registered.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Request records one HTTP request.
func (m *Metrics) Request(route, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Observe(d.Seconds())
}

// ConnRefused counts one connection over the per-address cap: answered
// 429, or closed unanswered.
func (m *Metrics) ConnRefused(answered bool) {
	if m == nil {
		return
	}
	answer := "closed"
	if answered {
		answer = "429"
	}
	m.connsRefused.WithLabelValues(answer).Inc()
}

// Decision counts one PAS item decision.
func (m *Metrics) Decision(outcome, by string) {
	if m == nil {
		return
	}
	m.decisions.WithLabelValues(outcome, by).Inc()
}

// Overturn counts one item decision reversed on reconsideration or appeal.
func (m *Metrics) Overturn(from, to string) {
	if m == nil {
		return
	}
	m.overturns.WithLabelValues(from, to).Inc()
}

// CRDAnswer counts one coverage-information answer.
func (m *Metrics) CRDAnswer(hook, covered string) {
	if m == nil {
		return
	}
	m.crdAnswers.WithLabelValues(hook, covered).Inc()
}

// Delivery counts one notification delivery attempt; lag is the age of
// the delivered event (0 when not known or not delivered).
func (m *Metrics) Delivery(kind string, ok bool, lag time.Duration) {
	if m == nil {
		return
	}
	result := "failed"
	if ok {
		result = "delivered"
		if lag > 0 {
			m.deliveryLag.Observe(lag.Seconds())
		}
	}
	m.deliveries.WithLabelValues(kind, result).Inc()
}

// UMEventFed counts one UM event moved into the feed.
func (m *Metrics) UMEventFed(kind string) {
	if m == nil {
		return
	}
	m.umEvents.WithLabelValues(kind).Inc()
}

// UMWebhook counts one UM event webhook delivery attempt.
func (m *Metrics) UMWebhook(ok bool) {
	if m == nil {
		return
	}
	m.umWebhooks.WithLabelValues(map[bool]string{true: "delivered", false: "failed"}[ok]).Inc()
}

// StoreOp records one store command.
func (m *Metrics) StoreOp(command string, ok bool, d time.Duration) {
	if m == nil {
		return
	}
	result := "ok"
	if !ok {
		result = "error"
	}
	m.storeOps.WithLabelValues(command, result).Observe(d.Seconds())
}

// RulesLoaded records a (re)load: ok with the version label and hash now in
// force, or a refused file (the running rules stay).
func (m *Metrics) RulesLoaded(ok bool, version, hash string) {
	if m == nil {
		return
	}
	if !ok {
		m.rulesReloads.WithLabelValues("invalid").Inc()
		return
	}
	m.rulesReloads.WithLabelValues("ok").Inc()
	m.RulesInForce(version, hash)
}

// RulesInForce sets the rules_info series to the rules now running (at
// start, and after each accepted reload); it counts no reload.
func (m *Metrics) RulesInForce(version, hash string) {
	if m == nil {
		return
	}
	m.rulesMu.Lock()
	defer m.rulesMu.Unlock()
	if m.rulesVersion != nil {
		m.rulesInfo.DeleteLabelValues(m.rulesVersion...)
	}
	m.rulesVersion = []string{version, hash}
	m.rulesInfo.WithLabelValues(version, hash).Set(1)
}

// Handler serves /metrics and /debug/pprof/ for the private listener.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Queue is the review queue's state at one moment.
type Queue struct {
	Depth  int           // pended requests waiting for a decision
	Oldest time.Duration // age of the oldest one
	// Overdue counts those past their CMS-0057-F deadline (72 hours
	// expedited, 7 days standard).
	Overdue int
}

// QueueCollector reports the review queue on each scrape, from read,
// at most once per ttl (a scrape must not scan the store each time).
type QueueCollector struct {
	read func(context.Context) (Queue, error)
	ttl  time.Duration

	mu     sync.Mutex
	at     time.Time
	last   Queue
	depth  *prometheus.Desc
	oldest *prometheus.Desc
	over   *prometheus.Desc
	fails  *prometheus.Desc
	failed float64
}

// NewQueueCollector reads the queue through read.
func NewQueueCollector(read func(context.Context) (Queue, error), ttl time.Duration) *QueueCollector {
	return &QueueCollector{
		read: read, ttl: ttl,
		depth:  prometheus.NewDesc(namespace+"_review_queue_depth", "Pended requests waiting for a decision (test traffic excluded).", nil, nil),
		oldest: prometheus.NewDesc(namespace+"_review_queue_oldest_age_seconds", "Age of the oldest pended request.", nil, nil),
		over:   prometheus.NewDesc(namespace+"_review_queue_overdue", "Pended requests past their CMS-0057-F decision deadline.", nil, nil),
		fails:  prometheus.NewDesc(namespace+"_review_queue_read_errors_total", "Scrapes that could not read the queue.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (q *QueueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- q.depth
	ch <- q.oldest
	ch <- q.over
	ch <- q.fails
}

// Collect implements prometheus.Collector.
func (q *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if time.Since(q.at) >= q.ttl {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		qs, err := q.read(ctx)
		cancel()
		q.at = time.Now()
		if err != nil {
			q.failed++
		} else {
			q.last = qs
		}
	}
	ch <- prometheus.MustNewConstMetric(q.depth, prometheus.GaugeValue, float64(q.last.Depth))
	ch <- prometheus.MustNewConstMetric(q.oldest, prometheus.GaugeValue, q.last.Oldest.Seconds())
	ch <- prometheus.MustNewConstMetric(q.over, prometheus.GaugeValue, float64(q.last.Overdue))
	ch <- prometheus.MustNewConstMetric(q.fails, prometheus.CounterValue, q.failed)
}
