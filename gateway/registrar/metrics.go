package registrar

import (
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/internal/promreg"
)

type metrics struct {
	vouchers    *prometheus.CounterVec
	rvLatency   prometheus.Histogram
	masaLatency prometheus.Histogram
	telemetry   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		vouchers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tumbler", Subsystem: "registrar", Name: "voucher_requests_total",
			Help: "Pledge voucher-requests by CoAP response code.",
		}, []string{"code"}),
		rvLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "tumbler", Subsystem: "registrar", Name: "voucher_request_seconds",
			Help: "Time to answer a pledge voucher-request, MASA round trip included.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		masaLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "tumbler", Subsystem: "registrar", Name: "masa_seconds",
			Help: "MASA voucher round trip.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		telemetry: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tumbler", Subsystem: "registrar", Name: "telemetry_total",
			Help: "Status telemetry reports by kind (vs, es) and status.",
		}, []string{"kind", "status"}),
	}
	var err error
	if m.vouchers, err = promreg.Register(reg, m.vouchers); err != nil {
		return nil, err
	}
	if m.rvLatency, err = promreg.Register(reg, m.rvLatency); err != nil {
		return nil, err
	}
	if m.masaLatency, err = promreg.Register(reg, m.masaLatency); err != nil {
		return nil, err
	}
	if m.telemetry, err = promreg.Register(reg, m.telemetry); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) observeRV(err error, d time.Duration) {
	code := codes.Changed
	if err != nil {
		code, _ = coap.CodeOf(err)
	}
	m.vouchers.WithLabelValues(coap.Dotted(code)).Inc()
	m.rvLatency.Observe(d.Seconds())
}
