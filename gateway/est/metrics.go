package est

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	issued  *prometheus.CounterVec
	refused *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tumbler", Subsystem: "est", Name: "issued_total",
			Help: "LDevID certificates issued and recorded, by operation.",
		}, []string{"op"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tumbler", Subsystem: "est", Name: "refused_total",
			Help: "Enrollment requests answered with an error, by operation and reason.",
		}, []string{"op", "reason"}),
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	if err := reg.Register(m.issued); err != nil {
		return err
	}
	if err := reg.Register(m.refused); err != nil {
		reg.Unregister(m.issued)
		return err
	}
	return nil
}

// reasons maps sentinels to the bounded set of "reason" label values.
var reasons = []struct {
	err    error
	reason string
}{
	{ErrUnauthenticated, "unauthenticated"},
	{ErrContentFormat, "content_format"},
	{ErrAccept, "accept"},
	{ErrTooLarge, "too_large"},
	{ErrBadCSR, "bad_csr"},
	{ErrCSRAlgorithm, "csr_algorithm"},
	{ErrKeyType, "key_type"},
	{ErrCSRSignature, "csr_signature"},
	{ErrNotAuthorized, "not_authorized"},
	{ErrSerialMismatch, "serial_mismatch"},
	{ErrSubjectMismatch, "subject_mismatch"},
	{ErrNotRecorded, "not_recorded"},
}

func reasonOf(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "internal"
}

func (m *metrics) observe(op Op, err error) {
	if m == nil {
		return
	}
	if err == nil {
		m.issued.WithLabelValues(op.String()).Inc()
		return
	}
	m.refused.WithLabelValues(op.String(), reasonOf(err)).Inc()
}
