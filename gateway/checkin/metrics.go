package checkin

import (
	"errors"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tumbler-iot/tumbler/coap"
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
	if reg != nil {
		for _, c := range []prometheus.Collector{m.checkins, m.latency, m.overdue} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return nil, err
				}
			}
		}
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
