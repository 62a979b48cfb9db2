package relay

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// Defaults of a relay without options.
const (
	// DefaultMaxJoiners is ot-commissioner's default number of parallel
	// joiner sessions (src/app/etc/commissioner/non-ccm-config.json
	// MaxConnectionNum = 100).
	DefaultMaxJoiners = 100
	// DefaultQueueLen bounds the datagrams of one joiner waiting to be
	// read: a DTLS flight is at most a handful of records.
	DefaultQueueLen = 16
	// DefaultIdleTimeout forgets a joiner after this long without a
	// datagram in either direction: ot-commissioner's joiner session
	// lifetime, the maximum DTLS handshake timeout (60 s) plus the joiner
	// timeout (20 s) (src/library/joiner_session.hpp, dtls.hpp).
	DefaultIdleTimeout = 80 * time.Second
	// DefaultMaxDatagram is the largest joiner datagram relayed: the IPv6
	// minimum MTU (RFC 8200 §5), what a Thread link carries.
	DefaultMaxDatagram = 1280
	// DefaultSendTimeout bounds one RLY_TX.ntf send.
	DefaultSendTimeout = 5 * time.Second
	// CBRSKIJoinerPort is the UDP source port of an OpenThread CCM joiner
	// running cBRSKI Autonomous Enrollment: the configured joiner port
	// (1000) minus 8 (kOperationMeshcop) plus 1 (kOperationCcmAeCbrski).
	// OpenThread CCM branch src/core/meshcop/joiner.hpp
	// (kJoinerUdpPortBase, kCcmCbrskiJoinerUdpSourcePort); cbrski.md §7.
	CBRSKIJoinerPort = 993
	// NKPJoinerPort is the CCM Network Key Provisioning source port (994);
	// MeshCoPJoinerPort the classic EC-JPAKE joiner's (1000).
	NKPJoinerPort     = 994
	MeshCoPJoinerPort = 1000
)

type config struct {
	maxJoiners  int
	queueLen    int
	idle        time.Duration
	maxDatagram int
	sendTimeout time.Duration
	ports       map[uint16]bool
	log         zerolog.Logger
	now         func() time.Time
}

func defaults() config {
	return config{
		maxJoiners:  DefaultMaxJoiners,
		queueLen:    DefaultQueueLen,
		idle:        DefaultIdleTimeout,
		maxDatagram: DefaultMaxDatagram,
		sendTimeout: DefaultSendTimeout,
		ports:       map[uint16]bool{CBRSKIJoinerPort: true},
		log:         zerolog.Nop(),
		now:         time.Now,
	}
}

// Option configures a relay. Options validate their arguments; New
// returns the first error, wrapping ErrInvalidOption.
type Option func(*config) error

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidOption, fmt.Sprintf(format, args...))
}

// WithMaxJoiners bounds the joiners the relay tracks at once (default
// DefaultMaxJoiners). An RLY_RX from one more is dropped and counted.
func WithMaxJoiners(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 1<<16 {
			return invalid("max joiners %d not in [1,65536]", n)
		}
		c.maxJoiners = n
		return nil
	}
}

// WithQueueLen bounds the datagrams of one joiner waiting to be read
// (default DefaultQueueLen). Beyond it, datagrams are dropped and counted.
func WithQueueLen(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 1024 {
			return invalid("queue length %d not in [1,1024]", n)
		}
		c.queueLen = n
		return nil
	}
}

// WithIdleTimeout forgets a joiner after d without traffic (default
// DefaultIdleTimeout).
func WithIdleTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("idle timeout %v", d)
		}
		c.idle = d
		return nil
	}
}

// WithMaxDatagram bounds relayed datagrams in both directions (default
// DefaultMaxDatagram).
func WithMaxDatagram(n int) Option {
	return func(c *config) error {
		if n < 64 || n > 65535 {
			return invalid("max datagram %d not in [64,65535]", n)
		}
		c.maxDatagram = n
		return nil
	}
}

// WithSendTimeout bounds one RLY_TX.ntf send (default DefaultSendTimeout).
func WithSendTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("send timeout %v", d)
		}
		c.sendTimeout = d
		return nil
	}
}

// WithJoinerPorts sets the joiner UDP ports (the Joiner UDP Port TLV: the
// joiner's source port) whose datagrams are relayed. The default is
// CBRSKIJoinerPort alone: the registrar behind the relay speaks X.509
// DTLS, so an EC-JPAKE joiner (MeshCoPJoinerPort, see
// docs/decisions/0007-thread-ec-jpake.md) or an NKP joiner
// (NKPJoinerPort, which needs the Joiner Router KEK) could not complete.
func WithJoinerPorts(ports ...uint16) Option {
	return func(c *config) error {
		if len(ports) == 0 {
			return invalid("no joiner ports")
		}
		c.ports = make(map[uint16]bool, len(ports))
		for _, p := range ports {
			if p == 0 {
				return invalid("joiner port 0")
			}
			c.ports[p] = true
		}
		return nil
	}
}

// WithLogger sets the logger; per-datagram lines are debug level and
// rate-limited.
func WithLogger(l zerolog.Logger) Option {
	return func(c *config) error {
		c.log = l
		return nil
	}
}

// WithClock sets the clock used for idle expiry.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return invalid("nil clock")
		}
		c.now = now
		return nil
	}
}
