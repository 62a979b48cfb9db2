package upstream

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Deliverer's Prometheus series, all labelled by sink.
type metrics struct {
	backlog   *prometheus.GaugeVec
	oldestAge *prometheus.GaugeVec
	up        *prometheus.GaugeVec
	delivered *prometheus.CounterVec
	retried   *prometheus.CounterVec
	parked    *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	batch     *prometheus.HistogramVec
}

func newMetrics() *metrics {
	const ns, sub = "tumbler", "upstream"
	label := []string{"sink"}
	return &metrics{
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "backlog_records",
			Help: "Records after the sink's cursor (not yet delivered or parked).",
		}, label),
		oldestAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "oldest_undelivered_age_seconds",
			Help: "Age of the oldest record not yet delivered to the sink (0 when the backlog is empty).",
		}, label),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "sink_up",
			Help: "1 while the sink delivers, 0 while it is backing off after a failure.",
		}, label),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "delivered_total",
			Help: "Records the upstream acknowledged and the Source cursor passed.",
		}, label),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "retried_total",
			Help: "Delivery attempts that ended in a backoff (one per failed batch).",
		}, label),
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "parked_total",
			Help: "Records the upstream refused for good and the Source parked.",
		}, label),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "delivery_latency_seconds",
			Help:    "Time from a record's signing to its acknowledgement by the upstream.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 6 * 3600, 24 * 3600},
		}, label),
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "batch_duration_seconds",
			Help:    "Duration of one Deliver call on the sink.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, label),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.backlog, m.oldestAge, m.up, m.delivered, m.retried, m.parked, m.latency, m.batch}
}

// register adds every series to r; registering twice is an error.
func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range m.collectors() {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("%w: metrics: %v", ErrConfig, err)
		}
	}
	return nil
}
