package oscore

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tumbler-iot/tumbler/internal/promreg"
)

// Outcomes counted by the Handler in tumbler_oscore_requests_total: the
// verification steps of RFC 8613 §8.2 (and §7.4, Appendix B.1.2) that ended
// the processing of a request.
const (
	OutcomeOK              = "ok"
	OutcomeContextNotFound = "context_not_found"
	OutcomeDecryptFailed   = "decrypt_failed"
	OutcomeReplay          = "replay"
	OutcomeBadOption       = "bad_option"
	OutcomeMalformed       = "malformed"
	OutcomeEchoChallenge   = "echo_challenge"
	OutcomeNotProtected    = "not_protected"
	OutcomeInternal        = "internal"
)

var outcomes = []string{
	OutcomeOK, OutcomeContextNotFound, OutcomeDecryptFailed, OutcomeReplay, OutcomeBadOption,
	OutcomeMalformed, OutcomeEchoChallenge, OutcomeNotProtected, OutcomeInternal,
}

type metrics struct {
	byOutcome map[string]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tumbler_oscore_requests_total",
		Help: "OSCORE requests received by the server, by verification outcome (RFC 8613 §8.2).",
	}, []string{"outcome"})
	vec, err := promreg.Register(reg, vec)
	if err != nil {
		return nil, fmt.Errorf("oscore: register metrics: %w", err)
	}
	m := &metrics{byOutcome: make(map[string]prometheus.Counter, len(outcomes))}
	for _, o := range outcomes {
		m.byOutcome[o] = vec.WithLabelValues(o) // exported as 0 from the start
	}
	return m, nil
}

func (m *metrics) inc(outcome string) { m.byOutcome[outcome].Inc() }

// outcomeOf maps a verification error to its metric label.
func outcomeOf(err error) string {
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, ErrContextNotFound):
		return OutcomeContextNotFound
	case errors.Is(err, ErrDecrypt):
		return OutcomeDecryptFailed
	case errors.Is(err, ErrReplay):
		return OutcomeReplay
	case errors.Is(err, ErrBadOption):
		return OutcomeBadOption
	case errors.Is(err, ErrMalformed):
		return OutcomeMalformed
	case errors.Is(err, ErrEchoRequired):
		return OutcomeEchoChallenge
	case errors.Is(err, ErrNotProtected):
		return OutcomeNotProtected
	}
	return OutcomeInternal
}
