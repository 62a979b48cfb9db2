package commissioner

import (
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/rs/zerolog"

	"github.com/tumbler-iot/tumbler/coap"
	"github.com/tumbler-iot/tumbler/thread/meshcop"
)

// Defaults.
const (
	// DefaultID is the Commissioner ID sent in COMM_PET.
	DefaultID = "Tumbler"
	// DefaultKeepAliveMin and DefaultKeepAliveMax bound the keep-alive
	// interval: ot-commissioner allows 30..45 s (src/app/etc/commissioner
	// config "KeepAliveInterval", default 40); the leader drops a silent
	// commissioner after 50 s (OpenThread meshcop_leader.hpp
	// kTimeoutLeaderPetition).
	DefaultKeepAliveMin = 30 * time.Second
	DefaultKeepAliveMax = 45 * time.Second
	// DefaultBackoffMin and DefaultBackoffMax bound the wait before
	// redialling or petitioning again.
	DefaultBackoffMin = time.Second
	DefaultBackoffMax = time.Minute
	// DefaultRequestTimeout bounds one request to the Border Agent.
	DefaultRequestTimeout = 10 * time.Second
	// maxCommissionerID is the Commissioner ID TLV bound (ot-commissioner
	// tlv.cpp: 64).
	maxCommissionerID = 64
)

// Clock is the time source the commissioner waits on.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

type options struct {
	log            zerolog.Logger
	clock          Clock
	rand           io.Reader
	listen         func() (net.PacketConn, error)
	kaMin, kaMax   time.Duration
	boMin, boMax   time.Duration
	requestTimeout time.Duration
	transmission   coap.Transmission
	steeringTypes  []meshcop.Type
	flightInterval time.Duration
	onState        func(State, uint16)
}

func defaultOptions() options {
	return options{
		log:            zerolog.Nop(),
		clock:          realClock{},
		rand:           rand.Reader,
		listen:         func() (net.PacketConn, error) { return net.ListenPacket("udp", ":0") },
		kaMin:          DefaultKeepAliveMin,
		kaMax:          DefaultKeepAliveMax,
		boMin:          DefaultBackoffMin,
		boMax:          DefaultBackoffMax,
		requestTimeout: DefaultRequestTimeout,
		steeringTypes:  []meshcop.Type{meshcop.TypeSteeringData},
	}
}

// Option configures a Commissioner. Options validate their arguments; New
// returns the first error, wrapping ErrInvalidConfig.
type Option func(*options) error

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// WithLogger sets the logger.
func WithLogger(l zerolog.Logger) Option {
	return func(o *options) error { o.log = l; return nil }
}

// WithClock sets the clock keep-alives and backoff wait on.
func WithClock(c Clock) Option {
	return func(o *options) error {
		if c == nil {
			return invalid("nil clock")
		}
		o.clock = c
		return nil
	}
}

// WithRand sets the randomness for keep-alive and backoff jitter
// (crypto/rand by default).
func WithRand(r io.Reader) Option {
	return func(o *options) error {
		if r == nil {
			return invalid("nil rand")
		}
		o.rand = r
		return nil
	}
}

// WithListen sets how a datagram socket is opened for each DTLS session
// with the Border Agent (default: UDP on an ephemeral port). The session
// owns and closes it.
func WithListen(f func() (net.PacketConn, error)) Option {
	return func(o *options) error {
		if f == nil {
			return invalid("nil listen")
		}
		o.listen = f
		return nil
	}
}

// WithKeepAlive bounds the keep-alive interval; each interval is drawn
// from [lo, hi]. Thread requires keep-alives well within the leader's 50 s
// timeout; lo and hi must lie in [1 s, 45 s].
func WithKeepAlive(lo, hi time.Duration) Option {
	return func(o *options) error {
		if lo < time.Second || hi < lo || hi > DefaultKeepAliveMax {
			return invalid("keep-alive interval [%v, %v] not within [1s, 45s]", lo, hi)
		}
		o.kaMin, o.kaMax = lo, hi
		return nil
	}
}

// WithBackoff bounds the wait before a redial or a new petition.
func WithBackoff(lo, hi time.Duration) Option {
	return func(o *options) error {
		if lo <= 0 || hi < lo {
			return invalid("backoff [%v, %v]", lo, hi)
		}
		o.boMin, o.boMax = lo, hi
		return nil
	}
}

// WithRequestTimeout bounds one request to the Border Agent.
func WithRequestTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return invalid("request timeout %v", d)
		}
		o.requestTimeout = d
		return nil
	}
}

// WithTransmission sets the CoAP retransmission parameters of the session.
func WithTransmission(t coap.Transmission) Option {
	return func(o *options) error {
		if t.AckTimeout <= 0 || t.RandomFactor < 1 || t.MaxRetransmit < 0 || t.MaxRetransmit > 32 {
			return invalid("transmission %+v", t)
		}
		o.transmission = t
		return nil
	}
}

// WithFlightInterval sets the DTLS handshake retransmission interval.
func WithFlightInterval(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return invalid("flight interval %v", d)
		}
		o.flightInterval = d
		return nil
	}
}

// WithSteeringTypes chooses which steering data TLVs MGMT_COMMISSIONER_SET
// carries: meshcop.TypeSteeringData (the default: what a joiner checks in
// the MLE Discovery Response), meshcop.TypeAESteeringData (ot-commissioner's
// steering for CCM Autonomous Enrollment joiners, `joiner enable ae`), or
// both; each gets the same filter.
func WithSteeringTypes(types ...meshcop.Type) Option {
	return func(o *options) error {
		if len(types) == 0 {
			return invalid("no steering types")
		}
		for _, t := range types {
			switch t {
			case meshcop.TypeSteeringData, meshcop.TypeAESteeringData, meshcop.TypeNMKPSteeringData:
			default:
				return invalid("%v is not a steering data TLV", t)
			}
		}
		o.steeringTypes = append([]meshcop.Type(nil), types...)
		return nil
	}
}

// WithStateFunc calls f (on the Run goroutine; it must not block) on every
// state change, with the session ID while Active.
func WithStateFunc(f func(State, uint16)) Option {
	return func(o *options) error { o.onState = f; return nil }
}
