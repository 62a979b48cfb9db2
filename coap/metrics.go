package coap

import (
	"errors"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tumbler-iot/tumbler/coap/internal/msglayer"
)

// Label values of the transport label.
const (
	transportDTLS = "dtls"
	transportUDP  = "udp"
)

// Drop reasons the server adds to the demultiplexer's (see
// internal/demux.Reason).
const (
	dropOverload  = "overload"  // ServeUDP worker queue full
	dropTooBig    = "too_big"   // datagram or record above the read buffer
	dropMalformed = "malformed" // not a CoAP message
)

// metrics are the server's Prometheus collectors. They exist (unregistered)
// even without WithMetrics, so the code paths are the same.
type metrics struct {
	requests   *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	handshakes *prometheus.CounterVec
	sessions   prometheus.Gauge
	dropped    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tumbler", Subsystem: "coap", Name: "responses_total",
			Help: "CoAP responses sent, by transport and response code (\"2.05\"; \"0.00\" is an empty ACK).",
		}, []string{"transport", "code"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tumbler", Subsystem: "coap", Name: "duplicates_total",
			Help: "Retransmitted requests recognised by Message ID and not handled again.",
		}, []string{"transport"}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tumbler", Subsystem: "coap", Name: "dtls_handshakes_total",
			Help: "DTLS handshakes by result (ok, failed).",
		}, []string{"result"}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "tumbler", Subsystem: "coap", Name: "dtls_sessions_active",
			Help: "Established DTLS associations.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tumbler", Subsystem: "coap", Name: "datagrams_dropped_total",
			Help: "Datagrams dropped before reaching a handler, by transport and reason.",
		}, []string{"transport", "reason"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.duplicates, m.handshakes, m.sessions, m.dropped} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) {
				return nil, fmt.Errorf("%w: metrics already registered (one registry per server): %w", ErrInvalidOption, err)
			}
			return nil, fmt.Errorf("%w: register metrics: %w", ErrInvalidOption, err)
		}
	}
	return m, nil
}

// account records what the message layer did with a datagram.
func (m *metrics) account(transport string, res msglayer.Result) {
	switch res.Outcome {
	case msglayer.Responded:
		m.requests.WithLabelValues(transport, codeString(res.Code)).Inc()
	case msglayer.Duplicate:
		m.duplicates.WithLabelValues(transport).Inc()
	case msglayer.Malformed:
		m.dropped.WithLabelValues(transport, dropMalformed).Inc()
	}
}

func (m *metrics) drop(transport, reason string) {
	m.dropped.WithLabelValues(transport, reason).Inc()
}

// codeString renders a code as "c.dd" (RFC 7252 §12.1).
func codeString(c codes.Code) string {
	return fmt.Sprintf("%d.%02d", uint8(c)>>5, uint8(c)&0x1f)
}
