package checkin

import (
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/internal/promreg"
)

type metrics struct {
	checkins *prometheus.CounterVec
	latency  prometheus.Histogram
	overdue  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		checkins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tumbler", Subsystem: "checkin", Name: "requests_total",
			Help: "Check-ins past OSCORE, by inner CoAP response code.",
		}, []string{"code"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "tumbler", Subsystem: "checkin", Name: "seconds",
			Help: "Time from a decrypted check-in to its durable record.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		overdue: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "tumbler", Subsystem: "checkin", Name: "overdue_total", Help: "Overdue records emitted.",
		}),
	}
	var err error
	if m.checkins, err = promreg.Register(reg, m.checkins); err != nil {
		return nil, err
	}
	if m.latency, err = promreg.Register(reg, m.latency); err != nil {
		return nil, err
	}
	if m.overdue, err = promreg.Register(reg, m.overdue); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) observe(err error, d time.Duration) {
	code := codes.Changed
	if err != nil {
		code, _ = coap.CodeOf(err)
	}
	m.checkins.WithLabelValues(coap.Dotted(code)).Inc()
	m.latency.Observe(d.Seconds())
}
