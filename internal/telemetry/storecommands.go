package telemetry

import "github.com/prometheus/client_golang/prometheus"

// StoreCommand is how many store commands of one kind an origin sent.
type StoreCommand struct {
	Origin, Command, Collection string
	N                           int64
}

// StoreCommandCollector reports, on each scrape, the store's command
// counts by origin (the HTTP route, "" for background work), command and
// collection: priora_store_commands_total. Divided by the requests of a
// route it is what one request costs the store.
type StoreCommandCollector struct {
	read func() []StoreCommand
	desc *prometheus.Desc
}

// NewStoreCommandCollector reads the counts through read.
func NewStoreCommandCollector(read func() []StoreCommand) *StoreCommandCollector {
	return &StoreCommandCollector{read: read, desc: prometheus.NewDesc(namespace+"_store_commands_total",
		"Store (MongoDB) commands sent, by origin (HTTP route; empty for background work), command and collection. A grouped insert counts once for each origin it carries documents of.",
		[]string{"origin", "command", "collection"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *StoreCommandCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *StoreCommandCollector) Collect(ch chan<- prometheus.Metric) {
	for _, sc := range c.read() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(sc.N), sc.Origin, sc.Command, sc.Collection)
	}
}
