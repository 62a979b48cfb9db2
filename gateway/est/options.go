package est

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/coap"
)

// Op is the enrollment operation a request asks for.
type Op uint8

const (
	// Enroll is /sen: a pledge authenticated with its IDevID asks for its
	// first LDevID (RFC 7030 §4.2.1).
	Enroll Op = iota + 1
	// Reenroll is /sren: a device authenticated with a current LDevID asks
	// for a new one (RFC 7030 §4.2.2).
	Reenroll
)

// String returns "enroll" or "reenroll" (also the metrics label).
func (o Op) String() string {
	switch o {
	case Enroll:
		return "enroll"
	case Reenroll:
		return "reenroll"
	default:
		return fmt.Sprintf("op(%d)", uint8(o))
	}
}

// Identity says who an authorized peer is. The registrar derives it from
// the authenticated certificate chain and its own records, never from the
// CSR.
type Identity struct {
	// DeviceID is the SHA-256 of the device's IDevID certificate DER
	// (DESIGN.md "Records"). It must not be zero.
	DeviceID [32]byte
	// Serial is the device serial number from the IDevID subject
	// serialNumber (RFC 8995 §2.3.1), 1 to 64 characters (ub-serial-number,
	// RFC 5280 Appendix A.1). The issued LDevID's subject carries it as
	// serialNumber (2.5.4.5).
	Serial string
}

// Authorizer decides whether a peer may enroll or re-enroll. The registrar
// implements it: /sen only for IDevID peers whose voucher exchange
// completed, /sren only for peers authenticated with a current LDevID from
// this CA. Authorize must not change state (the server may still refuse the
// request afterwards); a refusal is any error. An error that carries a CoAP
// code (a *coap.Error) is answered with that code and diagnostic, any other
// with 4.03 "enrollment not authorized".
type Authorizer interface {
	Authorize(ctx context.Context, peer coap.Peer, op Op) (Identity, error)
}

// Recorder durably records an issued certificate. The server calls it after
// signing and before answering; if it fails, the certificate is not sent
// (5.03), so that no certificate is issued without a record.
type Recorder interface {
	RecordIssued(ctx context.Context, id Identity, cert *x509.Certificate, op Op) error
}

// DefaultValidity is the LDevID lifetime unless WithValidity says otherwise.
// See the package documentation for the reasoning.
const DefaultValidity = 2 * 365 * 24 * time.Hour

// Validity bounds accepted by WithValidity.
const (
	minValidity = time.Hour
	maxValidity = 30 * 365 * 24 * time.Hour
)

// Option configures a Server. Options validate their argument and make
// NewServer fail with ErrConfig.
type Option func(*Server) error

// WithLogger sets the logger (default: disabled). Issuance is logged at
// info level, refusals at debug level.
func WithLogger(l zerolog.Logger) Option {
	return func(s *Server) error {
		s.log = l.With().Str("component", "est").Logger()
		return nil
	}
}

// WithClock sets the clock used for certificate validity (default
// time.Now).
func WithClock(now func() time.Time) Option {
	return func(s *Server) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrConfig)
		}
		s.now = now
		return nil
	}
}

// WithRand sets the randomness source for serial numbers and signatures
// (default crypto/rand). Reads are serialised, so r need not be safe for
// concurrent use.
func WithRand(r io.Reader) Option {
	return func(s *Server) error {
		if r == nil {
			return fmt.Errorf("%w: nil rand", ErrConfig)
		}
		s.rand = &lockedReader{r: r}
		return nil
	}
}

// WithValidity sets the LDevID lifetime, between one hour and 30 years
// (default DefaultValidity). Certificates never outlive the issuing CA.
func WithValidity(d time.Duration) Option {
	return func(s *Server) error {
		if d < minValidity || d > maxValidity {
			return fmt.Errorf("%w: validity %v outside [%v, %v]", ErrConfig, d, minValidity, maxValidity)
		}
		s.validity = d
		return nil
	}
}

// WithAuthorizer sets who may enroll. It is required.
func WithAuthorizer(a Authorizer) Option {
	return func(s *Server) error {
		if a == nil {
			return fmt.Errorf("%w: nil authorizer", ErrConfig)
		}
		s.authz = a
		return nil
	}
}

// WithRecorder sets where issued certificates are recorded. It is required.
func WithRecorder(r Recorder) Option {
	return func(s *Server) error {
		if r == nil {
			return fmt.Errorf("%w: nil recorder", ErrConfig)
		}
		s.rec = r
		return nil
	}
}

// WithTemplate sets a hook that may adjust each LDevID template before it is
// signed, typically to add ExtraExtensions (e.g. the Thread Domain Name,
// 1.3.6.1.4.1.44970.1) or shorten NotAfter. After the hook the server
// re-imposes the subject, serial number, key identifiers and CA:FALSE.
func WithTemplate(f func(*x509.Certificate)) Option {
	return func(s *Server) error {
		if f == nil {
			return fmt.Errorf("%w: nil template hook", ErrConfig)
		}
		s.tmpl = f
		return nil
	}
}

// WithMetrics registers the server's counters with reg once NewServer has
// validated everything else: tumbler_est_issued_total{op} and
// tumbler_est_refused_total{op,reason}.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(s *Server) error {
		if reg == nil {
			return fmt.Errorf("%w: nil registerer", ErrConfig)
		}
		s.reg = reg
		return nil
	}
}
