package joinproxy

import (
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Defaults. The stateful ones are the draft's ([JP] §"Stateful Join
// Proxy"): state MUST time out 30 s after the last relayed packet by
// default, and SHOULD be limited to 2 tuples per pledge address and 10 per
// interface. The key period is the draft's example ([JP] §"JPY Message
// Security": "for example every 24 hours").
const (
	DefaultStateTimeout  = 30 * time.Second
	DefaultPerPledge     = 2
	DefaultPerInterface  = 10
	DefaultKeyRotation   = 24 * time.Hour
	DefaultMaxPeers      = 4096 // RegistrarConn: the DTLS server's own default bound
	DefaultMaxPeersPerJP = 256
	DefaultPeerTimeout   = 2 * time.Minute // RegistrarConn: the DTLS server's idle timeout
)

// mode says what an option may configure.
type mode uint8

const (
	modeStateful mode = 1 << iota
	modeStateless
	modeRegistrar
	modeAll = modeStateful | modeStateless | modeRegistrar
)

func (m mode) String() string {
	var s []string
	for _, x := range []struct {
		m    mode
		name string
	}{{modeStateful, "Stateful"}, {modeStateless, "Stateless"}, {modeRegistrar, "RegistrarConn"}} {
		if m&x.m != 0 {
			s = append(s, x.name)
		}
	}
	return strings.Join(s, "/")
}

// label is the metrics label of a single mode.
func (m mode) label() string {
	switch m {
	case modeStateful:
		return "stateful"
	case modeStateless:
		return "stateless"
	default:
		return "registrar"
	}
}

type config struct {
	mode mode

	log         zerolog.Logger
	reg         prometheus.Registerer
	now         func() time.Time
	rand        io.Reader
	maxDatagram int

	stateTimeout  time.Duration
	perPledge     int
	perInterface  int
	keyPeriod     time.Duration
	maxPeers      int
	maxPeersPerJP int
	peerTimeout   time.Duration
}

func newConfig(m mode, opts []Option) (config, error) {
	c := config{
		mode:          m,
		log:           zerolog.Nop(),
		now:           time.Now,
		rand:          rand.Reader,
		maxDatagram:   MaxContent,
		stateTimeout:  DefaultStateTimeout,
		perPledge:     DefaultPerPledge,
		perInterface:  DefaultPerInterface,
		keyPeriod:     DefaultKeyRotation,
		maxPeers:      DefaultMaxPeers,
		maxPeersPerJP: DefaultMaxPeersPerJP,
		peerTimeout:   DefaultPeerTimeout,
	}
	for _, o := range opts {
		if o == nil {
			return c, invalid("nil option")
		}
		if err := o(&c); err != nil {
			return c, err
		}
	}
	c.log = c.log.With().Str("component", "joinproxy").Str("mode", m.label()).Logger()
	return c, nil
}

// Option configures a Stateful or Stateless join proxy or a RegistrarConn.
// Options validate their arguments, and refuse to configure something they
// do not apply to; constructors return the first error, wrapping
// ErrInvalidOption.
type Option func(*config) error

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidOption, fmt.Sprintf(format, args...))
}

// only wraps an option body that applies to the modes in m.
func only(m mode, name string, f func(*config) error) Option {
	return func(c *config) error {
		if c.mode&m == 0 {
			return invalid("%s applies to %v, not %v", name, m, c.mode)
		}
		return f(c)
	}
}

// WithLogger sets the logger (the zero Logger discards). Per-datagram
// lines are at debug level and rate-limited.
func WithLogger(l zerolog.Logger) Option {
	return only(modeAll, "WithLogger", func(c *config) error {
		c.log = l
		return nil
	})
}

// WithMetrics registers the Prometheus collectors with reg:
// tumbler_joinproxy_datagrams_total{mode,direction},
// tumbler_joinproxy_dropped_total{mode,reason}, tumbler_joinproxy_active{mode}
// (circuits or peers) and tumbler_joinproxy_key_rotations_total{mode}. One
// registry takes one proxy of each mode.
func WithMetrics(reg prometheus.Registerer) Option {
	return only(modeAll, "WithMetrics", func(c *config) error {
		if reg == nil {
			return invalid("nil prometheus.Registerer")
		}
		c.reg = reg
		return nil
	})
}

// WithClock sets the clock for state expiry and key rotation.
func WithClock(now func() time.Time) Option {
	return only(modeAll, "WithClock", func(c *config) error {
		if now == nil {
			return invalid("nil clock")
		}
		c.now = now
		return nil
	})
}

// WithMaxDatagram bounds the datagrams relayed (default and maximum
// MaxContent); a larger one is dropped and counted as too_big.
func WithMaxDatagram(n int) Option {
	return only(modeAll, "WithMaxDatagram", func(c *config) error {
		if n < 64 || n > MaxContent {
			return invalid("max datagram %d not in [64,%d]", n, MaxContent)
		}
		c.maxDatagram = n
		return nil
	})
}

// WithStateTimeout sets how long a stateful circuit lives after the last
// datagram relayed in either direction (default DefaultStateTimeout).
func WithStateTimeout(d time.Duration) Option {
	return only(modeStateful, "WithStateTimeout", func(c *config) error {
		if d <= 0 {
			return invalid("state timeout %v <= 0", d)
		}
		c.stateTimeout = d
		return nil
	})
}

// WithLimits bounds stateful circuits per pledge address (IP_P, any port)
// and per interface (defaults DefaultPerPledge, DefaultPerInterface). A
// datagram that would need a circuit beyond either bound is refused and
// counted (pledge_limit, interface_limit).
func WithLimits(perPledge, perInterface int) Option {
	return only(modeStateful, "WithLimits", func(c *config) error {
		if perPledge < 1 || perInterface < perPledge {
			return invalid("limits: per pledge %d, per interface %d", perPledge, perInterface)
		}
		c.perPledge, c.perInterface = perPledge, perInterface
		return nil
	})
}

// WithKeyRotation sets how often the stateless header key is replaced
// (default DefaultKeyRotation). The previous key still opens headers for
// one more period, so replies in flight across a rotation are delivered.
func WithKeyRotation(d time.Duration) Option {
	return only(modeStateless, "WithKeyRotation", func(c *config) error {
		if d < time.Second {
			return invalid("key rotation %v < 1s", d)
		}
		c.keyPeriod = d
		return nil
	})
}

// WithRand sets the source of header keys (crypto/rand by default).
func WithRand(r io.Reader) Option {
	return only(modeStateless, "WithRand", func(c *config) error {
		if r == nil {
			return invalid("nil rand")
		}
		c.rand = r
		return nil
	})
}

// WithMaxPeers bounds the (join proxy, header) peers a RegistrarConn tracks,
// in total and per join proxy address (defaults DefaultMaxPeers,
// DefaultMaxPeersPerJP). A new peer beyond either bound is dropped and
// counted (peer_limit).
func WithMaxPeers(total, perJP int) Option {
	return only(modeRegistrar, "WithMaxPeers", func(c *config) error {
		if perJP < 1 || total < perJP {
			return invalid("max peers %d, per join proxy %d", total, perJP)
		}
		c.maxPeers, c.maxPeersPerJP = total, perJP
		return nil
	})
}

// WithPeerTimeout sets how long a RegistrarConn remembers a peer after its
// last datagram in either direction (default DefaultPeerTimeout). Set it no
// shorter than the DTLS server's idle timeout.
func WithPeerTimeout(d time.Duration) Option {
	return only(modeRegistrar, "WithPeerTimeout", func(c *config) error {
		if d <= 0 {
			return invalid("peer timeout %v <= 0", d)
		}
		c.peerTimeout = d
		return nil
	})
}
